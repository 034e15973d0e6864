//! [`DemoSource`]: the console's [`Snapshot`] of the in-process demo,
//! built from the nodes' own state (their status and health endpoints, the
//! lock table, the queue's stats), never from Redis.

use super::nodes::Shared;
use super::workload::{DEMO_CHANNEL, DEMO_QUEUE};
use crate::adapters::queue::MessageQueue;
use crate::adapters::worker_id;
use crate::clock::now_ms;
use crate::inspect::source::SnapshotSource;
use crate::inspect::{self, *};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Snapshots of the in-process demo cluster.
pub struct DemoSource {
    pub(crate) shared: Arc<Shared>,
    pub(crate) http: reqwest::Client,
}

#[async_trait::async_trait]
impl SnapshotSource for DemoSource {
    async fn fetch(&self) -> Result<Snapshot, String> {
        let started = std::time::Instant::now();
        let taken_at_ms = now_ms();
        let nodes: Vec<(String, SocketAddr)> = self
            .shared
            .nodes
            .lock()
            .iter()
            .map(|n| (n.id.clone(), n.addr))
            .collect();
        let mut views = Vec::new();
        for (id, addr) in &nodes {
            let health = inspect::health::check(&self.http, &addr.to_string()).await;
            let status: Option<serde_json::Value> = match self
                .http
                .get(format!("http://{addr}/api/status"))
                .send()
                .await
            {
                Ok(r) => r.json().await.ok(),
                Err(_) => None,
            };
            let Some(s) = status else { continue };
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            views.push(NodeView {
                node_id: id.clone(),
                host: text("host"),
                http_addr: addr.to_string(),
                pid: s["pid"].as_u64().unwrap_or(0) as u32,
                app_version: text("app_version"),
                schema_version: s["schema_version"].as_str().map(str::to_string),
                worker_id: s["worker_id"].as_u64().map(|w| w as u16),
                state: text("state"),
                state_reason: text("state_reason"),
                started_at_ms: s["started_at_ms"].as_u64().unwrap_or(0),
                heartbeat_age_ms: 0,
                ttl_left_ms: 0,
                config_fingerprint: text("config_fingerprint"),
                config_drift: vec![],
                storage_shared: None,
                storage_reason: None,
                health,
                clock_offset: serde_json::from_value(s["clock_offset"].clone()).ok(),
                worker_mode: serde_json::from_value(s["worker_mode"].clone()).unwrap_or_default(),
                process: None,
            });
        }
        let live: Vec<&str> = views.iter().map(|v| v.node_id.as_str()).collect();
        let leases = (0..worker_id::WORKER_IDS)
            .map(|w| {
                let holder = views.iter().find(|v| v.worker_id == Some(u16::from(w)));
                LeaseView {
                    worker_id: w,
                    holder: holder.map(|v| v.node_id.clone()),
                    holder_live: holder.is_some(),
                    ttl_left_ms: holder.map(|_| 15_000),
                    acquired_at_ms: holder.map(|v| v.started_at_ms),
                    last_ts: None,
                    unreadable: None,
                }
            })
            .collect();
        let mut locks: Vec<LockView> = self
            .shared
            .locks
            .iter()
            .flat_map(|l| l.holders())
            .map(|h| LockView {
                holder_live: live.contains(&h.holder_node.as_str()),
                age_ms: taken_at_ms.saturating_sub(h.acquired_at_ms),
                name: h.name,
                holder: h.holder_node,
                acquired_at_ms: h.acquired_at_ms,
                ttl_left_ms: h.ttl_left.as_millis() as i64,
                fencing_token: h.fencing_token,
                waiters: Some(0),
            })
            .collect();
        locks.sort_by_key(|l| std::cmp::Reverse(l.age_ms));
        let mut stats = Vec::new();
        for name in [DEMO_QUEUE, crate::node::app::RECORD_EVENTS_QUEUE] {
            if let Ok(s) = self.shared.queue.stats(name).await {
                stats.push(s);
            }
        }
        let (queues, unreadable) = inspect::convert::queue_views("memory", stats);
        let sent = self.shared.counters.signals_sent.load(Ordering::Relaxed);
        let last_id = self.shared.counters.signals_at.lock().clone();
        let streams = vec![StreamView {
            channel: DEMO_CHANNEL.to_string(),
            length: sent,
            first_id: None,
            last_id: last_id.clone(),
            readers: views
                .iter()
                .map(|v| StreamReader {
                    node_id: v.node_id.clone(),
                    live: true,
                    last_id: last_id.clone().unwrap_or_default(),
                    lag: 0,
                    last_handled_age_ms: Some(300),
                    oldest_unhandled_age_ms: None,
                })
                .collect(),
        }];
        Ok(Snapshot {
            taken_at_ms,
            took_ms: started.elapsed().as_millis() as u64,
            cluster: self.shared.config.namespace.name().to_string(),
            config_fingerprint: self.shared.config.fingerprint(),
            nodes: Source::Ok(views),
            leases: Source::Ok(leases),
            locks: Source::Ok(locks),
            streams: Source::Ok(streams),
            queues: Source::Ok(queues),
            maintenance: Source::Ok(None),
            servers: vec![],
            drift: Drift::default(),
            unreadable,
            round_trips: 0,
            inspector_clock: None,
        })
    }
}
