//! Checks of how clusterops reaches its servers: TLS verification turned
//! off on a Redis URL, and (with Sentinel) whether the sentinels agree on a
//! master and the master has a replica to fail over to; whether the
//! RabbitMQ management API answers.

use super::topology::TopologyView;
use super::types::{CheckResult, CheckStatus, Snapshot};
use crate::config::Config;
use crate::config::redis_url::RedisTarget;

fn result(id: &str, status: CheckStatus, reason: impl Into<String>) -> CheckResult {
    CheckResult {
        id: id.to_string(),
        status,
        reason: reason.into(),
    }
}

/// Every TLS URL verifies its server's certificate: `ssl_cert_reqs=none`
/// (or `#insecure`) is a warning that names each variable.
pub fn tls_verification(config: &Config) -> CheckResult {
    let urls = config.redis_urls();
    let insecure: Vec<&str> = urls
        .iter()
        .filter(|(_, u)| RedisTarget::parse(u.expose()).is_ok_and(|t| t.insecure()))
        .map(|(var, _)| *var)
        .collect();
    let tls = urls
        .iter()
        .filter(|(_, u)| RedisTarget::parse(u.expose()).is_ok_and(|t| t.tls.is_some()))
        .count();
    if !insecure.is_empty() {
        result(
            "tls-verification",
            CheckStatus::Warn,
            format!(
                "{}: ssl_cert_reqs=none, the server's certificate is NOT checked: anyone on the \
                 network path can read and change this traffic; trust the CA with ssl_ca_certs instead",
                insecure.join(", ")
            ),
        )
    } else if tls == 0 {
        result(
            "tls-verification",
            CheckStatus::Pass,
            "no Redis URL uses TLS (rediss://)",
        )
    } else {
        result(
            "tls-verification",
            CheckStatus::Pass,
            format!("{tls} TLS Redis URL(s), each verifying its server's certificate"),
        )
    }
}

/// The Sentinel topologies of a snapshot, one per Sentinel URL.
fn topologies(snap: &Snapshot) -> impl Iterator<Item = &TopologyView> {
    snap.servers.iter().filter_map(|s| s.topology.as_ref())
}

/// The sentinels of every Sentinel URL agree on one master, at least the
/// quorum of them answer, and each one's `CKQUORUM` succeeds: otherwise a
/// failure of the master would not be handled (or two masters could take
/// writes). Passes with "no Sentinel URL" for plain URLs.
pub fn sentinel_quorum(snap: &Snapshot) -> CheckResult {
    const ID: &str = "sentinel-quorum";
    let mut failed = Vec::new();
    let mut fine = Vec::new();
    for t in topologies(snap) {
        let a = t.agreement();
        let name = &t.master_name;
        let before = failed.len();
        if a.answered == 0 {
            let why: Vec<String> = t
                .sentinels
                .iter()
                .map(|s| format!("{}: {}", s.address, s.error.as_deref().unwrap_or("?")))
                .collect();
            failed.push(format!(
                "{name}: no sentinel answered ({}): a failure of the master would not be handled",
                why.join("; ")
            ));
            continue;
        }
        match a.quorum {
            Some(q) if (a.answered as u32) < q => failed.push(format!(
                "{name}: {}/{} sentinels answer, fewer than the quorum {q}: a failover cannot be \
                 authorized; bring the sentinels back",
                a.answered, a.total
            )),
            None => failed.push(format!(
                "{name}: no answering sentinel reports a quorum (does each one monitor {name}?)"
            )),
            Some(_) => {}
        }
        if !a.dissenting.is_empty() {
            let others: Vec<String> = a
                .dissenting
                .iter()
                .map(|(s, named)| match named {
                    Some(m) => format!("{s} names {m}"),
                    None => format!("{s} knows no master {name}"),
                })
                .collect();
            failed.push(format!(
                "{name}: the sentinels disagree: {} agree on {}, {}",
                a.agreeing,
                t.master.as_deref().unwrap_or("-"),
                others.join(", ")
            ));
        }
        if !a.ckquorum_failed.is_empty() {
            failed.push(format!(
                "{name}: CKQUORUM failed on {}",
                a.ckquorum_failed.join("; ")
            ));
        }
        if a.o_down {
            failed.push(format!(
                "{name}: the sentinels flag master {} objectively down (o_down)",
                t.master.as_deref().unwrap_or("-")
            ));
        }
        if failed.len() == before {
            let silent: Vec<&str> = t
                .sentinels
                .iter()
                .filter(|s| !s.answered)
                .map(|s| s.address.as_str())
                .collect();
            let silent = if silent.is_empty() {
                String::new()
            } else {
                format!(" ({} not answering)", silent.join(", "))
            };
            fine.push(format!(
                "{name}: {}/{} sentinels agree on {}, quorum {}{silent}",
                a.agreeing,
                a.total,
                t.master.as_deref().unwrap_or("-"),
                a.quorum.unwrap_or(0)
            ));
        }
    }
    if !failed.is_empty() {
        result(ID, CheckStatus::Fail, failed.join("; "))
    } else if fine.is_empty() {
        result(ID, CheckStatus::Pass, "no Sentinel URL")
    } else {
        result(ID, CheckStatus::Pass, fine.join("; "))
    }
}

