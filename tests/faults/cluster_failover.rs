//! Snowflake IDs, the Redis queue and fenced locks across Redis Cluster
//! failovers: three masters with one replica each (node timeout 1 s), and
//! the loads of the Sentinel scenario pointed at the cluster, each naming
//! another node in its URL:
//!
//! - three issuer processes (`failover_issuer.rs`) issuing snowflake IDs
//!   under 1.5 s worker-ID leases, every one recorded, taking a new
//!   connection and worker ID every 2 to 5 s (filler leases leave them
//!   four IDs); one of them names the node that is killed first;
//! - the queue load (`failover_queue.rs`): a producer publishing every 5 ms
//!   and a consumer, through the Redis queue adapter;
//! - two processes of lock clients (`cluster_locks.rs`) writing to a
//!   PostgreSQL row that refuses a fencing token not above the last one;
//!   the lock's key is on the master killed first.
//!
//! Each round freezes a lock client with the lock's token in hand, kills -9
//! a master (first the one holding the worker-ID keys' slot, then the one
//! holding the queue's stream), waits until the cluster has promoted its
//! replica, starts the killed node again (it rejoins as the new master's
//! replica: until then the promoted master has no replica to confirm
//! lease writes and queue publishes), waits until every issuer issues
//! again, and resumes the frozen client, whose write is now stale. After
//! the first round the worker-ID epoch record must name the promoted
//! master (the quarantine of docs/snowflake.md).
//!
//! No ID may be issued twice, no acknowledged message may be lost, tokens
//! written after a promotion must be above every token handed out before
//! the kill, and every stale write must be refused.

use crate::cluster_locks::{FaultTimes, LockLoad};
use crate::common::cluster::{RedisCluster, cli};
use crate::failover::RECOVERY_LIMIT;
use crate::failover_issuer::{self as issuer, Issuers, TTL_MS, unix_ms};
use crate::failover_queue::{self, QueueLoad};
use crate::harness::{Budget, Report, Scenario};
use crate::procs;
use clusterops::adapters::lock::lock_key;
use clusterops::adapters::worker_id::{epoch_key, lease_key};
use clusterops::config::Namespace;
use std::time::{Duration, Instant};

/// The scenario, as registered in `SCENARIOS`.
pub const SCENARIO: Scenario = Scenario {
    name: "cluster_failover",
    run,
};

/// Issuer processes.
const ISSUERS: usize = 3;
/// Kills in the default run: the worker-ID keys' master, then the queue
/// stream's master.
const KILLS: usize = 2;
/// Kills per soak round (alternating).
const SOAK_KILLS: usize = 6;
/// The default run skips the second kill when the first round ended after
/// this (a slow machine), to stay near a minute.
const SECOND_KILL_BEFORE: Duration = Duration::from_secs(40);
/// The cluster must have promoted a replica within this time after a kill.
const PROMOTION_LIMIT: Duration = Duration::from_secs(20);

pub fn run(budget: &Budget, report: &mut Report) -> Result<(), String> {
    procs::no_panic(|| scenario(budget, report))
}

/// What one kill targets.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    WorkerIds,
    Queue,
}

