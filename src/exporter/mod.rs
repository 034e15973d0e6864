//! The Prometheus exporter: the same read-only snapshots `status`, `check`
//! and the console use, served as metrics on `GET /metrics`
//! (`clusterops exporter`). [`render`] turns a snapshot into text (pure),
//! [`serve`] reads and shares snapshots and answers HTTP.

pub mod render;
mod render_queues;
pub mod serve;
pub mod text;

#[cfg(test)]
mod render_tests;

pub use render::{Counters, ReadError, Scrape, render};
pub use serve::{Exporter, ExporterOptions, serve};
