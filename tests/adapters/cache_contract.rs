//! The cache contract: one suite run against both backends (memory and
//! Redis), each test in its own namespace. Redis-only checks are in
//! `cache_redis.rs`.

use crate::common;

use clusterops::adapters::cache::{
    Cache, CacheError, CacheJsonExt, MemoryCache, RedisCache, compute,
};
use clusterops::config::SecretUrl;
use common::TestNs;
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

/// Runs every listed contract test once per backend, each in its own `TestNs`.
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod memory_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let ns = crate::cache_contract::TestNs::new("cache");
                    super::$test(crate::cache_contract::new_memory(&ns).await).await;
                }
            )*
        }
        mod redis_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let ns = crate::cache_contract::TestNs::new("cache");
                    super::$test(crate::cache_contract::new_redis(&ns).await).await;
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
    a_cancelled_computation_hands_over_to_a_waiting_caller,
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

async fn a_cancelled_computation_hands_over_to_a_waiting_caller(cache: Arc<dyn Cache>) {
    let c = cache.clone();
    let leader = tokio::spawn(async move {
        let slow = compute(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, std::io::Error>(b"slow".to_vec())
        });
        c.get_or_compute("handover", None, slow).await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let c = cache.clone();
    let follower = tokio::spawn(async move {
        let fast = compute(|| async { Ok::<_, std::io::Error>(b"fast".to_vec()) });
        c.get_or_compute("handover", None, fast).await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !follower.is_finished(),
        "the second caller waits for the first"
    );
    leader.abort();
    let value = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("the waiter takes over within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(value, b"fast");
    assert_eq!(
        cache.get("handover").await.unwrap().as_deref(),
        Some(&b"fast"[..])
    );
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
