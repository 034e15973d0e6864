//! Snowflake issuer processes for the failover scenarios (`failover` on
//! Sentinel, `cluster_failover` on a Redis Cluster): the child role
//! (`faults --child id-issuer`: a worker-ID allocator on the URL it is
//! given and a snowflake generator issuing IDs continuously, every one
//! recorded) and the scenario's side ([`Issuers`]: start them, wait until
//! they all issue, measure how long a fault stopped them, collect every ID
//! and count the ones issued twice).

use crate::harness::Report;
use crate::procs::{self, ChildProc};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The role's name.
pub const ROLE: &str = "id-issuer";

/// Lease TTL of the issuers (as the test nodes' `--lease-ttl-ms`).
pub const TTL_MS: u64 = 1500;

/// Worker IDs left free for the issuers (the others are taken by filler
/// leases: [`occupy_ids`]), so that a worker ID moves between issuers often.
pub const FREE_IDS: u8 = 4;

/// Now, in unix milliseconds (the issuers' `go`/`stop` lines use it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

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

/// What the scenario knows of one issuer from its report lines.
struct Issuer {
    proc: ChildProc,
    out: std::path::PathBuf,
    issuing: bool,
    /// It stopped issuing since the current fault started.
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

/// The issuer processes of a scenario, seen from the scenario.
pub struct Issuers {
    list: Vec<Issuer>,
    _dir: tempfile::TempDir,
}

/// What the issuers issued, once stopped.
pub struct IdFigures {
    pub issued: usize,
    pub per_issuer: Vec<usize>,
    pub duplicates: usize,
    pub acquisitions: u64,
}

impl Issuers {
    /// One issuer per URL (`issuer-0`, `issuer-1`, …), leasing worker IDs
    /// under namespace `ns`.
    pub fn spawn(urls: &[String], ns: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let mut list = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            let out = dir.path().join(format!("issuer-{i}.ids"));
            let proc = ChildProc::spawn(
                ROLE,
                &procs::args(&[
                    ("url", url.clone()),
                    ("ns", ns.to_string()),
                    ("node", format!("issuer-{i}")),
                    ("out", out.display().to_string()),
                ]),
                &format!("issuer-{i}"),
            )?;
            list.push(Issuer {
                proc,
                out,
                issuing: false,
                stopped: false,
                last_go_ms: 0,
                acquisitions: 0,
            });
        }
        Ok(Self { list, _dir: dir })
    }

    /// Wait until every issuer says it is issuing.
    pub fn wait_all_issuing(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            for i in &mut self.list {
                i.read();
            }
            if self.list.iter().all(|i| i.issuing) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let idle: Vec<&str> = self
                    .list
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

    /// Just before a fault: forget which issuers stopped before it.
    pub fn fault_starts(&mut self) {
        for i in &mut self.list {
            i.read();
            i.stopped = !i.issuing;
        }
    }

    /// After [`Self::wait_all_issuing`]: how long after `t0_ms` (unix ms)
    /// the last issuer that stopped since [`Self::fault_starts`] issued
    /// again (zero when none stopped).
    pub fn recovered_after(&self, t0_ms: u64) -> Duration {
        self.list
            .iter()
            .filter(|i| i.stopped)
            .map(|i| Duration::from_millis(i.last_go_ms.saturating_sub(t0_ms)))
            .max()
            .unwrap_or_default()
    }

    /// Stop every issuer, read the IDs each wrote to its file, and count.
    pub fn finish(mut self) -> Result<IdFigures, String> {
        for i in &mut self.list {
            i.proc.ask_to_stop();
        }
        let mut all: Vec<u64> = Vec::new();
        let mut per_issuer = Vec::new();
        for i in &mut self.list {
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
        let issued = all.len();
        all.sort_unstable();
        Ok(IdFigures {
            issued,
            per_issuer,
            duplicates: all.windows(2).filter(|w| w[0] == w[1]).count(),
            acquisitions: self.list.iter().map(|i| i.acquisitions).sum(),
        })
    }
}

impl IdFigures {
    /// `ids`, `ids_per_issuer`, `duplicates`, `leases_acquired`.
    pub fn report(&self, report: &mut Report) {
        report.figure("ids", self.issued);
        report.figure(
            "ids_per_issuer",
            self.per_issuer
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join("/"),
        );
        report.figure("duplicates", self.duplicates);
        report.figure("leases_acquired", self.acquisitions);
    }

    /// No ID issued twice, and every issuer issued.
    pub fn check(&self) -> Result<(), String> {
        if self.duplicates > 0 {
            return Err(format!(
                "{} snowflake IDs were issued twice",
                self.duplicates
            ));
        }
        if self.per_issuer.contains(&0) {
            return Err("an issuer issued no ID".into());
        }
        Ok(())
    }
}

/// `recovered_min_ms`, `recovered_mean_ms`, `recovered_max_ms` and the
/// list `recovered_ms`: how long each fault stopped the issuers.
pub fn report_recoveries(report: &mut Report, recoveries: &[Duration]) {
    let ms = |d: &Duration| d.as_millis();
    let mean =
        recoveries.iter().map(|d| d.as_secs_f64()).sum::<f64>() / recoveries.len().max(1) as f64;
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
}

/// Take all but [`FREE_IDS`] worker IDs of namespace `ns` with filler
/// leases (10 minutes), written with `cli` (a `redis-cli` on the master
/// that holds the worker-ID keys), and wait until a replica has them.
pub fn occupy_ids(ns: &str, cli: impl Fn(&[&str]) -> Option<String>) -> Result<(), String> {
    use clusterops::adapters::worker_id::{HolderInfo, WORKER_IDS, lease_key};
    let ns = clusterops::config::Namespace::new(ns).map_err(|e| e.to_string())?;
    for id in FREE_IDS..WORKER_IDS {
        let value = HolderInfo::for_this_process(&format!("filler-{id}")).to_value();
        cli(&["SET", &lease_key(&ns, id), &value, "PX", "600000"])
            .ok_or("cannot write the filler leases")?;
    }
    cli(&["WAIT", "1", "5000"])
        .filter(|n| n.trim() == "1")
        .map(|_| ())
        .ok_or_else(|| "the replica did not take the filler leases".to_string())
}
