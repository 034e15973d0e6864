//! A Redis Cluster URL's part of a snapshot. First the shard map (`CLUSTER
//! SLOTS`, one request through the cluster connection); then, all at once,
//! every master on its own connection with the request a lone server gets
//! ([`server_read::read`] of a [`Target::cluster_node`]: `INFO`, `CLUSTER
//! INFO`, the `SCAN` of that master's own keys and the reads of the keys its
//! last SCAN found, pipelined on that node, [`Prepared`] kept per master; one more request
//! when its keys changed). The 32 worker-ID leases, which share one slot,
//! go in the request of that slot's master (were they spread over slots,
//! they would be read through the cluster connection, which sends each
//! read to its key's master). The masters' locks, streams and queues are merged
//! ([`super::cluster_merge`]). A master that does not answer fails its own
//! shard (and the families it holds), not the others.

use super::cluster_merge;
use super::cluster_view::ClusterView;
use super::counted::{Counted, Requests};
use super::plan::{Prepared, Roles};
use super::server_read::{self, ServerRead, Target};
use super::servers::unreachable_view;
use super::types::ServerView;
use crate::adapters::hash_tag::key_slot;
use crate::adapters::redis_conn::cluster::{Shard, parse_slots};
use crate::adapters::redis_conn::describe;
use crate::adapters::worker_id;
use crate::config::Namespace;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// Per cluster URL, the connection to each master and its prepared first
/// request, kept between snapshots.
#[derive(Default)]
pub struct Cache {
    urls: Mutex<HashMap<String, Masters>>,
}

#[derive(Default)]
struct Masters {
    conns: HashMap<String, Counted>,
    prepared: HashMap<String, Arc<Prepared>>,
}

impl Cache {
    fn get(&self, url: &str, master: &str) -> (Option<Counted>, Option<Arc<Prepared>>) {
        let urls = self.urls.lock();
        let m = urls.get(url);
        (
            m.and_then(|m| m.conns.get(master).cloned()),
            m.and_then(|m| m.prepared.get(master).cloned()),
        )
    }

    /// The masters kept for `url`, by address.
    fn masters(&self, url: &str) -> Vec<Counted> {
        let urls = self.urls.lock();
        let mut kept: Vec<(&String, &Counted)> = urls
            .get(url)
            .map(|m| m.conns.iter().collect())
            .unwrap_or_default();
        kept.sort_by(|a, b| a.0.cmp(b.0));
        kept.into_iter().map(|(_, c)| c.clone()).collect()
    }

    /// Keep `kept` for `url`, in place of what was kept before.
    fn keep(&self, url: &str, kept: Masters) {
        self.urls.lock().insert(url.to_string(), kept);
    }

    /// Forget every master of `url` (the shard map could not be read).
    fn forget(&self, url: &str) {
        self.urls.lock().remove(url);
    }
}

/// The shard map (`CLUSTER SLOTS`): asked of the masters the last snapshot
/// read, one after the other until one answers, then of the cluster
/// connection (which picks a node itself, and may wait on a dead one).
async fn shard_map(
    cache: &Cache,
    url_key: &str,
    conn: &Counted,
    requests: &Arc<Requests>,
) -> Result<Vec<Shard>, String> {
    for node in cache.masters(url_key) {
        let reply: Result<redis::Value, _> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut node.with_requests(requests))
            .await;
        if let Ok(shards) = reply
            .map_err(|_| ())
            .and_then(|r| parse_slots(&r).map_err(|_| ()))
            && !shards.is_empty()
        {
            return Ok(shards);
        }
    }
    match conn.shards().await {
        Ok(shards) if !shards.is_empty() => Ok(shards),
        Ok(_) => Err("CLUSTER SLOTS names no master: no slot is assigned".to_string()),
        Err(e) => Err(format!("CLUSTER SLOTS: {}", describe(&e))),
    }
}

