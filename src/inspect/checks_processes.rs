//! `process-capacity`: with `CLUSTER_MODE` each host runs several node
//! processes, each taking one of the cluster's 32 worker IDs. The check
//! warns when the hosts in the registry times the most processes one of
//! them runs can exceed 32: the next host started like the busiest one, or
//! a restart of it, may find no worker ID left.

use super::checks::WORKER_ID_SLOTS;
use super::checks_unread as unread;
use super::types::{CheckResult, CheckStatus, NodeView, Snapshot};
use std::collections::BTreeMap;

const ID: &str = "process-capacity";

/// Per host: how many processes it runs, by its records (the processes
/// seen, or the `CLUSTER_MODE` count a supervised process declares when
/// more of them are not up yet).
pub fn processes_per_host(nodes: &[NodeView]) -> BTreeMap<&str, usize> {
    let mut seen: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for n in nodes {
        let entry = seen.entry(n.id.host.as_str()).or_default();
        entry.0 += 1;
        if let Some(p) = &n.process {
            entry.1 = entry.1.max(usize::from(p.count));
        }
    }
    seen.into_iter()
        .map(|(host, (records, declared))| (host, records.max(declared)))
        .collect()
}

/// Hosts × the largest per-host process count against the 32 worker IDs.
pub fn process_capacity(snap: &Snapshot) -> CheckResult {
    let result = |status, reason: String| CheckResult {
        id: ID.to_string(),
        status,
        reason,
    };
    if let Some(r) = unread::registry(ID, snap) {
        return r;
    }
    let nodes = snap.nodes.ok().map(Vec::as_slice).unwrap_or_default();
    let per_host = processes_per_host(nodes);
    let Some((busiest, most)) = per_host
        .iter()
        .max_by_key(|(host, n)| (**n, std::cmp::Reverse(**host)))
        .map(|(h, n)| (*h, *n))
    else {
        return result(CheckStatus::Pass, "no node is registered".into());
    };
    let hosts = per_host.len();
    let possible = hosts * most;
    if possible > WORKER_ID_SLOTS {
        result(
            CheckStatus::Warn,
            format!(
                "{hosts} host(s) × up to {most} processes ({busiest}) = {possible} nodes, more than the \
                 {WORKER_ID_SLOTS} worker IDs: a host started or restarted like {busiest} may find none \
                 free; lower CLUSTER_MODE or run fewer hosts"
            ),
        )
    } else {
        result(
            CheckStatus::Pass,
            format!(
                "{hosts} host(s) × up to {most} process(es) = {possible} of {WORKER_ID_SLOTS} worker IDs"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::types::{ProcessSlot, Source};

    fn on(host: &str, id: &str, count: Option<u16>) -> NodeView {
        let mut view = NodeView {
            process: count.map(|count| ProcessSlot {
                index: 0,
                count,
                shared_addr: format!("{host}:13000"),
            }),
            ..NodeView::healthy(id)
        };
        view.id.host = host.into();
        view
    }

    fn snap(nodes: Vec<NodeView>) -> Snapshot {
        let mut s = Snapshot::of_servers(vec![]);
        s.nodes = Source::Ok(nodes);
        s
    }

    #[test]
    fn single_process_hosts_pass_with_the_count() {
        let r = process_capacity(&snap(vec![on("a", "a1", None), on("b", "b1", None)]));
        r.assert_reason_starts(
            CheckStatus::Pass,
            "2 host(s) × up to 1 process(es) = 2 of 32",
        );
    }

    #[test]
    fn hosts_times_the_busiest_hosts_processes_above_32_warns() {
        // Three hosts; "big" declares CLUSTER_MODE=12 with two processes up.
        let nodes = vec![
            on("big", "big-0", Some(12)),
            on("big", "big-1", Some(12)),
            on("small", "s1", None),
            on("other", "o1", None),
        ];
        let r = process_capacity(&snap(nodes));
        r.assert_reason_starts(
            CheckStatus::Warn,
            "3 host(s) × up to 12 processes (big) = 36 nodes",
        );
        // Exactly 32 is fine.
        let nodes = vec![on("a", "a-0", Some(16)), on("b", "b-0", Some(16))];
        assert_eq!(process_capacity(&snap(nodes)).status, CheckStatus::Pass);
    }

    #[test]
    fn processes_seen_count_even_without_a_declared_count() {
        let mut nodes: Vec<NodeView> = (0..9).map(|i| on("a", &format!("a{i}"), None)).collect();
        nodes.extend((0..4).map(|i| on(&format!("h{i}"), &format!("h{i}"), None)));
        assert_eq!(processes_per_host(&nodes).get("a"), Some(&9));
        let r = process_capacity(&snap(nodes));
        r.assert_reason_contains(CheckStatus::Warn, "5 host(s) × up to 9 processes (a) = 45");
    }

    #[test]
    fn an_unread_registry_fails_and_an_empty_one_passes() {
        let mut s = snap(vec![]);
        assert_eq!(process_capacity(&s).status, CheckStatus::Pass);
        s.nodes = Source::Unavailable {
            source: "REDIS_URL redis://x".into(),
            reason: "down".into(),
        };
        assert_eq!(process_capacity(&s).status, CheckStatus::Fail);
    }
}
