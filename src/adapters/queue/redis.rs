//! The Redis Streams queue backend: publishing, subscribing (the consumer
//! loop is in `redis_consumer`), stats and the dead-letter operations.
//! The layout is in `docs/redis-keys.md` ("Message queue").

use super::backend::{Backend, Consumers, Started};
use super::redis_consumer::{self, ConsumerCtx};
use super::redis_entries::{GROUP, Keys, dead_from, is_transient, parse_entries};
use super::redis_stats::stats_for;
use super::subscription::{ConsumerNumbers, retrying};
use super::{DeadLetter, PauseFlag, QueueError, QueueOptions, QueueStats, Requeue, new_message_id};
use crate::adapters::redis_conn;
use crate::adapters::redis_conn::SharedConn;
use crate::config::{Namespace, SecretUrl};
use redis::{AsyncCommands, RedisError, Script};
use std::sync::Arc;
use std::time::Duration;

/// With Sentinel, how long `publish` waits for a replica to confirm.
pub const REPLICA_WAIT: Duration = Duration::from_millis(1000);

/// Moves dead letters (by dead-stream entry id) back to the queue stream
/// with a fresh attempt budget, atomically per call; entries already gone
/// (requeued or purged by someone else) are skipped. Returns how many moved.
const REQUEUE_DEAD: &str = r"
local moved = 0
for i = 1, #ARGV do
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #e == 1 then
    local f = e[1][2]
    local id, payload
    for j = 1, #f, 2 do
      if f[j] == 'id' then id = f[j + 1] elseif f[j] == 'payload' then payload = f[j + 1] end
    end
    if id and payload then
      redis.call('XADD', KEYS[2], '*', 'id', id, 'attempt', '1', 'payload', payload)
      redis.call('XDEL', KEYS[1], ARGV[i])
      moved = moved + 1
    end
  end
end
return moved
";

/// The queue on Redis Streams: one stream per queue, one consumer group
/// shared by every node.
#[derive(Clone)]
pub struct RedisQueue {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub url: SecretUrl,
    pub ns: Namespace,
    pub node_id: String,
    pub options: QueueOptions,
    pub conn: SharedConn,
    pub numbers: ConsumerNumbers,
}

pub(crate) fn redis_err(command: &'static str, key: &str) -> impl FnOnce(RedisError) -> QueueError {
    let key = key.to_string();
    move |source| QueueError::Redis {
        command,
        key,
        source,
    }
}

impl RedisQueue {
    /// Connect to Redis at `url`; keys go under `ns`, consumers are named
    /// after `node_id`.
    pub async fn connect(
        url: &SecretUrl,
        ns: Namespace,
        node_id: impl Into<String>,
        options: QueueOptions,
    ) -> Result<Self, QueueError> {
        let conn = redis_conn::connect(url).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                url: url.clone(),
                ns,
                node_id: node_id.into(),
                options,
                conn,
                numbers: ConsumerNumbers::default(),
            }),
        })
    }

    /// The stream key of a queue.
    pub fn stream_key(&self, queue: &str) -> String {
        Keys::new(&self.inner.ns, queue).stream
    }

    /// Run an operation, retrying while Redis is unreachable (at most
    /// `reconnect_timeout`); the shared connection reconnects by itself.
    async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T, QueueError>
    where
        F: FnMut(SharedConn) -> Fut,
        Fut: std::future::Future<Output = Result<T, QueueError>>,
    {
        let timeout = self.inner.options.reconnect_timeout;
        retrying(
            timeout,
            "Redis",
            || op(self.inner.conn.clone()),
            |e| matches!(e, QueueError::Redis { source, .. } if is_transient(source)),
        )
        .await
    }

    /// Create the consumer group (from the start of the stream, creating the
    /// stream if needed); an existing group is kept.
    pub(crate) async fn ensure_group(conn: &mut SharedConn, key: &str) -> Result<(), QueueError> {
        let created: Result<(), RedisError> = conn.xgroup_create_mkstream(key, GROUP, "0").await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(redis_err("XGROUP CREATE", key)(e)),
            _ => Ok(()),
        }
    }

    fn dead_entry_ids_page(
        values: &[super::redis_entries::Entry],
        which: &Requeue,
        queue: &str,
        key: &str,
    ) -> Result<Vec<String>, QueueError> {
        let mut out = Vec::new();
        for e in values {
            let Some(fields) = &e.fields else { continue };
            let wanted = match which {
                Requeue::All => true,
                Requeue::Ids(ids) => {
                    let d = dead_from(queue, &e.id, fields).map_err(|reason| {
                        QueueError::Unreadable {
                            key: key.to_string(),
                            reason,
                        }
                    })?;
                    ids.contains(&d.id)
                }
            };
            if wanted {
                out.push(e.id.clone());
            }
        }
        Ok(out)
    }
}

