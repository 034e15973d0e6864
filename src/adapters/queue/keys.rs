//! The Redis queue's keys (docs/redis-keys.md, "Message queue"): the one
//! place their names are built and parsed. Every key of one queue shares
//! the hash tag `{<queue>}`, so the settling MULTIs (retry or dead-letter
//! with acknowledgement), the requeue script and the delete of both
//! streams each run on one slot of a Redis Cluster; different queues
//! spread over the slots.

use super::validate_queue_name;
use crate::adapters::hash_tag::{layout_reason, split_tag, tag};
use crate::config::Namespace;

/// The family of queue keys under the namespace: `<ns>:queue:…`.
pub const QUEUE_FAMILY: &str = "queue:";

/// `<ns>:queue:{<queue>}`: the stream of waiting and pending messages.
pub fn stream_key(ns: &Namespace, queue: &str) -> String {
    ns.key(&format!("{QUEUE_FAMILY}{}", tag(queue)))
}

/// `<ns>:queue:{<queue>}:dead`: the stream of dead letters.
pub fn dead_key(ns: &Namespace, queue: &str) -> String {
    format!("{}:dead", stream_key(ns, queue))
}

/// The queue name of `key`, a key under `<ns>:queue:` (its stream, its
/// dead letters or its pause flag); the error says why it is not a queue key of this layout.
pub fn queue_name_of<'k>(ns: &Namespace, key: &'k str) -> Result<&'k str, String> {
    let prefix = ns.key(QUEUE_FAMILY);
    let rest = key
        .strip_prefix(prefix.as_str())
        .ok_or_else(|| format!("not under {prefix}"))?;
    let name = match split_tag(rest) {
        Some((name, "" | ":dead" | ":paused")) => name,
        _ => {
            let shape = format!("{}[:dead|:paused]", stream_key(ns, "<queue>"));
            return Err(layout_reason(&shape));
        }
    };
    match validate_queue_name(name) {
        Ok(()) => Ok(name),
        Err(_) => Err(format!("{name:?} is not a valid queue name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::hash_tag::key_slot;
    use std::collections::BTreeSet;

    fn ns() -> Namespace {
        Namespace::new("clusterops").unwrap()
    }

    #[test]
    fn a_queues_keys_share_one_slot() {
        let ns = ns();
        assert_eq!(stream_key(&ns, "mail"), "clusterops:queue:{mail}");
        assert_eq!(dead_key(&ns, "mail"), "clusterops:queue:{mail}:dead");
        for queue in ["mail", "record-events", "a.b_c", "9"] {
            assert_eq!(
                key_slot(stream_key(&ns, queue).as_bytes()),
                key_slot(dead_key(&ns, queue).as_bytes()),
                "{queue}"
            );
        }
    }

    #[test]
    fn different_queues_spread_over_slots() {
        let ns = ns();
        let slots: BTreeSet<u16> = (0..20)
            .map(|i| key_slot(stream_key(&ns, &format!("queue-{i}")).as_bytes()))
            .collect();
        assert!(slots.len() > 1, "{slots:?}");
    }

    #[test]
    fn queue_keys_parse_back_and_other_shapes_say_why_not() {
        let ns = ns();
        assert_eq!(queue_name_of(&ns, &stream_key(&ns, "mail")), Ok("mail"));
        assert_eq!(queue_name_of(&ns, &dead_key(&ns, "mail")), Ok("mail"));
        for old in [
            "clusterops:queue:mail",
            "clusterops:queue:mail:dead",
            "clusterops:queue:{mail}:extra",
            "clusterops:queue:{mail}x",
            "clusterops:queue:{}",
        ] {
            let err = queue_name_of(&ns, old).unwrap_err();
            assert!(err.contains("hash-tagged layout"), "{old}: {err}");
        }
        assert!(queue_name_of(&ns, "clusterops:queue:{-x}").is_err());
    }
}
