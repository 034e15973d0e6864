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
use crate::failover_issuer as issuer;
use crate::failover_queue::QueueLoad;
use crate::harness::{Budget, Child, Report, Scenario};
use crate::procs::{self, ChildProc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The scenario, as registered in `SCENARIOS`.
pub const SCENARIO: Scenario = Scenario {
    name: "failover",
    run,
};

/// The issuer role, as registered in `CHILDREN`.
pub const CHILD: Child = Child {
    name: ROLE,
    run: issuer::child,
};
const ROLE: &str = issuer::ROLE;

/// Issuer processes.
const ISSUERS: usize = 3;
/// Lease TTL of the issuers (as the test nodes' `--lease-ttl-ms`).
pub const TTL_MS: u64 = 1500;
/// Failovers in the default run (alternating kinds, lost writes second).
const FAILOVERS: usize = 4;
/// Failovers per soak round.
const SOAK_FAILOVERS: usize = 10;
/// How long the replica is frozen before the master is killed.
const FREEZE: Duration = Duration::from_millis(800);
/// How long the old master of a `SENTINEL FAILOVER` stays a master after
/// the promotion (two lease TTLs).
const OLD_MASTER_LINGERS: Duration = Duration::from_secs(3);
/// Worker IDs left free for the issuers (the others are taken by filler
/// leases), so that a worker ID moves between issuers often.
const FREE_IDS: u8 = 4;
/// Every issuer must issue again within this time after a failover.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

pub fn run(budget: &Budget, report: &mut Report) -> Result<(), String> {
    procs::no_panic(|| scenario(budget, report))
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What the scenario knows of one issuer from its report lines.
struct Issuer {
    proc: ChildProc,
    out: std::path::PathBuf,
    issuing: bool,
    /// It stopped issuing since the current failover started.
    stopped: bool,
    /// When it last (re)started issuing (unix ms, its clock).
    last_go_ms: u64,
    acquisitions: u64,
}

impl Issuer {
    fn read(&mut self) {
        for line in self.proc.new_lines() {
            let mut parts = line.split_whitespace();
            let (Some(what), ms) = (parts.next(), parts.next().and_then(|m| m.parse().ok())) else {
                continue;
            };
            match what {
                "go" => {
                    self.issuing = true;
                    self.last_go_ms = ms.unwrap_or(0);
                }
                "stop" => {
                    self.issuing = false;
                    self.stopped = true;
                }
                "acquired" => self.acquisitions += 1,
                _ => {}
            }
        }
    }
}

fn scenario(budget: &Budget, report: &mut Report) -> Result<(), String> {
    let started = Instant::now();
    let mut set = SentinelSet::start(None, Secrets::default());
    let url = set.url(0);
    let ns = format!("faults-fo-{}", rand::random::<u32>());
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    occupy_ids(&set, &ns)?;
    let mut issuers = Vec::new();
    for i in 0..ISSUERS {
        let out = dir.path().join(format!("issuer-{i}.ids"));
        let proc = ChildProc::spawn(
            ROLE,
            &procs::args(&[
                ("url", url.clone()),
                ("ns", ns.clone()),
                ("node", format!("issuer-{i}")),
                ("out", out.display().to_string()),
            ]),
            &format!("issuer-{i}"),
        )?;
        issuers.push(Issuer {
            proc,
            out,
            issuing: false,
            stopped: false,
            last_go_ms: 0,
            acquisitions: 0,
        });
    }
    // Every issuer issuing (the first acquisitions on a fresh namespace
    // wait out the quarantine: about 3 s).
    wait_all_issuing(&mut issuers, Duration::from_secs(20))?;
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
        for i in &mut issuers {
            i.read();
            i.stopped = !i.issuing;
        }
        let t0 = unix_ms();
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
        wait_all_issuing(&mut issuers, RECOVERY_LIMIT).map_err(|e| {
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
        let took = issuers
            .iter()
            .filter(|i| i.stopped)
            .map(|i| Duration::from_millis(i.last_go_ms.saturating_sub(t0)))
            .max()
            .unwrap_or_default();
        recoveries.push(took);
        std::thread::sleep(Duration::from_millis(500));
    }

    // Stop the issuers; each writes every ID it issued to its file.
    for i in &mut issuers {
        i.proc.ask_to_stop();
    }
    let mut all: Vec<u64> = Vec::new();
    let mut per_issuer = Vec::new();
    for i in &mut issuers {
        i.proc.wait_for_line("done", Duration::from_secs(20))?;
        i.read();
        let bytes = std::fs::read(&i.out).map_err(|e| format!("{}: {e}", i.out.display()))?;
        let ids: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        per_issuer.push(ids.len());
        all.extend(ids);
    }
    let records = queue.finish()?;
    let issued = all.len();
    all.sort_unstable();
    let duplicates = all.windows(2).filter(|w| w[0] == w[1]).count();
    let ms = |d: &Duration| d.as_millis();
    let mean =
        recoveries.iter().map(|d| d.as_secs_f64()).sum::<f64>() / recoveries.len().max(1) as f64;

    report.figure("failovers", recoveries.len());
    report.figure("with_lost_writes", lost_writes);
    report.figure("ids", issued);
    report.figure(
        "ids_per_issuer",
        per_issuer
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join("/"),
    );
    report.figure("duplicates", duplicates);
    report.figure(
        "leases_acquired",
        issuers.iter().map(|i| i.acquisitions).sum::<u64>(),
    );
    report.figure(
        "recovered_min_ms",
        recoveries.iter().map(ms).min().unwrap_or(0),
    );
    report.figure("recovered_mean_ms", format!("{:.0}", mean * 1000.0));
    report.figure(
        "recovered_max_ms",
        recoveries.iter().map(ms).max().unwrap_or(0),
    );
    report.figure(
        "recovered_ms",
        recoveries
            .iter()
            .map(|d| d.as_millis().to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    report.figure("records_acknowledged", records.acknowledged);
    report.figure("records_refused", records.refused);
    report.figure("records_lost", records.lost);
    report.figure("records_duplicates", records.duplicates);
    report.figure("seconds", format!("{:.1}", started.elapsed().as_secs_f64()));

    if duplicates > 0 {
        return Err(format!("{duplicates} snowflake IDs were issued twice"));
    }
    if records.lost > 0 {
        return Err(format!(
            "{} of {} acknowledged queue messages were never handled",
            records.lost, records.acknowledged
        ));
    }
    if records.acknowledged == 0 {
        return Err("no queue message was acknowledged".into());
    }
    if per_issuer.contains(&0) {
        return Err("an issuer issued no ID".into());
    }
    Ok(())
}

/// Take all but [`FREE_IDS`] worker IDs with filler leases (10 minutes)
/// and wait until the replica has them.
fn occupy_ids(set: &SentinelSet, ns: &str) -> Result<(), String> {
    use clusterops::adapters::worker_id::{HolderInfo, WORKER_IDS, lease_key};
    let ns = clusterops::config::Namespace::new(ns).map_err(|e| e.to_string())?;
    let master = set.master_port();
    for id in FREE_IDS..WORKER_IDS {
        let value = HolderInfo::for_this_process(&format!("filler-{id}")).to_value();
        set.data_cli(
            master,
            &["SET", &lease_key(&ns, id), &value, "PX", "600000"],
        )
        .ok_or("cannot write the filler leases")?;
    }
    set.data_cli(master, &["WAIT", "1", "5000"])
        .filter(|n| n.trim() == "1")
        .map(|_| ())
        .ok_or_else(|| "the replica did not take the filler leases".to_string())
}

/// Wait until every issuer says it is issuing.
fn wait_all_issuing(issuers: &mut [Issuer], limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        for i in issuers.iter_mut() {
            i.read();
        }
        if issuers.iter().all(|i| i.issuing) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let idle: Vec<&str> = issuers
                .iter()
                .filter(|i| !i.issuing)
                .map(|i| i.proc.label.as_str())
                .collect();
            return Err(format!(
                "{} issued no ID again within {limit:?}",
                idle.join(", ")
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
