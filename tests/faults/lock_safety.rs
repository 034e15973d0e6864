//! Lock safety under kill -9 and process pauses: 8 clients in 2 processes
//! take one Redis lock (fencing tokens) over and over; every protected write
//! goes to a PostgreSQL row that refuses a token not above the last one it
//! accepted.
//!
//! The scenario kills a client process while one of its clients holds the
//! lock (and restarts it), and the clients now and then freeze their own
//! process (SIGSTOP, resumed by the scenario after several TTLs) between the
//! guard check and the write: the zombie writer fencing exists for. The
//! clients and the resource are in `lock_clients.rs`.

use crate::common::{TestDb, TestNs};
use crate::harness::{Budget, Report, Scenario};
use crate::lock_clients::{self, ClientArgs, SCHEMA};
use crate::procs::{self, ChildProc};
use rand::Rng;
use std::time::{Duration, Instant};

/// The scenario, as registered in `SCENARIOS`.
pub const SCENARIO: Scenario = Scenario {
    name: "lock_safety",
    run,
};
/// The one contended lock.
const LOCK: &str = "fault-resource";
/// The fencing counter is set to this before the clients start. Tokens are
/// `max(last + 1, server clock in µs)` (docs/redis-keys.md); a counter far
/// above the clock keeps counting by one, so `token - BASE` numbers the
/// acquisitions 1, 2, 3, … and the scenario can count them.
const BASE: u64 = 8_000_000_000_000_000;
/// Lock acquisitions (fencing tokens issued) per run.
const ACQUISITIONS: u64 = 100_000;
/// Client processes (of `lock_clients::CLIENTS` clients each).
const PROCESSES: usize = 2;
/// The lock TTL: how long a killed holder blocks the others.
const TTL: Duration = Duration::from_millis(150);
/// A frozen process is resumed after this long (several TTLs: its lock
/// has expired and the other process has written meanwhile).
const PAUSE: Duration = Duration::from_millis(600);
/// One acquisition in this many freezes its process before the write.
const PAUSE_ONE_IN: u32 = 4000;
/// Time between two kills, drawn uniformly.
const KILL_EVERY: (f64, f64) = (1.0, 3.0);
/// The default (CI) run stops taking the lock after this long even if the
/// target is not reached (a soak round always goes to the target): on the
/// loaded 2-core development VM (load average 7 to 12) the clients made
/// about 600 acquisitions a second, so 100,000 took 169 to 172 s (see
/// docs/faults.md); 200 s lets an unloaded CI machine make the full count.
const CI_BUDGET: Duration = Duration::from_secs(200);
/// The scenario fails if the clients have not finished by then.
const HARD_LIMIT: Duration = Duration::from_secs(600);

