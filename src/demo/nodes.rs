//! The in-process demo cluster: three reference nodes in this process
//! sharing one set of memory adapters, started and stopped on demand, and
//! the workload running on them.

use super::source::DemoSource;
use super::workload::{Counters, NODE_IDS, NodeControl, Workload, workload};
use crate::adapters::cache;
use crate::adapters::lock::{LocalLock, LockBackend};
use crate::adapters::pubsub::{MemoryHub, MemorySignals, SyncSignals};
use crate::adapters::queue::{MemoryQueue, QueueOptions, RetryPolicy};
use crate::config::Config;
use crate::inspect;
use crate::node::maintenance::MaintenanceRead;
use crate::node::runtime::{self, Adapters, NodeOptions};
use crate::node::store::{Record, Store};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The version the demo nodes run at start.
pub const DEMO_VERSION: &str = "1.4.0";

/// The app records the demo writes at start (id, name): its data, which the
/// upgrade backs up and a rollback restores.
pub const SEED_RECORDS: [(i64, &str); 3] = [
    (1001, "invoice-1001"),
    (1002, "invoice-1002"),
    (1003, "invoice-1003"),
];

pub(crate) struct DemoNode {
    pub(crate) id: String,
    pub(crate) addr: SocketAddr,
    /// The version it runs.
    pub(crate) version: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    hub: Arc<MemoryHub>,
    pub(crate) cache: Arc<dyn cache::Cache>,
    pub(crate) queue: Arc<MemoryQueue>,
    pub(crate) locks: Vec<Arc<LocalLock>>,
    pub(crate) nodes: Mutex<Vec<DemoNode>>,
    pub(crate) counters: Arc<Counters>,
    /// The app's data, shared by the nodes (records, schema version).
    pub(crate) store: Arc<Store>,
    /// The maintenance flag every node follows.
    pub(crate) maintenance: watch::Sender<MaintenanceRead>,
    /// The version each node (by index) is installed at.
    pub(crate) versions: Mutex<Vec<String>>,
    /// Who holds the runbook lock and since when: while it is held the
    /// workload leaves the nodes alone (an upgrade is stopping and
    /// starting them).
    pub(crate) runbook_lock: Mutex<Option<(String, u64)>>,
}

#[async_trait::async_trait]
impl NodeControl for Shared {
    async fn stop_node(&self, i: usize) {
        if self.runbook_lock.lock().is_none() {
            Shared::stop_node(self, NODE_IDS[i]).await
        }
    }
    async fn start_node(&self, i: usize) {
        if self.runbook_lock.lock().is_some() {
            return;
        }
        if let Err(e) = Shared::start_node(self, i).await {
            tracing::error!("demo node {} did not start: {e}", NODE_IDS[i]);
        }
    }
}

/// Three in-process nodes on shared memory adapters, and their workload.
pub struct DemoCluster {
    pub(crate) shared: Arc<Shared>,
    workload: Mutex<Option<JoinHandle<()>>>,
}

fn free_addr() -> std::io::Result<SocketAddr> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    l.local_addr()
}

impl Shared {
    /// Start node `i` on the version it is installed at; nothing when it
    /// runs already.
    pub(crate) async fn start_node(&self, i: usize) -> Result<(), String> {
        let id = NODE_IDS
            .get(i)
            .ok_or_else(|| format!("no demo node {i}"))?
            .to_string();
        if self.nodes.lock().iter().any(|n| n.id == id) {
            return Ok(());
        }
        let version = self
            .versions
            .lock()
            .get(i)
            .cloned()
            .unwrap_or_else(|| DEMO_VERSION.to_string());
        let addr = free_addr().map_err(|e| format!("no free port: {e}"))?;
        let signals: Arc<dyn SyncSignals> =
            Arc::new(MemorySignals::with_hub(self.hub.clone(), &id).map_err(|e| e.to_string())?);
        let locks = self
            .locks
            .get(i)
            .ok_or_else(|| format!("no lock backend for {id}"))?
            .clone();
        let opts = NodeOptions {
            listen: addr,
            node_id: Some(id.clone()),
            app_version: Some(version.clone()),
            drain_timeout: Duration::from_secs(1),
            adapters: Some(Adapters {
                cache: self.cache.clone(),
                locks,
                signals,
                queue: self.queue.clone(),
                store: Some(self.store.clone()),
                maintenance: Some(self.maintenance.subscribe()),
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
        nodes.push(DemoNode {
            id,
            addr,
            version,
            stop: Some(tx),
            task: Some(task),
        });
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(())
    }

    /// Stop node `id` (drain, release, leave) and wait for it (at most 5 s).
    pub(crate) async fn stop_node(&self, id: &str) {
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
    /// Start the three nodes (memory adapters and store, shared) on
    /// [`DEMO_VERSION`], write the seed records, start the workload.
    pub async fn start() -> Result<Self, String> {
        // An APP_KEY of this run only: the runbook's smoke checks pass the
        // maintenance gate with the bypass token derived from it.
        let app_key = format!("{:032x}", rand::random::<u128>());
        let config = Config::from_vars(&BTreeMap::from([
            ("CLUSTER_NAME".to_string(), "demo".to_string()),
            ("APP_KEY".to_string(), app_key),
        ]))
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
        let store = Arc::new(Store::shared_memory());
        for (id, name) in SEED_RECORDS {
            let record = Record {
                id,
                name: name.to_string(),
                value: format!("total {}.00", id % 1000 * 40),
                revision: 1,
                created_by: "demo".to_string(),
            };
            store.insert(&record).await.map_err(|e| e.to_string())?;
        }
        let (maintenance, _) = watch::channel(MaintenanceRead::Clear);
        let shared = Arc::new(Shared {
            config,
            hub: MemoryHub::new(),
            cache: Arc::new(cache::MemoryCache::new("demo")),
            queue,
            locks,
            nodes: Mutex::new(Vec::new()),
            counters: Arc::default(),
            store,
            maintenance,
            versions: Mutex::new(vec![DEMO_VERSION.to_string(); NODE_IDS.len()]),
            runbook_lock: Mutex::new(None),
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
