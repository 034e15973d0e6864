//! Snowflake IDs across Redis Sentinel failovers: a master, a replica and
//! three sentinels; three issuer processes (children of this binary, each a
//! `RedisWorkerIds` with a 1,500 ms lease and a snowflake generator) issue
//! IDs continuously and record every one, and every 2 to 5 s give their
//! worker ID back (or drop it, as a crash would) and take another on a new
//! connection, as a node started then would; filler leases leave them only
//! four worker IDs, so an ID moves from one issuer to another often. The
//! scenario forces failovers in turn:
//!
//! - `SENTINEL FAILOVER`: the sentinels promote the replica; the old master
//!   stays a master for 3 s more (two TTLs; the sentinels take up to 10 s)
//!   with the issuers still connected to it, while new connections go to
//!   the new one, then follows it;
//! - with lost writes: the replica is frozen (SIGSTOP) for 800 ms, so the
//!   master acknowledges lease writes no replica has, then the master is
//!   killed (SIGKILL) and the replica resumed: the sentinels promote the
//!   stale replica. The killed node is started again, empty, as a replica
//!   of the new master.
//!
//! No ID may be issued twice, and every issuer must issue again after each
//! failover.

use crate::common::topology::{Secrets, SentinelSet};
use crate::failover_issuer::{self as issuer, Issuers, TTL_MS};
use crate::failover_queue::QueueLoad;
use crate::harness::{Budget, Child, Report, Scenario};
use crate::procs;
use std::time::{Duration, Instant};

/// The scenario, as registered in `SCENARIOS`.
pub const SCENARIO: Scenario = Scenario {
    name: "failover",
    run,
};

/// The issuer role, as registered in `CHILDREN` (shared with
/// `cluster_failover`).
pub const CHILD: Child = Child {
    name: issuer::ROLE,
    run: issuer::child,
};

/// Issuer processes.
const ISSUERS: usize = 3;
/// Failovers in the default run (alternating kinds, lost writes second).
const FAILOVERS: usize = 4;
/// Failovers per soak round.
const SOAK_FAILOVERS: usize = 10;
/// How long the replica is frozen before the master is killed.
const FREEZE: Duration = Duration::from_millis(800);
/// How long the old master of a `SENTINEL FAILOVER` stays a master after
/// the promotion (two lease TTLs).
const OLD_MASTER_LINGERS: Duration = Duration::from_secs(3);
/// Every issuer must issue again within this time after a failover.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

pub fn run(budget: &Budget, report: &mut Report) -> Result<(), String> {
    procs::no_panic(|| scenario(budget, report))
}

fn scenario(budget: &Budget, report: &mut Report) -> Result<(), String> {
    let started = Instant::now();
    let mut set = SentinelSet::start(None, Secrets::default());
    let url = set.url(0);
    let ns = format!("faults-fo-{}", rand::random::<u32>());
    let master = set.master_port();
    issuer::occupy_ids(&ns, |args| set.data_cli(master, args))?;
    let mut issuers = Issuers::spawn(&vec![url.clone(); ISSUERS], &ns)?;
    // Every issuer issuing (the first acquisitions on a fresh namespace
    // wait out the quarantine: about 3 s).
    issuers.wait_all_issuing(Duration::from_secs(20))?;
    let queue = QueueLoad::start(&url, &ns)?;
    std::thread::sleep(Duration::from_secs(1));

    let failovers = if budget.is_soak() {
        SOAK_FAILOVERS
    } else {
        FAILOVERS
    };
    let mut recoveries: Vec<Duration> = Vec::new();
    let mut lost_writes = 0usize;
    for round in 0..failovers {
        issuers.fault_starts();
        let t0 = issuer::unix_ms();
        let with_lost_writes = round % 2 == 1;
        if with_lost_writes {
            failover_losing_writes(&mut set)?;
            lost_writes += 1;
        } else {
            sentinel_failover(&set)?;
        }
        // Let a fence that the failover causes show (a lease runs out up
        // to ttl - margin after its last confirmed renewal), then wait for
        // every issuer to issue again.
        std::thread::sleep(Duration::from_millis(TTL_MS));
        issuers.wait_all_issuing(RECOVERY_LIMIT).map_err(|e| {
            format!(
                "after failover {} ({}): {e}",
                round + 1,
                if with_lost_writes {
                    "with lost writes"
                } else {
                    "SENTINEL FAILOVER"
                }
            )
        })?;
        recoveries.push(issuers.recovered_after(t0));
        std::thread::sleep(Duration::from_millis(500));
    }

    // Stop the issuers; each writes every ID it issued to its file.
    let ids = issuers.finish()?;
    let records = queue.finish()?;

    report.figure("failovers", recoveries.len());
    report.figure("with_lost_writes", lost_writes);
    ids.report(report);
    issuer::report_recoveries(report, &recoveries);
    records.report(report);
    report.figure("seconds", format!("{:.1}", started.elapsed().as_secs_f64()));

    ids.check()?;
    records.check()
}

