//! The sync-signal keys (docs/redis-keys.md, "Sync signals"): the one place
//! their names are built and parsed. The three keys of a channel share the
//! hash tag `{<channel>}`, so the publish script (counter and stream) and
//! the atomic start-position read (cursors, stream, counter) each run on
//! one slot of a Redis Cluster; different channels spread over the slots.

use super::is_valid_channel;
use crate::adapters::hash_tag::{layout_reason, split_tag, tag};
use crate::config::Namespace;

/// The family of sync-signal keys under the namespace: `<ns>:signal:…`.
pub const SIGNAL_FAMILY: &str = "signal:";

/// `<ns>:signal:{<channel>}`: the channel's stream.
pub fn stream_key(ns: &Namespace, channel: &str) -> String {
    ns.key(&format!("{SIGNAL_FAMILY}{}", tag(channel)))
}

/// `<ns>:signal:{<channel>}:cursors`: per node, the last entry it handled.
pub fn cursors_key(ns: &Namespace, channel: &str) -> String {
    format!("{}:cursors", stream_key(ns, channel))
}

/// `<ns>:signal:{<channel>}:seq`: how many messages were published.
pub fn seq_key(ns: &Namespace, channel: &str) -> String {
    format!("{}:seq", stream_key(ns, channel))
}

/// The SCAN pattern of every channel's cursors hash.
pub(crate) fn cursors_pattern(ns: &Namespace) -> String {
    ns.pattern(&format!("{SIGNAL_FAMILY}{{*}}:cursors"))
}

/// Which of a channel's keys a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Stream,
    Cursors,
    Seq,
}

/// The channel and role of `key`, a key under `<ns>:signal:`; the error
/// says why it is not a sync-signal key of this layout.
pub(crate) fn parse_key<'k>(ns: &Namespace, key: &'k str) -> Result<(&'k str, Role), String> {
    let prefix = ns.key(SIGNAL_FAMILY);
    let rest = key
        .strip_prefix(prefix.as_str())
        .ok_or_else(|| format!("not under {prefix}"))?;
    let (channel, role) = match split_tag(rest) {
        Some((channel, "")) => (channel, Role::Stream),
        Some((channel, ":cursors")) => (channel, Role::Cursors),
        Some((channel, ":seq")) => (channel, Role::Seq),
        _ => {
            let shape = format!("{}[:cursors|:seq]", stream_key(ns, "<channel>"));
            return Err(layout_reason(&shape));
        }
    };
    if is_valid_channel(channel) {
        Ok((channel, role))
    } else {
        Err(format!("{channel:?} is not a valid channel name"))
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
    fn a_channels_three_keys_share_one_slot() {
        let ns = ns();
        assert_eq!(stream_key(&ns, "events"), "clusterops:signal:{events}");
        assert_eq!(
            cursors_key(&ns, "events"),
            "clusterops:signal:{events}:cursors"
        );
        assert_eq!(seq_key(&ns, "events"), "clusterops:signal:{events}:seq");
        for channel in ["events", "a", "records.v2", "x-y_z"] {
            let slot = key_slot(stream_key(&ns, channel).as_bytes());
            assert_eq!(key_slot(cursors_key(&ns, channel).as_bytes()), slot);
            assert_eq!(key_slot(seq_key(&ns, channel).as_bytes()), slot);
        }
    }

    #[test]
    fn different_channels_spread_over_slots() {
        let ns = ns();
        let slots: BTreeSet<u16> = (0..20)
            .map(|i| key_slot(stream_key(&ns, &format!("channel-{i}")).as_bytes()))
            .collect();
        assert!(slots.len() > 1, "{slots:?}");
    }

    #[test]
    fn signal_keys_parse_back_and_other_shapes_say_why_not() {
        let ns = ns();
        let parse = |k: String| parse_key(&ns, &k).map(|(c, r)| (c.to_string(), r));
        assert_eq!(parse(stream_key(&ns, "e")), Ok(("e".into(), Role::Stream)));
        assert_eq!(
            parse(cursors_key(&ns, "e")),
            Ok(("e".into(), Role::Cursors))
        );
        assert_eq!(parse(seq_key(&ns, "e")), Ok(("e".into(), Role::Seq)));
        for old in [
            "clusterops:signal:events",
            "clusterops:signal:events:cursors",
            "clusterops:signal:{events}:extra",
            "clusterops:signal:{events}x",
            "clusterops:signal:{}",
        ] {
            let err = parse_key(&ns, old).unwrap_err();
            assert!(err.contains("hash-tagged layout"), "{old}: {err}");
        }
        assert!(parse_key(&ns, "clusterops:signal:{a:b}").is_err());
        assert_eq!(cursors_pattern(&ns), "clusterops:signal:{*}:cursors");
    }

    #[test]
    fn channel_names_with_braces_are_refused_naming_the_rule() {
        for name in ["a{b", "a}b", "{events}"] {
            let err = super::super::validate_channel(name)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("hash tag") && err.contains("'{'"),
                "{name}: {err}"
            );
        }
    }
}
