//! The exporter's HTTP side: `GET /metrics` reads a snapshot (shared by
//! concurrent scrapes and reused for a short cache time, so Prometheus and
//! a curl do not double the load on Redis), runs the checks on it and
//! renders it; `GET /healthz` says the exporter serves. A source that
//! cannot be read is a metric (`clusterops_up 0`), never an HTTP error.

use super::render::{Counters, ReadError, Scrape, read_errors, render};
use super::text::CONTENT_TYPE;
use crate::config::Config;
use crate::inspect::{CheckResult, Inspector, Snapshot, Verdict, checks};
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the exporter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExporterOptions {
    /// A snapshot read less than this long ago is served again instead of
    /// reading a new one (0: only concurrent scrapes share a read).
    pub cache: Duration,
    /// A snapshot read that takes longer is abandoned: the scrape answers
    /// `clusterops_up 0` and counts a `timeout` error.
    pub read_timeout: Duration,
}

impl Default for ExporterOptions {
    fn default() -> Self {
        Self {
            cache: Duration::from_secs(1),
            read_timeout: Duration::from_secs(8),
        }
    }
}

/// One snapshot read, with what the scrapes that share it need.
#[derive(Debug)]
struct Reading {
    /// When the read finished.
    finished: Instant,
    /// `None`: the read timed out.
    snapshot: Option<Snapshot>,
    checks: Vec<CheckResult>,
    verdict: Option<Verdict>,
}

/// Serves one cluster's metrics.
pub struct Exporter {
    inspector: Inspector,
    options: ExporterOptions,
    /// The last read. Held across a read, so a scrape that arrives during
    /// one waits for it and serves its result (single flight).
    last: tokio::sync::Mutex<Option<Arc<Reading>>>,
    counters: parking_lot::Mutex<Counters>,
}

impl Exporter {
    /// An exporter for the cluster `config` describes.
    pub fn new(config: Config, options: ExporterOptions) -> Self {
        Self {
            inspector: Inspector::new(config),
            options,
            last: tokio::sync::Mutex::new(None),
            counters: parking_lot::Mutex::new(Counters::default()),
        }
    }

    /// The body of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let arrived = Instant::now();
        let reading = self.reading(arrived).await;
        let counters = {
            let mut c = self.counters.lock();
            c.scrapes += 1;
            c.clone()
        };
        render(&Scrape {
            snapshot: reading.snapshot.as_ref(),
            checks: &reading.checks,
            verdict: reading.verdict,
            snapshot_age: reading.finished.elapsed(),
            scrape_duration: arrived.elapsed(),
            counters: &counters,
        })
    }

    /// The reading to serve a scrape that arrived at `arrived`: one that
    /// finished after it arrived (it waited for that read), or within the
    /// cache time, else a new one.
    async fn reading(&self, arrived: Instant) -> Arc<Reading> {
        let mut last = self.last.lock().await;
        if let Some(r) = last.as_ref()
            && (r.finished >= arrived || r.finished.elapsed() < self.options.cache)
        {
            return r.clone();
        }
        let read = tokio::time::timeout(self.options.read_timeout, self.inspector.snapshot());
        let reading = match read.await {
            Ok(snap) => {
                let checks = checks::run(self.inspector.config(), &snap);
                let verdict = checks::verdict(&snap, &checks);
                self.count_read(&read_errors(&snap));
                Reading {
                    finished: Instant::now(),
                    snapshot: Some(snap),
                    checks,
                    verdict: Some(verdict),
                }
            }
            Err(_) => {
                tracing::warn!(
                    timeout_s = self.options.read_timeout.as_secs_f64(),
                    "snapshot read timed out"
                );
                self.count_read(&[ReadError::Timeout]);
                Reading {
                    finished: Instant::now(),
                    snapshot: None,
                    checks: Vec::new(),
                    verdict: None,
                }
            }
        };
        let reading = Arc::new(reading);
        *last = Some(reading.clone());
        reading
    }

    fn count_read(&self, errors: &[ReadError]) {
        let mut c = self.counters.lock();
        c.snapshot_reads += 1;
        for e in errors {
            *c.errors.entry(*e).or_default() += 1;
        }
    }

    /// The routes: `/metrics`, `/healthz`, and `/` (a line naming them).
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/",
                get(|| async { "clusterops exporter: /metrics (Prometheus text), /healthz\n" }),
            )
            .with_state(self)
    }
}

async fn metrics(State(exporter): State<Arc<Exporter>>) -> Response {
    let body = exporter.metrics().await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// Serve `exporter` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    exporter: Arc<Exporter>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, exporter.router())
        .with_graceful_shutdown(shutdown)
        .await
}