/// `SENTINEL FAILOVER`, then point the old master at the new one after
/// [`OLD_MASTER_LINGERS`] (the sentinels do the same at their next `INFO`
/// round, up to 10 s later; this keeps the scenario short).
fn sentinel_failover(set: &SentinelSet) -> Result<(), String> {
    let old = set.master_port();
    let deadline = Instant::now() + Duration::from_secs(30);
    while set
        .sentinel_cli(0, &["SENTINEL", "FAILOVER", "mymaster"])
        .as_deref()
        != Some("OK")
    {
        if Instant::now() >= deadline {
            return Err("SENTINEL FAILOVER kept being refused for 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let new = wait_promoted(set, |p| p != old)?;
    // Meanwhile the old master still takes writes from the clients still
    // connected to it, while new connections go to the new master.
    std::thread::sleep(OLD_MASTER_LINGERS);
    set.data_cli(old, &["REPLICAOF", "127.0.0.1", &new.to_string()])
        .ok_or("REPLICAOF on the old master failed")?;
    wait_replica_seen(set, old)
}

/// Wait until sentinel 0 names a master `ok` accepts and it says it is one.
fn wait_promoted(set: &SentinelSet, ok: impl Fn(u16) -> bool) -> Result<u16, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let named = set
            .sentinel_cli(0, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"])
            .and_then(|t| t.lines().nth(1).and_then(|p| p.trim().parse::<u16>().ok()));
        if let Some(port) = named.filter(|p| ok(*p))
            && set
                .data_cli(port, &["ROLE"])
                .is_some_and(|r| r.starts_with("master"))
        {
            return Ok(port);
        }
        if Instant::now() >= deadline {
            return Err("the sentinels did not promote the replica within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until `replica` is synced and the sentinels list it, not down (for
/// the next failover).
fn wait_replica_seen(set: &SentinelSet, replica: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !set
        .data_cli(replica, &["INFO", "replication"])
        .is_some_and(|t| t.contains("master_link_status:up"))
        || set.sentinel_field(0, "num-slaves").as_deref() != Some("1")
        || set
            .sentinel_cli(0, &["SENTINEL", "REPLICAS", "mymaster"])
            .is_none_or(|t| t.contains("s_down") || t.contains("disconnected"))
    {
        if Instant::now() >= deadline {
            let info = |port: u16| {
                set.data_cli(port, &["INFO", "replication"])
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| {
                        l.starts_with("role")
                            || l.contains("link")
                            || l.starts_with("master_host")
                            || l.starts_with("master_port")
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            return Err(format!(
                "the sentinels did not list {replica} as a synced replica within 30 s \
                 (replica: {}; sentinel 0 names {}: {})",
                info(replica),
                set.master_port(),
                info(set.master_port())
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Freeze the replica, let the master acknowledge writes it does not get,
/// kill the master, resume the replica: the sentinels promote it with what
/// it had. The killed node comes back, empty, as the new master's replica.
fn failover_losing_writes(set: &mut SentinelSet) -> Result<(), String> {
    let old = set.master_port();
    let replica = set
        .data
        .iter()
        .map(|s| s.port)
        .find(|p| *p != old)
        .ok_or("no replica in the set")?;
    set.data_server(replica).signal("-STOP");
    std::thread::sleep(FREEZE);
    set.data_server(old).kill();
    set.data_server(replica).signal("-CONT");
    wait_promoted(set, |p| p == replica)?;
    set.restart_data_as_replica(old, replica);
    wait_replica_seen(set, old)
}