/// How many acquisitions this run makes (`FAULTS_LOCK_ACQUISITIONS`
/// overrides the default, for a quick try).
fn target() -> u64 {
    std::env::var("FAULTS_LOCK_ACQUISITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(ACQUISITIONS)
}

pub fn run(budget: &Budget, report: &mut Report) -> Result<(), String> {
    let time_budget = (!budget.is_soak()).then_some(CI_BUDGET);
    procs::no_panic(|| scenario(time_budget, report))
}

struct Figures {
    kills: u64,
    kills_holding: u64,
    pauses: u64,
    lost_before_write: u64,
}

fn scenario(time_budget: Option<Duration>, report: &mut Report) -> Result<(), String> {
    let started = Instant::now();
    let target = target();
    let ns = TestNs::new("faults-lock");
    let db = TestDb::create("faults_lock");
    db.query(SCHEMA);
    let client = redis::Client::open(ns.url.as_str()).map_err(|e| e.to_string())?;
    let mut redis = client.get_connection().map_err(|e| format!("redis: {e}"))?;
    let lock_key = clusterops::adapters::lock::lock_key(&ns.namespace(), LOCK);
    let fence_key = clusterops::adapters::lock::fence_key(&ns.namespace(), LOCK);
    redis::cmd("SET")
        .arg(&fence_key)
        .arg(BASE)
        .query::<()>(&mut redis)
        .map_err(|e| format!("redis SET: {e}"))?;

    let spawn = |slot: usize, generation: u32| {
        let label = format!("{}{generation}", ["A", "B"][slot]);
        let args = ClientArgs {
            redis: ns.url.clone(),
            ns: ns.name.clone(),
            lock: LOCK.to_string(),
            db: db.url(),
            label: label.clone(),
            base: BASE,
            target,
            ttl: TTL,
            pause_one_in: PAUSE_ONE_IN,
            rest: Duration::ZERO,
        };
        ChildProc::spawn(lock_clients::ROLE, &args.to_args(), &label)
    };
    let mut generation = [0u32; PROCESSES];
    let mut children: Vec<ChildProc> = (0..PROCESSES)
        .map(|i| spawn(i, 0))
        .collect::<Result<_, _>>()?;
    let mut finished = [false; PROCESSES];
    let mut resume_at: Vec<(usize, Instant)> = Vec::new();
    let mut f = Figures {
        kills: 0,
        kills_holding: 0,
        pauses: 0,
        lost_before_write: 0,
    };
    let mut rng = rand::rng();
    let mut next_kill = Instant::now() + secs(rng.random_range(KILL_EVERY.0..KILL_EVERY.1));
    let mut stopping = false;

    while !finished.iter().all(|d| *d) {
        if !stopping && time_budget.is_some_and(|b| started.elapsed() >= b) {
            // Out of time: the clients finish their current cycle and exit.
            stopping = true;
            children.iter_mut().for_each(ChildProc::ask_to_stop);
        }
        if started.elapsed() > HARD_LIMIT {
            return Err(format!(
                "the clients did not make {target} acquisitions within {HARD_LIMIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
        let now = Instant::now();
        for (i, child) in children.iter_mut().enumerate() {
            for line in child.new_lines() {
                match line.as_str() {
                    "pause" => {
                        f.pauses += 1;
                        resume_at.push((i, now + PAUSE));
                    }
                    "lost" => f.lost_before_write += 1,
                    _ => {}
                }
            }
            if !finished[i]
                && let Some(status) = child.try_exit()
            {
                if !status.success() {
                    return Err(format!("lock client process {} {status}", child.label));
                }
                finished[i] = true;
            }
        }
        resume_at.retain(|(i, at)| {
            if *at <= now {
                children[*i].resume();
                false
            } else {
                true
            }
        });
        // Kill only while both processes run and neither is frozen, so a
        // kill always hits a process that can hold the lock.
        if now >= next_kill && !stopping && resume_at.is_empty() && !finished.iter().any(|d| *d) {
            let holder: Option<String> = redis::cmd("GET")
                .arg(&lock_key)
                .query(&mut redis)
                .map_err(|e| format!("redis GET: {e}"))?;
            let Some((slot, value)) = holder.and_then(|v| Some((holder_slot(&v)?, v))) else {
                continue;
            };
            children[slot].kill9();
            f.kills += 1;
            // A frozen holder killed before we saw its "pause" line never
            // writes: it is not counted as a pause.
            f.lost_before_write += children[slot]
                .remaining_lines()
                .iter()
                .filter(|l| *l == "lost")
                .count() as u64;
            let after: Option<String> = redis::cmd("GET")
                .arg(&lock_key)
                .query(&mut redis)
                .map_err(|e| format!("redis GET: {e}"))?;
            if after.as_deref() == Some(value.as_str()) {
                f.kills_holding += 1;
            }
            generation[slot] += 1;
            children[slot] = spawn(slot, generation[slot])?;
            next_kill = now + secs(rng.random_range(KILL_EVERY.0..KILL_EVERY.1));
        }
    }
    let issued: u64 = redis::cmd("GET")
        .arg(&fence_key)
        .query::<Option<u64>>(&mut redis)
        .map_err(|e| format!("redis GET: {e}"))?
        .unwrap_or(0)
        .saturating_sub(BASE);
    check(&db, issued, target, stopping, &f, started, report)
}

/// Which client process (0 = A, 1 = B) a lock value's holder belongs to:
/// `{token}|{ms}|{guard}|{node_id}` with node ids such as `A3` (process A,
/// third restart).
fn holder_slot(value: &str) -> Option<usize> {
    let node = value.rsplit('|').next()?;
    match node.as_bytes().first()? {
        b'A' => Some(0),
        b'B' => Some(1),
        _ => None,
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Read the resource's log and check the promises; every figure goes to
/// the report first.
fn check(
    db: &TestDb,
    issued: u64,
    target: u64,
    out_of_time: bool,
    f: &Figures,
    started: Instant,
    report: &mut Report,
) -> Result<(), String> {
    let row = db.query(
        "SELECT count(*), count(ord), count(*) - count(ord), \
           count(*) FILTER (WHERE ord IS NULL AND kind = 'after-pause'), \
           count(*) FILTER (WHERE ord IS NULL AND kind = 'normal'), \
           coalesce(max(token) FILTER (WHERE ord IS NOT NULL), 0), \
           count(DISTINCT ord), coalesce(max(ord), 0) FROM writes",
    );
    let n: Vec<u64> = row.split('|').map(|v| v.parse().unwrap_or(0)).collect();
    let [
        writes,
        accepted,
        rejected,
        rejected_paused,
        rejected_unpaused,
        max_token,
        distinct_ord,
        max_ord,
    ] = n[..]
    else {
        return Err(format!("unexpected psql output {row:?}"));
    };
    let out_of_order: u64 = db
        .query(
            "SELECT count(*) FROM (SELECT token, lag(token) OVER (ORDER BY ord) AS prev \
             FROM writes WHERE ord IS NOT NULL) s WHERE token <= prev",
        )
        .parse()
        .unwrap_or(u64::MAX);
    let resource = db.query("SELECT last_token, accepted FROM resource WHERE id = 1");
    report.figure("acquisitions", issued);
    report.figure("target", target);
    report.figure("stopped_by_time_budget", out_of_time);
    report.figure("kills", f.kills);
    report.figure("kills_while_holding", f.kills_holding);
    report.figure("pauses", f.pauses);
    report.figure("writes", writes);
    report.figure("accepted", accepted);
    report.figure("stale_rejected", rejected);
    report.figure("stale_rejected_after_pause", rejected_paused);
    report.figure("stale_rejected_unpaused", rejected_unpaused);
    report.figure("lost_before_write", f.lost_before_write);
    report.figure("accepted_out_of_order", out_of_order);
    report.figure("seconds", format!("{:.1}", started.elapsed().as_secs_f64()));

    if out_of_order != 0 {
        return Err(format!(
            "{out_of_order} accepted writes carried a token not above the one before"
        ));
    }
    if distinct_ord != accepted || max_ord != accepted {
        return Err(format!(
            "the accepted writes are not numbered 1..{accepted} (distinct {distinct_ord}, max {max_ord})"
        ));
    }
    if resource != format!("{max_token}|{accepted}") {
        return Err(format!(
            "the resource row says {resource:?}, the log says last token {max_token}, {accepted} accepted"
        ));
    }
    if max_token > issued {
        return Err(format!(
            "token {max_token} was accepted but the lock issued only {issued}"
        ));
    }
    if issued < target && !out_of_time {
        return Err(format!("only {issued} of {target} acquisitions were made"));
    }
    if writes > issued {
        return Err(format!("{writes} writes for {issued} acquisitions"));
    }
    if f.kills == 0 || f.kills_holding == 0 {
        return Err(format!(
            "no process was killed while holding the lock ({} kills)",
            f.kills
        ));
    }
    if f.pauses > 0 && rejected_paused == 0 {
        return Err(format!(
            "{} frozen holders wrote after their lock expired, and the resource refused none",
            f.pauses
        ));
    }
    Ok(())
}
