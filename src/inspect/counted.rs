//! A Redis connection that counts the requests it sends (one per command
//! or pipeline), so a snapshot can report its round trips.

use crate::adapters::redis_conn::SharedConn;
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// A shared connection plus a request counter.
#[derive(Clone)]
pub struct Counted {
    inner: SharedConn,
    count: Arc<AtomicU32>,
}

impl Counted {
    /// Wrap `inner`, counting into `count`.
    pub fn new(inner: SharedConn, count: Arc<AtomicU32>) -> Self {
        Self { inner, count }
    }
}

impl ConnectionLike for Counted {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}
