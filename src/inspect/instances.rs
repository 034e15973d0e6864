//! Server instances: the snapshot's servers (one [`ServerView`] per
//! distinct URL) grouped by the server process behind them. One Redis used
//! through five databases is one instance with five uses, and its warnings
//! (eviction policy, version, persistence) are one server's, said once.
//! A Redis is known by its `run_id` when it answered `INFO`; otherwise
//! (unreachable, RabbitMQ) by its address, `host:port` from the URL.

use super::types::ServerView;

/// One server process and the URLs (uses) that reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance<'s> {
    /// `redis` or `rabbitmq`.
    pub kind: &'s str,
    /// `host:port` of its first use (behind Sentinel: `<master> (sentinel)`);
    /// password never included.
    pub address: String,
    /// The `run_id`, when a use read it.
    pub run_id: Option<&'s str>,
    /// Every URL that reaches it, in the snapshot's order.
    pub uses: Vec<&'s ServerView>,
}

impl<'s> Instance<'s> {
    /// The use whose facts stand for the instance (version, memory,
    /// policy, topology): the first that was read, else the first.
    pub fn facts(&self) -> &'s ServerView {
        self.uses
            .iter()
            .copied()
            .find(|s| s.error.is_none())
            .unwrap_or(self.uses[0])
    }

    /// Whether no use could be read.
    pub fn unreachable(&self) -> bool {
        self.uses.iter().all(|s| s.error.is_some())
    }

    /// Every variable naming it, in order, each once.
    pub fn used_by(&self) -> Vec<&'s str> {
        let mut out: Vec<&str> = Vec::new();
        for v in self.uses.iter().flat_map(|s| &s.used_by) {
            if !out.contains(&v.as_str()) {
                out.push(v);
            }
        }
        out
    }

    /// The uses in a few words: `db 0, 2, 5` or `db 0-4` (the databases
    /// of a Redis),
    /// else the number of URLs.
    pub fn uses_label(&self) -> String {
        let dbs: Vec<u32> = self.uses.iter().filter_map(|s| database(&s.url)).collect();
        if self.kind == "redis" && dbs.len() == self.uses.len() {
            format!("db {}", ranges(&dbs))
        } else if self.uses.len() == 1 {
            "1 URL".to_string()
        } else {
            format!("{} URLs", self.uses.len())
        }
    }

    /// How a check names it: the URL of its only use, else its address
    /// and uses (`127.0.0.1:6379 (db 0, 2)`).
    pub fn name(&self) -> String {
        match self.uses.as_slice() {
            [one] => one.url.clone(),
            _ => format!("{} ({})", self.address, self.uses_label()),
        }
    }

    /// How to name it in a warning: a Sentinel master by its name, else
    /// its address.
    pub fn label(&self) -> String {
        match &self.facts().topology {
            Some(t) => t.master_name.clone(),
            None => self.address.clone(),
        }
    }
}

/// Group `servers` by instance, in the order of their first use: by
/// `run_id` where read, else by address (a use without a `run_id` joins
/// the instance another use at the same address identified).
pub fn group(servers: &[ServerView]) -> Vec<Instance<'_>> {
    let mut out: Vec<Instance<'_>> = Vec::new();
    for s in servers {
        let address = address(&s.url);
        let same = |i: &Instance<'_>| {
            i.kind == s.kind
                && match (i.run_id, s.run_id.as_deref()) {
                    (Some(a), Some(b)) => a == b,
                    _ => i.uses.iter().any(|u| self::address(&u.url) == address),
                }
        };
        match out.iter_mut().find(|i| same(i)) {
            Some(i) => {
                i.run_id = i.run_id.or(s.run_id.as_deref());
                i.uses.push(s);
            }
            None => out.push(Instance {
                kind: &s.kind,
                address,
                run_id: s.run_id.as_deref(),
                uses: vec![s],
            }),
        }
    }
    // A Sentinel URL lists every sentinel: the master's name says which.
    for i in &mut out {
        if let Some(t) = &i.facts().topology {
            i.address = format!("{} (sentinel)", t.master_name);
        }
    }
    out
}

