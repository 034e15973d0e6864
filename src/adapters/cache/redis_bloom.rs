//! Bloom filters in Redis. With the RedisBloom module (`BF.*` commands,
//! detected once) a filter is a native BF key; without it (plain Redis 7) it
//! is a bitmap set with SETBIT at k positions computed from client-side
//! hashes. Either way a meta hash records the parameters so that every node
//! uses the same ones, and every call is one Lua script (atomic), except
//! `exists` on a bitmap filter already seen: one transaction without Lua
//! (`redis_bloom_read`).

use super::CacheError;
use super::bloom::{BloomParams, HASH_SCHEME, MAX_BLOOM_BITS, MAX_BLOOM_HASHES, item_hashes};
use super::redis_bloom_read::{ShapeCache, answers, read_pipe, shape_of};
use crate::adapters::hash_tag::tag;
use crate::adapters::redis_conn::SharedConn;
use crate::config::Namespace;
use redis::Script;
use tokio::sync::OnceCell;

/// How filters are stored in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BloomImpl {
    /// The RedisBloom module's `BF.*` commands (scaling filters).
    RedisBloom,
    /// A plain Redis bitmap (SETBIT/GETBIT), any Redis version.
    Bitmap,
}

impl BloomImpl {
    /// The value of the meta hash's `impl` field.
    pub fn as_str(self) -> &'static str {
        match self {
            BloomImpl::RedisBloom => "redisbloom",
            BloomImpl::Bitmap => "bitmap",
        }
    }
}

/// Reserve: KEYS = data, meta; ARGV = impl, capacity, error_rate, bits, hashes, hash.
/// Returns 1 when created, 0 when it existed with the same parameters.
const RESERVE_LUA: &str = r#"
local t = redis.call('TYPE', KEYS[2])['ok']
if t == 'hash' then
  local cur = redis.call('HMGET', KEYS[2], 'impl', 'capacity', 'error_rate')
  if (cur[1] ~= 'bitmap' and cur[1] ~= 'redisbloom') or not cur[2] or not cur[3] then
    return redis.error_reply('BLOOMMETA has no valid impl/capacity/error_rate fields')
  end
  if cur[1] == ARGV[1] and cur[2] == ARGV[2] and cur[3] == ARGV[3] then return 0 end
  return redis.error_reply('BLOOMMISMATCH impl=' .. cur[1] .. ', capacity=' .. cur[2] .. ', error_rate=' .. cur[3])
end
if t ~= 'none' then return redis.error_reply('BLOOMMETA holds a ' .. t .. ', not a hash') end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('BLOOMDATA exists without its meta hash')
end
if ARGV[1] == 'bitmap' then
  redis.call('SETBIT', KEYS[1], tonumber(ARGV[4]) - 1, 0)
  redis.call('HSET', KEYS[2], 'impl', 'bitmap', 'capacity', ARGV[2], 'error_rate', ARGV[3],
    'bits', ARGV[4], 'hashes', ARGV[5], 'hash', ARGV[6])
else
  redis.call('BF.RESERVE', KEYS[1], ARGV[3], ARGV[2])
  redis.call('HSET', KEYS[2], 'impl', 'redisbloom', 'capacity', ARGV[2], 'error_rate', ARGV[3])
end
return 1
"#;

/// Shared head of the add/exists scripts: checks the meta hash (impl in
/// ARGV[2]) and the data key (type in ARGV[3]).
const CHECK_LUA: &str = r#"
local t = redis.call('TYPE', KEYS[2])['ok']
if t == 'none' then return redis.error_reply('BLOOMNOTRESERVED no meta hash') end
if t ~= 'hash' then return redis.error_reply('BLOOMMETA holds a ' .. t .. ', not a hash') end
local meta = redis.call('HMGET', KEYS[2], 'impl', 'bits', 'hashes', 'hash')
if meta[1] ~= ARGV[2] then
  if meta[1] == 'bitmap' or meta[1] == 'redisbloom' then
    return redis.error_reply('BLOOMIMPL the filter is stored as ' .. meta[1] .. ' but this node uses ' .. ARGV[2])
  end
  return redis.error_reply('BLOOMMETA field impl is ' .. tostring(meta[1]) .. ', expected bitmap or redisbloom')
