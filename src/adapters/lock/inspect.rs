//! Reading locks without taking them (SCAN plus pipelined PTTL/GET and the
//! wait queue's ZCARD, no writes; the per-key reads split into "add to a pipeline" and "parse the
//! replies" for the inspector), the holder value format, and the admin
//! force-release.

use super::LockError;
use super::keys::{LOCK_FAMILY, lock_key, lock_name_of, release_channel, wait_key, wait_until_key};
use super::scripts::FORCE_RELEASE;
use super::validate_name;
use crate::config::Namespace;
use redis::Value;
use redis::aio::ConnectionLike;
use serde::{Serialize, Serializer};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// SCAN batch size of [`read_holders`].
const SCAN_COUNT: usize = 5000;
/// At most this many bytes of a garbage value are quoted in a reason.
const PREVIEW_LEN: usize = 80;
/// Commands [`LockReads::add_to`] appends per key: PTTL, GET, ZCARD.
const READS_PER_KEY: usize = 3;

/// The lock name of `key` when it is a lock key of `ns`.
fn lock_name_of_ns<'k>(ns: Option<&Namespace>, key: &'k [u8]) -> Option<&'k str> {
    lock_name_of(ns?, key).ok()
}

/// The value of a lock key: `{token}|{acquired_ms}|{guard_id}|{node_id}`.
///
/// - `token`: the fencing token, decimal, ≥ 1;
/// - `acquired_ms`: Unix time in milliseconds of the acquire by the
///   acquiring node's clock, decimal;
/// - `guard_id`: 16 lowercase hex digits, random per acquire;
/// - `node_id`: the holder node's id, the rest of the value (it may itself
///   contain `|`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HolderValue {
    /// The fencing token.
    pub fencing_token: u64,
    /// Unix milliseconds of the acquire (the acquiring node's clock).
    pub acquired_at_ms: u64,
    /// Random id of the holding guard.
    pub guard_id: String,
    /// The holder's node id.
    pub holder_node: String,
}

impl HolderValue {
    /// Parse a lock value; the error says what does not match the format.
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(raw).map_err(|_| "value is not UTF-8".to_string())?;
        let mut parts = text.splitn(4, '|');
        let (Some(token), Some(acquired), Some(guard), Some(node)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("expected 4 fields token|acquired_ms|guard_id|node_id".to_string());
        };
        let fencing_token = parse_decimal(token)
            .filter(|t| *t >= 1)
            .ok_or("fencing token is not a positive decimal integer")?;
        let acquired_at_ms =
            parse_decimal(acquired).ok_or("acquired_ms is not a decimal integer")?;
        if guard.len() != 16
            || !guard
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err("guard_id is not 16 lowercase hex digits".to_string());
        }
        if node.is_empty() {
            return Err("node_id is empty".to_string());
        }
        Ok(Self {
            fencing_token,
            acquired_at_ms,
            guard_id: guard.to_string(),
            holder_node: node.to_string(),
        })
    }

    /// The value as stored.
    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.fencing_token, self.acquired_at_ms, self.guard_id, self.holder_node
        )
    }
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn ser_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One held lock as read from Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolderInfo {
    /// The lock name (what is inside the braces of `<ns>:lock:{<name>}`).
    pub name: String,
    /// The holder's node id.
    pub holder_node: String,
    /// Random id of the holding guard.
    pub guard_id: String,
    /// Unix milliseconds of the acquire (the acquiring node's clock).
    pub acquired_at_ms: u64,
    /// The fencing token of the current holder.
    pub fencing_token: u64,
    /// Time left before the lock expires unless renewed (JSON: milliseconds).
    #[serde(rename = "ttl_left_ms", serialize_with = "ser_ms")]
    pub ttl_left: Duration,
    /// Waiters in the lock's FIFO queue (`ZCARD` of its wait key; see
    /// [`read_waiters`]); `None` when not read (the memory backend) or the
    /// reply was not a count.
    pub waiters: Option<u64>,
}

impl LockHolderInfo {
    /// The acquire time.
    pub fn acquired_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.acquired_at_ms)
    }
}

/// A key under `<ns>:lock:` that is not a well-formed lock (its name or its
/// value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadableLock {
    /// The full key name (lossy UTF-8).
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Every lock of a namespace: the readable ones and the garbage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LockInspection {
    /// Held locks, sorted by name.
    pub holders: Vec<LockHolderInfo>,
    /// Keys that are not well-formed locks, sorted by key.
    pub unreadable: Vec<UnreadableLock>,
}

/// What [`read_one`] made of a key.
enum Read {
    Gone,
    Held(LockHolderInfo),
    Unreadable(String),
}

fn preview(raw: &[u8]) -> String {
    let cut = &raw[..raw.len().min(PREVIEW_LEN)];
    let dots = if raw.len() > PREVIEW_LEN { "…" } else { "" };
    format!("{:?}{dots}", String::from_utf8_lossy(cut))
}

