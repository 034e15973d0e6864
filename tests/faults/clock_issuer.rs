//! The `clock-issuer` role of the `clock_skew` scenario: a worker-ID lease
//! and a snowflake generator issuing IDs steadily in a process whose wall
//! clock libfaketime steps while it runs (the scenario rewrites the
//! offset file). Each time the generator stops issuing and starts again it
//! reports `resumed BLOCKED_MS REFUSED_MS KIND`: how long no ID came out,
//! how much of that it refused (`ClockBackwards` and the other refusals)
//! rather than waited, and the first reason. `done N` after writing its
//! IDs (u64 little-endian) to `out`.

use crate::procs;
use clusterops::adapters::snowflake::{Snowflake, SnowflakeError, WaitReason};
use clusterops::adapters::worker_id::{RedisWorkerIds, WorkerIdAllocator};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The role's name.
pub const ROLE: &str = "clock-issuer";

/// Lease TTL (as the test nodes').
const TTL: Duration = Duration::from_millis(1500);

pub fn child(args: &[String]) -> ExitCode {
    let run = || -> Result<(), String> {
        let args = procs::Args::parse(args)?;
        let url = args.str("url")?.to_string();
        let ns = clusterops::config::Namespace::new(args.str("ns")?).map_err(|e| e.to_string())?;
        let out = args.str("out")?.to_string();
        procs::runtime()?.block_on(issue(url, ns, out))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{ROLE}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A stretch without IDs.
struct Blocked {
    since: Instant,
    /// Refusing now, since then.
    refusing: Option<Instant>,
    refused: Duration,
    kind: &'static str,
}

impl Blocked {
    /// A refusal ended (the generator waits or issues again).
    fn refusal_over(&mut self) {
        if let Some(t) = self.refusing.take() {
            self.refused += t.elapsed();
        }
    }
}

fn kind(e: &SnowflakeError) -> &'static str {
    match e {
        SnowflakeError::MustWait {
            reason: WaitReason::ClockBehind,
            ..
        } => "clock-behind-wait",
        SnowflakeError::MustWait {
            reason: WaitReason::SequenceExhausted,
            ..
        } => "sequence-wait",
        SnowflakeError::MustWait {
            reason: WaitReason::ReusedWorkerId,
            ..
        } => "reused-worker-id-wait",
        SnowflakeError::ClockBackwards { .. } => "clock-backwards-refused",
        SnowflakeError::AheadOfLease { .. } => "ahead-of-lease-refused",
        SnowflakeError::WorkerIdUsedUntil { .. } => "worker-id-used-until-refused",
        SnowflakeError::NoLease { .. } => "no-lease-refused",
        SnowflakeError::OutOfRange(_) => "out-of-range-refused",
    }
}

async fn issue(url: String, ns: clusterops::config::Namespace, out: String) -> Result<(), String> {
    let stop = procs::stop_flag();
    let secret = clusterops::config::parse_redis_url(&url)?;
    let conn = clusterops::adapters::redis_conn::connect(&secret)
        .await
        .map_err(|e| e.to_string())?;
    let alloc = RedisWorkerIds::builder(conn, ns, "clock-issuer".to_string())
        .ttl(TTL)
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let generator = Snowflake::new(alloc.lease());
    let mut ids: Vec<u64> = Vec::new();
    let mut blocked: Option<Blocked> = None;
    let mut issuing = false;
    while !stop.load(Ordering::Acquire) {
        // About 10,000 IDs a second: batches of 20, 2 ms apart.
        for _ in 0..20 {
            let step = Instant::now();
            match generator.try_next_id() {
                Ok(id) => {
                    ids.push(id);
                    if !issuing {
                        issuing = true;
                        procs::report_line("go");
                    }
                    if let Some(mut b) = blocked.take() {
                        b.refusal_over();
                        procs::report_line(&format!(
                            "resumed {} {} {}",
                            b.since.elapsed().as_millis(),
                            b.refused.as_millis(),
                            b.kind
                        ));
                    }
                }
                Err(e) => {
                    let wait = match &e {
                        SnowflakeError::MustWait { wait, .. } => Some(*wait),
                        _ => None,
                    };
                    let b = blocked.get_or_insert_with(|| Blocked {
                        since: step,
                        refusing: None,
                        refused: Duration::ZERO,
                        kind: kind(&e),
                    });
                    match wait {
                        Some(wait) => {
                            b.refusal_over();
                            tokio::time::sleep(wait.max(Duration::from_micros(100))).await
                        }
                        None => {
                            b.refusing.get_or_insert(step);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if let Err(e) = alloc.release().await {
        eprintln!("{ROLE}: release: {e}");
    }
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
    std::fs::write(&out, bytes).map_err(|e| format!("{out}: {e}"))?;
    procs::report_line(&format!("done {}", ids.len()));
    Ok(())
}
