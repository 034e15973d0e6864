//! What a node works on, from `WORKER_MODE`: which queue topics it
//! consumes (the reference app has one, `record-events`), and the warnings
//! its status shows when the mode names topics it does not know.

use super::app::{App, RECORD_EVENTS_QUEUE};
use crate::adapters::queue::{self, MessageQueue};
use crate::config::WorkerMode;
use std::sync::Arc;

/// The queue topics this node can consume.
pub const TOPICS: &[&str] = &[RECORD_EVENTS_QUEUE];

/// Warnings about the mode (shown in status): topics it names that this
/// node does not consume, and a topic list that leaves it no job at all.
pub fn mode_warnings(mode: &WorkerMode) -> Vec<String> {
    let mut out = Vec::new();
    if let WorkerMode::Topics(topics) = mode {
        let unknown: Vec<&str> = topics
            .iter()
            .map(String::as_str)
            .filter(|t| !TOPICS.contains(t))
            .collect();
        if !unknown.is_empty() {
            out.push(format!(
                "WORKER_MODE names topics this node has no consumer for: {} (it consumes {})",
                unknown.join(", "),
                TOPICS.join(", ")
            ));
        }
        if !TOPICS.iter().any(|t| mode.handles(t)) {
            out.push("WORKER_MODE leaves this node no queue job: it serves HTTP only".into());
        }
    }
    out
}

/// Start the consumer of `record-events` when the mode lets this node
/// handle it; `None` (logged) when it does not.
pub async fn start_consumers(
    app: &Arc<App>,
    queue: &Arc<dyn MessageQueue>,
    mode: &WorkerMode,
    concurrency: usize,
) -> Result<Option<queue::Subscription>, queue::QueueError> {
    if !mode.handles(RECORD_EVENTS_QUEUE) {
        tracing::info!(
            worker_mode = %mode.as_env(),
            "WORKER_MODE: not consuming the {RECORD_EVENTS_QUEUE} queue: {}",
            mode.describe()
        );
        return Ok(None);
    }
    let app_for_queue = app.clone();
    let handler = queue::handler(move |msg: queue::Message| {
        let app = app_for_queue.clone();
        async move {
            let result = app.on_record_event(&msg.id, &msg.payload).await;
            match &result {
                Ok(()) => super::metrics::inc(&app.node.metrics.queue_handled),
                Err(_) => super::metrics::inc(&app.node.metrics.queue_failed),
            }
            result
        }
    });
    queue
        .subscribe(RECORD_EVENTS_QUEUE, concurrency.max(1), handler)
        .await
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_list_without_this_nodes_topics_is_warned_about() {
        assert!(mode_warnings(&WorkerMode::All).is_empty());
        assert!(mode_warnings(&WorkerMode::HttpOnly).is_empty());
        let own = WorkerMode::Topics(vec![RECORD_EVENTS_QUEUE.into()]);
        assert!(mode_warnings(&own).is_empty());
        let other = mode_warnings(&WorkerMode::Topics(vec!["mail".into()]));
        assert_eq!(other.len(), 2, "{other:?}");
        assert!(other[0].contains("mail") && other[1].contains("HTTP only"));
    }
}
