//! `clusterops demo` without any service: three reference nodes in this
//! process sharing one set of memory adapters, a synthetic workload (locks,
//! queue traffic with failures reaching dead letters, sync signals, a node
//! that leaves and comes back), and [`DemoSource`], which builds the
//! console's [`Snapshot`] from the nodes' own state (their status and
//! health endpoints, the lock table, the queue's stats).

use crate::adapters::lock::{LocalLock, LockBackend};
use crate::adapters::pubsub::{MemoryHub, MemorySignals, Payload, SyncSignals};
use crate::adapters::queue::{self, MemoryQueue, MessageQueue, QueueOptions, RetryPolicy};
use crate::adapters::{cache, worker_id};
use crate::config::Config;
use crate::console::source::SnapshotSource;
use crate::inspect::{self, *};
use crate::node::runtime::{self, Adapters, NodeOptions};
use crate::node::shared::now_ms;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The queue the workload publishes to.
pub const DEMO_QUEUE: &str = "demo-jobs";
/// The sync-signal channel the workload publishes on.
pub const DEMO_CHANNEL: &str = "demo-signals";
/// The demo nodes.
pub const NODE_IDS: [&str; 3] = ["demo-a", "demo-b", "demo-c"];

struct DemoNode {
    id: String,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// What the workload counts for the synthetic stream view.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) signals_sent: AtomicU64,
    pub(crate) signals_at: Mutex<Option<String>>,
}

/// Stopping and starting demo node `i` (of [`NODE_IDS`]).
#[async_trait::async_trait]
pub(crate) trait NodeControl: Send + Sync {
    async fn stop_node(&self, i: usize);
    async fn start_node(&self, i: usize);
}

/// What the workload drives.
pub(crate) struct Workload {
    pub(crate) queue: Arc<dyn MessageQueue>,
    /// One per node, acquiring as that node.
    pub(crate) locks: Vec<Arc<dyn LockBackend>>,
    pub(crate) signals: Option<Arc<dyn SyncSignals>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) nodes: Arc<dyn NodeControl>,
}

struct Shared {
    config: Config,
    hub: Arc<MemoryHub>,
    cache: Arc<dyn cache::Cache>,
    queue: Arc<MemoryQueue>,
    locks: Vec<Arc<LocalLock>>,
    nodes: Mutex<Vec<DemoNode>>,
    counters: Arc<Counters>,
}

#[async_trait::async_trait]
impl NodeControl for Shared {
    async fn stop_node(&self, i: usize) {
        Shared::stop_node(self, NODE_IDS[i]).await
    }
    async fn start_node(&self, i: usize) {
        if let Err(e) = Shared::start_node(self, i).await {
            tracing::error!("demo node {} did not start: {e}", NODE_IDS[i]);
        }
    }
}

/// Three in-process nodes on shared memory adapters, and their workload.
pub struct DemoCluster {
    shared: Arc<Shared>,
    workload: Mutex<Option<JoinHandle<()>>>,
}

fn free_addr() -> std::io::Result<SocketAddr> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    l.local_addr()
}

