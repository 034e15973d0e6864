//! In-process sync signals: a [`MemoryHub`] broadcasts to the subscriptions
//! of every [`MemorySignals`] attached to it, with the Redis backend's
//! semantics (publish order, own messages skipped unless asked for).
//!
//! Each subscription has its own unbounded queue: a slow subscriber never
//! loses a message, its backlog grows (and is logged, see
//! [`super::BACKLOG_WARN_EVERY`]). Nothing is persisted.

use super::backend::Backend;
use super::subscription::{SubSender, Tracker, pair};
use super::{Payload, PubsubError, Signal, SubscribeOptions, Subscription, check_node_id};
use crate::clock::now_ms;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// The in-process "Redis": channels and their subscribers. One per process
/// normally; tests attach several [`MemorySignals`] (nodes) to one hub.
#[derive(Default)]
pub struct MemoryHub {
    channels: Mutex<HashMap<String, HubChannel>>,
}

#[derive(Default)]
struct HubChannel {
    /// Messages published so far (the last message's ID).
    published: u64,
    next_sub: u64,
    subs: Vec<HubSub>,
}

struct HubSub {
    id: u64,
    node: String,
    /// The [`MemorySignals`] instance that subscribed.
    owner: u64,
    include_own: bool,
    sender: SubSender,
}

impl MemoryHub {
    /// A new, empty hub.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn remove(&self, channel: &str, sub_id: u64) {
        let mut channels = self.channels.lock();
        if let Some(ch) = channels.get_mut(channel) {
            ch.subs.retain(|s| s.id != sub_id);
        }
    }

    fn remove_owner(&self, owner: u64) {
        let mut channels = self.channels.lock();
        for ch in channels.values_mut() {
            ch.subs.retain(|s| s.owner != owner);
        }
    }
}

/// One node's view of a [`MemoryHub`].
pub struct MemorySignals {
    node: String,
    hub: Arc<MemoryHub>,
    instance: u64,
    shut_down: AtomicBool,
}

static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

impl MemorySignals {
    /// A single node with its own hub.
    pub fn new(node_id: impl Into<String>) -> Result<Self, PubsubError> {
        Self::with_hub(MemoryHub::new(), node_id)
    }

    /// Node `node_id` on a shared hub (several nodes in one process).
    pub fn with_hub(hub: Arc<MemoryHub>, node_id: impl Into<String>) -> Result<Self, PubsubError> {
        Ok(Self {
            node: check_node_id(node_id.into())?,
            hub,
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            shut_down: AtomicBool::new(false),
        })
    }

    fn check_live(&self) -> Result<(), PubsubError> {
        if self.shut_down.load(Ordering::Acquire) {
            Err(PubsubError::ShutDown)
        } else {
            Ok(())
        }
    }
}

struct MemoryTracker {
    hub: Weak<MemoryHub>,
    channel: String,
    sub_id: u64,
}

impl Tracker for MemoryTracker {
    fn finished(&self) {}

    fn closed(&self, _in_flight: bool) {
        if let Some(hub) = self.hub.upgrade() {
            hub.remove(&self.channel, self.sub_id);
        }
    }
}

impl Backend for MemorySignals {
    fn node(&self) -> &str {
        &self.node
    }

    async fn send(&self, channel: &str, payload: Payload) -> Result<String, PubsubError> {
        self.check_live()?;
        let sent_at_ms = now_ms();
        let mut channels = self.hub.channels.lock();
        let ch = channels.entry(channel.to_string()).or_default();
        ch.published += 1;
        let id = ch.published.to_string();
        // Sending under the hub lock keeps every subscriber's order equal to
        // the publish order.
        for sub in &ch.subs {
            if sub.node == self.node && !sub.include_own {
                continue;
            }
            sub.sender.send(Signal {
                channel: channel.to_string(),
                id: id.clone(),
                sender: self.node.clone(),
                sent_at_ms,
                payload: payload.clone(),
            });
        }
        Ok(id)
    }

    async fn attach(
        &self,
        channel: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, PubsubError> {
        self.check_live()?;
        let mut channels = self.hub.channels.lock();
        let ch = channels.entry(channel.to_string()).or_default();
        ch.next_sub += 1;
        let sub_id = ch.next_sub;
        let tracker = Arc::new(MemoryTracker {
            hub: Arc::downgrade(&self.hub),
            channel: channel.to_string(),
            sub_id,
        });
        let (sender, subscription) = pair(channel, tracker);
        ch.subs.push(HubSub {
            id: sub_id,
            node: self.node.clone(),
            owner: self.instance,
            include_own: options.include_own,
            sender,
        });
        Ok(subscription)
    }

    async fn close(&self) {
        self.shut_down.store(true, Ordering::Release);
        self.hub.remove_owner(self.instance);
    }
}

impl Drop for MemorySignals {
    fn drop(&mut self) {
        self.hub.remove_owner(self.instance);
    }
}