/// Interpret the PTTL and GET replies of one lock key. A key that is not
/// `<ns>:lock:{<name>}` is unreadable whatever it holds.
fn read_one(ns: &Namespace, key: &[u8], pttl: &Value, get: &Value, zcard: &Value) -> Read {
    let name = match lock_name_of(ns, key) {
        Ok(name) => name,
        Err(reason) => return Read::Unreadable(reason),
    };
    let raw = match get {
        Value::Nil => return Read::Gone,
        Value::BulkString(raw) => raw,
        Value::ServerError(e) => {
            return Read::Unreadable(format!("not a string ({})", e.code()));
        }
        other => return Read::Unreadable(format!("unexpected GET reply {other:?}")),
    };
    let ttl_left = match pttl {
        Value::Int(-2) => return Read::Gone,
        Value::Int(-1) => {
            return Read::Unreadable(
                "no TTL: it would never expire (clusterops always sets one)".to_string(),
            );
        }
        Value::Int(ms) => Duration::from_millis(ms.unsigned_abs()),
        other => return Read::Unreadable(format!("unexpected PTTL reply {other:?}")),
    };
    match HolderValue::parse(raw) {
        Ok(v) => Read::Held(LockHolderInfo {
            name: name.to_string(),
            holder_node: v.holder_node,
            guard_id: v.guard_id,
            acquired_at_ms: v.acquired_at_ms,
            fencing_token: v.fencing_token,
            ttl_left,
            waiters: match zcard {
                Value::Int(n) => u64::try_from(*n).ok(),
                _ => None,
            },
        }),
        Err(why) => Read::Unreadable(format!("value {}: {why}", preview(raw))),
    }
}

/// The per-key half of reading locks: which keys to read and how to read
/// them. [`LockReads::add_to`] appends one `PTTL`, one `GET` and the
/// `ZCARD` of the lock's wait queue per key to a pipeline (run it with `ignore_errors`), [`LockReads::parse`] turns
/// the replies into a [`LockInspection`]. Used by [`read_holders`] and by
/// the inspector, which puts these reads in one pipeline with the others.
#[derive(Debug, Clone, Default)]
pub struct LockReads {
    ns: Option<Namespace>,
    keys: Vec<Vec<u8>>,
}

impl LockReads {
    /// The lock keys among `keys` (what a SCAN found): those under
    /// `<ns>:lock:`, deduplicated and sorted; other keys are ignored (keys
    /// under it that are not `<ns>:lock:{<name>}` are read, and reported
    /// as unreadable).
    pub fn from_keys<'a>(ns: &Namespace, keys: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let prefix = ns.key(LOCK_FAMILY);
        let mut keys: Vec<Vec<u8>> = keys
            .into_iter()
            .filter(|k| k.starts_with(prefix.as_bytes()))
            .map(<[u8]>::to_vec)
            .collect();
        keys.sort();
        keys.dedup();
        Self {
            ns: Some(ns.clone()),
            keys,
        }
    }

    /// How many commands [`LockReads::add_to`] appends.
    pub fn commands(&self) -> usize {
        self.keys.len() * READS_PER_KEY
    }

    /// The lock keys, sorted.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// The same reads for the keys `keep` accepts.
    pub fn only(&self, keep: impl Fn(&[u8]) -> bool) -> Self {
        Self {
            ns: self.ns.clone(),
            keys: self.keys.iter().filter(|k| keep(k)).cloned().collect(),
        }
    }

    /// Append `PTTL key`, `GET key` and `ZCARD <ns>:lock-wait:{<name>}`
    /// for every key (the wait key has the lock key's hash tag, so a Redis
    /// Cluster serves all three from one slot). A key that is not
    /// `<ns>:lock:{<name>}` has no wait key: its third read is `ZCARD` of
    /// the key itself, whose reply is not used.
    pub fn add_to(&self, pipe: &mut redis::Pipeline) {
        for key in &self.keys {
            pipe.cmd("PTTL").arg(key).cmd("GET").arg(key);
            match (&self.ns, lock_name_of_ns(self.ns.as_ref(), key)) {
                (Some(ns), Some(name)) => pipe.cmd("ZCARD").arg(wait_key(ns, name)),
                _ => pipe.cmd("ZCARD").arg(key),
            };
        }
    }

    /// The replies of [`LockReads::add_to`], in order. Never fails: a key
    /// whose replies are not a lock (or are missing) is listed as
    /// unreadable with the reason; a key that expired meanwhile is left out.
    pub fn parse(&self, replies: &[Value]) -> LockInspection {
        let mut out = LockInspection::default();
        for (i, key) in self.keys.iter().enumerate() {
            let at = READS_PER_KEY * i;
            let read = match (
                &self.ns,
                replies.get(at),
                replies.get(at + 1),
                replies.get(at + 2),
            ) {
                (Some(ns), Some(pttl), Some(get), Some(zcard)) => {
                    read_one(ns, key, pttl, get, zcard)
                }
                _ => Read::Unreadable("no reply from Redis".to_string()),
            };
            match read {
                Read::Gone => {}
                Read::Held(info) => out.holders.push(info),
                Read::Unreadable(reason) => out.unreadable.push(UnreadableLock {
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason,
                }),
            }
        }
        out.holders.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// Run `reads` as one pipeline, errors kept per command.
async fn run_reads<C: ConnectionLike + Send>(
    conn: &mut C,
    reads: LockReads,
) -> Result<LockInspection, LockError> {
    if reads.commands() == 0 {
        return Ok(LockInspection::default());
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    reads.add_to(&mut pipe);
    let replies: Vec<Value> = pipe
        .query_async(conn)
        .await
        .map_err(|e| LockError::redis("reading locks", e))?;
    Ok(reads.parse(&replies))
}

/// Every lock under `<ns>:lock:` (SCAN, then one pipeline of PTTL and GET
/// per key; no writes). Keys that are not well-formed locks are listed in
/// [`LockInspection::unreadable`] with the reason; locks that expire while
/// being read are left out.
pub async fn read_holders<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
) -> Result<LockInspection, LockError> {
    let pattern = ns.pattern(&format!("{LOCK_FAMILY}*"));
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(conn)
            .await
            .map_err(|e| LockError::redis("scanning lock keys", e))?;
        found.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    run_reads(
        conn,
        LockReads::from_keys(ns, found.iter().map(Vec::as_slice)),
    )
    .await
}

/// One lock: `None` when free, [`LockError::Unreadable`] (naming the key)
/// when the key is not a well-formed lock. Read-only.
pub async fn read_holder<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    name: &str,
) -> Result<Option<LockHolderInfo>, LockError> {
    validate_name(name)?;
    let key = lock_key(ns, name);
    let mut found = run_reads(conn, LockReads::from_keys(ns, [key.as_bytes()])).await?;
    if let Some(bad) = found.unreadable.pop() {
        return Err(LockError::Unreadable {
            key,
            reason: bad.reason,
        });
    }
    Ok(found.holders.pop())
}

