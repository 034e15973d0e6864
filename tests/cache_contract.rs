//! The cache contract, run against both backends (memory and Redis), plus
//! the Redis-only checks: key layout, the bitmap Bloom filter on Redis 7,
//! garbage in Bloom keys, two nodes sharing one cache.

mod common;

use clusterops::adapters::cache::{
    BloomImpl, Cache, CacheError, CacheJsonExt, MemoryCache, RedisCache, compute, from_config,
};
use clusterops::config::{CacheStore, Config, SecretUrl};
use common::{PrivateRedis, TestNs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn secret(url: &str) -> SecretUrl {
    SecretUrl::parse(url, &["redis"]).unwrap()
}

async fn new_memory(_ns: &TestNs) -> Arc<dyn Cache> {
    Arc::new(MemoryCache::new("node-a"))
}

async fn new_redis(ns: &TestNs) -> Arc<dyn Cache> {
    Arc::new(
        RedisCache::connect(&secret(&ns.url), ns.namespace(), "node-a")
            .await
            .unwrap(),
    )
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

/// Runs every listed contract test once per backend, each in its own `TestNs`.
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod memory_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let ns = crate::TestNs::new("cache");
                    super::$test(crate::new_memory(&ns).await).await;
                }
            )*
        }
        mod redis_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let ns = crate::TestNs::new("cache");
                    super::$test(crate::new_redis(&ns).await).await;
                }
            )*
        }
    };
}

contract!(
    set_then_get_returns_the_value_and_absent_keys_are_none,
    entries_expire_after_their_ttl_and_a_plain_set_clears_the_ttl,
    delete_removes_one_key_and_says_whether_it_existed,
    delete_prefix_removes_only_keys_with_that_literal_prefix,
    delete_prefix_walks_more_keys_than_one_scan_batch,
    clear_empties_the_cache_but_keeps_the_bloom_filters,
    fifty_concurrent_callers_of_get_or_compute_compute_once,
    a_failed_compute_reaches_every_waiter_and_is_not_cached,
    get_or_compute_stores_with_the_ttl,
    json_helpers_round_trip_and_name_the_key_of_undecodable_values,
    bloom_has_no_false_negatives_and_about_the_configured_false_positive_rate,
    bloom_reserve_is_idempotent_and_refuses_other_parameters,
    bloom_calls_on_an_unreserved_filter_are_errors,
    invalid_keys_ttls_and_bloom_names_are_refused,
);