/// `host:port` of a (masked) URL: no scheme, user, password, path or
/// query; a Sentinel URL keeps its master's name (`h1:26379,h2:26379#m`).
pub fn address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match fragment {
        Some(f) if !f.is_empty() => format!("{host}#{f}"),
        _ => host.to_string(),
    }
}

/// The database number of a `redis://…/N` URL, when it names one.
pub fn database(url: &str) -> Option<u32> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['#', '?']).next().unwrap_or(rest);
    let (_, path) = rest.split_once('/')?;
    let db = if path.is_empty() { "0" } else { path };
    db.parse::<u32>().ok()
}

/// `0, 2, 5` or `0-4, 7`: sorted numbers, runs of three or more joined.
fn ranges(numbers: &[u32]) -> String {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        if j >= i + 2 {
            parts.push(format!("{}-{}", sorted[i], sorted[j]));
        } else {
            parts.extend(sorted[i..=j].iter().map(u32::to_string));
        }
        i = j + 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::servers::{redis_view, unreachable_view};

    fn redis(url: &str, var: &str, run_id: &str) -> ServerView {
        redis_view(
            url.into(),
            vec![var.into()],
            &format!("redis_version:7.2.4\r\nrun_id:{run_id}\r\nmaxmemory_policy:allkeys-lru\r\n"),
        )
    }

    #[test]
    fn addresses_and_databases_come_from_the_url_without_secrets() {
        assert_eq!(address("redis://:***@10.0.0.5:6379/2"), "10.0.0.5:6379");
        assert_eq!(
            address("rediss://u:***@r.example:6380/0?x=1"),
            "r.example:6380"
        );
        assert_eq!(
            address("amqp://guest:***@127.0.0.1:5672/%2f"),
            "127.0.0.1:5672"
        );
        assert_eq!(
            address("redis-sentinel://h1:26379,h2:26379/0#mymaster"),
            "h1:26379,h2:26379#mymaster"
        );
        assert_eq!(database("redis://h:6379/4"), Some(4));
        assert_eq!(database("redis://h:6379"), None);
        assert_eq!(database("redis://h:6379/"), Some(0));
        assert_eq!(ranges(&[4, 0, 1, 2, 3]), "0-4");
        assert_eq!(ranges(&[0, 2, 3, 7]), "0, 2, 3, 7");
        assert_eq!(ranges(&[0, 1, 2, 9]), "0-2, 9");
    }

    #[test]
    fn one_redis_through_several_databases_is_one_instance() {
        let servers = vec![
            redis("redis://127.0.0.1:6379/0", "REDIS_URL", "abc"),
            redis("redis://localhost:6379/1", "CACHE_REDIS_URL", "abc"),
            redis("redis://127.0.0.1:6379/2", "LOCK_ADAPTER_REDIS_URL", "abc"),
            redis(
                "redis://127.0.0.1:6380/0",
                "QUEUE_ADAPTER_REDIS_URL",
                "other",
            ),
        ];
        let groups = group(&servers);
        assert_eq!(groups.len(), 2, "{groups:#?}");
        assert_eq!(groups[0].uses.len(), 3);
        assert_eq!(groups[0].uses_label(), "db 0-2");
        assert_eq!(
            groups[0].used_by(),
            vec!["REDIS_URL", "CACHE_REDIS_URL", "LOCK_ADAPTER_REDIS_URL"]
        );
        assert_eq!(groups[1].address, "127.0.0.1:6380");
    }

    #[test]
    fn an_unreachable_use_joins_the_instance_at_its_address() {
        let servers = vec![
            redis("redis://127.0.0.1:6379/0", "REDIS_URL", "abc"),
            unreachable_view(
                "redis",
                "redis://127.0.0.1:6379/3".into(),
                vec!["CACHE_REDIS_URL".into()],
                "NOAUTH".into(),
            ),
        ];
        let groups = group(&servers);
        assert_eq!(groups.len(), 1);
        assert!(!groups[0].unreachable());
        assert_eq!(groups[0].facts().run_id.as_deref(), Some("abc"));
    }
}
