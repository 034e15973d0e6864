//! `clusterops status`: the cluster at a glance (a compact table, or the
//! snapshot as JSON), once or every N seconds.

use super::EnvArgs;
use clusterops::config::{Config, WorkerMode};
use clusterops::console::format::{age, bytes, offset};
use clusterops::inspect::{
    ClusterView, Inspector, ReplicaLink, Snapshot, Source, TopologyView, checks,
};
use color_eyre::eyre::Result;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    env: EnvArgs,
    /// Print the snapshot as JSON.
    #[arg(long)]
    json: bool,
    /// Print again every SECONDS (Ctrl-C to stop).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    watch: Option<u64>,
}

pub async fn run(args: StatusArgs) -> Result<i32> {
    let Some(config) = args.env.load_config() else {
        return Ok(2);
    };
    let inspector = Inspector::new(config);
    loop {
        let snap = inspector.snapshot().await;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&snap)?);
        } else {
            if args.watch.is_some() {
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", render(&snap, inspector.config()));
        }
        match args.watch {
            None => return Ok(0),
            Some(secs) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(0),
                }
            }
        }
    }
}

fn source_line<T>(out: &mut String, title: &str, s: &Source<T>) -> bool {
    match s {
        Source::Ok(_) => true,
        Source::NotConfigured => {
            let _ = writeln!(out, "{title}: not shared (memory/local adapter)");
            false
        }
        Source::Unavailable { source, reason } => {
            let _ = writeln!(out, "{title}: UNAVAILABLE {source}: {reason}");
            false
        }
    }
}