async fn set_then_get_returns_the_value_and_absent_keys_are_none(cache: Arc<dyn Cache>) {
    assert_eq!(cache.get("missing").await.unwrap(), None);
    cache.set("k", b"v1", None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    cache.set("k", b"v2", None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    let binary = [0u8, 255, 10, 13, 0];
    cache.set("bin", &binary, None).await.unwrap();
    assert_eq!(
        cache.get("bin").await.unwrap().as_deref(),
        Some(&binary[..])
    );
    cache.set("empty", b"", None).await.unwrap();
    assert_eq!(cache.get("empty").await.unwrap(), Some(Vec::new()));
    cache.set("glob*?[x]\\", b"g", None).await.unwrap();
    assert_eq!(
        cache.get("glob*?[x]\\").await.unwrap().as_deref(),
        Some(&b"g"[..])
    );
}

async fn entries_expire_after_their_ttl_and_a_plain_set_clears_the_ttl(cache: Arc<dyn Cache>) {
    let short = Some(Duration::from_millis(150));
    cache.set("short", b"1", short).await.unwrap();
    cache.set("kept", b"2", short).await.unwrap();
    cache.set("kept", b"3", None).await.unwrap();
    cache
        .set("long", b"4", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        cache.get("short").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.get("short").await.unwrap(), None);
    assert!(
        !cache.delete("short").await.unwrap(),
        "an expired key does not count as deleted"
    );
    assert_eq!(cache.get("kept").await.unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(cache.get("long").await.unwrap().as_deref(), Some(&b"4"[..]));
}

async fn delete_removes_one_key_and_says_whether_it_existed(cache: Arc<dyn Cache>) {
    cache.set("a", b"1", None).await.unwrap();
    cache.set("ab", b"2", None).await.unwrap();
    assert!(cache.delete("a").await.unwrap());
    assert!(!cache.delete("a").await.unwrap());
    assert_eq!(cache.get("a").await.unwrap(), None);
    assert_eq!(cache.get("ab").await.unwrap().as_deref(), Some(&b"2"[..]));
}

async fn delete_prefix_removes_only_keys_with_that_literal_prefix(cache: Arc<dyn Cache>) {
    let keys = [
        "user:1",
        "user:2",
        "user:10:x",
        "users",
        "usr:1", // plain
        "a*b:1",
        "a*b",
        "axb:1",
        "a:1", // '*'
        "[ab]:1",
        "b:1", // '[...]'
        "q?:1",
        "qq:1", // '?'
        "back\\s",
        "backs",
        "back*", // '\'
    ];
    for k in keys {
        cache.set(k, b"x", None).await.unwrap();
    }
    assert_eq!(cache.delete_prefix("user:").await.unwrap(), 3);
    assert_eq!(cache.delete_prefix("a*").await.unwrap(), 2);
    assert_eq!(cache.delete_prefix("[ab]").await.unwrap(), 1);
    assert_eq!(cache.delete_prefix("q?").await.unwrap(), 1);
    assert_eq!(cache.delete_prefix("back\\").await.unwrap(), 1);
    assert_eq!(cache.delete_prefix("nothing-here").await.unwrap(), 0);
    for gone in [
        "user:1",
        "user:2",
        "user:10:x",
        "a*b:1",
        "a*b",
        "[ab]:1",
        "q?:1",
        "back\\s",
    ] {
        assert_eq!(
            cache.get(gone).await.unwrap(),
            None,
            "{gone} should be deleted"
        );
    }
    for kept in [
        "users", "usr:1", "axb:1", "a:1", "b:1", "qq:1", "backs", "back*",
    ] {
        assert!(
            cache.get(kept).await.unwrap().is_some(),
            "{kept} should survive"
        );
    }
}

async fn delete_prefix_walks_more_keys_than_one_scan_batch(cache: Arc<dyn Cache>) {
    let writes = (0..1200).map(|i| {
        let cache = cache.clone();
        async move { cache.set(&format!("bulk:{i}"), b"x", None).await }
    });
    for r in futures::future::join_all(writes).await {
        r.unwrap();
    }
    cache.set("bulky", b"x", None).await.unwrap();
    assert_eq!(cache.delete_prefix("bulk:").await.unwrap(), 1200);
    assert_eq!(cache.get("bulk:7").await.unwrap(), None);
    assert!(cache.get("bulky").await.unwrap().is_some());
}

async fn clear_empties_the_cache_but_keeps_the_bloom_filters(cache: Arc<dyn Cache>) {
    cache.set("a", b"1", None).await.unwrap();
    cache
        .set("b:c", b"2", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    cache.bloom_reserve("kept", 0.01, 100).await.unwrap();
    cache.bloom_add("kept", b"item").await.unwrap();
    assert_eq!(cache.clear().await.unwrap(), 2);
    assert_eq!(cache.get("a").await.unwrap(), None);
    assert!(cache.bloom_exists("kept", b"item").await.unwrap());
}

async fn fifty_concurrent_callers_of_get_or_compute_compute_once(cache: Arc<dyn Cache>) {
    let computed = Arc::new(AtomicUsize::new(0));
    let callers = (0..50).map(|_| {
        let cache = cache.clone();
        let computed = computed.clone();
        tokio::spawn(async move {
            let f = compute(move || async move {
                computed.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, std::io::Error>(b"expensive".to_vec())
            });
            cache.get_or_compute("hot", None, f).await
        })
    });
    for r in futures::future::join_all(callers).await {
        assert_eq!(r.unwrap().unwrap(), b"expensive");
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1);
    assert_eq!(
        cache.get("hot").await.unwrap().as_deref(),
        Some(&b"expensive"[..])
    );
    let again = cache
        .get_or_compute(
            "hot",
            None,
            compute(|| async { Ok::<_, std::io::Error>(b"other".to_vec()) }),
        )
        .await
        .unwrap();
    assert_eq!(again, b"expensive", "a cached value is not recomputed");
}

async fn a_failed_compute_reaches_every_waiter_and_is_not_cached(cache: Arc<dyn Cache>) {
    let computed = Arc::new(AtomicUsize::new(0));
    let callers = (0..50).map(|_| {
        let cache = cache.clone();
        let computed = computed.clone();
        tokio::spawn(async move {
            let f = compute(move || async move {
                computed.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err::<Vec<u8>, _>(std::io::Error::other("backend down"))
            });
            cache.get_or_compute("fragile", None, f).await
        })
    });
    for r in futures::future::join_all(callers).await {
        let err = r.unwrap().unwrap_err();
        assert!(
            matches!(err, CacheError::Compute { ref key, .. } if key == "fragile"),
            "{err}"
        );
        assert!(err.to_string().contains("backend down"), "{err}");
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get("fragile").await.unwrap(), None);
    let ok = cache
        .get_or_compute(
            "fragile",
            None,
            compute(|| async { Ok::<_, std::io::Error>(b"fine".to_vec()) }),
        )
        .await
        .unwrap();
    assert_eq!(ok, b"fine");
}

async fn get_or_compute_stores_with_the_ttl(cache: Arc<dyn Cache>) {
    let ttl = Some(Duration::from_millis(150));
    let first = cache
        .get_or_compute(
            "t",
            ttl,
            compute(|| async { Ok::<_, std::io::Error>(b"1".to_vec()) }),
        )
        .await
        .unwrap();
    assert_eq!(first, b"1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = cache
        .get_or_compute(
            "t",
            ttl,
            compute(|| async { Ok::<_, std::io::Error>(b"2".to_vec()) }),
        )
        .await
        .unwrap();
    assert_eq!(second, b"2", "the expired value is computed again");
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Profile {
    id: u64,
    name: String,
}

async fn json_helpers_round_trip_and_name_the_key_of_undecodable_values(cache: Arc<dyn Cache>) {
    let p = Profile {
        id: 7,
        name: "Ada".into(),
    };
    cache.set_json("profile:7", &p, None).await.unwrap();
    assert_eq!(
        cache.get_json::<Profile>("profile:7").await.unwrap(),
        Some(p)
    );
    assert_eq!(cache.get_json::<Profile>("profile:8").await.unwrap(), None);

    let computed: Profile = cache
        .get_or_compute_json("profile:9", None, || async {
            Ok::<_, std::io::Error>(Profile {
                id: 9,
                name: "Grace".into(),
            })
        })
        .await
        .unwrap();
    assert_eq!(computed.name, "Grace");
    assert_eq!(
        cache
            .get_json::<Profile>("profile:9")
            .await
            .unwrap()
            .map(|p| p.id),
        Some(9)
    );

    cache.set("profile:bad", b"not json", None).await.unwrap();
    let err = cache.get_json::<Profile>("profile:bad").await.unwrap_err();
    assert!(matches!(err, CacheError::Json { .. }), "{err}");
    assert!(err.to_string().contains("profile:bad"), "{err}");
}

async fn bloom_has_no_false_negatives_and_about_the_configured_false_positive_rate(
    cache: Arc<dyn Cache>,
) {
    assert!(cache.bloom_reserve("seen", 0.01, 1000).await.unwrap());
    let members: Vec<String> = (0..1000).map(|i| format!("member-{i}")).collect();
    let member_refs: Vec<&[u8]> = members.iter().map(|s| s.as_bytes()).collect();
    let added = cache.bloom_add_many("seen", &member_refs).await.unwrap();
    assert_eq!(added.len(), 1000);
    assert!(
        added.iter().filter(|a| **a).count() > 950,
        "almost every item is new"
    );
    assert!(
        !cache.bloom_add("seen", b"member-3").await.unwrap(),
        "re-adding is not new"
    );

    let found = cache.bloom_exists_many("seen", &member_refs).await.unwrap();
    assert!(found.iter().all(|f| *f), "no false negatives");
    assert!(cache.bloom_exists("seen", b"member-999").await.unwrap());

    let others: Vec<String> = (0..10_000).map(|i| format!("stranger-{i}")).collect();
    let other_refs: Vec<&[u8]> = others.iter().map(|s| s.as_bytes()).collect();
    let fp = cache.bloom_exists_many("seen", &other_refs).await.unwrap();
    let rate = fp.iter().filter(|f| **f).count() as f64 / fp.len() as f64;
    eprintln!("bloom false-positive rate at capacity, configured 0.01: {rate}");
    assert!((0.003..0.025).contains(&rate), "false-positive rate {rate}");

    assert!(cache.bloom_delete("seen").await.unwrap());
    assert!(!cache.bloom_delete("seen").await.unwrap());
    assert!(matches!(
        cache.bloom_exists("seen", b"member-1").await,
        Err(CacheError::BloomNotReserved { .. })
    ));
}

async fn bloom_reserve_is_idempotent_and_refuses_other_parameters(cache: Arc<dyn Cache>) {
    assert!(cache.bloom_reserve("f", 0.01, 500).await.unwrap());
    cache.bloom_add("f", b"x").await.unwrap();
    assert!(!cache.bloom_reserve("f", 0.01, 500).await.unwrap());
    assert!(
        cache.bloom_exists("f", b"x").await.unwrap(),
        "re-reserving keeps the items"
    );
    let err = cache.bloom_reserve("f", 0.001, 500).await.unwrap_err();
    assert!(matches!(err, CacheError::BloomMismatch { .. }), "{err}");
    assert!(err.to_string().contains("error_rate=0.01"), "{err}");
    let err = cache.bloom_reserve("f", 0.01, 501).await.unwrap_err();
    assert!(matches!(err, CacheError::BloomMismatch { .. }), "{err}");
}

async fn bloom_calls_on_an_unreserved_filter_are_errors(cache: Arc<dyn Cache>) {
    for err in [
        cache.bloom_add("nope", b"x").await.unwrap_err(),
        cache.bloom_exists("nope", b"x").await.unwrap_err(),
        cache.bloom_add_many("nope", &[]).await.unwrap_err(),
    ] {
        assert!(
            matches!(err, CacheError::BloomNotReserved { ref name } if name == "nope"),
            "{err}"
        );
    }
}

async fn invalid_keys_ttls_and_bloom_names_are_refused(cache: Arc<dyn Cache>) {
    assert!(matches!(
        cache.get("").await,
        Err(CacheError::InvalidKey { .. })
    ));
    assert!(matches!(
        cache.set("a\nb", b"", None).await,
        Err(CacheError::InvalidKey { .. })
    ));
    assert!(matches!(
        cache.delete_prefix("").await,
        Err(CacheError::InvalidKey { .. })
    ));
    assert!(matches!(
        cache.set("k", b"v", Some(Duration::ZERO)).await,
        Err(CacheError::InvalidTtl(_))
    ));
    assert_eq!(cache.get("k").await.unwrap(), None);
    assert!(matches!(
        cache.bloom_reserve("a:b", 0.01, 10).await,
        Err(CacheError::InvalidBloom { .. })
    ));
    assert!(matches!(
        cache.bloom_reserve("ok", 1.5, 10).await,
        Err(CacheError::InvalidBloom { .. })
    ));
}

// ---- Redis only ----

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
    assert_eq!(data, format!("{}:bloom:seen", ns.name));
    assert_eq!(meta, format!("{}:bloom:seen:meta", ns.name));
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
