//! The lock's Redis keys (docs/redis-keys.md, "Distributed lock"): the one
//! place their names are built and parsed. The lock key, the fencing
//! counter and the two wait-queue keys of a name share the hash tag
//! `{<name>}`, so the acquire script, which touches all four, runs on one
//! slot of a Redis Cluster.

use super::{LockError, validate_name};
use crate::adapters::hash_tag::{layout_reason, split_tag, tag};
use crate::config::Namespace;

/// The family of lock keys under the namespace: `<ns>:lock:…` (what the
/// inspector scans for; `<ns>:lock-fence:…` is not in it).
pub const LOCK_FAMILY: &str = "lock:";

/// `<ns>:lock:{<name>}`: the lock of `name`, a string holding the holder
/// value, with PX TTL.
pub fn lock_key(ns: &Namespace, name: &str) -> String {
    ns.key(&format!("{LOCK_FAMILY}{}", tag(name)))
}

/// `<ns>:lock-fence:{<name>}`: the fencing counter of `name`, an integer
/// string, no TTL.
pub fn fence_key(ns: &Namespace, name: &str) -> String {
    ns.key(&format!("lock-fence:{}", tag(name)))
}

/// `<ns>:lock-wait:{<name>}`: the FIFO wait queue of `name`, a sorted set
/// of waiter ids (`<16 hex>|<node_id>`) scored by arrival (the server's
/// clock in µs, kept strictly increasing). `name` `*` gives the SCAN
/// pattern of every queue.
pub fn wait_key(ns: &Namespace, name: &str) -> String {
    ns.key(&format!("lock-wait:{}", tag(name)))
}

/// `<ns>:lock-wait:{<name>}:until`: the keep-alive deadlines of the
/// waiters of `name`, a sorted set of the same ids scored by the server's
/// Unix time in ms after which the waiter counts as dead.
pub fn wait_until_key(ns: &Namespace, name: &str) -> String {
    format!("{}:until", wait_key(ns, name))
}

/// `<ns>:lock-released`: the prefix of the pub/sub channels releases are
/// published on (not keys); see [`wake_channel`].
pub fn release_channel(ns: &Namespace) -> String {
    ns.key("lock-released")
}

/// `<ns>:lock-released:<instance>`: the channel of one `RedisLock`
/// instance (16 hex digits, random per instance), the only one it
/// subscribes to. A release publishes the id of the waiter whose turn it
/// is on the channel of the instance that waiter waits on (the id starts
/// with `<instance>.`), so one message reaches one instance.
pub fn wake_channel(ns: &Namespace, instance: &str) -> String {
    format!("{}:{instance}", release_channel(ns))
}

/// The lock name of `key`, a key under `<ns>:lock:`; the error says why it
/// is not a lock key of this layout.
pub fn lock_name_of<'k>(ns: &Namespace, key: &'k [u8]) -> Result<&'k str, String> {
    let key = std::str::from_utf8(key).map_err(|_| "key name is not UTF-8".to_string())?;
    let prefix = ns.key(LOCK_FAMILY);
    let rest = key
        .strip_prefix(prefix.as_str())
        .ok_or_else(|| format!("not under {prefix}"))?;
    let name = match split_tag(rest) {
        Some((name, "")) => name,
        _ => return Err(layout_reason(&lock_key(ns, "<name>"))),
    };
    match validate_name(name) {
        Ok(()) => Ok(name),
        Err(LockError::InvalidName { reason, .. }) => {
            Err(format!("not a valid lock name ({reason})"))
        }
        Err(_) => Err("not a valid lock name".to_string()),
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
    fn a_lock_its_fencing_counter_and_its_wait_queue_share_one_slot() {
        let ns = ns();
        assert_eq!(lock_key(&ns, "jobs"), "clusterops:lock:{jobs}");
        assert_eq!(fence_key(&ns, "jobs"), "clusterops:lock-fence:{jobs}");
        assert_eq!(wait_key(&ns, "jobs"), "clusterops:lock-wait:{jobs}");
        assert_eq!(
            wait_until_key(&ns, "jobs"),
            "clusterops:lock-wait:{jobs}:until"
        );
        for name in ["jobs", "runbook", "a:b:c", "x", "schema-migrations"] {
            let slot = key_slot(lock_key(&ns, name).as_bytes());
            for key in [
                fence_key(&ns, name),
                wait_key(&ns, name),
                wait_until_key(&ns, name),
            ] {
                assert_eq!(key_slot(key.as_bytes()), slot, "{key}");
            }
            // Not in the lock family the inspector scans.
            assert!(lock_name_of(&ns, wait_key(&ns, name).as_bytes()).is_err());
        }
    }

    #[test]
    fn different_locks_spread_over_slots() {
        let ns = ns();
        let slots: BTreeSet<u16> = (0..20)
            .map(|i| key_slot(lock_key(&ns, &format!("job-{i}")).as_bytes()))
            .collect();
        assert!(slots.len() > 1, "{slots:?}");
    }

    #[test]
    fn lock_keys_parse_back_and_other_shapes_say_why_not() {
        let ns = ns();
        let key = lock_key(&ns, "a:b");
        assert_eq!(lock_name_of(&ns, key.as_bytes()), Ok("a:b"));
        for old in [
            "clusterops:lock:jobs",
            "clusterops:lock:{jobs}x",
            "clusterops:lock:{a}b",
            "clusterops:lock:{}",
            "clusterops:lock:{jobs",
        ] {
            let err = lock_name_of(&ns, old.as_bytes()).unwrap_err();
            assert!(
                err.contains("hash-tagged layout clusterops:lock:{<name>} "),
                "{old}: {err}"
            );
        }
        let err = lock_name_of(&ns, b"clusterops:lock:{a b}").unwrap_err();
        assert!(err.contains("not a valid lock name"), "{err}");
        assert!(lock_name_of(&ns, b"clusterops:lock:\xff").is_err());
        assert!(lock_name_of(&ns, b"clusterops:lock-fence:{jobs}").is_err());
    }

    #[test]
    fn lock_names_with_braces_are_refused_naming_the_rule() {
        for name in ["a{b", "a}b", "{jobs}", "}"] {
            let err = validate_name(name).unwrap_err().to_string();
            assert!(
                err.contains("hash tag") && err.contains("{ }"),
                "{name}: {err}"
            );
        }
        assert!(validate_name("a:b-c.d_e").is_ok());
    }
}
