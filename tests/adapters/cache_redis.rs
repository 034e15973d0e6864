//! Redis-only cache checks: key layout and TTLs, the bitmap Bloom filter on
//! Redis 7 (no modules), garbage in Bloom keys, two nodes sharing one cache,
//! `from_config`, and a stopped Redis.

use crate::common;

use clusterops::adapters::cache::{
    BloomImpl, Cache, CacheError, RedisCache, bloom_key, bloom_meta_key, from_config,
};
use clusterops::config::{CacheStore, Config, SecretUrl};
use common::{PrivateRedis, TestNs};
use std::time::Duration;

fn secret(url: &str) -> SecretUrl {
    SecretUrl::parse(url, &["redis"]).unwrap()
}

async fn redis_cache(ns: &TestNs, node: &str) -> RedisCache {
    RedisCache::connect(&secret(&ns.url), ns.namespace(), node)
        .await
        .unwrap()
}

fn raw(ns: &TestNs) -> redis::Connection {
    redis::Client::open(ns.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap()
}

#[tokio::test]
async fn redis_entries_live_at_ns_cache_key_with_a_px_ttl() {
    let ns = TestNs::new("cache");
    let cache = redis_cache(&ns, "node-a").await;
    cache
        .set("user:1", b"v", Some(Duration::from_secs(30)))
        .await
        .unwrap();
    cache.set("forever", b"v", None).await.unwrap();
    let key = format!("{}:cache:user:1", ns.name);
    assert_eq!(cache.redis_key("user:1"), key);
    let mut c = raw(&ns);
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut c).unwrap();
    assert!((25_000..=30_000).contains(&ttl), "{ttl}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{}:cache:forever", ns.name))
        .query(&mut c)
        .unwrap();
    assert_eq!(ttl, -1);
    let mut keys = ns.keys();
    keys.sort();
    assert_eq!(keys, vec![format!("{}:cache:forever", ns.name), key]);
}

#[tokio::test]
async fn redis_7_without_modules_uses_the_bitmap_bloom_with_a_meta_hash() {
    let ns = TestNs::new("cache");
    let cache = redis_cache(&ns, "node-a").await;
    assert_eq!(cache.bloom_impl().await.unwrap(), BloomImpl::Bitmap);
    cache.bloom_reserve("seen", 0.01, 1000).await.unwrap();
    let (data, meta) = cache.bloom_keys("seen");
    assert_eq!(data, format!("{}:bloom:{{seen}}", ns.name));
    assert_eq!(meta, format!("{}:bloom:{{seen}}:meta", ns.name));
    assert_eq!(data, bloom_key(&ns.namespace(), "seen"));
    assert_eq!(meta, bloom_meta_key(&ns.namespace(), "seen"));
    let mut c = raw(&ns);
    let fields: std::collections::BTreeMap<String, String> =
        redis::cmd("HGETALL").arg(&meta).query(&mut c).unwrap();
    let expect = [
        ("bits", "9586"),
        ("capacity", "1000"),
        ("error_rate", "0.01"),
        ("hash", "sha256-dh32"),
        ("hashes", "7"),
        ("impl", "bitmap"),
    ];
    let expect: std::collections::BTreeMap<String, String> = expect
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(fields, expect);
    let kind: String = redis::cmd("TYPE").arg(&data).query(&mut c).unwrap();
    assert_eq!(kind, "string");
    let len: u64 = redis::cmd("STRLEN").arg(&data).query(&mut c).unwrap();
    assert_eq!(len, 9586_u64.div_ceil(8));
    cache.bloom_add("seen", b"x").await.unwrap();
    let ones: u64 = redis::cmd("BITCOUNT").arg(&data).query(&mut c).unwrap();
    assert_eq!(ones, 7);
}

