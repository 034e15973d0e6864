//! Sync signals on Redis Streams: one stream per channel
//! (`<ns>:signal:{<channel>}`), every node reading it with its own XREAD
//! (broadcast, no consumer group), and a per-node cursor in
//! `<ns>:signal:{<channel>}:cursors` so a restarted node resumes where it
//! stopped and the inspector can compute each node's lag.
//!
//! Tasks per adapter: one reader and one cursor flusher that writes changed
//! cursors at most every [`RedisSignalsOptions::cursor_flush_interval`] and
//! once more on shutdown.
//!
//! One reader per node, not one per subscription: it holds one dedicated
//! blocking connection and sends one `XREAD BLOCK … STREAMS` naming every
//! subscribed channel, so Redis sees one blocked client per node whatever
//! the number of channels, one round trip brings news from all of them, and
//! several subscriptions to a channel share one read. A channel subscribed
//! while the read is blocked is added by kicking the read with
//! `CLIENT UNBLOCK` (details in `redis_reader.rs`). On a Redis Cluster an
//! XREAD may not span hash slots, so there is one reader (a "lane") per
//! slot that holds a subscribed channel's stream, each on the master of its
//! slot, started by the first subscription there.

pub use super::keys::{cursors_key, seq_key, stream_key};

use super::backend::Backend;
use super::envelope::{EntryId, Position, encode_envelope};
use super::redis_reader::Lane;
use super::subscription::{SubSender, Tracker, pair};
use super::{Payload, PubsubError, SubscribeOptions, Subscription, check_node_id};
use crate::adapters::redis_conn;
use crate::adapters::redis_conn::SharedConn;
use crate::clock::now_ms;
use crate::config::{Namespace, SecretUrl};
use ::redis::Script;
use parking_lot::Mutex;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Tuning of the Redis backend.
#[derive(Debug, Clone)]
pub struct RedisSignalsOptions {
    /// Entries younger than this (by their stream ID's time) are never
    /// trimmed, whatever the cursors say: a node that has just subscribed
    /// reads from the last entry before its first cursor is written (within
    /// [`RedisSignalsOptions::cursor_flush_interval`]).
    pub keep_recent: Duration,
    /// A hard ceiling on the entries kept per channel (`XTRIM MAXLEN ~`),
    /// even when a recorded cursor is further behind: that reader then
    /// misses the oldest (it logs how many when it resumes). `None` (the
    /// default): no ceiling, the slowest recorded cursor is the limit (see
    /// docs/redis-keys.md, "Sync signals": dead nodes' cursors are removed by the
    /// janitor so they do not hold the stream for ever).
    pub max_len: Option<usize>,
    /// `XREAD BLOCK`: how long one read waits for news. Also the longest a
    /// new subscription waits to be read if `CLIENT UNBLOCK` is denied.
    pub block: Duration,
    /// `XREAD COUNT`: entries read per stream and round trip.
    pub batch: usize,
    /// Changed cursors are written at most this often (and on shutdown).
    pub cursor_flush_interval: Duration,
}

impl Default for RedisSignalsOptions {
    fn default() -> Self {
        Self {
            keep_recent: Duration::from_secs(60),
            max_len: None,
            block: Duration::from_secs(2),
            batch: 512,
            cursor_flush_interval: Duration::from_millis(250),
        }
    }
}

/// An unchanged cursor is written again this often, so that a Redis that
/// lost its data gets it back even from an idle node, and so that its
/// `seen_ms` tells a live reader from a dead one.
pub const CURSOR_REFRESH: Duration = Duration::from_secs(30);

/// INCR the channel's counter and XADD the entry, atomically, so the
/// counter value in an entry is its publish number (lag = counter − cursor);
/// then, every 16th publish (the counter is a multiple of 16: reading the
/// cursors on every publish cost 2.5 times the Redis time of a publish),
/// trim what no reader needs: `XTRIM MINID ~` at the slowest cursor in
/// `:cursors`, but never an entry younger than `ARGV[2]` ms; and, when
/// `ARGV[3]` > 0, `XTRIM MAXLEN ~ ARGV[3]` (the hard ceiling). Nothing is
/// trimmed while `:cursors` holds another type (the readers cannot be
/// known; the inspector reports the key as unreadable). All three
/// keys share the channel's hash tag (one slot of a Redis Cluster).
static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'stream' and t ~= 'none' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' holds a ' .. t .. ', not a stream')
end
local seq = redis.call('INCR', KEYS[2])
local id = redis.call('XADD', KEYS[1], '*', 'seq', seq, 'envelope', ARGV[1])
if seq % 16 ~= 0 then
  return id
