//! `status` and `check` on a Redis Cluster, against three real masters
//! started by the test (tests/common/cluster.rs): every master read on its
//! own, per-shard figures (role, slots, replicas, memory, keys) in `status
//! --json` and the human output, the keys of every shard adding up to what
//! was written, the cluster checks passing on a healthy replicated cluster,
//! warning about masters without a replica, and failing once a master of a
//! cluster without replicas is killed; never a password in any output.

use crate::common;

use clusterops::adapters::redis_conn::{self, SharedConn};
use clusterops::adapters::worker_id;
use clusterops::clock::now_ms;
use clusterops::config::{Config, Namespace, parse_redis_url};
use clusterops::inspect::{CheckResult, CheckStatus, Inspector, Snapshot, Source, checks};
use clusterops::node::registry::{NodeRecord, Registry};
use common::cluster::RedisCluster;
use common::status_cli;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const PASSWORD: &str = "cluster-pw-4417";
/// Keys of another application written beside the cluster's own.
const OTHER_KEYS: usize = 60;

async fn connect(url: &str) -> SharedConn {
    redis_conn::connect(&parse_redis_url(url).expect("a valid URL"))
        .await
        .expect("connect to the cluster")
}

/// Write, through the cluster connection, [`OTHER_KEYS`] keys of another
/// application, two worker-ID leases and one registered node (record and
/// index) of namespace `ns`, one key at a time. Returns the keys written.
async fn seed(conn: &mut SharedConn, ns: &Namespace) -> usize {
    for i in 0..OTHER_KEYS {
        let _: () = redis::cmd("SET")
            .arg(format!("other:k{i}"))
            .arg(i)
            .query_async(conn)
            .await
            .expect("SET");
    }
    let now = now_ms();
    for id in [3u8, 17] {
        let lease = format!(
            r#"{{"node":"node-{id}","pid":1,"host":"t","acquired_at_ms":{now},"token":"t{id}"}}"#
        );
        let _: () = redis::cmd("SET")
            .arg(worker_id::lease_key(ns, id))
            .arg(lease)
            .arg("PX")
            .arg(600_000)
            .query_async(conn)
            .await
            .expect("SET lease");
    }
    let registry = Registry::new(ns.clone(), Duration::from_secs(600));
    let record = NodeRecord {
        node_id: "node-3".into(),
        host: "t".into(),
        http_addr: "127.0.0.1:9".into(),
        pid: 1,
        app_version: "1".into(),
        schema_version: None,
        worker_id: Some(3),
        state: "running".into(),
        state_reason: "ready".into(),
        started_at_ms: now,
        heartbeat_at_ms: now,
        config_fingerprint: "f".into(),
        config_parts: Default::default(),
        storage_shared: None,
        storage_reason: None,
        clock_offset: None,
        worker_mode: Default::default(),
        process: None,
    };
    let _: () = redis::cmd("SET")
        .arg(registry.record_key("node-3"))
        .arg(serde_json::to_string(&record).expect("record JSON"))
        .arg("PX")
        .arg(600_000)
        .query_async(conn)
        .await
        .expect("SET record");
    let _: () = redis::cmd("ZADD")
        .arg(registry.index_key())
        .arg(now)
        .arg("node-3")
        .query_async(conn)
        .await
        .expect("ZADD index");
    OTHER_KEYS + 2 + 2
}

/// Run the binary: exit code and stdout. Panics when the password shows.
fn clusterops(args: &[&str], env: &Path) -> (i32, String) {
    status_cli::run(args, env, &[PASSWORD])
}

/// The one server's `cluster` in `status --json`, once `ok` holds for it.
fn cluster_when(env: &Path, what: &str, ok: impl Fn(&Value) -> bool) -> (Value, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out) = clusterops(&["status", "--json"], env);
        assert_eq!(code, 0, "status --json: {out}");
        let snap: Value = serde_json::from_str(&out).expect("status JSON");
        let servers = snap["servers"].as_array().expect("servers");
        assert_eq!(servers.len(), 1, "{out}");
        let cluster = servers[0]["cluster"].clone();
        if ok(&cluster) {
            return (snap, cluster);
        }
        assert!(Instant::now() < deadline, "{what}: {cluster:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn result<'r>(results: &'r [CheckResult], id: &str) -> &'r CheckResult {
    results
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no check {id}: {results:?}"))
}