#[tokio::test]
async fn garbage_in_bloom_keys_gives_errors_naming_the_key() {
    let ns = TestNs::new("cache");
    let cache = redis_cache(&ns, "node-a").await;
    let (data, meta) = cache.bloom_keys("g");
    let mut c = raw(&ns);

    // The meta key is not a hash.
    let _: () = redis::cmd("SET")
        .arg(&meta)
        .arg("garbage")
        .query(&mut c)
        .unwrap();
    for err in [
        cache.bloom_reserve("g", 0.01, 100).await.unwrap_err(),
        cache.bloom_add("g", b"x").await.unwrap_err(),
        cache.bloom_exists("g", b"x").await.unwrap_err(),
    ] {
        assert!(
            matches!(err, CacheError::Corrupt { ref key, .. } if *key == meta),
            "{err}"
        );
        assert!(err.to_string().contains(&meta), "{err}");
    }

    // A hash with nonsense in it.
    let _: () = redis::cmd("DEL").arg(&meta).query(&mut c).unwrap();
    cache.bloom_reserve("g", 0.01, 100).await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&meta)
        .arg("bits")
        .arg("lots")
        .query(&mut c)
        .unwrap();
    let err = cache.bloom_add("g", b"x").await.unwrap_err();
    assert!(
        err.to_string().contains(&meta) && err.to_string().contains("bits"),
        "{err}"
    );
    let _: () = redis::cmd("HSET")
        .arg(&meta)
        .arg("bits")
        .arg("958")
        .arg("hashes")
        .arg("0")
        .query(&mut c)
        .unwrap();
    let err = cache.bloom_exists("g", b"x").await.unwrap_err();
    assert!(
        err.to_string().contains(&meta) && err.to_string().contains("hashes"),
        "{err}"
    );
    let _: () = redis::cmd("HSET")
        .arg(&meta)
        .arg("impl")
        .arg("???")
        .query(&mut c)
        .unwrap();
    let err = cache.bloom_reserve("g", 0.01, 100).await.unwrap_err();
    assert!(
        matches!(err, CacheError::Corrupt { ref key, .. } if *key == meta),
        "{err}"
    );

    // The data key lost or replaced.
    let _: () = redis::cmd("DEL")
        .arg(&meta)
        .arg(&data)
        .query(&mut c)
        .unwrap();
    cache.bloom_reserve("g", 0.01, 100).await.unwrap();
    let _: () = redis::cmd("DEL").arg(&data).query(&mut c).unwrap();
    let err = cache.bloom_exists("g", b"x").await.unwrap_err();
    assert!(
        matches!(err, CacheError::Corrupt { ref key, .. } if *key == data),
        "{err}"
    );
    let _: () = redis::cmd("RPUSH")
        .arg(&data)
        .arg("x")
        .query(&mut c)
        .unwrap();
    let err = cache.bloom_add("g", b"x").await.unwrap_err();
    assert!(
        matches!(err, CacheError::Corrupt { ref key, .. } if *key == data),
        "{err}"
    );
    let _: () = redis::cmd("DEL").arg(&meta).query(&mut c).unwrap();
    let err = cache.bloom_reserve("g", 0.01, 100).await.unwrap_err();
    assert!(
        matches!(err, CacheError::Corrupt { ref key, .. } if *key == data),
        "{err}"
    );
}

#[tokio::test]
async fn two_nodes_share_entries_and_bloom_filters() {
    let ns = TestNs::new("cache");
    let a = redis_cache(&ns, "node-a").await;
    let b = redis_cache(&ns, "node-b").await;
    a.set("shared", b"from-a", None).await.unwrap();
    assert_eq!(
        b.get("shared").await.unwrap().as_deref(),
        Some(&b"from-a"[..])
    );
    assert!(a.bloom_reserve("ids", 0.01, 100).await.unwrap());
    assert!(!b.bloom_reserve("ids", 0.01, 100).await.unwrap());
    a.bloom_add("ids", b"42").await.unwrap();
    assert!(b.bloom_exists("ids", b"42").await.unwrap());
    assert_eq!(b.delete_prefix("sha").await.unwrap(), 1);
    assert_eq!(a.get("shared").await.unwrap(), None);
}