/// The human table.
pub fn render(snap: &Snapshot, config: &Config) -> String {
    let results = checks::run(config, snap);
    let verdict = checks::verdict(snap, &results);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cluster {}  verdict {:?}  fingerprint {}  read in {} ms, {} Redis requests",
        snap.cluster, verdict, snap.config_fingerprint, snap.took_ms, snap.round_trips
    );
    match &snap.maintenance {
        Source::Ok(Some(m)) => {
            let _ = writeln!(out, "MAINTENANCE set by {}: {}", m.by, m.reason);
        }
        Source::Unavailable { source, reason } if source.ends_with(":maintenance") => {
            let _ = writeln!(
                out,
                "MAINTENANCE flag {source} {reason}: every node treats it as set (503); clear it with the console (M) or DEL it"
            );
        }
        _ => {}
    }
    let _ = writeln!(out);
    if source_line(&mut out, "nodes", &snap.nodes)
        && let Source::Ok(nodes) = &snap.nodes
    {
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:<8} {:<7} {:<4} {:<8} {:<7} {:<9} {:<6} {:<21}",
            "NODE",
            "STATE",
            "VERSION",
            "SCHEMA",
            "WID",
            "BEAT",
            "CLOCK",
            "HEALTH",
            "MODE",
            "ADDRESS"
        );
        for n in nodes {
            let health = match n.health.http_status {
                Some(code) => code.to_string(),
                None => "down".to_string(),
            };
            let mut drift = if n.config_drift.is_empty() {
                String::new()
            } else {
                format!("  drift: {}", n.config_drift.join(","))
            };
            if let WorkerMode::Topics(_) | WorkerMode::Unknown(_) = &n.worker_mode {
                drift.push_str(&format!("  topics: {}", n.worker_mode.as_env()));
            }
            if let Some(p) = &n.process {
                drift.push_str(&format!(
                    "  process #{} of {} on {}",
                    p.index, p.count, p.shared_addr
                ));
            }
            let _ = writeln!(
                out,
                "{:<20} {:<12} {:<8} {:<7} {:<4} {:<8} {:<7} {:<9} {:<6} {:<21}{drift}",
                n.node_id,
                n.state,
                n.app_version,
                n.schema_version.as_deref().unwrap_or("-"),
                n.worker_id
                    .map(|w| w.to_string())
                    .unwrap_or_else(|| "-".into()),
                age(n.heartbeat_age_ms),
                n.clock_offset
                    .map_or("?".to_string(), |c| offset(c.offset_us)),
                health,
                n.worker_mode.short(),
                n.http_addr
            );
        }
        if nodes.is_empty() {
            let _ = writeln!(out, "(no node registered)");
        }
        let _ = writeln!(
            out,
            "CLOCK: Redis TIME minus the node's clock (+ behind, - ahead; ? not reported){}",
            snap.inspector_clock
                .map(|c| format!("; this host: {}", offset(c.offset_us)))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "MODE: WORKER_MODE (all: HTTP and every queue topic; http: HTTP only; none: neither; topics: HTTP and the topics listed)"
        );
    }
    let _ = writeln!(out);
    if source_line(&mut out, "worker IDs", &snap.leases)
        && let Source::Ok(slots) = &snap.leases
    {
        let held: Vec<String> = slots
            .iter()
            .filter_map(|s| {
                s.holder.as_ref().map(|h| {
                    format!(
                        "{}={}{}",
                        s.worker_id,
                        h,
                        if s.holder_live { "" } else { " (STALE)" }
                    )
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "worker IDs: {} of 32 held  {}",
            held.len(),
            held.join("  ")
        );
    }
    if source_line(&mut out, "locks", &snap.locks)
        && let Source::Ok(locks) = &snap.locks
    {
        let _ = writeln!(out, "locks: {} held", locks.len());
        for l in locks.iter().take(20) {
            let _ = writeln!(
                out,
                "  {:<32} holder {:<20} age {:<8} ttl {:<8} token {}",
                l.name,
                l.holder,
                age(l.age_ms),
                age(u64::try_from(l.ttl_left_ms).unwrap_or(0)),
                l.fencing_token
            );
        }
        if locks.len() > 20 {
            let _ = writeln!(out, "  … {} more (use --json)", locks.len() - 20);
        }
    }
    if source_line(&mut out, "sync signals", &snap.streams)
        && let Source::Ok(streams) = &snap.streams
    {
        for s in streams {
            let lags: Vec<String> = s
                .readers
                .iter()
                .map(|r| match r.oldest_unhandled_age_ms {
                    Some(ms) => format!("{}:{} ({} behind)", r.node_id, r.lag, age(ms)),
                    None => format!("{}:{}", r.node_id, r.lag),
                })
                .collect();
            let _ = writeln!(
                out,
                "stream {:<24} length {:<7} lag {}",
                s.channel,
                s.length,
                lags.join(" ")
            );
        }
    }
    if source_line(&mut out, "queues", &snap.queues)
        && let Source::Ok(queues) = &snap.queues
    {
        for q in queues {
            let _ = writeln!(
                out,
                "queue {:<25} waiting {:<6} in flight {:<5} oldest {:<8} dead {:<5} consumers {}{}",
                q.name,
                q.waiting,
                q.in_flight,
                q.oldest_age_ms.map(age).unwrap_or_else(|| "-".into()),
                q.dead_letters,
                q.consumers,
                match &q.paused {
                    Some(f) => format!("  PAUSED by {}: {}", f.by, f.reason),
                    None => String::new(),
                }
            );
        }
    }
    let _ = writeln!(out);
    // One line per server instance: one Redis behind several databases is
    // one server, its uses listed on its line.
    for i in clusterops::inspect::instances::group(&snap.servers) {
        let s = i.facts();
        let (name, uses) = match i.uses.as_slice() {
            [one] => (one.url.clone(), one.used_by.join(", ")),
            many => (
                format!("{} ({})", i.address, i.uses_label()),
                many.iter()
                    .map(|u| format!("{} {}", u.url, u.used_by.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        if i.unreachable() {
            let e = s.error.as_deref().unwrap_or("");
            let _ = writeln!(out, "{} {name} ({uses}): UNREACHABLE {e}", s.kind);
        } else {
            let _ = writeln!(
                out,
                "{} {name} ({uses}): version {} policy {} clients {}",
                s.kind,
                s.version.as_deref().unwrap_or("?"),
                s.maxmemory_policy.as_deref().unwrap_or("-"),
                s.connected_clients
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into())
            );
            for u in i.uses.iter().filter(|u| u.error.is_some()) {
                let e = u.error.as_deref().unwrap_or("");
                let _ = writeln!(out, "  use {}: UNREACHABLE {e}", u.url);
            }
        }
        if let Some(t) = &s.topology {
            topology_lines(&mut out, t);
        }
        if let Some(c) = &s.cluster {
            cluster_lines(&mut out, c);
        }
    }
    for u in &snap.unreadable {
        let _ = writeln!(out, "unreadable key {}: {}", u.key, u.reason);
    }
    let problems: Vec<_> = results
        .iter()
        .filter(|r| r.status != clusterops::inspect::CheckStatus::Pass)
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out);
        for r in problems {
            let _ = writeln!(out, "{:?}: {}: {}", r.status, r.id, r.reason);
        }
    }
    out
}

/// Under a Redis Cluster URL's server line: the cluster in one line, then
/// one line per master (an unreachable one with its error).
fn cluster_lines(out: &mut String, c: &ClusterView) {
    let _ = writeln!(out, "  {}", c.summary());
    for s in &c.shards {
        let slots = format!("slots {} ({})", s.slot_ranges(), s.slot_count);
        if let Some(e) = &s.error {
            let _ = writeln!(out, "  shard {} {slots}: UNREACHABLE {e}", s.master);
            continue;
        }
        let replicas: Vec<String> = s
            .replicas
            .iter()
            .map(|r| {
                let link = match r.link {
                    ReplicaLink::Up => "up",
                    ReplicaLink::Down => "DOWN",
                };
                let lag = r.lag_s.map_or_else(String::new, |l| format!(" lag {l}s"));
                format!("{} {link}{lag}", r.address)
            })
            .collect();
        let state = match s.cluster_state.as_deref() {
            Some("ok") | None => String::new(),
            Some(other) => format!(" cluster_state {other}"),
        };
        let _ = writeln!(
            out,
            "  shard {} {} {slots} memory {} keys {} replicas {}{state}",
            s.master,
            s.role.map_or("?", |r| r.as_str()),
            s.used_memory.map_or_else(|| "-".into(), bytes),
            s.keys.map_or_else(|| "-".into(), |k| k.to_string()),
            if replicas.is_empty() {
                "NONE".to_string()
            } else {
                replicas.join(", ")
            }
        );
    }
}

/// Under a Sentinel URL's server line: the topology in one line, then one
/// line per sentinel that did not answer.
fn topology_lines(out: &mut String, t: &TopologyView) {
    let _ = writeln!(out, "  {}", t.summary());
    for s in t.sentinels.iter().filter(|s| !s.answered) {
        let _ = writeln!(
            out,
            "  sentinel {} ({}): NOT ANSWERING {}",
            s.address,
            t.master_name,
            s.error.as_deref().unwrap_or("")
        );
    }
}
