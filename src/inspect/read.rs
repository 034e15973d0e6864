//! Reading a snapshot: every Redis server read concurrently (two pipelined
//! requests each, see [`server_read`]; every master of a Redis Cluster
//! likewise, see [`cluster_read`]) beside the registry and the nodes'
//! health checks, each failure kept to its own source, read commands only.
//! Connections are kept between snapshots (one per distinct Redis URL, and
//! one per master of a cluster).

use super::counted::{Counted, Requests};
use super::persistence::Persistence;
use super::plan::Prepared;
use super::server_read::{self, Roles, Target};
use super::topology::TopologyView;
use super::types::*;
use super::{cluster_read, convert, drift, health, servers, topology_read};
use crate::adapters::queue;
use crate::config::{Config, LockAdapter, PubsubAdapter, QueueAdapter, SecretUrl};
use crate::node::maintenance::MaintenanceRead;
use crate::node::registry::RegistryEntry;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// Reads snapshots of one cluster.
pub struct Inspector {
    pub(super) config: Config,
    pub(super) http: reqwest::Client,
    conns: Mutex<HashMap<String, crate::adapters::redis_conn::SharedConn>>,
    pub(super) rabbit: tokio::sync::Mutex<Option<Arc<dyn queue::MessageQueue>>>,
    last_requests: Mutex<RequestCount>,
    /// Per Redis URL, the first request of the next read: it reads the
    /// keys the last snapshot's SCAN found.
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
    /// The node ids of the last snapshot's registry index.
    known_ids: Mutex<Vec<String>>,
    /// Per Redis Cluster URL, each master's connection and first request.
    clusters: cluster_read::Cache,
}

pub(super) fn unavailable<T>(
    var: &str,
    url: &SecretUrl,
    reason: impl std::fmt::Display,
) -> Source<T> {
    Source::Unavailable {
        source: format!("{var} {url}"),
        reason: reason.to_string().lines().next().unwrap_or("").to_string(),
    }
}

