//! The `clock-skew` check: each node's clock against the coordination
//! Redis's `TIME` (from the node's last heartbeat), warned about above
//! [`CLOCK_WARN`] and failed above the snowflake generator's tolerance for a
//! clock going back ([`MAX_CLOCK_WAIT`]); the clock of the host running
//! `check` is only warned about (it issues no IDs).

use super::checks_unread as unread;
use super::types::{CheckResult, CheckStatus, ClockOffset, Snapshot};
pub use crate::adapters::snowflake::MAX_CLOCK_WAIT;
pub use crate::node::heartbeat::CLOCK_WARN;

const ID: &str = "clock-skew";

fn result(status: CheckStatus, reason: String) -> CheckResult {
    CheckResult {
        id: ID.to_string(),
        status,
        reason,
    }
}

/// A node's offset and the status it earns.
fn grade(c: &ClockOffset) -> CheckStatus {
    let off = c.magnitude();
    if off > MAX_CLOCK_WAIT {
        CheckStatus::Fail
    } else if off > CLOCK_WARN {
        CheckStatus::Warn
    } else {
        CheckStatus::Pass
    }
}

/// Every node's clock within [`CLOCK_WARN`] of Redis `TIME` (warn above
/// it, fail above [`MAX_CLOCK_WAIT`]).
pub fn clock_skew(snap: &Snapshot) -> CheckResult {
    if let Some(r) = unread::registry(ID, snap) {
        return r;
    }
    let nodes = snap.nodes.ok().map(Vec::as_slice).unwrap_or_default();
    let mut failing = Vec::new();
    let mut warning = Vec::new();
    let mut unknown = Vec::new();
    let mut largest: Option<(&str, ClockOffset)> = None;
    for n in nodes {
        let Some(c) = n.clock_offset else {
            unknown.push(n.id.node_id.as_str());
            continue;
        };
        let line = format!("{} is {}", n.id.node_id, c.describe());
        match grade(&c) {
            CheckStatus::Fail => failing.push(line),
            CheckStatus::Warn => warning.push(line),
            CheckStatus::Pass => {}
        }
        if largest.is_none_or(|(_, l)| c.magnitude() > l.magnitude()) {
            largest = Some((n.id.node_id.as_str(), c));
        }
    }
    let host = snap
        .inspector_clock
        .filter(|c| c.magnitude() > CLOCK_WARN)
        .map(|c| {
            format!(
                "this host's clock (running the inspector) is {}: heartbeat and lock ages \
                 shown here are off by as much",
                c.describe()
            )
        });
    let fix = "fix time sync (chrony/NTP) on those hosts";
    let tolerance = format!(
        "the snowflake generator's tolerance for a clock going back ({} s)",
        MAX_CLOCK_WAIT.as_secs()
    );
    if !failing.is_empty() {
        let mut parts = vec![format!("{}: beyond {tolerance}", failing.join("; "))];
        if !warning.is_empty() {
            parts.push(format!(
                "{}: over {} s",
                warning.join("; "),
                CLOCK_WARN.as_secs()
            ));
        }
        parts.extend(host);
        return result(CheckStatus::Fail, format!("{}; {fix}", parts.join("; ")));
    }
    if !warning.is_empty() {
        let mut parts = vec![format!(
            "{}: over {} s (fails beyond {tolerance})",
            warning.join("; "),
            CLOCK_WARN.as_secs()
        )];
        parts.extend(host);
        return result(CheckStatus::Warn, format!("{}; {fix}", parts.join("; ")));
    }
    if let Some(host) = host {
        return result(
            CheckStatus::Warn,
            format!("{host}; fix time sync (chrony/NTP) on this host"),
        );
    }
    let not_reported = if unknown.is_empty() {
        String::new()
    } else {
        format!(
            "; no offset reported by {} (an older version, or Redis TIME failed)",
            unknown.join(", ")
        )
    };
    let reason = match largest {
        Some((id, c)) => format!(
            "{} node(s) within {} s of Redis TIME (largest: {id}, {}){not_reported}",
            nodes.len() - unknown.len(),
            CLOCK_WARN.as_secs(),
            c.describe()
        ),
        None if nodes.is_empty() => "no node is registered".to_string(),
        None => format!("no node reports its clock offset{not_reported}"),
    };
    result(CheckStatus::Pass, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::types::{NodeView, Source};

    fn node(id: &str, offset_us: Option<i64>) -> NodeView {
        NodeView {
            clock_offset: offset_us.map(|offset_us| ClockOffset {
                offset_us,
                rtt_us: 600,
                measured_at_ms: 0,
            }),
            ..NodeView::healthy(id)
        }
    }

    fn snap(nodes: Vec<NodeView>) -> Snapshot {
        let mut s = Snapshot::of_servers(vec![]);
        s.nodes = Source::Ok(nodes);
        s
    }

    #[test]
    fn the_thresholds_are_one_second_and_the_snowflake_tolerance() {
        assert_eq!(CLOCK_WARN, std::time::Duration::from_secs(1));
        assert_eq!(MAX_CLOCK_WAIT, std::time::Duration::from_secs(2));
        let cases = [
            (400, CheckStatus::Pass),
            (-1_000_000, CheckStatus::Pass),
            (1_000_001, CheckStatus::Warn),
            (-1_500_000, CheckStatus::Warn),
            (2_000_000, CheckStatus::Warn),
            (-2_000_001, CheckStatus::Fail),
            (3_000_000, CheckStatus::Fail),
        ];
        for (us, want) in cases {
            let r = clock_skew(&snap(vec![node("a", Some(200)), node("b", Some(us))]));
            assert_eq!(r.status, want, "{us} µs: {r:?}");
            assert_eq!(r.id, "clock-skew");
            if want != CheckStatus::Pass {
                assert!(r.reason.contains("b is "), "{us} µs: {}", r.reason);
                assert!(!r.reason.contains("a is "), "{}", r.reason);
                assert!(r.reason.contains("chrony/NTP"), "{}", r.reason);
            }
        }
    }

    #[test]
    fn the_reason_names_each_node_its_offset_and_direction() {
        let r = clock_skew(&snap(vec![
            node("web-1", Some(-3_021_400)),
            node("web-2", Some(1_250_000)),
            node("web-3", Some(100)),
        ]));
        assert_eq!(r.status, CheckStatus::Fail);
        assert_eq!(
            r.reason,
            "web-1 is 3.021 s ahead of Redis TIME (±300 µs): beyond the snowflake generator's \
             tolerance for a clock going back (2 s); web-2 is 1.250 s behind Redis TIME (±300 µs): \
             over 1 s; fix time sync (chrony/NTP) on those hosts"
        );
        let r = clock_skew(&snap(vec![node("web-2", Some(1_250_000))]));
        r.assert_reason_starts(
            CheckStatus::Warn,
            "web-2 is 1.250 s behind Redis TIME (±300 µs): over 1 s (fails",
        );
    }

    #[test]
    fn a_healthy_cluster_passes_with_its_largest_offset_and_old_nodes_are_named() {
        let r = clock_skew(&snap(vec![
            node("a", Some(-700)),
            node("b", Some(300)),
            node("old", None),
        ]));
        assert_eq!(r.status, CheckStatus::Pass);
        assert_eq!(
            r.reason,
            "2 node(s) within 1 s of Redis TIME (largest: a, 700 µs ahead of Redis TIME \
             (±300 µs)); no offset reported by old (an older version, or Redis TIME failed)"
        );
        assert_eq!(clock_skew(&snap(vec![])).reason, "no node is registered");
    }

    #[test]
    fn the_inspecting_host_is_warned_about_never_failed() {
        let mut s = snap(vec![node("a", Some(100))]);
        s.inspector_clock = Some(ClockOffset {
            offset_us: 5_000_000,
            rtt_us: 1000,
            measured_at_ms: 0,
        });
        let r = clock_skew(&s);
        r.assert_reason_starts(
            CheckStatus::Warn,
            "this host's clock (running the inspector) is 5.000 s behind",
        );
    }

    #[test]
    fn an_unread_registry_is_not_checked() {
        let mut s = snap(vec![]);
        s.nodes = Source::Unavailable {
            source: "REDIS_URL redis://127.0.0.1:1/0".into(),
            reason: "connection refused".into(),
        };
        let r = clock_skew(&s);
        assert_eq!(r.status, CheckStatus::Fail);
        assert!(r.reason.starts_with("not checked: "), "{}", r.reason);
    }
}