end
local ms = tonumber(string.match(id, '^(%d+)'))
local floor = ms - tonumber(ARGV[2])
if floor < 0 then floor = 0 end
local ct = redis.call('TYPE', KEYS[3])['ok']
if ct ~= 'hash' and ct ~= 'none' then
  return id
end
local min_ms, min_seq, min_id = floor, 0, floor .. '-0'
for _, v in ipairs(redis.call('HVALS', KEYS[3])) do
  local cm, cs = string.match(v, '"id":"(%d+)%-(%d+)"')
  if cm then
    local m, q = tonumber(cm), tonumber(cs)
    if m < min_ms or (m == min_ms and q < min_seq) then
      min_ms, min_seq, min_id = m, q, cm .. '-' .. cs
    end
  end
end
redis.call('XTRIM', KEYS[1], 'MINID', '~', min_id)
if tonumber(ARGV[3]) > 0 then
  redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[3])
end
return id
"#,
    )
});

/// Sync signals on Redis Streams for one node.
pub struct RedisSignals {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// State shared by the adapter, its reader, its flusher and its subscriptions.
pub(crate) struct Inner {
    pub(crate) node: String,
    pub(crate) ns: Namespace,
    pub(crate) url: SecretUrl,
    pub(crate) conn: SharedConn,
    pub(crate) options: RedisSignalsOptions,
    pub(crate) state: Mutex<State>,
    /// The readers: one for every channel on one server; on a Redis
    /// Cluster, one per hash slot that holds a subscribed channel's stream
    /// (an XREAD may not span slots), started by the first subscription
    /// there.
    pub(crate) lanes: Mutex<HashMap<Option<u16>, Arc<Lane>>>,
    pub(crate) shutdown: watch::Sender<bool>,
    unblock_warned: AtomicBool,
    pub(crate) flush_failing: AtomicBool,
}

pub(crate) struct State {
    /// Bumped whenever a channel gains its first subscription.
    pub(crate) generation: u64,
    next_sub: u64,
    pub(crate) channels: HashMap<String, ChannelState>,
    closed: bool,
}

pub(crate) struct ChannelState {
    pub(crate) key: String,
    /// Everything up to here was read and dispatched.
    pub(crate) pos: Position,
    pub(crate) subs: Vec<RedisSub>,
    /// The cursor last written to Redis.
    pub(crate) written: Option<Written>,
    /// Not read until then: the key holds something else than a stream.
    pub(crate) paused_until: Option<tokio::time::Instant>,
}

/// A cursor as last written.
#[derive(Clone, Copy)]
pub(crate) struct Written {
    pub(crate) pos: Position,
    /// When it last moved (Unix ms): the `at_ms` written with it.
    pub(crate) moved_at_ms: u64,
    /// When it was last written.
    pub(crate) at: tokio::time::Instant,
}

pub(crate) struct RedisSub {
    id: u64,
    pub(crate) include_own: bool,
    pub(crate) sender: SubSender,
    /// Messages queued or in flight (returned by `recv`, not yet finished).
    pub(crate) pending: Arc<Mutex<VecDeque<Position>>>,
}

impl ChannelState {
    /// The node's cursor: just before the oldest message some subscription
    /// has not finished, else the read position.
    pub(crate) fn cursor(&self) -> Position {
        let mut c = self.pos;
        for s in &self.subs {
            if let Some(front) = s.pending.lock().front()
                && front.id.prev() < c.id
            {
                c = Position {
                    id: front.id.prev(),
                    seq: front.seq.saturating_sub(1),
                };
            }
        }
        c
    }
}

struct RedisTracker {
    inner: Weak<Inner>,
    channel: String,
    sub_id: u64,
    pending: Arc<Mutex<VecDeque<Position>>>,
}

impl Tracker for RedisTracker {
    fn finished(&self) {
        self.pending.lock().pop_front();
    }