/// Every Sentinel-managed master has a replica online: without one a
/// failover has nowhere to go, and worker-ID leases wait for a replica ack.
pub fn redis_replicas(snap: &Snapshot) -> CheckResult {
    const ID: &str = "redis-replicas";
    let mut warned = Vec::new();
    let mut fine = Vec::new();
    for t in topologies(snap) {
        let name = &t.master_name;
        if !t.master_confirmed() {
            let what = match (&t.read_from, t.read_role) {
                (Some(r), Some(role)) => format!("{r} reports role {}", role.as_str()),
                _ => "the master could not be read".to_string(),
            };
            warned.push(format!("{name}: replicas unknown ({what})"));
        } else if t.online_replicas().next().is_none() {
            warned.push(format!(
                "{name}: master {} has no online replica: a failover has nowhere to go, and \
                 worker-ID leases wait for a replica ack",
                t.master.as_deref().unwrap_or("-")
            ));
        } else {
            fine.push(format!("{name}: {}", t.replicas_summary()));
        }
    }
    if !warned.is_empty() {
        result(ID, CheckStatus::Warn, warned.join("; "))
    } else if fine.is_empty() {
        result(ID, CheckStatus::Pass, "no Sentinel URL")
    } else {
        result(ID, CheckStatus::Pass, fine.join("; "))
    }
}