impl Shared {
    async fn start_node(&self, i: usize) -> Result<(), String> {
        let id = NODE_IDS[i].to_string();
        let addr = free_addr().map_err(|e| format!("no free port: {e}"))?;
        let signals: Arc<dyn SyncSignals> =
            Arc::new(MemorySignals::with_hub(self.hub.clone(), &id).map_err(|e| e.to_string())?);
        let opts = NodeOptions {
            listen: addr,
            node_id: Some(id.clone()),
            drain_timeout: Duration::from_secs(1),
            adapters: Some(Adapters {
                cache: self.cache.clone(),
                locks: self.locks[i].clone(),
                signals,
                queue: self.queue.clone(),
            }),
            ..NodeOptions::default()
        };
        let (tx, rx) = oneshot::channel::<()>();
        let config = self.config.clone();
        let task = tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            if let Err(e) = runtime::run(opts, config, stop).await {
                tracing::error!("demo node stopped: {e}");
            }
        });
        let mut nodes = self.nodes.lock();
        nodes.retain(|n| n.id != id);
        nodes.push(DemoNode {
            id,
            addr,
            stop: Some(tx),
            task: Some(task),
        });
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(())
    }

    async fn stop_node(&self, id: &str) {
        let (stop, task) = {
            let mut nodes = self.nodes.lock();
            let Some(pos) = nodes.iter().position(|n| n.id == id) else {
                return;
            };
            let mut n = nodes.remove(pos);
            (n.stop.take(), n.task.take())
        };
        if let Some(s) = stop {
            let _ = s.send(());
        }
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

impl DemoCluster {
    /// Start the three nodes (memory adapters, shared) and the workload.
    pub async fn start() -> Result<Self, String> {
        let config = Config::from_vars(&BTreeMap::from([(
            "CLUSTER_NAME".to_string(),
            "demo".to_string(),
        )]))
        .map_err(|e| e.to_string())?;
        let queue = Arc::new(MemoryQueue::new(QueueOptions {
            retry: RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_millis(100),
            },
            ..QueueOptions::default()
        }));
        let locks = NODE_IDS
            .iter()
            .map(|id| LocalLock::new(*id).map(Arc::new).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let shared = Arc::new(Shared {
            config,
            hub: MemoryHub::new(),
            cache: Arc::new(cache::MemoryCache::new("demo")),
            queue,
            locks,
            nodes: Mutex::new(Vec::new()),
            counters: Arc::default(),
        });
        for i in 0..NODE_IDS.len() {
            shared.start_node(i).await?;
        }
        let w = Workload {
            queue: shared.queue.clone(),
            locks: shared
                .locks
                .iter()
                .map(|l| l.clone() as Arc<dyn LockBackend>)
                .collect(),
            signals: MemorySignals::with_hub(shared.hub.clone(), "demo-workload")
                .ok()
                .map(|s| Arc::new(s) as Arc<dyn SyncSignals>),
            counters: shared.counters.clone(),
            nodes: shared.clone(),
        };
        let workload = tokio::spawn(workload(w));
        Ok(Self {
            shared,
            workload: Mutex::new(Some(workload)),
        })
    }

    /// The console's source over this cluster.
    pub fn source(&self) -> DemoSource {
        DemoSource {
            shared: self.shared.clone(),
            http: inspect::health::client(),
        }
    }

    /// Stop the workload and every node.
    pub async fn stop(&self) {
        if let Some(w) = self.workload.lock().take() {
            w.abort();
        }
        for id in NODE_IDS {
            self.shared.stop_node(id).await;
        }
    }
}

/// The synthetic workload: every 300 ms a job (one in six fails every
/// attempt and becomes a dead letter), a signal, and a lock taken by one
/// node for a while; node `demo-c` leaves after 20 s and comes back 10 s
/// later, over and over.
pub(crate) async fn workload(w: Workload) {
    let q = w.queue.clone();
    let _consumer = q
        .subscribe(
            DEMO_QUEUE,
            2,
            queue::handler(|m: queue::Message| async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                match m.text().and_then(|t| t.parse::<u64>().ok()) {
                    Some(n) if n % 6 == 5 => Err(format!("job {n}: invalid invoice total")),
                    _ => Ok::<(), String>(()),
                }
            }),
        )
        .await;
    let mut held = Vec::new();
    for tick in 0u64.. {
        let _ = q.publish(DEMO_QUEUE, tick.to_string().as_bytes()).await;
        if let Some(s) = &w.signals
            && let Ok(id) = s
                .publish(
                    DEMO_CHANNEL,
                    Payload::Json(serde_json::json!({ "tick": tick })),
                )
                .await
        {
            w.counters.signals_sent.fetch_add(1, Ordering::Relaxed);
            *w.counters.signals_at.lock() = Some(id);
        }
        if tick % 5 == 0 {
            let i = (tick / 5) as usize % w.locks.len().max(1);
            let name = ["invoice-batch", "report-daily", "reindex"][i % 3];
            if let Some(l) = w.locks.get(i)
                && let Ok(Some(g)) = l.try_acquire(name, Duration::from_secs(10)).await
            {
                held.push((tick, g));
            }
        }
        // Release what was held for about 4 s.
        let (done, keep): (Vec<_>, Vec<_>) = held.into_iter().partition(|(t, _)| tick - t >= 13);
        held = keep;
        for (_, g) in done {
            let _ = g.release().await;
        }
        match tick % 100 {
            66 => w.nodes.stop_node(2).await,
            99 => w.nodes.start_node(2).await,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Snapshots of the in-process demo cluster.
pub struct DemoSource {
    shared: Arc<Shared>,
    http: reqwest::Client,
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
                id: NodeIdentity {
                    node_id: id.clone(),
                    host: text("host"),
                    http_addr: addr.to_string(),
                    pid: s["pid"].as_u64().unwrap_or(0) as u32,
                    app_version: text("app_version"),
                    schema_version: s["schema_version"].as_str().map(str::to_string),
                    worker_id: s["worker_id"].as_u64().map(|w| w as u16),
                    state: NodeState::parse(&text("state")),
                    state_reason: text("state_reason"),
                    started_at_ms: s["started_at_ms"].as_u64().unwrap_or(0),
                },
                heartbeat_age_ms: 0,
                ttl_left_ms: 0,
                config_fingerprint: text("config_fingerprint"),
                config_drift: vec![],
                storage_shared: None,
                storage_reason: None,
                health,
                clock_offset: serde_json::from_value(s["clock_offset"].clone()).ok(),
            });
        }
        let live: Vec<&str> = views.iter().map(|v| v.id.node_id.as_str()).collect();
        let leases = (0..worker_id::WORKER_IDS)
            .map(|w| {
                let holder = views.iter().find(|v| v.id.worker_id == Some(u16::from(w)));
                LeaseView {
                    worker_id: w,
                    holder: holder.map(|v| v.id.node_id.clone()),
                    holder_live: holder.is_some(),
                    ttl_left_ms: holder.map(|_| 15_000),
                    acquired_at_ms: holder.map(|v| v.id.started_at_ms),
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
                    node_id: v.id.node_id.clone(),
                    live: true,
                    last_id: last_id.clone().unwrap_or_default(),
                    lag: 0,
                    last_handled_age_ms: Some(300),
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