/// How many waiters the FIFO queue of lock `name` lists (`ZCARD` of
/// `<ns>:lock-wait:{<name>}`; read-only). Waiters whose process died are
/// counted until an acquire, release or leave of that lock drops them
/// (their keep-alive passed), at most a few hundred ms later.
pub async fn read_waiters<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    name: &str,
) -> Result<u64, LockError> {
    validate_name(name)?;
    redis::cmd("ZCARD")
        .arg(wait_key(ns, name))
        .query_async(conn)
        .await
        .map_err(|e| LockError::redis(format!("reading the wait queue of lock {name:?}"), e))
}

/// The outcome of [`force_release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForceReleaseOutcome {
    /// The lock had the expected token; it was deleted and waiters woken.
    Released,
    /// The lock was not held (nothing done).
    NotHeld,
    /// The lock is held with another token (nothing done): re-read it.
    TokenMismatch,
}

/// Admin: delete lock `name` if its current fencing token is
/// `expected_token` (read it first with [`read_holder`]), and wake the
/// first waiter in its queue (as a release does). The holder's guard then finds itself lost.
pub async fn force_release<C: ConnectionLike + Send>(
    conn: &mut C,
    ns: &Namespace,
    name: &str,
    expected_token: u64,
) -> Result<ForceReleaseOutcome, LockError> {
    validate_name(name)?;
    let key = lock_key(ns, name);
    let outcome: i64 = FORCE_RELEASE
        .key(&key)
        .key(wait_key(ns, name))
        .key(wait_until_key(ns, name))
        .arg(expected_token.to_string())
        .arg(release_channel(ns))
        .invoke_async(conn)
        .await
        .map_err(|e| LockError::redis(format!("force-releasing lock {name:?}"), e))?;
    match outcome {
        1 => {
            tracing::info!(lock = name, token = expected_token, "lock force-released");
            Ok(ForceReleaseOutcome::Released)
        }
        0 => Ok(ForceReleaseOutcome::NotHeld),
        -1 => Ok(ForceReleaseOutcome::TokenMismatch),
        _ => Err(LockError::Unreadable {
            key,
            reason: "not a string".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::HolderValue;

    #[test]
    fn a_holder_value_round_trips_and_keeps_pipes_in_the_node_id() {
        let v = HolderValue::parse(b"42|1700000000123|0123456789abcdef|node|a|b").unwrap();
        assert_eq!(v.fencing_token, 42);
        assert_eq!(v.acquired_at_ms, 1_700_000_000_123);
        assert_eq!(v.guard_id, "0123456789abcdef");
        assert_eq!(v.holder_node, "node|a|b");
        assert_eq!(v.encode(), "42|1700000000123|0123456789abcdef|node|a|b");
    }

    #[test]
    fn malformed_holder_values_say_which_field_is_wrong() {
        let cases: [(&[u8], &str); 7] = [
            (b"garbage", "4 fields"),
            (b"0|1|0123456789abcdef|n", "fencing token"),
            (b"+1|1|0123456789abcdef|n", "fencing token"),
            (b"1|x|0123456789abcdef|n", "acquired_ms"),
            (b"1|1|0123456789ABCDEF|n", "guard_id"),
            (b"1|1|0123456789abcdef|", "node_id"),
            (b"1|1|\xff|n", "UTF-8"),
        ];
        for (raw, expected) in cases {
            let err = HolderValue::parse(raw).unwrap_err();
            assert!(err.contains(expected), "{raw:?}: {err}");
        }
    }
}