/// The RabbitMQ management API answers: without it the in-flight counts of
/// RabbitMQ queues (unacknowledged messages) and their ack rates are
/// unknown. Passes when the queue is not on RabbitMQ.
pub fn rabbitmq_management(config: &Config, snap: &Snapshot) -> CheckResult {
    const ID: &str = "rabbitmq-management";
    if !matches!(config.queue, crate::config::QueueAdapter::Rabbitmq(_)) {
        return result(ID, CheckStatus::Pass, "the queue is not on RabbitMQ");
    }
    let state = snap
        .servers
        .iter()
        .find(|s| s.kind == "rabbitmq")
        .and_then(|s| s.management.clone());
    match state.as_deref() {
        Some("ok") => result(
            ID,
            CheckStatus::Pass,
            "the management API answers: in-flight counts and ack rates are known",
        ),
        Some(why) => result(
            ID,
            CheckStatus::Warn,
            format!(
                "{why}: in-flight counts of RabbitMQ queues (unacknowledged messages) and ack \
                 rates are unknown; enable the plugin (rabbitmq-plugins enable \
                 rabbitmq_management) or set QUEUE_ADAPTER_RABBITMQ_MANAGEMENT_URL"
            ),
        ),
        None => result(
            ID,
            CheckStatus::Warn,
            "the management API was not read: in-flight counts of RabbitMQ queues are unknown",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::servers::unreachable_view;
    use crate::inspect::topology::{QuorumCheck, SentinelView};

    const INFO: &str = "role:master\r\nslave0:ip=127.0.0.1,port=6381,state=online,offset=90,lag=1\r\nmaster_repl_offset:100\r\n";

    fn sentinel(i: u16, names: &str) -> SentinelView {
        SentinelView {
            address: format!("127.0.0.1:2637{i}"),
            answered: true,
            error: None,
            names_master: Some(names.into()),
            quorum: Some(2),
            other_sentinels: Some(2),
            flags: vec![],
            ckquorum: Some(QuorumCheck::parse(true, "OK 3 usable Sentinels.")),
        }
    }

    fn snap(sentinels: Vec<SentinelView>, info: &str) -> Snapshot {
        let mut server = unreachable_view("redis", "redis-sentinel://…".into(), vec![], "-".into());
        server.error = None;
        server.topology = Some(TopologyView::build(
            "mymaster".into(),
            sentinels,
            Some("127.0.0.1:6380".into()),
            Some(info),
        ));
        Snapshot::of_servers(vec![server])
    }

    fn healthy() -> Vec<SentinelView> {
        (0..3).map(|i| sentinel(i, "127.0.0.1:6380")).collect()
    }

    #[test]
    fn agreeing_sentinels_and_an_online_replica_pass_with_the_figures() {
        let s = snap(healthy(), INFO);
        let q = sentinel_quorum(&s);
        assert_eq!(q.status, CheckStatus::Pass, "{}", q.reason);
        assert_eq!(
            q.reason,
            "mymaster: 3/3 sentinels agree on 127.0.0.1:6380, quorum 2"
        );
        let r = redis_replicas(&s);
        assert_eq!(r.status, CheckStatus::Pass, "{}", r.reason);
        assert_eq!(r.reason, "mymaster: 1 replica online lag 1s");
    }

    #[test]
    fn one_silent_sentinel_of_three_still_passes_and_is_named() {
        let mut sentinels = healthy();
        sentinels[2] = SentinelView::no_answer("127.0.0.1:26372".into(), "refused".into());
        let q = sentinel_quorum(&snap(sentinels, INFO));
        assert_eq!(q.status, CheckStatus::Pass, "{}", q.reason);
        assert!(q.reason.contains("2/3 sentinels agree"), "{}", q.reason);
        assert!(
            q.reason.contains("127.0.0.1:26372 not answering"),
            "{}",
            q.reason
        );
    }

    #[test]
    fn fewer_than_the_quorum_or_disagreement_or_noquorum_fail() {
        let mut two_down = healthy();
        two_down[1] = SentinelView::no_answer("127.0.0.1:26371".into(), "refused".into());
        two_down[2] = SentinelView::no_answer("127.0.0.1:26372".into(), "refused".into());
        let q = sentinel_quorum(&snap(two_down, INFO));
        q.assert_reason_contains(
            CheckStatus::Fail,
            "1/3 sentinels answer, fewer than the quorum 2",
        );

        let mut split = healthy();
        split[2].names_master = Some("127.0.0.1:6381".into());
        let q = sentinel_quorum(&snap(split, INFO));
        q.assert_reason_contains(CheckStatus::Fail, "127.0.0.1:26372 names 127.0.0.1:6381");

        let mut noquorum = healthy();
        noquorum[0].ckquorum = Some(QuorumCheck::parse(false, "NOQUORUM 1 usable Sentinels."));
        let q = sentinel_quorum(&snap(noquorum, INFO));
        q.assert_reason_contains(
            CheckStatus::Fail,
            "CKQUORUM failed on 127.0.0.1:26370: NOQUORUM",
        );

        let none = (0..3)
            .map(|i| SentinelView::no_answer(format!("127.0.0.1:2637{i}"), "refused".into()))
            .collect();
        let q = sentinel_quorum(&snap(none, INFO));
        q.assert_reason_starts(CheckStatus::Fail, "mymaster: no sentinel answered");
    }

    #[test]
    fn a_master_without_an_online_replica_is_a_warning() {
        let r = redis_replicas(&snap(healthy(), "role:master\r\nmaster_repl_offset:5\r\n"));
        r.assert_reason_contains(
            CheckStatus::Warn,
            "no online replica: a failover has nowhere to go",
        );
    }

    #[test]
    fn plain_urls_skip_both_checks() {
        let mut s = snap(healthy(), INFO);
        s.servers[0].topology = None;
        for c in [sentinel_quorum(&s), redis_replicas(&s)] {
            assert_eq!(
                (c.status, c.reason.as_str()),
                (CheckStatus::Pass, "no Sentinel URL")
            );
        }
    }
}