fn scenario(budget: &Budget, report: &mut Report) -> Result<(), String> {
    let started = Instant::now();
    let mut cluster = RedisCluster::start(1);
    let (ns, lease, stream) = namespace(&cluster)?;
    let worker_master = cluster.master_of(&lease);
    let lock = lock_on(&cluster, &ns, worker_master)?;
    let port = cluster.nodes[worker_master].port;
    issuer::occupy_ids(ns.name(), |args| cli(port, args))?;

    // Every load names another node; issuer 0 names the first victim.
    let count = cluster.nodes.len();
    let node_url = |k: usize| cluster.url((worker_master + k) % count);
    let urls: Vec<String> = (0..ISSUERS).map(|i| node_url(2 * i)).collect();
    let mut issuers = Issuers::spawn(&urls, ns.name())?;
    // The first acquisitions on a fresh namespace wait out the quarantine.
    issuers.wait_all_issuing(Duration::from_secs(20))?;
    let queue = QueueLoad::start(&node_url(1), ns.name())?;
    let locks = LockLoad::start([node_url(3), node_url(5)], ns.name(), &lock)?;
    std::thread::sleep(Duration::from_secs(1));

    let kills = if budget.is_soak() { SOAK_KILLS } else { KILLS };
    let mut recoveries = Vec::new();
    let mut promotions = Vec::new();
    let mut rejoins = Vec::new();
    let mut faults = Vec::new();
    let mut epoch_checks = 0;
    for round in 0..kills {
        if round > 0 && !budget.is_soak() && started.elapsed() > SECOND_KILL_BEFORE {
            break;
        }
        let target = if round % 2 == 0 {
            Target::WorkerIds
        } else {
            Target::Queue
        };
        let key = match target {
            Target::WorkerIds => &lease,
            Target::Queue => &stream,
        };
        let victim = cluster.master_of(key);
        issuers.fault_starts();
        let frozen_token = locks.freeze(round % 2)?;
        let killed_ms = unix_ms();
        let killed = Instant::now();
        cluster.kill(victim);
        let promoted = wait_promoted(&cluster, key, victim)?;
        cluster.wait_ok(PROMOTION_LIMIT);
        let promoted_ms = unix_ms();
        promotions.push(killed.elapsed());
        // Until the killed node is back as its replica, the promoted
        // master confirms no lease write and no publish.
        cluster.restart(victim);
        cluster.wait_synced_replica(victim, Duration::from_secs(30));
        rejoins.push(killed.elapsed());
        // Let a fence that the failover causes show, then wait for every
        // issuer to issue again.
        std::thread::sleep(Duration::from_millis(TTL_MS));
        let what = match target {
            Target::WorkerIds => "the worker-ID keys' master",
            Target::Queue => "the queue stream's master",
        };
        issuers
            .wait_all_issuing(RECOVERY_LIMIT)
            .map_err(|e| format!("after kill {} ({what}): {e}", round + 1))?;
        recoveries.push(issuers.recovered_after(killed_ms));
        locks.thaw();
        if target == Target::WorkerIds {
            check_epoch(&cluster, &ns, promoted, killed_ms)?;
            epoch_checks += 1;
        }
        faults.push(FaultTimes {
            killed_ms,
            promoted_ms,
            frozen_token,
        });
        std::thread::sleep(Duration::from_millis(500));
    }

    let ids = issuers.finish()?;
    let records = queue.finish()?;
    let lock_figures = locks.finish(&faults);

    let list = |ds: &[Duration]| {
        ds.iter()
            .map(|d| d.as_millis().to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    report.figure("kills", faults.len());
    report.figure("promoted_ms", list(&promotions));
    report.figure("rejoined_ms", list(&rejoins));
    report.figure("epoch_checks", epoch_checks);
    ids.report(report);
    issuer::report_recoveries(report, &recoveries);
    records.report(report);
    if let Ok(l) = &lock_figures {
        l.report(report);
    }
    report.figure("seconds", format!("{:.1}", started.elapsed().as_secs_f64()));

    ids.check()?;
    records.check()?;
    let l = lock_figures?;
    if l.stale_holders != faults.len() as u64 {
        return Err(format!(
            "{} kills but {} stale writes",
            faults.len(),
            l.stale_holders
        ));
    }
    Ok(())
}

/// A fresh namespace whose queue stream lives on another master than its
/// worker-ID keys (so the two kills hit two shards); with its first
/// lease key and the stream key.
fn namespace(cluster: &RedisCluster) -> Result<(Namespace, String, String), String> {
    for _ in 0..50 {
        let ns = Namespace::new(&format!("faults-cf-{:08x}", rand::random::<u32>()))?;
        let lease = lease_key(&ns, 0);
        let stream = failover_queue::stream_key(ns.name())?;
        if cluster.master_of(&lease) != cluster.master_of(&stream) {
            return Ok((ns, lease, stream));
        }
    }
    Err("no namespace put the queue on another master than the worker IDs".into())
}

/// A lock name whose key lives on `master`.
fn lock_on(cluster: &RedisCluster, ns: &Namespace, master: usize) -> Result<String, String> {
    (0..500)
        .map(|i| format!("resource-{i}"))
        .find(|name| cluster.master_of(&lock_key(ns, name)) == master)
        .ok_or_else(|| "no lock name on the worker IDs' master".to_string())
}

/// Wait until a node other than `victim` serves `key` as master; its index.
fn wait_promoted(cluster: &RedisCluster, key: &str, victim: usize) -> Result<usize, String> {
    let deadline = Instant::now() + PROMOTION_LIMIT;
    loop {
        let serving = cluster.masters().into_iter().find(|&i| {
            i != victim
                && cli(cluster.nodes[i].port, &["EXISTS", key])
                    .is_some_and(|r| r.trim().parse::<u8>().is_ok())
        });
        if let Some(i) = serving {
            return Ok(i);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no replica was promoted within {PROMOTION_LIMIT:?} after the kill"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The worker-ID quarantine on a cluster: once an issuer has acquired on
/// the promoted master, its epoch record names that master's replication
/// ID and starts no earlier than the kill.
fn check_epoch(
    cluster: &RedisCluster,
    ns: &Namespace,
    promoted: usize,
    killed_ms: u64,
) -> Result<(), String> {
    let port = cluster.nodes[promoted].port;
    let replid = cli(port, &["INFO", "replication"])
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.trim().strip_prefix("master_replid:").map(str::to_string))
        })
        .ok_or("the promoted master does not say its replication ID")?;
    let key = epoch_key(ns);
    // Issuers take a new worker ID every 2 to 5 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let record = cli(port, &["HMGET", &key, "replid", "since"]).unwrap_or_default();
        let mut fields = record.lines().map(str::trim);
        let (seen, since) = (
            fields.next(),
            fields.next().and_then(|s| s.parse::<u64>().ok()),
        );
        if seen == Some(replid.as_str()) {
            let since = since.ok_or_else(|| format!("epoch record without since: {record:?}"))?;
            if since < killed_ms / 1000 {
                return Err(format!(
                    "the epoch record of the promoted master starts at {since}, before the kill \
                     ({killed_ms} ms)"
                ));
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "10 s after the failover the epoch record says {record:?}, not the promoted \
                 master's replication ID {replid}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
