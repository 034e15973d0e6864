//! The Servers view groups by server instance: one Redis reached through
//! five databases is one row with five uses, and each of its warnings is
//! said once (not once per database). Drawn at 80x24 and 160x48.

use crate::console_support;

use clusterops::console::action::Action;
use clusterops::console::sample;
use clusterops::console::views::ViewId;
use clusterops::inspect::servers::{redis_view, unreachable_view};
use clusterops::inspect::{ServerView, Snapshot};
use console_support::*;

const INFO: &str = "redis_version:7.2.4\r\nrun_id:9d1e0c7a55aa\r\nrole:master\r\n\
    used_memory:50331648\r\nmaxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\n\
    connected_clients:23\r\n";

/// The degraded sample, its servers replaced by one Redis used through
/// databases 0 to 4 (the cache's URL says `localhost`: the `run_id` says
/// it is the same server) and a second Redis that does not answer.
fn five_databases() -> Snapshot {
    let mut snap = sample::degraded();
    let uses = [
        ("redis://127.0.0.1:6379/0", "REDIS_URL"),
        ("redis://localhost:6379/1", "CACHE_REDIS_URL"),
        ("redis://127.0.0.1:6379/2", "LOCK_ADAPTER_REDIS_URL"),
        ("redis://127.0.0.1:6379/3", "PUBSUB_ADAPTER_REDIS_URL"),
        ("redis://127.0.0.1:6379/4", "QUEUE_ADAPTER_REDIS_URL"),
    ];
    let mut servers: Vec<ServerView> = uses
        .iter()
        .map(|(url, var)| redis_view(url.to_string(), vec![var.to_string()], INFO))
        .collect();
    servers.push(unreachable_view(
        "redis",
        "redis://:***@10.0.0.9:6379/0".into(),
        vec!["BACKUP_REDIS_URL".into()],
        "connection refused".into(),
    ));
    snap.servers = servers;
    snap
}

#[test]
fn one_redis_with_five_databases_is_one_server_with_five_uses() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = snapshot_app(five_databases());
        app.dispatch(Some(Action::SwitchView(ViewId::Servers)));
        let text = screen(&mut app, w, h);
        assert!(text.contains("Servers 1/2"), "two servers, not six: {text}");
        assert_eq!(
            text.matches("maxmemory-policy is allkeys-lru").count(),
            1,
            "the eviction warning once: {text}"
        );
        assert_eq!(
            text.matches("has no bloom filter module").count(),
            1,
            "the version warning once: {text}"
        );
        assert!(text.contains("127.0.0.1:6379"), "{text}");
        assert!(text.contains("db 0-4"), "{text}");
        insta::assert_snapshot!(format!("servers_five_databases_{w}x{h}"), text);
    }
    // The overview counts servers, not URLs.
    let mut app = snapshot_app(five_databases());
    let text = screen(&mut app, 160, 48);
    assert!(text.contains("2 · 3 warnings"), "{text}");
}

#[test]
fn the_selected_server_lists_every_use_with_its_variables() {
    let mut app = snapshot_app(five_databases());
    app.dispatch(Some(Action::SwitchView(ViewId::Servers)));
    let text = screen(&mut app, 160, 48);
    for (url, var) in [
        ("redis://localhost:6379/1", "CACHE_REDIS_URL"),
        ("redis://127.0.0.1:6379/4", "QUEUE_ADAPTER_REDIS_URL"),
    ] {
        assert!(text.contains(&format!("use       {url}  {var}")), "{text}");
    }
    assert!(text.contains("run_id 9d1e0c7a55aa"), "{text}");
}
