//! The reads of a Redis Cluster's masters put together: one
//! [`ShardView`] per master (slots and replicas from `CLUSTER SLOTS`; role,
//! memory, keys and replica links from its `INFO`; its view of the cluster
//! state from its `CLUSTER INFO`), the [`ClusterView`], one [`ServerView`]
//! for the URL (figures over every master), and the locks, streams and
//! queues of every master as one [`ServerRead`]. A family is unavailable
//! when a master that may hold some of it could not be read.

use super::cluster_view::{ClusterReplica, ClusterView, ReplicaLink, ShardView, keys_of};
use super::persistence::Persistence;
use super::plan::Roles;
use super::server_read::{Part, ServerRead};
use super::servers::{major_minor, parse_info, redis_view, unreachable_view};
use super::topology::{RedisRole, replicas};
use super::types::ServerView;
use crate::adapters::lock::LockInspection;
use crate::adapters::redis_conn::cluster::Shard;

/// One master's shard view, and its own server view when its `INFO` was read.
fn shard_view(shard: Shard, read: &Result<ServerRead, String>) -> (ShardView, Option<ServerView>) {
    let mut view = ShardView {
        master: shard.master.clone(),
        role: None,
        slot_count: shard.slot_count(),
        slots: shard.slots,
        replicas: shard
            .replicas
            .iter()
            .map(|address| ClusterReplica {
                address: address.clone(),
                link: ReplicaLink::Down,
                state: None,
                lag_s: None,
                behind_bytes: None,
            })
            .collect(),
        used_memory: None,
        maxmemory: None,
        keys: None,
        cluster_state: None,
        error: None,
        persistence: None,
    };
    let info = match read {
        Err(e) => {
            view.error = Some(one_line(e));
            return (view, None);
        }
        Ok(r) => r.info.clone(),
    };
    let info = match info {
        Some(Ok(info)) => info,
        Some(Err(e)) => {
            view.error = Some(format!("INFO: {}", one_line(&e)));
            return (view, None);
        }
        None => {
            view.error = Some("no INFO reply".into());
            return (view, None);
        }
    };
    if let Ok(ServerRead {
        cluster_info: Some(ci),
        ..
    }) = read
    {
        match ci {
            Ok(text) => {
                view.cluster_state = parse_info(text)
                    .get("cluster_state")
                    .map(|s| s.trim().to_string());
            }
            Err(e) => view.error = Some(format!("CLUSTER INFO: {}", one_line(e))),
        }
    }
    let map = parse_info(&info);
    let num = |k: &str| map.get(k).and_then(|v| v.trim().parse::<u64>().ok());
    view.role = map.get("role").map(|r| RedisRole::parse(r));
    view.used_memory = num("used_memory");
    view.maxmemory = num("maxmemory");
    view.keys = keys_of(&info);
    // The replicas the master lists: their link is up when `online`.
    for r in replicas(&info, num("master_repl_offset")) {
        let listed = ClusterReplica {
            address: r.address.clone(),
            link: if r.is_online() {
                ReplicaLink::Up
            } else {
                ReplicaLink::Down
            },
            state: Some(r.state),
            lag_s: r.lag_s,
            behind_bytes: r.behind_bytes,
        };
        match view.replicas.iter_mut().find(|x| x.address == r.address) {
            Some(known) => *known = listed,
            None => view.replicas.push(listed),
        }
    }
    view.replicas.sort_by(|a, b| a.address.cmp(&b.address));
    let mut own = redis_view(view.master.clone(), Vec::new(), &info);
    if let Ok(ServerRead {
        config_save: Some(save),
        ..
    }) = read
    {
        view.persistence = Some(Persistence::new(&info, save.clone()));
        own.persistence = view.persistence.clone();
    }
    (view, Some(own))
}

fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_string()
}