impl Inspector {
    /// An inspector for the cluster `config` describes.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            http: health::client(),
            conns: Mutex::new(HashMap::new()),
            rabbit: tokio::sync::Mutex::new(None),
            last_requests: Mutex::new(RequestCount::default()),
            prepared: Mutex::new(HashMap::new()),
            known_ids: Mutex::new(Vec::new()),
            clusters: cluster_read::Cache::default(),
        }
    }

    /// The configuration it reads with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(super) async fn conn(
        &self,
        url: &SecretUrl,
        requests: &Arc<Requests>,
    ) -> Result<Counted, String> {
        let existing = self.conns.lock().get(url.expose()).cloned();
        let manager = match existing {
            Some(m) => m,
            None => {
                let m = crate::adapters::redis_conn::connect(url)
                    .await
                    .map_err(|e| e.to_string())?;
                self.conns
                    .lock()
                    .insert(url.expose().to_string(), m.clone());
                m
            }
        };
        Ok(Counted::new(manager, requests.clone()))
    }

    /// Read the whole cluster once: per Redis server two requests (more
    /// SCAN on a database of more than [`server_read::SCAN_COUNT`] keys),
    /// and on the coordination Redis two more for the registry, followed by
    /// the nodes' health checks; all of it concurrently (see
    /// [`server_read`]).
    pub async fn snapshot(&self) -> Snapshot {
        let started = Instant::now();
        let taken_at_ms = crate::clock::now_ms();
        let requests = Arc::new(Requests::default());
        let c = &self.config;
        let coordination = c.coordination_redis();

        let ns = &c.namespace;
        let servers_plan = self.server_plan();
        let server_reads = futures::future::join_all(servers_plan.iter().map(|s| {
            let requests = &requests;
            async move {
                match self.conn(&s.url, requests).await {
                    // A Redis Cluster: every master read on its own.
                    Ok(conn) if conn.is_cluster() => {
                        let named = (s.url.to_string(), s.used_by.clone());
                        let (cache, url) = (&self.clusters, s.url.expose());
                        let (read, view) =
                            cluster_read::read(cache, url, named, &conn, ns, s.roles, requests)
                                .await;
                        (read, None, Some(view))
                    }
                    Ok(mut conn) => {
                        let prepared = self.prepared.lock().get(s.url.expose()).cloned();
                        let target = Target {
                            ns,
                            roles: s.roles,
                            cluster_node: false,
                        };
                        let read = server_read::read(&mut conn, target, prepared).await;
                        (read, Some(conn.server()).filter(|a| !a.is_empty()), None)
                    }
                    Err(e) => (Err(e), None, None),
                }
            }
        }));
        // The sentinels of each Sentinel URL, all at once, beside the rest.
        let sentinel_reads = futures::future::join_all(
            servers_plan
                .iter()
                .map(|s| topology_read::read_sentinels(&s.url, &requests)),
        );
        // The registry on its own chain: the health checks start as soon
        // as the records are in, while the big pipeline is still running.
        let nodes_fut = async {
            let Some((var, url)) = coordination else {
                return (Source::NotConfigured, Source::NotConfigured, None);
            };
            let known = self.known_ids.lock().clone();
            let read = match self.conn(url, &requests).await {
                Ok(mut conn) => server_read::read_registry(&mut conn, &c.namespace, &known).await,
                Err(e) => Err(e),
            };
            let (entries, flag, ids, clock) = match read {
                Ok(read) => read,
                Err(e) => {
                    self.known_ids.lock().clear();
                    return (unavailable(var, url, &e), unavailable(var, url, &e), None);
                }
            };
            *self.known_ids.lock() = ids;
            let maintenance = match flag {
                MaintenanceRead::Clear => Source::Ok(None),
                MaintenanceRead::Set(f) => Source::Ok(Some(MaintenanceView {
                    by: f.by,
                    reason: f.reason,
                    since_ms: f.since_ms,
                })),
                MaintenanceRead::Unreadable { key, reason } => Source::Unavailable {
                    source: key,
                    reason: format!("unreadable: {reason}"),
                },
            };
            let entries = match entries {
                Ok(entries) => entries,
                Err(e) => return (unavailable(var, url, e), maintenance, clock),
            };
            let addrs: Vec<String> = entries
                .iter()
                .filter_map(|e| match e {
                    RegistryEntry::Live { record, .. } => Some(record.id.http_addr.clone()),
                    RegistryEntry::Unreadable { .. } => None,
                })
                .collect();
            let checks = health::check_each(&self.http, &addrs).await;
            (Source::Ok((entries, checks)), maintenance, clock)
        };
        let rabbit_fut = self.read_rabbit_queues(&requests);
        // The registry first: its small requests then reach Redis ahead of
        // the big pipeline, which is sent only after the SCAN's reply.
        let ((registry, maintenance, inspector_clock), mut reads, rabbit, mut sentinels) =
            tokio::join!(nodes_fut, server_reads, rabbit_fut, sentinel_reads);

        // Each source from the server that holds it, under the variable
        // that names that server.
        let mut leases = Source::NotConfigured;
        let mut locks = Source::NotConfigured;
        let mut streams = Source::NotConfigured;
        let mut redis_queues = Source::NotConfigured;
        let mut servers = Vec::new();
        for ((plan, (read, read_from, cluster)), sentinels) in servers_plan
            .iter()
            .zip(reads.iter_mut())
            .zip(sentinels.iter_mut())
        {
            let url = &plan.url;
            let used_by = plan.used_by.clone();
            let mut topology = |info: Option<&str>| {
                sentinels.take().map(|(name, answers)| {
                    TopologyView::build(name, answers, read_from.clone(), info)
                })
            };
            let read = match read {
                Ok(read) => {
                    let mut prepared = self.prepared.lock();
                    match read.next.take() {
                        Some(next) => prepared.insert(url.expose().to_string(), next),
                        None => prepared.remove(url.expose()),
                    };
                    read
                }
                Err(e) => {
                    self.prepared.lock().remove(url.expose());
                    let e = e.clone();
                    if plan.roles.leases {
                        leases = unavailable("REDIS_URL", url, &e);
                    }
                    if plan.roles.locks {
                        locks = unavailable("LOCK_ADAPTER_REDIS_URL", url, &e);
                    }
                    if plan.roles.streams {
                        streams = unavailable("PUBSUB_ADAPTER_REDIS_URL", url, &e);
                    }
                    if plan.roles.queues {
                        redis_queues = unavailable("QUEUE_ADAPTER_REDIS_URL", url, &e);
                    }
                    let mut view = cluster.take().unwrap_or_else(|| {
                        servers::unreachable_view("redis", url.to_string(), used_by, e)
                    });
                    view.topology = topology(None);
                    servers.push(view);
                    continue;
                }
            };
            let info = read.info.take();
            let mut view = match (cluster.take(), &info) {
                (Some(view), _) => view,
                (None, Some(Ok(info))) => servers::redis_view(url.to_string(), used_by, info),
                (None, Some(Err(e))) => {
                    servers::unreachable_view("redis", url.to_string(), used_by, e.clone())
                }
                (None, None) => servers::unreachable_view(
                    "redis",
                    url.to_string(),
                    used_by,
                    "no INFO reply".to_string(),
                ),
            };
            view.topology = topology(info.as_ref().and_then(|i| i.as_deref().ok()));
            if let (Some(Ok(info)), Some(save)) = (&info, read.config_save.take())
                && view.cluster.is_none()
            {
                view.persistence = Some(Persistence::new(info, save));
            }
            servers.push(view);
            if let Some(r) = read.leases.take() {
                leases = from_part("REDIS_URL", url, r);
            }
            if let Some(r) = read.locks.take() {
                locks = from_part("LOCK_ADAPTER_REDIS_URL", url, r);
            }
            if let Some(r) = read.streams.take() {
                streams = from_part("PUBSUB_ADAPTER_REDIS_URL", url, r);
            }
            if let Some(r) = read.queues.take() {
                redis_queues = map_source(from_part("QUEUE_ADAPTER_REDIS_URL", url, r), |stats| {
                    convert::queue_views("redis", stats)
                });
            }
        }
        let (queues, rabbit_server) = rabbit;
        let queues = match queues {
            Some(q) => q,
            None => redis_queues,
        };
        servers.extend(rabbit_server);

        let mut unreadable = Vec::new();
        let mut drift = Drift::default();
        // Nodes, with live health checks and drift against the majority.
        let nodes = match registry {
            Source::Ok((entries, checks)) => {
                let mut records = Vec::new();
                for e in entries {
                    match e {
                        RegistryEntry::Live {
                            record,
                            ttl_left_ms,
                        } => records.push((*record, ttl_left_ms)),
                        RegistryEntry::Unreadable { key, reason } => {
                            unreadable.push(Unreadable { key, reason })
                        }
                    }
                }
                let facts: Vec<drift::NodeFacts<'_>> = records
                    .iter()
                    .map(|(r, _)| drift::NodeFacts {
                        node_id: &r.id.node_id,
                        fingerprint: &r.config_fingerprint,
                        parts: &r.config_parts,
                        app_version: &r.id.app_version,
                    })
                    .collect();
                let (d, mut per_node) = drift::compute(&facts);
                drift = d;
                Source::Ok(
                    records
                        .into_iter()
                        .zip(checks)
                        .map(|((r, ttl), h)| {
                            let differing = per_node.remove(&r.id.node_id).unwrap_or_default();
                            convert::node_view(r, ttl, h, taken_at_ms, differing)
                        })
                        .collect::<Vec<_>>(),
                )
            }
            Source::Unavailable { source, reason } => Source::Unavailable { source, reason },
            Source::NotConfigured => Source::NotConfigured,
        };
        let live: HashSet<String> = nodes
            .ok()
            .map(|n| n.iter().map(|v| v.id.node_id.clone()).collect())
            .unwrap_or_default();

        let leases = map_source(leases, |slots| {
            convert::lease_views(slots, &live, &mut unreadable)
        });
        let locks = map_source(locks, |found| {
            convert::lock_views(found, &live, taken_at_ms, &mut unreadable)
        });
        let streams = map_source(streams, |found| {
            convert::stream_views(found, &live, &mut unreadable)
        });
        let queues = match queues {
            Source::Ok((views, bad)) => {
                unreadable.extend(bad);
                Source::Ok(views)
            }
            Source::Unavailable { source, reason } => Source::Unavailable { source, reason },
            Source::NotConfigured => Source::NotConfigured,
        };

        // The nodes treat an unreadable flag as set (they answer 503): list
        // it with the other unreadable keys so `check` warns about it.
        if let Source::Unavailable { source, reason } = &maintenance
            && source.ends_with(":maintenance")
        {
            unreadable.push(Unreadable {
                key: source.clone(),
                reason: format!("{reason}; every node treats it as set and answers 503"),
            });
        }
        *self.last_requests.lock() = RequestCount {
            sent: requests.sent(),
            max_concurrent: requests.max_in_flight(),
        };
        Snapshot {
            taken_at_ms,
            took_ms: started.elapsed().as_millis() as u64,
            cluster: c.namespace.name().to_string(),
            config_fingerprint: c.fingerprint(),
            nodes,
            leases,
            locks,
            streams,
            queues,
            maintenance,
            servers,
            drift,
            unreadable,
            round_trips: requests.sent(),
            inspector_clock,
        }
    }

    /// Requests of the last snapshot: how many were sent, and the most
    /// that were in flight at once (1: all of them one after another).
    pub fn last_requests(&self) -> RequestCount {
        *self.last_requests.lock()
    }

    /// The Redis servers to read, one per distinct URL, with what each
    /// holds and the variables that name it.
    fn server_plan(&self) -> Vec<ServerPlan> {
        let c = &self.config;
        let mut by_url: BTreeMap<String, ServerPlan> = BTreeMap::new();
        fn entry<'m>(
            by_url: &'m mut BTreeMap<String, ServerPlan>,
            url: &SecretUrl,
        ) -> &'m mut ServerPlan {
            by_url
                .entry(url.expose().to_string())
                .or_insert_with(|| ServerPlan {
                    url: url.clone(),
                    used_by: Vec::new(),
                    roles: Roles::default(),
                })
        }
        for (var, url) in c.redis_urls() {
            entry(&mut by_url, url).used_by.push(var.to_string());
        }
        if let Some(url) = &c.worker_id_redis {
            entry(&mut by_url, url).roles.leases = true;
        }
        if let LockAdapter::Redis(url) = &c.lock {
            entry(&mut by_url, url).roles.locks = true;
        }
        if let PubsubAdapter::Redis(url) = &c.pubsub {
            entry(&mut by_url, url).roles.streams = true;
        }
        if let QueueAdapter::Redis(url) = &c.queue {
            entry(&mut by_url, url).roles.queues = true;
        }
        by_url.into_values().collect()
    }
}

/// One Redis server of the configuration.
struct ServerPlan {
    url: SecretUrl,
    used_by: Vec<String>,
    roles: Roles,
}

/// How many Redis requests a snapshot sent ([`Inspector::last_requests`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCount {
    /// Requests sent; a pipeline is one.
    pub sent: u32,
    /// The most that were in flight at the same time (one per server read
    /// concurrently; 1 means every request waited for the previous one).
    pub max_concurrent: u32,
}

fn from_part<T>(var: &str, url: &SecretUrl, part: Result<T, String>) -> Source<T> {
    match part {
        Ok(t) => Source::Ok(t),
        Err(e) => unavailable(var, url, e),
    }
}

fn map_source<T, U>(s: Source<T>, f: impl FnOnce(T) -> U) -> Source<U> {
    match s {
        Source::Ok(t) => Source::Ok(f(t)),
        Source::Unavailable { source, reason } => Source::Unavailable { source, reason },
        Source::NotConfigured => Source::NotConfigured,
    }
}
