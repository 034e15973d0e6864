//! Reading a snapshot: every source read concurrently, each failure kept
//! to its own source, read commands only. Connections are kept between
//! snapshots (one per distinct Redis URL).

use super::counted::Counted;
use super::types::*;
use super::{convert, drift, health, rabbit, servers};
use crate::adapters::{lock, pubsub, queue, worker_id};
use crate::config::{Config, LockAdapter, PubsubAdapter, QueueAdapter, SecretUrl};
use crate::node::maintenance::{self, MaintenanceRead};
use crate::node::registry::{Registry, RegistryEntry};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::node::registry::QUEUE_CATALOGUE;

/// Reads snapshots of one cluster.
pub struct Inspector {
    config: Config,
    http: reqwest::Client,
    conns: Mutex<HashMap<String, crate::adapters::redis_conn::SharedConn>>,
    rabbit: tokio::sync::Mutex<Option<Arc<dyn queue::MessageQueue>>>,
}

fn unavailable<T>(var: &str, url: &SecretUrl, reason: impl std::fmt::Display) -> Source<T> {
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
        }
    }

    /// The configuration it reads with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    async fn conn(&self, url: &SecretUrl, count: &Arc<AtomicU32>) -> Result<Counted, String> {
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
        Ok(Counted::new(manager, count.clone()))
    }

    /// Read the whole cluster once.
    pub async fn snapshot(&self) -> Snapshot {
        let started = Instant::now();
        let taken_at_ms = crate::node::shared::now_ms();
        let count = Arc::new(AtomicU32::new(0));
        let c = &self.config;
        let coordination = c.coordination_redis();

        let registry_fut = async {
            let Some((var, url)) = coordination else {
                return (Source::NotConfigured, Source::NotConfigured, ());
            };
            let mut conn = match self.conn(url, &count).await {
                Ok(conn) => conn,
                Err(e) => return (unavailable(var, url, &e), unavailable(var, url, &e), ()),
            };
            let registry = Registry::new(c.namespace.clone(), Duration::from_secs(6));
            let mut conn2 = conn.clone();
            let (entries, flag) = tokio::join!(
                registry.read_all(&mut conn2),
                maintenance::read(&mut conn, &c.namespace)
            );
            let maintenance = match flag {
                Ok(MaintenanceRead::Clear) => Source::Ok(None),
                Ok(MaintenanceRead::Set(f)) => Source::Ok(Some(MaintenanceView {
                    by: f.by,
                    reason: f.reason,
                    since_ms: f.since_ms,
                })),
                Ok(MaintenanceRead::Unreadable { key, reason }) => Source::Unavailable {
                    source: key,
                    reason: format!("unreadable: {reason}"),
                },
                Err(e) => unavailable(var, url, e),
            };
            match entries {
                Ok(entries) => (Source::Ok(entries), maintenance, ()),
                Err(e) => (unavailable(var, url, e), maintenance, ()),
            }
        };
        let leases_fut = async {
            let Some(url) = &c.worker_id_redis else {
                return Source::NotConfigured;
            };
            let mut conn = match self.conn(url, &count).await {
                Ok(conn) => conn,
                Err(e) => return unavailable("REDIS_URL", url, e),
            };
            match worker_id::read_leases(&mut conn, &c.namespace).await {
                Ok(slots) => Source::Ok(slots),
                Err(e) => unavailable("REDIS_URL", url, e),
            }
        };
        let locks_fut = async {
            let LockAdapter::Redis(url) = &c.lock else {
                return Source::NotConfigured;
            };
            let mut conn = match self.conn(url, &count).await {
                Ok(conn) => conn,
                Err(e) => return unavailable("LOCK_ADAPTER_REDIS_URL", url, e),
            };
            match lock::read_holders(&mut conn, &c.namespace).await {
                Ok(found) => Source::Ok(found),
                Err(e) => unavailable("LOCK_ADAPTER_REDIS_URL", url, e),
            }
        };
        let streams_fut = async {
            let PubsubAdapter::Redis(url) = &c.pubsub else {
                return Source::NotConfigured;
            };
            let mut conn = match self.conn(url, &count).await {
                Ok(conn) => conn,
                Err(e) => return unavailable("PUBSUB_ADAPTER_REDIS_URL", url, e),
            };
            match pubsub::read_streams(&mut conn, &c.namespace).await {
                Ok(found) => Source::Ok(found),
                Err(e) => unavailable("PUBSUB_ADAPTER_REDIS_URL", url, e),
            }
        };
        let queues_fut = self.read_queues(&count);
        let servers_fut = self.read_servers(&count);

        let ((registry, maintenance, _), leases, locks, streams, queues, servers) = tokio::join!(
            registry_fut,
            leases_fut,
            locks_fut,
            streams_fut,
            queues_fut,
            servers_fut
        );

        let mut unreadable = Vec::new();
        let mut drift = Drift::default();
        // Nodes, with live health checks and drift against the majority.
        let nodes = match registry {
            Source::Ok(entries) => {
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
                        node_id: &r.node_id,
                        fingerprint: &r.config_fingerprint,
                        parts: &r.config_parts,
                        app_version: &r.app_version,
                    })
                    .collect();
                let (d, mut per_node) = drift::compute(&facts);
                drift = d;
                let addrs: Vec<String> = records.iter().map(|(r, _)| r.http_addr.clone()).collect();
                let checks =
                    futures::future::join_all(addrs.iter().map(|a| health::check(&self.http, a)))
                        .await;
                Source::Ok(
                    records
                        .into_iter()
                        .zip(checks)
                        .map(|((r, ttl), h)| {
                            let differing = per_node.remove(&r.node_id).unwrap_or_default();
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
            .map(|n| n.iter().map(|v| v.node_id.clone()).collect())
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
            round_trips: count.load(Ordering::Relaxed),
        }
    }

    async fn read_queues(
        &self,
        count: &Arc<AtomicU32>,
    ) -> Source<(Vec<QueueView>, Vec<Unreadable>)> {
        let c = &self.config;
        match &c.queue {
            QueueAdapter::Memory => Source::NotConfigured,
            QueueAdapter::Redis(url) => {
                let mut conn = match self.conn(url, count).await {
                    Ok(conn) => conn,
                    Err(e) => return unavailable("QUEUE_ADAPTER_REDIS_URL", url, e),
                };
                match queue::read_queue_stats(&mut conn, &c.namespace).await {
                    Ok(stats) => Source::Ok(convert::queue_views("redis", stats)),
                    Err(e) => unavailable("QUEUE_ADAPTER_REDIS_URL", url, e),
                }
            }
            QueueAdapter::Rabbitmq(url) => {
                let names = match c.coordination_redis() {
                    Some((_, coord)) => match self.conn(coord, count).await {
                        Ok(mut conn) => redis::cmd("SMEMBERS")
                            .arg(c.namespace.key(QUEUE_CATALOGUE))
                            .query_async::<Vec<String>>(&mut conn)
                            .await
                            .unwrap_or_default(),
                        Err(_) => Vec::new(),
                    },
                    None => Vec::new(),
                };
                let mq = {
                    let mut slot = self.rabbit.lock().await;
                    match slot.as_ref() {
                        Some(mq) => mq.clone(),
                        None => {
                            let opts = queue::QueueOptions::default();
                            match queue::RabbitQueue::connect(
                                url,
                                c.namespace.clone(),
                                "inspector",
                                opts,
                            )
                            .await
                            {
                                Ok(q) => {
                                    let mq: Arc<dyn queue::MessageQueue> = Arc::new(q);
                                    *slot = Some(mq.clone());
                                    mq
                                }
                                Err(e) => return unavailable("QUEUE_ADAPTER_RABBITMQ_URL", url, e),
                            }
                        }
                    }
                };
                let mut stats = Vec::new();
                for name in names {
                    match mq.stats(&name).await {
                        Ok(s) => stats.push(s),
                        Err(e) => return unavailable("QUEUE_ADAPTER_RABBITMQ_URL", url, e),
                    }
                }
                Source::Ok(convert::queue_views("rabbitmq", stats))
            }
        }
    }

    async fn read_servers(&self, count: &Arc<AtomicU32>) -> Vec<ServerView> {
        let mut by_url: BTreeMap<String, (SecretUrl, Vec<String>)> = BTreeMap::new();
        for (var, url) in self.config.redis_urls() {
            by_url
                .entry(url.expose().to_string())
                .or_insert_with(|| (url.clone(), Vec::new()))
                .1
                .push(var.to_string());
        }
        let reads = by_url.into_values().map(|(url, used_by)| async move {
            match self.conn(&url, count).await {
                Err(e) => servers::unreachable_view("redis", url.to_string(), used_by, e),
                Ok(mut conn) => match redis::cmd("INFO").query_async::<String>(&mut conn).await {
                    Ok(info) => servers::redis_view(url.to_string(), used_by, &info),
                    Err(e) => {
                        servers::unreachable_view("redis", url.to_string(), used_by, e.to_string())
                    }
                },
            }
        });
        let mut out = futures::future::join_all(reads).await;
        if let QueueAdapter::Rabbitmq(url) = &self.config.queue {
            let used_by = vec!["QUEUE_ADAPTER_RABBITMQ_URL".to_string()];
            let hp = url::Url::parse(url.expose())
                .map(|u| {
                    format!(
                        "{}:{}",
                        u.host_str().unwrap_or("localhost"),
                        u.port().unwrap_or(5672)
                    )
                })
                .unwrap_or_default();
            out.push(match rabbit::server_version(&hp).await {
                Ok(version) => {
                    let mut v = servers::unreachable_view(
                        "rabbitmq",
                        url.to_string(),
                        used_by,
                        String::new(),
                    );
                    v.error = None;
                    v.version = Some(version);
                    v
                }
                Err(e) => servers::unreachable_view("rabbitmq", url.to_string(), used_by, e),
            });
        }
        out
    }
}

fn map_source<T, U>(s: Source<T>, f: impl FnOnce(T) -> U) -> Source<U> {
    match s {
        Source::Ok(t) => Source::Ok(f(t)),
        Source::Unavailable { source, reason } => Source::Unavailable { source, reason },
        Source::NotConfigured => Source::NotConfigured,
    }
}