end
local dt = redis.call('TYPE', KEYS[1])['ok']
if dt == 'none' then return redis.error_reply('BLOOMDATA is missing (deleted or evicted) while its meta hash exists') end
if ARGV[3] ~= '' and dt ~= ARGV[3] then return redis.error_reply('BLOOMDATA holds a ' .. dt .. ', expected a ' .. ARGV[3]) end
local add = ARGV[1] == 'add'
local out = {}
"#;

/// Bitmap add/exists: ARGV = op, 'bitmap', 'string', hash scheme, max bits,
/// max hashes, then (h1, h2) pairs. Returns one 0/1 per item.
const BITMAP_OPS_LUA: &str = r#"
local m = tonumber(meta[2])
local k = tonumber(meta[3])
if not m or m < 1 or m > tonumber(ARGV[5]) or m % 1 ~= 0 then
  return redis.error_reply('BLOOMMETA field bits is ' .. tostring(meta[2]) .. ', expected an integer from 1 to ' .. ARGV[5])
end
if not k or k < 1 or k > tonumber(ARGV[6]) or k % 1 ~= 0 then
  return redis.error_reply('BLOOMMETA field hashes is ' .. tostring(meta[3]) .. ', expected an integer from 1 to ' .. ARGV[6])
end
if meta[4] ~= ARGV[4] then
  return redis.error_reply('BLOOMMETA field hash is ' .. tostring(meta[4]) .. ', this node hashes with ' .. ARGV[4])
