//! The node's counters and their Prometheus text rendering (`GET /metrics`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters a node keeps; all monotonic.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests answered.
    pub http_requests: AtomicU64,
    /// HTTP requests answered with 503 (maintenance, draining, error).
    pub http_unavailable: AtomicU64,
    /// Requests let through the maintenance gate by the runbook bypass token.
    pub runbook_bypasses: AtomicU64,
    /// Distributed-lock acquisitions.
    pub lock_acquisitions: AtomicU64,
    /// Total time spent waiting for locks, in microseconds.
    pub lock_wait_us: AtomicU64,
    /// Queue messages handled successfully.
    pub queue_handled: AtomicU64,
    /// Queue handler failures (each attempt).
    pub queue_failed: AtomicU64,
    /// Sync signals received from other nodes.
    pub signals_received: AtomicU64,
    /// Cache hits and misses on the record read path.
    pub cache_hits: AtomicU64,
    /// Cache misses on the record read path.
    pub cache_misses: AtomicU64,
    /// Heartbeats written.
    pub heartbeats: AtomicU64,
    /// Heartbeats that failed (Redis unreachable).
    pub heartbeat_failures: AtomicU64,
    /// Janitor sweeps this node ran (it held the period's claim).
    pub janitor_sweeps: AtomicU64,
    /// Queue consumers of dead nodes the janitor removed.
    pub janitor_consumers_removed: AtomicU64,
    /// Sync-signal cursors of dead nodes the janitor removed.
    pub janitor_cursors_removed: AtomicU64,
    /// Acknowledged entries the janitor trimmed from queue streams.
    pub janitor_entries_trimmed: AtomicU64,
}

/// Add one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Add `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Prometheus text exposition format. `worker_id_renewals` comes from
    /// the worker-ID allocator.
    pub fn render(&self, node_id: &str, worker_id_renewals: u64) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name}{{node=\"{}\"}} {value}", escape(node_id));
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut out,
            "clusterops_http_requests_total",
            "HTTP requests answered.",
            get(&self.http_requests),
        );
        counter(
            &mut out,
            "clusterops_http_unavailable_total",
            "HTTP requests answered 503.",
            get(&self.http_unavailable),
        );
        counter(
            &mut out,
            "clusterops_http_runbook_bypass_total",
            "Requests let through the maintenance gate by the runbook bypass token.",
            get(&self.runbook_bypasses),
        );
        counter(
            &mut out,
            "clusterops_lock_acquisitions_total",
            "Distributed-lock acquisitions.",
            get(&self.lock_acquisitions),
        );
        let _ = writeln!(
            out,
            "# HELP clusterops_lock_wait_seconds_total Time spent waiting for locks."
        );
        let _ = writeln!(out, "# TYPE clusterops_lock_wait_seconds_total counter");
        let _ = writeln!(
            out,
            "clusterops_lock_wait_seconds_total{{node=\"{}\"}} {:.6}",
            escape(node_id),
            get(&self.lock_wait_us) as f64 / 1e6
        );
        counter(
            &mut out,
            "clusterops_queue_handled_total",
            "Queue messages handled.",
            get(&self.queue_handled),
        );
        counter(
            &mut out,
            "clusterops_queue_failed_total",
            "Queue handler failures.",
            get(&self.queue_failed),
        );
        counter(
            &mut out,
            "clusterops_signals_received_total",
            "Sync signals received from other nodes.",
            get(&self.signals_received),
        );
        counter(
            &mut out,
            "clusterops_cache_hits_total",
            "Record cache hits.",
            get(&self.cache_hits),
        );
        counter(
            &mut out,
            "clusterops_cache_misses_total",
            "Record cache misses.",
            get(&self.cache_misses),
        );
        counter(
            &mut out,
            "clusterops_heartbeats_total",
            "Registry heartbeats written.",
            get(&self.heartbeats),
        );
        counter(
            &mut out,
            "clusterops_heartbeat_failures_total",
            "Registry heartbeats that failed.",
            get(&self.heartbeat_failures),
        );
        counter(
            &mut out,
            "clusterops_janitor_sweeps_total",
            "Janitor sweeps run by this node.",
            get(&self.janitor_sweeps),
        );
        counter(
            &mut out,
            "clusterops_janitor_consumers_removed_total",
            "Queue consumers of dead nodes removed by the janitor.",
            get(&self.janitor_consumers_removed),
        );
        counter(
            &mut out,
            "clusterops_janitor_cursors_removed_total",
            "Sync-signal cursors of dead nodes removed by the janitor.",
            get(&self.janitor_cursors_removed),
        );
        counter(
            &mut out,
            "clusterops_janitor_entries_trimmed_total",
            "Acknowledged entries trimmed from queue streams by the janitor.",
            get(&self.janitor_entries_trimmed),
        );
        counter(
            &mut out,
            "clusterops_worker_id_renewals_total",
            "Worker-ID lease renewals.",
            worker_id_renewals,
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        inc(&m.queue_handled);
        let text = m.render("n\"1", 7);
        assert!(text.contains("clusterops_queue_handled_total{node=\"n\\\"1\"} 1"));
        assert!(text.contains("clusterops_worker_id_renewals_total{node=\"n\\\"1\"} 7"));
        assert!(text.contains("# TYPE clusterops_http_requests_total counter"));
    }
}
