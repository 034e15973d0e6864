//! Server facts: Redis `INFO` parsed into a [`ServerView`] (version, role,
//! memory, eviction policy, clients, modules), read with one command.

use super::types::ServerView;
use std::collections::BTreeMap;

/// Parse the text of `INFO` (any sections) into `key -> value`.
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end_matches('\r').split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Module names from `INFO modules` lines (`module:name=bf,ver=20612,…`).
pub fn modules(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("module:"))
        .filter_map(|rest| rest.split(',').find_map(|kv| kv.strip_prefix("name=")))
        .map(str::to_string)
        .collect()
}

/// Fill a [`ServerView`] from `INFO` text.
pub fn redis_view(url: String, used_by: Vec<String>, info: &str) -> ServerView {
    let map = parse_info(info);
    let num = |k: &str| map.get(k).and_then(|v| v.parse::<u64>().ok());
    ServerView {
        kind: "redis".into(),
        url,
        used_by,
        version: map.get("redis_version").cloned(),
        role: map.get("role").cloned(),
        used_memory: num("used_memory"),
        maxmemory: num("maxmemory"),
        maxmemory_policy: map.get("maxmemory_policy").cloned(),
        connected_clients: num("connected_clients"),
        modules: modules(info),
        error: None,
        run_id: map.get("run_id").cloned(),
        management: None,
        topology: None,
        cluster: None,
        persistence: None,
    }
}

/// A server that could not be read.
pub fn unreachable_view(
    kind: &str,
    url: String,
    used_by: Vec<String>,
    error: String,
) -> ServerView {
    ServerView {
        kind: kind.into(),
        url,
        used_by,
        version: None,
        role: None,
        used_memory: None,
        maxmemory: None,
        maxmemory_policy: None,
        connected_clients: None,
        modules: Vec::new(),
        error: Some(error),
        run_id: None,
        management: None,
        topology: None,
        cluster: None,
        persistence: None,
    }
}

/// `(major, minor)` of a dotted version string.
pub fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut it = version.split(['.', '-', '+']);
    let major = it.next()?.trim_start_matches('v').parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// Whether a Redis server offers Bloom filters (version 8+, or a module).
pub fn has_bloom(view: &ServerView) -> bool {
    let v8 = view
        .version
        .as_deref()
        .and_then(major_minor)
        .is_some_and(|(m, _)| m >= 8);
    v8 || view.modules.iter().any(|m| {
        matches!(
            m.to_ascii_lowercase().as_str(),
            "bf" | "redisbloom" | "bloom"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nrun_id:4f1c\r\nrole:master\r\n# Clients\r\nconnected_clients:7\r\n# Memory\r\nused_memory:1048576\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n# Modules\r\nmodule:name=bf,ver=20612,api=1,filters=0,usedby=[],using=[],options=[]\r\n";

    #[test]
    fn info_is_parsed_into_a_server_view() {
        let v = redis_view(
            "redis://127.0.0.1:6379/0".into(),
            vec!["REDIS_URL".into()],
            INFO,
        );
        assert_eq!(v.version.as_deref(), Some("7.0.15"));
        assert_eq!(v.role.as_deref(), Some("master"));
        assert_eq!(v.connected_clients, Some(7));
        assert_eq!(v.used_memory, Some(1_048_576));
        assert_eq!(v.maxmemory_policy.as_deref(), Some("noeviction"));
        assert_eq!(v.modules, vec!["bf"]);
        assert_eq!(v.run_id.as_deref(), Some("4f1c"));
        assert!(has_bloom(&v));
    }

    #[test]
    fn versions_are_compared_by_major() {
        assert_eq!(major_minor("7.0.15"), Some((7, 0)));
        assert_eq!(major_minor("4.1.2"), Some((4, 1)));
        assert_eq!(major_minor("junk"), None);
        let mut v = redis_view(String::new(), vec![], "redis_version:8.0.1\r\n");
        assert!(has_bloom(&v));
        v.version = Some("7.2.4".into());
        assert!(!has_bloom(&v));
    }
}