    fn closed(&self, in_flight: bool) {
        if in_flight {
            self.pending.lock().pop_front();
        }
        if let Some(inner) = self.inner.upgrade() {
            inner.unsubscribe(&self.channel, self.sub_id);
        }
    }
}

impl Inner {
    /// Remove a subscription. When it was the channel's last one, the read
    /// position goes back to its oldest unreturned message, so that a later
    /// subscription (or a restart) resumes there.
    fn unsubscribe(&self, channel: &str, sub_id: u64) {
        let mut st = self.state.lock();
        let Some(ch) = st.channels.get_mut(channel) else {
            return;
        };
        let Some(i) = ch.subs.iter().position(|s| s.id == sub_id) else {
            return;
        };
        let sub = ch.subs.remove(i);
        if ch.subs.is_empty()
            && let Some(front) = sub.pending.lock().front()
            && front.id.prev() < ch.pos.id
        {
            ch.pos = Position {
                id: front.id.prev(),
                seq: front.seq.saturating_sub(1),
            };
        }
    }

    fn closed(&self) -> bool {
        self.state.lock().closed
    }
}

impl RedisSignals {
    /// Connect node `node_id` with the default options.
    pub async fn connect(
        url: &SecretUrl,
        namespace: Namespace,
        node_id: impl Into<String>,
    ) -> Result<Self, PubsubError> {
        Self::connect_with(url, namespace, node_id, RedisSignalsOptions::default()).await
    }

    /// Connect node `node_id`. The reader's blocking connection is opened
    /// with the first subscription.
    pub async fn connect_with(
        url: &SecretUrl,
        namespace: Namespace,
        node_id: impl Into<String>,
        options: RedisSignalsOptions,
    ) -> Result<Self, PubsubError> {
        let node = check_node_id(node_id.into())?;
        let conn = redis_conn::connect(url).await?;
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            node,
            ns: namespace,
            url: url.clone(),
            conn,
            options,
            state: Mutex::new(State {
                generation: 0,
                next_sub: 0,
                channels: HashMap::new(),
                closed: false,
            }),
            lanes: Mutex::new(HashMap::new()),
            shutdown,
            unblock_warned: AtomicBool::new(false),
            flush_failing: AtomicBool::new(false),
        });
        let flusher = tokio::spawn(super::redis_cursor::run_flusher(inner.clone()));
        let signals = Self {
            inner,
            tasks: Mutex::new(vec![flusher]),
        };
        if !signals.inner.conn.is_cluster() {
            signals.lane_for("");
        }
        Ok(signals)
    }

    /// The reader of the stream `key` (all streams on one server), started
    /// when it does not run yet.
    fn lane_for(&self, key: &str) -> Arc<Lane> {
        let slot = self
            .inner
            .conn
            .is_cluster()
            .then(|| redis_conn::cluster::slot_of(key.as_bytes()));
        let mut lanes = self.inner.lanes.lock();
        if let Some(lane) = lanes.get(&slot) {
            return lane.clone();
        }
        let lane = Arc::new(Lane::new(slot));
        lanes.insert(slot, lane.clone());
        let task = tokio::spawn(super::redis_reader::run(self.inner.clone(), lane.clone()));
        self.tasks.lock().push(task);
        lane
    }

    /// The namespace it writes under.
    pub fn namespace(&self) -> &Namespace {
        &self.inner.ns
    }

    /// Make sure the reader's XREAD includes generation `generation`: kick a
    /// blocked XREAD with `CLIENT UNBLOCK` until the reader picked it up.
    /// Gives up after a few seconds (Redis down): nothing is lost, the new
    /// channel is read once the reader gets there.
    async fn wake_reader(&self, generation: u64, key: &str) {
        let inner = &self.inner;
        let lane = self.lane_for(key);
        lane.changed.notify_one();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let started = lane.started.notified();
            tokio::pin!(started);
            started.as_mut().enable();
            if lane.generation.load(Ordering::Acquire) >= generation {
                return;
            }
            let client = *lane.client.lock();
            if let Some(id) = client {
                // To the server the reader blocks on: on a cluster, the
                // master of the stream's slot.
                let mut unblock = ::redis::cmd("CLIENT");
                unblock.arg("UNBLOCK").arg(id);
                let r = inner.conn.clone().query_at_key(&unblock, key).await;
                if let Err(e) = r
                    && !inner.unblock_warned.swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(
                        "CLIENT UNBLOCK failed ({e}): new sync-signal subscriptions wait up to \
                         the XREAD block time before being read; allow CLIENT UNBLOCK for this user"
                    );
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                tracing::debug!("the sync-signal reader has not picked up the new channel yet");
                return;
            }
            let wait = Duration::from_millis(25).min(deadline - now);
            let _ = tokio::time::timeout(wait, started).await;
        }
    }
}