async fn query<T: redis::FromRedisValue>(
    cmd: redis::Cmd,
    mut conn: SharedConn,
    name: &'static str,
    key: String,
) -> Result<T, QueueError> {
    cmd.query_async(&mut conn)
        .await
        .map_err(|source| QueueError::Redis {
            command: name,
            key,
            source,
        })
}

impl Backend for RedisQueue {
    const KIND: &'static str = "redis";

    fn options(&self) -> &QueueOptions {
        &self.inner.options
    }

    async fn put(&self, queue: &str, payload: &[u8]) -> Result<String, QueueError> {
        let key = self.stream_key(queue);
        let id = new_message_id();
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&key)
            .arg("*")
            .arg("id")
            .arg(&id)
            .arg("attempt")
            .arg(1)
            .arg("payload")
            .arg(payload);
        if !self.inner.conn.is_replicated() {
            self.retrying(|c| query::<String>(cmd.clone(), c, "XADD", key.clone()))
                .await?;
            return Ok(id);
        }
        // Sentinel: the message is acknowledged only once a replica has it,
        // so a failover cannot lose a message `publish` returned. XADD and
        // WAIT go in one request, on one connection: the WAIT counts the
        // replicas of the master that took this XADD.
        let mut pipe = redis::pipe();
        pipe.add_command(cmd)
            .ignore()
            .cmd("WAIT")
            .arg(1)
            .arg(REPLICA_WAIT.as_millis() as u64);
        let (replicas,): (i64,) = self
            .retrying(|mut c| {
                let pipe = pipe.clone();
                let key = key.clone();
                async move {
                    pipe.query_async(&mut c)
                        .await
                        .map_err(redis_err("XADD+WAIT", &key))
                }
            })
            .await?;
        if replicas < 1 {
            return Err(QueueError::NotReplicated {
                key,
                waited_ms: REPLICA_WAIT.as_millis() as u64,
            });
        }
        Ok(id)
    }

    async fn consume(&self, queue: &str, c: Consumers) -> Result<Started, QueueError> {
        let keys = Keys::new(&self.inner.ns, queue);
        self.retrying(|mut c| {
            let key = keys.stream.clone();
            async move { Self::ensure_group(&mut c, &key).await }
        })
        .await?;
        let conn = redis_conn::connect(&self.inner.url).await?;
        let number = self.inner.numbers.claim(queue);
        let consumer = format!("{}-{number}", self.inner.node_id);
        let ctx = ConsumerCtx {
            inner: self.inner.clone(),
            conn,
            queue: queue.to_string(),
            keys,
            consumer: consumer.clone(),
            number,
            handler: c.handler,
            concurrency: c.concurrency,
            pause_state: c.pause,
        };
        let task = tokio::spawn(redis_consumer::run(Arc::new(ctx), c.stop));
        Ok((consumer, task))
    }

    async fn counts(&self, queue: &str) -> Result<QueueStats, QueueError> {
        let mut all = self
            .retrying(|mut c| {
                let ns = self.inner.ns.clone();
                let names = vec![queue.to_string()];
                async move { stats_for(&mut c, &ns, names).await }
            })
            .await?;
        match all.pop() {
            Some(QueueStats {
                key,
                unreadable: Some(reason),
                ..
            }) => Err(QueueError::Unreadable { key, reason }),
            Some(stats) => Ok(stats),
            None => Err(QueueError::Unreadable {
                key: self.stream_key(queue),
                reason: "no stats returned".into(),
            }),
        }
    }

    async fn dead_count(&self, queue: &str) -> Result<u64, QueueError> {
        let key = Keys::new(&self.inner.ns, queue).dead;
        let mut cmd = redis::cmd("XLEN");
        cmd.arg(&key);
        self.retrying(|c| query::<u64>(cmd.clone(), c, "XLEN", key.clone()))
            .await
    }

    async fn dead_list(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let key = Keys::new(&self.inner.ns, queue).dead;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(&key).arg("-").arg("+").arg("COUNT").arg(limit);
        let reply: redis::Value = self
            .retrying(|c| query(cmd.clone(), c, "XRANGE", key.clone()))
            .await?;
        let unreadable = |reason: String| QueueError::Unreadable {
            key: key.clone(),
            reason,
        };
        parse_entries(reply)
            .map_err(unreadable)?
            .into_iter()
            .filter_map(|e| e.fields.map(|f| (e.id, f)))
            .map(|(id, f)| dead_from(queue, &id, &f).map_err(unreadable))
            .collect()
    }

    async fn dead_requeue(&self, queue: &str, which: Requeue) -> Result<u64, QueueError> {
        let keys = Keys::new(&self.inner.ns, queue);
        let script = Script::new(REQUEUE_DEAD);
        let mut start = "-".to_string();
        let mut moved = 0u64;
        loop {
            let mut cmd = redis::cmd("XRANGE");
            cmd.arg(&keys.dead)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(500);
            let reply: redis::Value = self
                .retrying(|c| query(cmd.clone(), c, "XRANGE", keys.dead.clone()))
                .await?;
            let page = parse_entries(reply).map_err(|reason| QueueError::Unreadable {
                key: keys.dead.clone(),
                reason,
            })?;
            let Some(last) = page.last().map(|e| e.id.clone()) else {
                break;
            };
            let chosen = Self::dead_entry_ids_page(&page, &which, queue, &keys.dead)?;
            if !chosen.is_empty() {
                // Safe to retry: entries already moved are skipped.
                moved += self
                    .retrying(|mut c| {
                        let mut inv = script.key(&keys.dead);
                        inv.key(&keys.stream).arg(&chosen);
                        let key = keys.dead.clone();
                        async move {
                            inv.invoke_async::<u64>(&mut c)
                                .await
                                .map_err(redis_err("EVALSHA requeue", &key))
                        }
                    })
                    .await?;
            }
            start = format!("({last}");
        }
        Ok(moved)
    }

    async fn dead_purge(&self, queue: &str) -> Result<u64, QueueError> {
        let key = Keys::new(&self.inner.ns, queue).dead;
        let mut pipe = redis::pipe();
        pipe.atomic().xlen(&key).del(&key).ignore();
        let (len,): (u64,) = self
            .retrying(|mut c| {
                let (pipe, key) = (pipe.clone(), key.clone());
                async move {
                    pipe.query_async(&mut c)
                        .await
                        .map_err(redis_err("XLEN+DEL", &key))
                }
            })
            .await?;
        Ok(len)
    }

    async fn set_pause(&self, queue: &str, flag: &PauseFlag) -> Result<(), QueueError> {
        let keys = Keys::new(&self.inner.ns, queue);
        let json = serde_json::to_string(flag)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&keys.paused).arg(json);
        self.retrying(|c| query::<()>(cmd.clone(), c, "SET", keys.paused.clone()))
            .await
    }

    async fn clear_pause(&self, queue: &str) -> Result<bool, QueueError> {
        let keys = Keys::new(&self.inner.ns, queue);
        let mut cmd = redis::cmd("DEL");
        cmd.arg(&keys.paused);
        let n = self
            .retrying(|c| query::<u64>(cmd.clone(), c, "DEL", keys.paused.clone()))
            .await?;
        Ok(n > 0)
    }

    async fn read_pause(&self, queue: &str) -> Result<Option<PauseFlag>, QueueError> {
        let keys = Keys::new(&self.inner.ns, queue);
        let mut cmd = redis::cmd("GET");
        cmd.arg(&keys.paused);
        let reply = self
            .retrying(|c| query::<redis::Value>(cmd.clone(), c, "GET", keys.paused.clone()))
            .await?;
        super::pause::parse(&reply).map_err(|reason| QueueError::Unreadable {
            key: keys.paused.clone(),
            reason,
        })
    }

    async fn remove(&self, queue: &str) -> Result<(), QueueError> {
        let keys = Keys::new(&self.inner.ns, queue);
        let mut cmd = redis::cmd("DEL");
        cmd.arg(&keys.stream).arg(&keys.dead).arg(&keys.paused);
        self.retrying(|c| query::<u64>(cmd.clone(), c, "DEL", keys.stream.clone()))
            .await?;
        Ok(())
    }
}
