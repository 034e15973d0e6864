//! Per-process single flight for `get_or_compute`: the first caller of a
//! key (the leader) computes; concurrent callers of that key wait for its
//! outcome. If the leader is cancelled or panics, a waiter takes over.

use super::store::Store;
use super::{CacheError, Compute};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

type Outcome = Option<Result<Vec<u8>, CacheError>>;

/// The flights in progress, by cache key.
#[derive(Default)]
pub(crate) struct SingleFlight {
    inflight: Mutex<HashMap<String, (u64, watch::Receiver<Outcome>)>>,
    next_id: AtomicU64,
}

enum Role {
    Leader(u64, watch::Sender<Outcome>),
    Follower(watch::Receiver<Outcome>),
}

/// Removes the leader's entry when it finishes, is cancelled or panics.
struct Landing<'a> {
    flights: &'a SingleFlight,
    key: &'a str,
    id: u64,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.inflight.lock();
        if map.get(self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(self.key);
        }
    }
}

impl SingleFlight {
    /// Number of keys being computed now.
    pub(crate) fn in_flight(&self) -> usize {
        self.inflight.lock().len()
    }

    /// After `key` was not found in `store`: one shared computation of its
    /// value (stored for `ttl_ms`), or the value a flight that landed in
    /// the meantime stored. `key` and `ttl_ms` are checked.
    pub(crate) async fn run<S: Store>(
        &self,
        store: &S,
        key: &str,
        ttl_ms: Option<u64>,
        compute: Compute,
    ) -> Result<Vec<u8>, CacheError> {
        loop {
            let role = {
                let mut map = self.inflight.lock();
                match map.get(key) {
                    Some((_, rx)) => Role::Follower(rx.clone()),
                    None => {
                        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                        let (tx, rx) = watch::channel(None);
                        map.insert(key.to_string(), (id, rx));
                        Role::Leader(id, tx)
                    }
                }
            };
            match role {
                Role::Follower(mut rx) => {
                    let outcome = match rx.wait_for(Option::is_some).await {
                        Ok(outcome) => outcome.clone(),
                        // The leader went away without an outcome: retry,
                        // possibly as the new leader.
                        Err(_) => continue,
                    };
                    if let Some(result) = outcome {
                        return result;
                    }
                }
                Role::Leader(id, tx) => {
                    let landing = Landing {
                        flights: self,
                        key,
                        id,
                    };
                    let result = lead(store, key, ttl_ms, compute).await;
                    // Send before removing the entry so no waiter misses it.
                    tx.send_replace(Some(result.clone()));
                    drop(landing);
                    return result;
                }
            }
        }
    }
}

async fn lead<S: Store>(
    store: &S,
    key: &str,
    ttl_ms: Option<u64>,
    compute: Compute,
) -> Result<Vec<u8>, CacheError> {
    // A flight that just landed may have stored the value after the
    // caller's miss: look again before computing.
    if let Some(v) = store.read(key).await? {
        return Ok(v);
    }
    let value = compute().await.map_err(|e| CacheError::Compute {
        key: key.to_string(),
        source: e.into(),
    })?;
    store.write(key, &value, ttl_ms).await?;
    Ok(value)
}
