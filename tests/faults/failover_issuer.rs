//! The `failover` scenario's issuer process (`faults --child id-issuer`):
//! a worker-ID allocator on the Sentinel URL and a snowflake generator
//! issuing IDs continuously, every one recorded.

use crate::failover::{TTL_MS, unix_ms};
use crate::procs;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The role's name.
pub const ROLE: &str = "id-issuer";

/// The issuer: a worker-ID allocator and a generator issuing continuously;
/// every 2 to 5 s the worker ID is released (or, one time in three,
/// dropped as a crash would leave it) and another one taken. Reports
/// `go MS` / `stop MS` when it starts or stops issuing, `acquired ID`,
/// and `done N` after writing its IDs (u64 little-endian) to `out`.
pub fn child(args: &[String]) -> ExitCode {
    let run = || -> Result<(), String> {
        let args = procs::Args::parse(args)?;
        let url = args.str("url")?.to_string();
        let ns = clusterops::config::Namespace::new(args.str("ns")?).map_err(|e| e.to_string())?;
        let node = args.str("node")?.to_string();
        let out = args.str("out")?.to_string();
        let stop = procs::stop_flag();
        procs::runtime()?.block_on(issue(url, ns, node, out, stop))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{ROLE}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn issue(
    url: String,
    ns: clusterops::config::Namespace,
    node: String,
    out: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), String> {
    use clusterops::adapters::snowflake::Snowflake;
    use clusterops::adapters::worker_id::{RedisWorkerIds, WorkerIdAllocator};
    use rand::Rng;
    use std::sync::atomic::Ordering;

    let secret = clusterops::config::parse_redis_url(&url)?;
    let mut ids: Vec<u64> = Vec::new();
    let mut issuing = false;
    while !stop.load(Ordering::Acquire) {
        // A new connection each time, as a node started now would: it goes
        // to the master the sentinels name now.
        let conn = match clusterops::adapters::redis_conn::connect(&secret).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{node}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let alloc = match RedisWorkerIds::builder(conn, ns.clone(), node.clone())
            .ttl(Duration::from_millis(TTL_MS))
            .start()
            .await
        {
            Ok(a) => a,
            Err(e) => {
                eprintln!("{node}: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let lease = alloc.lease();
        let generator = Snowflake::new(lease.clone());
        let (life, crash) = {
            let mut rng = rand::rng();
            (
                Duration::from_millis(rng.random_range(2000..5000)),
                rng.random_bool(1.0 / 3.0),
            )
        };
        let until = Instant::now() + life;
        let mut generation = 0;
        while !stop.load(Ordering::Acquire) && Instant::now() < until {
            if lease.generation() != generation {
                generation = lease.generation();
                if let Some(id) = lease.worker_id() {
                    procs::report_line(&format!("acquired {id}"));
                }
            }
            for _ in 0..20 {
                match generator.try_next_id() {
                    Ok(id) => {
                        ids.push(id);
                        if !issuing {
                            issuing = true;
                            procs::report_line(&format!("go {}", unix_ms()));
                        }
                    }
                    Err(e) => {
                        if issuing {
                            issuing = false;
                            procs::report_line(&format!("stop {}", unix_ms()));
                            eprintln!("{node}: stopped issuing: {e}");
                        }
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if crash {
            drop(alloc);
        } else if let Err(e) = alloc.release().await {
            eprintln!("{node}: release: {e}");
        }
    }
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
    std::fs::write(&out, bytes).map_err(|e| format!("{out}: {e}"))?;
    procs::report_line(&format!("done {}", ids.len()));
    Ok(())
}