fn shards_of(snap: &Snapshot) -> &[clusterops::inspect::ShardView] {
    &snap.servers[0]
        .cluster
        .as_ref()
        .expect("a cluster view")
        .shards
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicated_cluster_shows_its_shards_and_passes_its_checks() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start_with(1, Some(PASSWORD)));
    let name = format!("t-cl-{:06x}", rand::random::<u32>() % 0xff_ffff);
    let ns = Namespace::new(&name).expect("namespace");
    let written = seed(&mut connect(&cluster.url(1)).await, &ns).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let env = status_cli::env_file(dir.path(), "cluster.env", &name, &cluster.url(0));

    // Each master with its replica up (a new replica may still be syncing).
    let all_up = |c: &Value| {
        c["shards"].as_array().is_some_and(|s| {
            s.len() == 3
                && s.iter().all(|s| {
                    s["replicas"]
                        .as_array()
                        .is_some_and(|r| r.len() == 1 && r.iter().all(|r| r["link"] == "up"))
                })
        })
    };
    let (snap, c) = tokio::task::block_in_place(|| cluster_when(&env, "replicas up", all_up));
    assert_eq!(c["state"], "ok", "{c:#}");
    assert_eq!(
        (
            &c["slots_covered"],
            &c["slots_ok"],
            &c["known_nodes"],
            &c["size"]
        ),
        (
            &Value::from(16384),
            &Value::from(16384),
            &Value::from(6),
            &Value::from(3)
        ),
        "{c:#}"
    );
    let shards = c["shards"].as_array().expect("shards");
    let masters: Vec<String> = cluster
        .masters()
        .iter()
        .map(|&i| format!("127.0.0.1:{}", cluster.nodes[i].port))
        .collect();
    let mut keys = 0;
    let mut slots = 0;
    for s in shards {
        assert_eq!(s["role"], "master", "{s:#}");
        assert!(masters.contains(&s["master"].as_str().unwrap_or("").to_string()));
        assert!(s["error"].is_null(), "{s:#}");
        assert!(s["used_memory"].as_u64().is_some_and(|m| m > 0), "{s:#}");
        let n = s["keys"].as_u64().expect("keys per shard");
        assert!(n > 0, "every master holds some of the keys: {s:#}");
        keys += n;
        slots += s["slot_count"].as_u64().expect("slot count");
        // The fixture's nodes keep nothing on disk; each master says so.
        assert_eq!(s["persistence"]["keeps_data"], false, "{s:#}");
        assert_eq!(s["persistence"]["rdb_save"], "", "{s:#}");
    }
    assert_eq!(keys as usize, written, "{c:#}");
    assert_eq!(slots, 16384);
    let held = snap["leases"]["data"]
        .as_array()
        .expect("leases read")
        .iter()
        .filter(|l| !l["holder"].is_null())
        .count();
    assert_eq!(held, 2, "{:#}", snap["leases"]);
    assert_eq!(snap["nodes"]["data"][0]["node_id"], "node-3");

    let (_, text) = tokio::task::block_in_place(|| clusterops(&["status"], &env));
    assert!(
        text.contains(
            "cluster ok: 16384/16384 slots ok, 3 masters, 6 known nodes, 3 with a replica up"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("shard {} master slots ", masters[0])),
        "{text}"
    );

    let config = Config::all_redis(&cluster.url(0), &name).expect("config");
    let inspector = Inspector::new(config.clone());
    let first = inspector.snapshot().await;
    let results = checks::run(&config, &first);
    for id in ["redis-cluster-state", "redis-cluster-replicas"] {
        let r = result(&results, id);
        assert_eq!(r.status, CheckStatus::Pass, "{r:?}");
    }
    assert!(
        result(&results, "redis-cluster-state")
            .reason
            .contains("cluster_state ok, 16384/16384 slots ok on 3 masters"),
        "{results:?}"
    );
    // Every master keeps nothing across a restart: the warning names them.
    let persistence = result(&results, "redis-persistence");
    assert_eq!(persistence.status, CheckStatus::Warn, "{persistence:?}");
    for m in &masters {
        assert!(persistence.reason.contains(m.as_str()), "{persistence:?}");
    }
    // Steady state: CLUSTER SLOTS, one request per master (the leases with
    // the master of their slot), the registry.
    let next = inspector.snapshot().await;
    assert_eq!(next.round_trips, 5, "{:?}", inspector.last_requests());
    assert_eq!(shards_of(&next).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_replicas_warns_and_fails_once_a_master_dies() {
    let mut cluster = tokio::task::block_in_place(|| RedisCluster::start(0));
    let name = format!("t-cl-{:06x}", rand::random::<u32>() % 0xff_ffff);
    let ns = Namespace::new(&name).expect("namespace");
    seed(&mut connect(&cluster.url(0)).await, &ns).await;
    let config = Config::all_redis(&cluster.url(0), &name).expect("config");
    let inspector = Inspector::new(config.clone());

    let snap = inspector.snapshot().await;
    let results = checks::run(&config, &snap);
    assert_eq!(
        result(&results, "redis-cluster-state").status,
        CheckStatus::Pass,
        "{results:?}"
    );
    let replicas = result(&results, "redis-cluster-replicas");
    assert_eq!(replicas.status, CheckStatus::Warn, "{replicas:?}");
    for s in shards_of(&snap) {
        assert!(
            replicas.reason.contains(&format!(
                "master {} (slots {}) has no replica",
                s.master,
                s.slot_ranges()
            )),
            "{}",
            replicas.reason
        );
    }
    assert!(
        replicas.reason.contains("--cluster-slave"),
        "{}",
        replicas.reason
    );

    // Kill the master that serves node-3's lease; its slots lose their master.
    let victim = cluster.master_of(&worker_id::lease_key(&ns, 3));
    let address = format!("127.0.0.1:{}", cluster.nodes[victim].port);
    cluster.kill(victim);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (snap, state) = loop {
        let started = Instant::now();
        let snap = inspector.snapshot().await;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "a snapshot with a dead master took {:?}",
            started.elapsed()
        );
        let results = checks::run(&config, &snap);
        let state = result(&results, "redis-cluster-state").clone();
        if state.reason.contains("cluster_state is fail") || Instant::now() > deadline {
            break (snap, state);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(state.status, CheckStatus::Fail, "{state:?}");
    for part in [
        format!("master {address} does not answer"),
        "cluster_state is fail".to_string(),
        "CLUSTER FAILOVER".to_string(),
    ] {
        assert!(state.reason.contains(&part), "{part}: {}", state.reason);
    }
    // The other masters are still read; what the dead one holds is not.
    let dead = shards_of(&snap)
        .iter()
        .find(|s| s.master == address)
        .expect("the dead master keeps its shard");
    assert!(dead.error.is_some() && dead.keys.is_none(), "{dead:?}");
    assert_eq!(
        shards_of(&snap)
            .iter()
            .filter(|s| s.error.is_none())
            .count(),
        2,
        "{:?}",
        shards_of(&snap)
    );
    match &snap.locks {
        Source::Unavailable { reason, .. } => assert!(reason.contains(&address), "{reason}"),
        other => panic!("locks read without one master: {other:?}"),
    }
    assert!(
        matches!(snap.leases, Source::Unavailable { .. }),
        "{:?}",
        snap.leases
    );
    assert_eq!(checks::exit_code(&checks::run(&config, &snap)), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_failover_shows_the_promoted_replica_as_its_master() {
    let mut cluster = tokio::task::block_in_place(|| RedisCluster::start(1));
    let name = format!("t-cl-{:06x}", rand::random::<u32>() % 0xff_ffff);
    let ns = Namespace::new(&name).expect("namespace");
    seed(&mut connect(&cluster.url(0)).await, &ns).await;
    let victim = cluster.master_of(&worker_id::lease_key(&ns, 17));
    // The URL names another node than the victim.
    let named = (victim + 1) % cluster.nodes.len();
    let config = Config::all_redis(&cluster.url(named), &name).expect("config");
    let inspector = Inspector::new(config.clone());
    let old = format!("127.0.0.1:{}", cluster.nodes[victim].port);
    // A replica still syncing cannot be promoted: wait for its link.
    let deadline = Instant::now() + Duration::from_secs(20);
    let shard = loop {
        let before = inspector.snapshot().await;
        let shard = shards_of(&before)
            .iter()
            .find(|s| s.master == old)
            .expect("the victim's shard")
            .clone();
        if shard.replicas_up() == 1 {
            break shard;
        }
        assert!(Instant::now() < deadline, "{shard:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let replica = shard.replicas[0].address.clone();
    cluster.kill(victim);

    // The replica takes over the same slots; the state is ok again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let snap = loop {
        let snap = inspector.snapshot().await;
        let promoted = shards_of(&snap)
            .iter()
            .any(|s| s.master == replica && s.slots == shard.slots && s.error.is_none());
        let ok = snap.servers[0]
            .cluster
            .as_ref()
            .is_some_and(|c| c.state.as_deref() == Some("ok"));
        if promoted && ok && snap.leases.ok().is_some() && snap.nodes.ok().is_some() {
            break snap;
        }
        assert!(
            Instant::now() < deadline,
            "no failover of {old} to {replica}: {:?} {:?} {:#?}",
            snap.leases,
            snap.nodes,
            snap.servers[0].cluster
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(shards_of(&snap).iter().all(|s| s.master != old));
    let results = checks::run(&config, &snap);
    let state = result(&results, "redis-cluster-state");
    assert_eq!(state.status, CheckStatus::Pass, "{state:?}");
    let replicas = result(&results, "redis-cluster-replicas");
    assert_eq!(replicas.status, CheckStatus::Warn, "{replicas:?}");
    assert!(
        replicas
            .reason
            .contains(&format!("master {replica} (slots ")),
        "{}",
        replicas.reason
    );
    let leases = snap.leases.ok().expect("leases read after the failover");
    assert!(leases[17].holder.is_some(), "{:?}", leases[17]);
}