impl Backend for RedisSignals {
    fn node(&self) -> &str {
        &self.inner.node
    }

    async fn send(&self, channel: &str, payload: Payload) -> Result<String, PubsubError> {
        let inner = &self.inner;
        if inner.closed() {
            return Err(PubsubError::ShutDown);
        }
        let key = stream_key(&inner.ns, channel);
        let envelope = encode_envelope(&inner.node, now_ms(), &payload);
        PUBLISH
            .key(&key)
            .key(seq_key(&inner.ns, channel))
            .key(cursors_key(&inner.ns, channel))
            .arg(envelope)
            .arg(u64::try_from(inner.options.keep_recent.as_millis()).unwrap_or(u64::MAX))
            .arg(inner.options.max_len.unwrap_or(0))
            .invoke_async(&mut inner.conn.clone())
            .await
            .map_err(|source| PubsubError::Redis { key, source })
    }

    async fn attach(
        &self,
        channel: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, PubsubError> {
        let inner = &self.inner;
        let known = {
            let st = inner.state.lock();
            if st.closed {
                return Err(PubsubError::ShutDown);
            }
            st.channels.contains_key(channel)
        };
        // Channels are never removed before shutdown, so a known one stays.
        let start = if known {
            None
        } else {
            Some(inner.resolve_start(channel).await?)
        };
        let (subscription, generation) = {
            let mut st = inner.state.lock();
            if st.closed {
                return Err(PubsubError::ShutDown);
            }
            st.next_sub += 1;
            let sub_id = st.next_sub;
            let ch = match st.channels.entry(channel.to_string()) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => v.insert(ChannelState {
                    key: stream_key(&inner.ns, channel),
                    pos: start.unwrap_or(Position {
                        id: EntryId::ZERO,
                        seq: 0,
                    }),
                    subs: Vec::new(),
                    written: None,
                    paused_until: None,
                }),
            };
            let first = ch.subs.is_empty();
            let pending = Arc::new(Mutex::new(VecDeque::new()));
            let tracker = Arc::new(RedisTracker {
                inner: Arc::downgrade(inner),
                channel: channel.to_string(),
                sub_id,
                pending: pending.clone(),
            });
            let (sender, subscription) = pair(channel, tracker);
            ch.subs.push(RedisSub {
                id: sub_id,
                include_own: options.include_own,
                sender,
                pending,
            });
            if first {
                st.generation += 1;
            }
            (subscription, first.then_some(st.generation))
        };
        if let Some(generation) = generation {
            self.wake_reader(generation, &stream_key(&inner.ns, channel))
                .await;
        }
        Ok(subscription)
    }

    async fn close(&self) {
        let _ = self.inner.shutdown.send_replace(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
        let mut st = self.inner.state.lock();
        st.closed = true;
        for ch in st.channels.values_mut() {
            ch.subs.clear();
        }
    }
}

impl Drop for RedisSignals {
    fn drop(&mut self) {
        // The reader stops, the flusher writes the final cursors, and the
        // subscriptions end once the tasks release the shared state.
        let _ = self.inner.shutdown.send_replace(true);
    }
}
