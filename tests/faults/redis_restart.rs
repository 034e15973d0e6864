//! Scenario `redis_restart`: Redis loses its data. One private Redis
//! without persistence (no AOF, no RDB save points) holds the worker-ID
//! leases and a lock; three issuer processes (the `id-issuer` role of
//! [`crate::failover_issuer`], each a `RedisWorkerIds` with a 1,500 ms
//! lease and a snowflake generator, as three nodes would run) issue IDs
//! continuously, and two `fence-taker` processes take one lock over and
//! over and record every fencing token. The scenario kills the Redis
//! (SIGKILL) and starts it again empty on the same port, several times:
//! at once, after 300 ms, and after 1.5 s (longer than a lease's fence).
//!
//! No snowflake ID may be issued twice, no fencing token may be at or
//! below the one handed out before it, and every issuer must issue again
//! after each restart (how long that took is a figure).

use crate::common::PrivateRedis;
use crate::failover_issuer::{self as issuer, Issuers, TTL_MS};
use crate::harness::{Budget, Child, Report, Scenario};
use crate::procs::{self, ChildProc};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The scenario, as registered in `SCENARIOS`.
pub const SCENARIO: Scenario = Scenario {
    name: "redis_restart",
    run,
};

/// The token-taker role, as registered in `CHILDREN`.
pub const CHILD: Child = Child {
    name: ROLE,
    run: child,
};

/// The role's name.
const ROLE: &str = "fence-taker";
/// Issuer processes.
const ISSUERS: usize = 3;
/// Token-taker processes.
const TAKERS: usize = 2;
/// Restarts in the default (CI) run: each of the three downtimes once, and
/// the quickest one again.
const RESTARTS: usize = 4;
/// Restarts per soak round.
const SOAK_RESTARTS: usize = 12;
/// How long Redis stays down, in turn.
const DOWNTIMES: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(300),
    Duration::from_millis(1500),
];
/// Every issuer must issue again within this time after a restart.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);
/// The lock's TTL.
const LOCK_TTL: Duration = Duration::from_secs(2);

pub fn run(budget: &Budget, report: &mut Report) -> Result<(), String> {
    procs::no_panic(|| scenario(budget, report))
}