end
local n = (#ARGV - 6) / 2
for j = 0, n - 1 do
  local h1 = tonumber(ARGV[7 + 2 * j])
  local h2 = tonumber(ARGV[8 + 2 * j])
  local r = 0
  if add then
    for i = 0, k - 1 do
      if redis.call('SETBIT', KEYS[1], (h1 + i * h2) % m, 1) == 0 then r = 1 end
    end
  else
    r = 1
    for i = 0, k - 1 do
      if redis.call('GETBIT', KEYS[1], (h1 + i * h2) % m) == 0 then r = 0; break end
    end
  end
  out[j + 1] = r
end
return out
"#;

/// RedisBloom add/exists: ARGV = op, 'redisbloom', '', then the items.
const MODULE_OPS_LUA: &str = r#"
local cmd = 'BF.EXISTS'
if add then cmd = 'BF.ADD' end
for j = 4, #ARGV do
  out[j - 3] = redis.call(cmd, KEYS[1], ARGV[j])
end
return out
"#;

/// The Bloom half of the Redis cache backend.
pub(crate) struct RedisBlooms {
    conn: SharedConn,
    namespace: Namespace,
    imp: OnceCell<BloomImpl>,
    reserve: Script,
    bitmap_ops: Script,
    module_ops: Script,
    shapes: ShapeCache,
}

/// `<ns>:bloom:{<name>}`: a Bloom filter's data (bitmap or RedisBloom).
/// Its meta hash shares the hash tag `{<name>}`: the reserve script writes
/// both and every operation checks both, so in a Redis Cluster they live
/// in one slot.
pub fn bloom_key(ns: &Namespace, name: &str) -> String {
    ns.key(&format!("bloom:{}", tag(name)))
}

/// `<ns>:bloom:{<name>}:meta`: a Bloom filter's parameters (hash).
pub fn bloom_meta_key(ns: &Namespace, name: &str) -> String {
    format!("{}:meta", bloom_key(ns, name))
}

impl RedisBlooms {
    pub(crate) fn new(conn: SharedConn, namespace: Namespace) -> Self {
        Self {
            conn,
            namespace,
            imp: OnceCell::new(),
            reserve: Script::new(RESERVE_LUA),
            bitmap_ops: Script::new(&format!("{CHECK_LUA}{BITMAP_OPS_LUA}")),
            module_ops: Script::new(&format!("{CHECK_LUA}{MODULE_OPS_LUA}")),
            shapes: ShapeCache::default(),
        }
    }

    pub(crate) fn force(&mut self, imp: BloomImpl) {
        self.imp = OnceCell::new_with(Some(imp));
    }

    /// `<ns>:bloom:{<name>}` and `<ns>:bloom:{<name>}:meta`.
    pub(crate) fn keys(&self, name: &str) -> (String, String) {
        (
            bloom_key(&self.namespace, name),
            bloom_meta_key(&self.namespace, name),
        )
    }

    /// Detect once whether the server has the `BF.*` commands.
    pub(crate) async fn implementation(&self) -> Result<BloomImpl, CacheError> {
        self.imp
            .get_or_try_init(|| async {
                // Read-only probe on a key this adapter never writes.
                let probe = self.namespace.key("bloom-probe");
                let reply: redis::RedisResult<i64> = redis::cmd("BF.EXISTS")
                    .arg(&probe)
                    .arg("x")
                    .query_async(&mut self.conn.clone())
                    .await;
                let imp = match reply {
                    Ok(_) => BloomImpl::RedisBloom,
                    Err(e)
                        if e.to_string()
                            .to_ascii_lowercase()
                            .contains("unknown command") =>
                    {
                        BloomImpl::Bitmap
                    }
                    Err(e) => return Err(CacheError::redis("BF.EXISTS (module probe)", probe, e)),
                };
                tracing::debug!(
                    implementation = imp.as_str(),
                    "Bloom filters: implementation detected"
                );
                Ok(imp)
            })
            .await
            .copied()
    }

    fn map_err(
        &self,
        name: &str,
        op: &'static str,
        requested: Option<&BloomParams>,
        e: redis::RedisError,
    ) -> CacheError {
        let (data, meta) = self.keys(name);
        let detail = e.detail().unwrap_or("").to_string();
        match e.code() {
            Some("BLOOMNOTRESERVED") => CacheError::BloomNotReserved {
                name: name.to_string(),
            },
            Some("BLOOMMISMATCH") => CacheError::BloomMismatch {
                name: name.to_string(),
                existing: detail,
                requested: requested.map(BloomParams::describe).unwrap_or_default(),
            },
            Some("BLOOMMETA") => CacheError::Corrupt {
                key: meta,
                reason: detail,
            },
            Some("BLOOMDATA") => CacheError::Corrupt {
                key: data,
                reason: detail,
            },
            Some("BLOOMIMPL") => CacheError::InvalidBloom {
                name: name.to_string(),
                reason: format!(
                    "{detail}; delete and reserve it again, or use RedisCache::with_bloom_impl"
                ),
            },
            _ => CacheError::redis(op, data, e),
        }
    }

    pub(crate) async fn reserve(
        &self,
        name: &str,
        params: BloomParams,
    ) -> Result<bool, CacheError> {
        let imp = self.implementation().await?;
        let (data, meta) = self.keys(name);
        let created: i64 = self
            .reserve
            .key(&data)
            .key(&meta)
            .arg(imp.as_str())
            .arg(params.capacity)
            .arg(params.error_rate.to_string())
            .arg(params.bits)
            .arg(params.hashes)
            .arg(HASH_SCHEME)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.map_err(name, "bloom reserve", Some(&params), e))?;
        if created == 1 {
            tracing::debug!(
                filter = name,
                bits = params.bits,
                hashes = params.hashes,
                "Bloom filter reserved"
            );
        }
        Ok(created == 1)
    }

    pub(crate) async fn add_many(
        &self,
        name: &str,
        items: &[&[u8]],
    ) -> Result<Vec<bool>, CacheError> {
        self.ops(name, "add", items).await
    }

    pub(crate) async fn exists_many(
        &self,
        name: &str,
        items: &[&[u8]],
    ) -> Result<Vec<bool>, CacheError> {
        self.ops(name, "exists", items).await
    }

    async fn ops(
        &self,
        name: &str,
        op: &'static str,
        items: &[&[u8]],
    ) -> Result<Vec<bool>, CacheError> {
        let imp = self.implementation().await?;
        let (data, meta) = self.keys(name);
        if op == "exists"
            && imp == BloomImpl::Bitmap
            && let Some(found) = self.fast_exists(name, &data, &meta, items).await?
        {
            return Ok(found);
        }
        let mut inv = match imp {
            BloomImpl::Bitmap => {
                let mut inv = self.bitmap_ops.prepare_invoke();
                inv.arg(op)
                    .arg("bitmap")
                    .arg("string")
                    .arg(HASH_SCHEME)
                    .arg(MAX_BLOOM_BITS)
                    .arg(MAX_BLOOM_HASHES);
                for item in items {
                    let (h1, h2) = item_hashes(item);
                    inv.arg(h1).arg(h2);
                }
                inv
            }
            BloomImpl::RedisBloom => {
                let mut inv = self.module_ops.prepare_invoke();
                inv.arg(op).arg("redisbloom").arg("");
                for item in items {
                    inv.arg(*item);
                }
                inv
            }
        };
        inv.key(&data).key(&meta);
        let flags: Vec<i64> = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| {
                self.map_err(
                    name,
                    if op == "add" {
                        "bloom add"
                    } else {
                        "bloom exists"
                    },
                    None,
                    e,
                )
            })?;
        if flags.len() != items.len() {
            return Err(CacheError::Corrupt {
                key: data,
                reason: format!(
                    "the script answered {} flags for {} items",
                    flags.len(),
                    items.len()
                ),
            });
        }
        if imp == BloomImpl::Bitmap && self.shapes.get(name).is_none() {
            self.learn_shape(name, &meta).await;
        }
        Ok(flags.into_iter().map(|f| f == 1).collect())
    }

    /// `exists` without Lua, when the filter's shape is known and still
    /// holds; `None`: ask the checking script.
    async fn fast_exists(
        &self,
        name: &str,
        data: &str,
        meta: &str,
        items: &[&[u8]],
    ) -> Result<Option<Vec<bool>>, CacheError> {
        let Some(shape) = self.shapes.get(name) else {
            return Ok(None);
        };
        let pipe = read_pipe(data, meta, shape, items);
        match pipe
            .query_async::<Vec<redis::Value>>(&mut self.conn.clone())
            .await
        {
            Ok(replies) => {
                let found = answers(&replies, shape, items.len());
                if found.is_none() {
                    self.shapes.forget(name);
                }
                Ok(found)
            }
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                Err(CacheError::redis("bloom exists", data.to_string(), e))
            }
            Err(e) => {
                if e.to_string()
                    .to_ascii_lowercase()
                    .contains("unknown command")
                {
                    tracing::debug!("BITFIELD_RO refused ({e}): Bloom reads use the script");
                    self.shapes.give_up();
                }
                self.shapes.forget(name);
                Ok(None)
            }
        }
    }

    /// Remember the shape of a bitmap filter the script just used (one
    /// `HMGET`, once per filter); a failure only leaves the fast path off.
    async fn learn_shape(&self, name: &str, meta: &str) {
        let reply: redis::RedisResult<redis::Value> = redis::cmd("HMGET")
            .arg(meta)
            .arg("impl")
            .arg("bits")
            .arg("hashes")
            .arg("hash")
            .query_async(&mut self.conn.clone())
            .await;
        if let Some(shape) = reply.ok().as_ref().and_then(shape_of) {
            self.shapes.remember(name, shape);
        }
    }

    pub(crate) async fn delete(&self, name: &str) -> Result<bool, CacheError> {
        let (data, meta) = self.keys(name);
        self.shapes.forget(name);
        let n: u64 = redis::cmd("UNLINK")
            .arg(&data)
            .arg(&meta)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| CacheError::redis("UNLINK", data, e))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::hash_tag::key_slot;

    #[test]
    fn a_filter_and_its_meta_hash_share_one_slot() {
        let ns = Namespace::new("clusterops").unwrap();
        assert_eq!(bloom_key(&ns, "seen"), "clusterops:bloom:{seen}");
        assert_eq!(bloom_meta_key(&ns, "seen"), "clusterops:bloom:{seen}:meta");
        for name in ["seen", "a", "emails.v2", "x-y_z"] {
            assert_eq!(
                key_slot(bloom_key(&ns, name).as_bytes()),
                key_slot(bloom_meta_key(&ns, name).as_bytes()),
                "{name}"
            );
        }
    }
}
