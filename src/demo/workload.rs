//! The demo's synthetic workload: jobs on a queue (one in six fails every
//! attempt and becomes a dead letter), sync signals, locks taken by the
//! nodes in turn, and a node that leaves and comes back, through whatever
//! adapters the demo runs on (memory in-process, or a real Redis).

use crate::adapters::lock::LockBackend;
use crate::adapters::pubsub::{Payload, SyncSignals};
use crate::adapters::queue::{self, MessageQueue};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The queue the workload publishes to.
pub const DEMO_QUEUE: &str = "demo-jobs";
/// The sync-signal channel the workload publishes on.
pub const DEMO_CHANNEL: &str = "demo-signals";
/// The demo nodes.
pub const NODE_IDS: [&str; 3] = ["demo-a", "demo-b", "demo-c"];

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
