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
use crate::node::runtime::{self, Adapters, NodeOptions};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) struct DemoNode {
    pub(crate) id: String,
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    hub: Arc<MemoryHub>,
    cache: Arc<dyn cache::Cache>,
    pub(crate) queue: Arc<MemoryQueue>,
    pub(crate) locks: Vec<Arc<LocalLock>>,
    pub(crate) nodes: Mutex<Vec<DemoNode>>,
    pub(crate) counters: Arc<Counters>,
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