/// `bloom_exists` of a filter it has seen reads the bits without Lua
/// (one transaction that also reads the meta hash): the same answers as the
/// script, and a filter re-reserved elsewhere with another size, or whose
/// data went missing, is noticed (the script answers, its errors name the
/// key).
#[tokio::test]
async fn bloom_exists_without_lua_notices_a_filter_changed_by_another_node() {
    let ns = TestNs::new("cache");
    let a = redis_cache(&ns, "node-a").await;
    let b = redis_cache(&ns, "node-b").await;
    a.bloom_reserve("f", 0.01, 1000).await.unwrap();
    let added: Vec<String> = (0..300).map(|i| format!("in-{i}")).collect();
    let refs: Vec<&[u8]> = added.iter().map(|s| s.as_bytes()).collect();
    a.bloom_add_many("f", &refs).await.unwrap();
    // The first call goes through the script and learns the shape; the
    // next ones are the transaction. Both find every added item.
    for _ in 0..2 {
        assert!(
            b.bloom_exists_many("f", &refs)
                .await
                .unwrap()
                .iter()
                .all(|x| *x)
        );
    }
    let absent: Vec<String> = (0..300).map(|i| format!("out-{i}")).collect();
    let refs_out: Vec<&[u8]> = absent.iter().map(|s| s.as_bytes()).collect();
    let false_positives = b
        .bloom_exists_many("f", &refs_out)
        .await
        .unwrap()
        .iter()
        .filter(|x| **x)
        .count();
    assert!(false_positives < 15, "{false_positives} of 300");
    // Node a deletes it and reserves it again 100 times larger: b's
    // remembered size is stale, and its answer must still be right.
    a.bloom_delete("f").await.unwrap();
    a.bloom_reserve("f", 0.01, 100_000).await.unwrap();
    a.bloom_add("f", b"new").await.unwrap();
    assert!(b.bloom_exists("f", b"new").await.unwrap());
    assert!(b.bloom_exists("f", b"new").await.unwrap());
    // The data key lost: the error names it, on the first call and after.
    let (data, _) = b.bloom_keys("f");
    let _: () = redis::cmd("DEL").arg(&data).query(&mut raw(&ns)).unwrap();
    for _ in 0..2 {
        let err = b.bloom_exists("f", b"new").await.unwrap_err();
        assert!(
            matches!(err, CacheError::Corrupt { ref key, .. } if *key == data),
            "{err}"
        );
    }
}

#[tokio::test]
async fn from_config_picks_the_configured_store() {
    let ns = TestNs::new("cache");
    let config = Config {
        namespace: ns.namespace(),
        cache: CacheStore::Redis(secret(&ns.url)),
        ..Config::default()
    };
    let cache = from_config(&config, "node-a").await.unwrap();
    assert_eq!(cache.backend(), "redis");
    cache.set("x", b"1", None).await.unwrap();
    assert_eq!(ns.keys(), vec![format!("{}:cache:x", ns.name)]);
    let memory = from_config(&Config::default(), "node-a").await.unwrap();
    assert_eq!(memory.backend(), "memory");
}

#[tokio::test]
async fn a_stopped_redis_gives_errors_not_panics() {
    let mut server = PrivateRedis::start();
    let ns = TestNs::on("cache", &server.url());
    let cache = redis_cache(&ns, "node-a").await;
    cache.set("k", b"v", None).await.unwrap();
    server.kill();
    let outcome = tokio::time::timeout(Duration::from_secs(10), cache.get("k")).await;
    let err = outcome.expect("answers within 10 s").unwrap_err();
    assert!(matches!(err, CacheError::Redis { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("{}:cache:k", ns.name)),
        "{err}"
    );
}
