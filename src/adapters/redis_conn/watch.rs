//! Hearing about a failover before any command fails.
//!
//! After Sentinel promotes a replica, the old master keeps accepting writes
//! until Sentinel reconfigures it as a replica, which can take seconds:
//! writes sent there in that window are lost when it resyncs. So each
//! Sentinel route listens for the sentinels' `+switch-master` event (the
//! way Sentinel's client guidelines describe) and moves to the new master
//! as soon as it is announced; and, in case the subscription is down,
//! asks a sentinel for the master's address every [`POLL_EVERY`].
//!
//! The task holds only a weak reference and ends with its route.

use super::failover::Failover;
use super::sentinel::SENTINEL_TIMEOUT;
use crate::config::redis_url::Topology;
use futures::StreamExt;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the master's address is checked when no event arrives.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// Start watching for `failover`'s master to move.
pub(super) fn spawn(failover: &Arc<Failover>) {
    let weak = Arc::downgrade(failover);
    tokio::spawn(run(weak));
}

async fn run(weak: Weak<Failover>) {
    let mut next_sentinel = 0usize;
    loop {
        let Some(f) = weak.upgrade() else { return };
        let Topology::Sentinel {
            sentinels, master, ..
        } = &f.endpoint().target().topology
        else {
            return;
        };
        let (host, port) = sentinels[next_sentinel % sentinels.len()].clone();
        let master = master.clone();
        let client = f.endpoint().sentinel_client(&host, port);
        drop(f);
        next_sentinel += 1;
        let pubsub = match client {
            Ok(c) => match tokio::time::timeout(SENTINEL_TIMEOUT, c.get_async_pubsub()).await {
                Ok(Ok(mut p)) => match p.subscribe("+switch-master").await {
                    Ok(()) => Some(p),
                    Err(_) => None,
                },
                _ => None,
            },
            Err(_) => None,
        };
        let Some(mut pubsub) = pubsub else {
            // No subscription: poll until the next attempt.
            if poll(&weak).await.is_none() {
                return;
            }
            continue;
        };
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                msg = messages.next() => match msg {
                    // "<name> <old-ip> <old-port> <new-ip> <new-port>"
                    Some(m) => {
                        let text = String::from_utf8_lossy(m.get_payload_bytes()).to_string();
                        if text.split(' ').next() == Some(master.as_str()) {
                            let Some(f) = weak.upgrade() else { return };
                            f.follow("+switch-master").await;
                        }
                    }
                    None => break,
                },
                _ = tokio::time::sleep(POLL_EVERY) => {
                    let Some(f) = weak.upgrade() else { return };
                    f.check_master().await;
                }
            }
        }
    }
}

/// Check the master's address once, then wait [`POLL_EVERY`]; `None`
/// when the route is gone.
async fn poll(weak: &Weak<Failover>) -> Option<()> {
    let f = weak.upgrade()?;
    f.check_master().await;
    drop(f);
    tokio::time::sleep(POLL_EVERY).await;
    weak.upgrade().map(|_| ())
}