/// Now, in unix microseconds (one clock for every process on the machine).
fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn scenario(budget: &Budget, report: &mut Report) -> Result<(), String> {
    let started = Instant::now();
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let ns = format!("faults-rr-{}", rand::random::<u32>());
    let mut issuers = Issuers::spawn(&vec![url.clone(); ISSUERS], &ns)?;
    let takers = Takers::spawn(&url, &ns)?;
    issuers.wait_all_issuing(Duration::from_secs(20))?;

    let restarts = if budget.is_soak() {
        SOAK_RESTARTS
    } else {
        RESTARTS
    };
    let mut recoveries = Vec::new();
    let mut restarted_at_us = Vec::new();
    for round in 0..restarts {
        // IDs and tokens flow for a while, then Redis loses everything.
        std::thread::sleep(Duration::from_millis(1000 + rand::random::<u64>() % 1000));
        issuers.fault_starts();
        let t0 = issuer::unix_ms();
        redis.kill();
        std::thread::sleep(DOWNTIMES[round % DOWNTIMES.len()]);
        redis.restart();
        restarted_at_us.push(unix_us());
        // Let the lost leases show (an issuer notices at its next renewal,
        // or when its fence runs out), then wait for every issuer.
        std::thread::sleep(Duration::from_millis(TTL_MS));
        issuers.wait_all_issuing(RECOVERY_LIMIT).map_err(|e| {
            format!(
                "after restart {} (down {:?}): {e}",
                round + 1,
                DOWNTIMES[round % DOWNTIMES.len()]
            )
        })?;
        recoveries.push(issuers.recovered_after(t0));
    }
    std::thread::sleep(Duration::from_millis(500));

    let ids = issuers.finish()?;
    let tokens = takers.finish()?;
    let not_increasing = tokens.not_increasing();
    // Tokens taken after each restart (before the next one).
    let after: Vec<usize> = restarted_at_us
        .iter()
        .enumerate()
        .map(|(i, from)| {
            let until = restarted_at_us.get(i + 1).copied().unwrap_or(u64::MAX);
            tokens
                .taken
                .iter()
                .filter(|t| t.0 >= *from && t.0 < until)
                .count()
        })
        .collect();

    report.figure("restarts", recoveries.len());
    ids.report(report);
    issuer::report_recoveries(report, &recoveries);
    report.figure("tokens", tokens.taken.len());
    report.figure("tokens_not_above_predecessor", not_increasing.len());
    report.figure(
        "tokens_after_each_restart",
        after
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    report.figure("seconds", format!("{:.1}", started.elapsed().as_secs_f64()));

    ids.check()?;
    if let Some((before, then)) = not_increasing.first() {
        return Err(format!(
            "{} fencing tokens were not above the token handed out before them \
             (first: {then} after {before})",
            not_increasing.len()
        ));
    }
    if after.contains(&0) {
        return Err(format!(
            "no fencing token was handed out after a restart: {after:?}"
        ));
    }
    Ok(())
}

/// The token-taker processes, seen from the scenario.
struct Takers {
    list: Vec<(ChildProc, std::path::PathBuf)>,
    _dir: tempfile::TempDir,
}

/// Every token handed out: (unix µs when its acquisition returned, token),
/// in time order.
struct Tokens {
    taken: Vec<(u64, u64)>,
}

impl Tokens {
    /// Pairs (previous, token) where a token is not above the one handed
    /// out before it. The lock serialises its holders: a holder records
    /// its token before it releases, and the next acquisition runs after
    /// that release, so time order is the order Redis handed them out in
    /// (across a restart, the lost lock's holder took its token before
    /// Redis was killed).
    fn not_increasing(&self) -> Vec<(u64, u64)> {
        self.taken
            .windows(2)
            .filter(|w| w[1].1 <= w[0].1)
            .map(|w| (w[0].1, w[1].1))
            .collect()
    }
}

impl Takers {
    fn spawn(url: &str, ns: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let mut list = Vec::new();
        for i in 0..TAKERS {
            let out = dir.path().join(format!("taker-{i}.tokens"));
            let proc = ChildProc::spawn(
                ROLE,
                &procs::args(&[
                    ("url", url.to_string()),
                    ("ns", ns.to_string()),
                    ("node", format!("taker-{i}")),
                    ("out", out.display().to_string()),
                ]),
                &format!("taker-{i}"),
            )?;
            list.push((proc, out));
        }
        Ok(Self { list, _dir: dir })
    }

    /// Stop every taker and read the tokens each wrote to its file.
    fn finish(mut self) -> Result<Tokens, String> {
        for (p, _) in &mut self.list {
            p.ask_to_stop();
        }
        let mut taken = Vec::new();
        for (p, out) in &mut self.list {
            p.wait_for_line("done", Duration::from_secs(20))?;
            let bytes = std::fs::read(&*out).map_err(|e| format!("{}: {e}", out.display()))?;
            for pair in bytes.chunks_exact(16) {
                let (at, token) = pair.split_at(8);
                taken.push((
                    u64::from_le_bytes(at.try_into().unwrap_or([0; 8])),
                    u64::from_le_bytes(token.try_into().unwrap_or([0; 8])),
                ));
            }
        }
        taken.sort_unstable();
        Ok(Tokens { taken })
    }
}

/// The `fence-taker` role: take the lock `restart`, record (unix µs, token)
/// right after each acquisition, release, again, until the scenario closes
/// our stdin; then write the pairs (u64 little-endian each) to `out` and
/// print `done N`. Redis errors (down, restarting) are waited out.
fn child(args: &[String]) -> ExitCode {
    let run = || -> Result<(), String> {
        let args = procs::Args::parse(args)?;
        let url = clusterops::config::SecretUrl::parse(args.str("url")?, &["redis"])?;
        let ns = clusterops::config::Namespace::new(args.str("ns")?).map_err(|e| e.to_string())?;
        let node = args.str("node")?.to_string();
        let out = args.str("out")?.to_string();
        let stop = procs::stop_flag();
        procs::runtime()?.block_on(take(url, ns, node, out, stop))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{ROLE}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn take(
    url: clusterops::config::SecretUrl,
    ns: clusterops::config::Namespace,
    node: String,
    out: String,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    use clusterops::adapters::lock::{LockBackend, RedisLock};
    let lock = loop {
        match RedisLock::connect(&url, ns.clone(), node.clone()).await {
            Ok(l) => break l,
            Err(e) if !stop.load(Ordering::Acquire) => {
                eprintln!("{node}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let mut taken: Vec<(u64, u64)> = Vec::new();
    let mut errors = 0u64;
    while !stop.load(Ordering::Acquire) {
        match lock.try_acquire("restart", LOCK_TTL).await {
            Ok(Some(guard)) => {
                taken.push((unix_us(), guard.fencing_token()));
                tokio::task::yield_now().await;
                // A lock lost with the restart is not ours to release.
                let _ = guard.release().await;
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(e) => {
                errors += 1;
                if errors % 50 == 1 {
                    eprintln!("{node}: {e}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let bytes: Vec<u8> = taken
        .iter()
        .flat_map(|(at, token)| at.to_le_bytes().into_iter().chain(token.to_le_bytes()))
        .collect();
    std::fs::write(&out, bytes).map_err(|e| format!("{out}: {e}"))?;
    procs::report_line(&format!("done {}", taken.len()));
    Ok(())
}