/// The URL's server view: figures over the masters that answered (memory
/// and clients summed; the oldest version; an eviction policy other than
/// `noeviction` when any master has one; the modules every master loads).
fn server_view(
    url: String,
    used_by: Vec<String>,
    masters: &[ServerView],
    cluster: &ClusterView,
) -> ServerView {
    if masters.is_empty() {
        let why: Vec<String> = cluster
            .shards
            .iter()
            .map(|s| format!("{}: {}", s.master, s.error.as_deref().unwrap_or("not read")))
            .collect();
        return unreachable_view(
            "redis",
            url,
            used_by,
            format!("no master answered ({})", why.join("; ")),
        );
    }
    let mut view = unreachable_view("redis", url, used_by, String::new());
    view.error = None;
    view.version = masters
        .iter()
        .filter_map(|m| m.version.clone())
        .min_by_key(|v| major_minor(v).unwrap_or((0, 0)));
    view.role = masters
        .iter()
        .filter_map(|m| m.role.clone())
        .find(|r| r != "master")
        .or_else(|| Some("master".to_string()));
    let sum = |f: fn(&ServerView) -> Option<u64>| masters.iter().filter_map(f).reduce(|a, b| a + b);
    view.used_memory = sum(|m| m.used_memory);
    view.connected_clients = sum(|m| m.connected_clients);
    view.maxmemory = if masters.iter().any(|m| m.maxmemory == Some(0)) {
        Some(0)
    } else {
        sum(|m| m.maxmemory)
    };
    let policies: Vec<&String> = masters
        .iter()
        .filter_map(|m| m.maxmemory_policy.as_ref())
        .collect();
    view.maxmemory_policy = policies
        .iter()
        .find(|p| p.as_str() != "noeviction")
        .or(policies.first())
        .map(|p| p.to_string());
    view.persistence = Persistence::worst(masters.iter().filter_map(|m| m.persistence.as_ref()));
    view.modules = masters[0]
        .modules
        .iter()
        .filter(|m| masters.iter().all(|o| o.modules.contains(m)))
        .cloned()
        .collect();
    view
}

/// A family over every master: the masters' parts put together by `join`,
/// or unavailable naming each master that failed.
fn family<T>(parts: Vec<(&str, Part<T>)>, join: impl FnOnce(Vec<T>) -> T) -> Part<T> {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    let mut any = false;
    for (master, part) in parts {
        match part {
            Some(Ok(t)) => {
                any = true;
                ok.push(t);
            }
            Some(Err(e)) => {
                any = true;
                failed.push(format!("master {master}: {}", one_line(&e)));
            }
            None => {}
        }
    }
    if !failed.is_empty() {
        return Some(Err(failed.join("; ")));
    }
    any.then(|| Ok(join(ok)))
}

/// Put the masters' reads together (see the module doc).
pub(super) fn merge(
    url: String,
    used_by: Vec<String>,
    roles: Roles,
    parts: Vec<(Shard, Result<ServerRead, String>)>,
) -> (ServerRead, ServerView) {
    let mut cluster = ClusterView::default();
    let mut own_views = Vec::new();
    let mut reads = Vec::new();
    for (shard, read) in parts {
        let (view, own) = shard_view(shard, &read);
        if cluster.info_from.is_none()
            && let Ok(ServerRead {
                cluster_info: Some(Ok(text)),
                ..
            }) = &read
        {
            cluster.set_info(&view.master, text);
        }
        own_views.extend(own);
        reads.push((view.master.clone(), read));
        cluster.shards.push(view);
    }
    cluster.slots_covered = cluster.shards.iter().map(|s| s.slot_count).sum();
    let mut server = server_view(url, used_by, &own_views, &cluster);
    server.cluster = Some(cluster);

    // A master that could not be read may hold any family's keys.
    let mut locks = Vec::new();
    let mut streams = Vec::new();
    let mut queues = Vec::new();
    for (master, read) in &mut reads {
        let m = master.as_str();
        match read {
            Ok(r) => {
                locks.push((m, r.locks.take()));
                streams.push((m, r.streams.take()));
                queues.push((m, r.queues.take()));
            }
            Err(e) => {
                locks.push((m, roles.locks.then(|| Err(e.clone()))));
                streams.push((m, roles.streams.then(|| Err(e.clone()))));
                queues.push((m, roles.queues.then(|| Err(e.clone()))));
            }
        }
    }
    let out = ServerRead {
        locks: family(locks, |all| {
            let mut found = LockInspection::default();
            for l in all {
                found.holders.extend(l.holders);
                found.unreadable.extend(l.unreadable);
            }
            found.holders.sort_by(|a, b| a.name.cmp(&b.name));
            found.unreadable.sort_by(|a, b| a.key.cmp(&b.key));
            found
        }),
        streams: family(streams, |all| {
            let mut found: Vec<_> = all.into_iter().flatten().collect();
            found.sort_by(|a, b| a.channel.cmp(&b.channel));
            found
        }),
        queues: family(queues, |all| {
            let mut found: Vec<_> = all.into_iter().flatten().collect();
            found.sort_by(|a, b| a.queue.cmp(&b.queue));
            found
        }),
        ..ServerRead::default()
    };
    (out, server)
}