/// The slot every worker-ID lease key lives in, when they share one.
fn lease_slot(ns: &Namespace) -> Option<u16> {
    let mut slots = (0..worker_id::WORKER_IDS)
        .flat_map(|id| [worker_id::lease_key(ns, id), worker_id::last_ts_key(ns, id)])
        .map(|k| key_slot(k.as_bytes()));
    let first = slots.next()?;
    slots.all(|s| s == first).then_some(first)
}

/// Read the cluster behind `conn` (a cluster connection for the URL whose
/// exposed text is `url_key`; `url` is its masked form, `used_by` the
/// variables naming it): what it holds (`Err` only when the shard map
/// cannot be read) and its server view, which always has a
/// [`ClusterView`] (without shards when the map could not be read).
pub(super) async fn read(
    cache: &Cache,
    url_key: &str,
    (url, used_by): (String, Vec<String>),
    conn: &Counted,
    ns: &Namespace,
    roles: Roles,
    requests: &Arc<Requests>,
) -> (Result<ServerRead, String>, ServerView) {
    let shards = match shard_map(cache, url_key, conn, requests).await {
        Ok(shards) => shards,
        Err(why) => {
            cache.forget(url_key);
            let mut view = unreachable_view("redis", url, used_by, why.clone());
            view.cluster = Some(ClusterView::default());
            return (Err(why), view);
        }
    };
    // The leases go with the request of the master of their slot, when
    // they share one (the hash-tagged layout); else through the cluster
    // connection, which sends each read to its key's master.
    let lease_master = roles
        .leases
        .then(|| lease_slot(ns))
        .flatten()
        .and_then(|slot| shards.iter().find(|s| s.serves(slot)))
        .map(|s| s.master.clone());
    let lease_master = &lease_master;
    let masters = futures::future::join_all(shards.into_iter().map(|shard| async move {
        let node_roles = Roles {
            leases: lease_master.as_ref() == Some(&shard.master),
            ..roles
        };
        let (cached, prepared) = cache.get(url_key, &shard.master);
        let node = match cached {
            Some(c) => Ok(c.with_requests(requests)),
            None => conn.node(&shard.master).await.map_err(|e| e.reason),
        };
        let read = match node {
            Ok(mut node) => {
                let target = Target {
                    ns,
                    roles: node_roles,
                    cluster_node: true,
                };
                let read = server_read::read(&mut node, target, prepared).await;
                (read, Some(node))
            }
            Err(e) => (Err(e), None),
        };
        (shard, read)
    }));
    let leases = async {
        if !roles.leases || lease_master.is_some() {
            return None;
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        worker_id::add_lease_reads(&mut pipe, ns);
        let replies: Result<Vec<redis::Value>, String> = pipe
            .query_async(&mut conn.clone())
            .await
            .map_err(|e| describe(&e));
        Some(replies.and_then(|r| worker_id::parse_leases(ns, &r).map_err(|e| e.to_string())))
    };
    let (masters, mut leases) = tokio::join!(masters, leases);

    // Keep each master that answered (its connection, its next first
    // request); a master that failed is connected afresh next time.
    let mut kept = Masters::default();
    let mut parts: Vec<(Shard, Result<ServerRead, String>)> = Vec::new();
    for (shard, (mut read, node)) in masters {
        if lease_master.as_ref() == Some(&shard.master) {
            leases = Some(match &mut read {
                Ok(r) => r.leases.take().unwrap_or_else(|| Err("not read".into())),
                Err(e) => Err(format!("master {}: {e}", shard.master)),
            });
        }
        if let (Ok(r), Some(node)) = (&mut read, node) {
            kept.conns.insert(shard.master.clone(), node);
            if let Some(next) = r.next.take() {
                kept.prepared.insert(shard.master.clone(), next);
            }
        }
        parts.push((shard, read));
    }
    cache.keep(url_key, kept);
    let (mut read, view) = cluster_merge::merge(url, used_by, roles, parts);
    read.leases = leases;
    (Ok(read), view)
}
