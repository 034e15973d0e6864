//! How a host runs the app: `CLUSTER_MODE` (how many node processes on
//! this host) and `WORKER_MODE` (what a node works on: HTTP requests,
//! queue jobs, both, or neither). Neither is part of the configuration
//! fingerprint: nodes of one cluster may differ in both by design.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Most processes `CLUSTER_MODE` may ask for on one host: the cluster has
/// 32 worker IDs in all.
pub const MAX_PROCESSES: u16 = 32;

/// `CLUSTER_MODE`: the deployment guide's several-processes-per-host mode
/// (PM2's cluster mode in the guide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterMode {
    /// Unset or empty: one process, no supervisor.
    #[default]
    Single,
    /// `max`: one process per CPU of the host (at most [`MAX_PROCESSES`]).
    PerCpu,
    /// A number from 1 to [`MAX_PROCESSES`]: that many processes.
    Processes(u16),
}

impl ClusterMode {
    /// What `CLUSTER_MODE` accepts.
    pub const ACCEPTED: &'static str =
        "max (one process per CPU) or a number of processes from 1 to 32 (unset: one process)";

    /// Parse a non-empty value; the error is the reason it is refused.
    pub fn parse(raw: &str) -> Result<Self, Option<String>> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("max") {
            return Ok(Self::PerCpu);
        }
        match raw.parse::<u64>() {
            Ok(0) => Err(Some(
                "0 processes would run nothing; unset it for one process".into(),
            )),
            Ok(n) if n > u64::from(MAX_PROCESSES) => Err(Some(format!(
                "a cluster has {MAX_PROCESSES} worker IDs in all, so one host cannot run {n} processes"
            ))),
            Ok(n) => Ok(Self::Processes(n as u16)),
            Err(_) => Err(None),
        }
    }

    /// How many processes this host runs: `None` for [`ClusterMode::Single`]
    /// (one process, no supervisor); `max` resolved against this host's
    /// CPUs, capped at [`MAX_PROCESSES`].
    pub fn processes(self) -> Option<u16> {
        match self {
            Self::Single => None,
            Self::Processes(n) => Some(n),
            Self::PerCpu => Some(Self::cpus().min(MAX_PROCESSES)),
        }
    }

    /// CPUs of this host, as the OS reports them (1 when it cannot say).
    pub fn cpus() -> u16 {
        std::thread::available_parallelism()
            .map(|n| u16::try_from(n.get()).unwrap_or(u16::MAX))
            .unwrap_or(1)
    }

    /// How `clusterops config` says it.
    pub fn describe(self) -> String {
        match self {
            Self::Single => "1 (CLUSTER_MODE unset)".into(),
            Self::Processes(n) => format!("{n} per host (CLUSTER_MODE={n})"),
            Self::PerCpu => {
                let cpus = Self::cpus();
                let capped = if cpus > MAX_PROCESSES {
                    format!(", capped at {MAX_PROCESSES}")
                } else {
                    String::new()
                };
                format!(
                    "one per CPU (CLUSTER_MODE=max: {} on this host{capped})",
                    cpus.min(MAX_PROCESSES)
                )
            }
        }
    }
}

impl Serialize for ClusterMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Single => s.serialize_none(),
            Self::PerCpu => s.serialize_str("max"),
            Self::Processes(n) => s.serialize_u16(*n),
        }
    }
}

/// `WORKER_MODE`: what a node works on (the guide's application nodes and
/// job nodes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WorkerMode {
    /// Empty or unset: HTTP requests and every queue topic.
    #[default]
    All,
    /// `!`: HTTP requests only, no queue jobs.
    HttpOnly,
    /// `-`: nothing: no app requests (health check and app routes answer
    /// 503, so the load balancer leaves it out) and no queue jobs. The node
    /// still holds its worker ID, heartbeats and answers status and metrics.
    Idle,
    /// `a,b`: HTTP requests, and queue jobs of these topics only.
    Topics(Vec<String>),
    /// Written by another version, not understood here (kept as written).
    Unknown(String),
}

impl WorkerMode {
    /// What `WORKER_MODE` accepts.
    pub const ACCEPTED: &'static str = "empty (HTTP and every queue topic), ! (HTTP only, no queue jobs), - (neither) \
         or a comma list of queue topics of 1 to 64 of A-Z a-z 0-9 _ . : - (HTTP and those topics only)";

    /// Parse a value (empty: [`WorkerMode::All`]); `None` when it is not
    /// one of [`WorkerMode::ACCEPTED`].
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        match raw {
            "" => return Some(Self::All),
            "!" => return Some(Self::HttpOnly),
            "-" => return Some(Self::Idle),
            _ => {}
        }
        let mut topics: Vec<String> = Vec::new();
        for topic in raw.split(',').map(str::trim) {
            let ok = !topic.is_empty()
                && topic.len() <= 64
                && topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
            if !ok {
                return None;
            }
            if !topics.iter().any(|t| t == topic) {
                topics.push(topic.to_string());
            }
        }
        Some(Self::Topics(topics))
    }

    /// Whether the node serves app requests (and says 200 to the load
    /// balancer's health check when running).
    pub fn serves_http(&self) -> bool {
        !matches!(self, Self::Idle)
    }

    /// Whether the node consumes queue jobs of `topic`.
    pub fn handles(&self, topic: &str) -> bool {
        match self {
            Self::All | Self::Unknown(_) => true,
            Self::HttpOnly | Self::Idle => false,
            Self::Topics(t) => t.iter().any(|t| t == topic),
        }
    }

    /// The value as `WORKER_MODE` spells it (`""` for everything).
    pub fn as_env(&self) -> String {
        match self {
            Self::All => String::new(),
            Self::HttpOnly => "!".into(),
            Self::Idle => "-".into(),
            Self::Topics(t) => t.join(","),
            Self::Unknown(raw) => raw.clone(),
        }
    }

    /// A short word for tables: `all`, `http`, `none`, `topics`, `?`.
    pub fn short(&self) -> &'static str {
        match self {
            Self::All => "all",
            Self::HttpOnly => "http",
            Self::Idle => "none",
            Self::Topics(_) => "topics",
            Self::Unknown(_) => "?",
        }
    }

    /// In words, for `config`, `status` and the console's node details.
    pub fn describe(&self) -> String {
        match self {
            Self::All => "HTTP and every queue topic".into(),
            Self::HttpOnly => "HTTP only, no queue jobs (WORKER_MODE=!)".into(),
            Self::Idle => "nothing: no app requests, no queue jobs (WORKER_MODE=-)".into(),
            Self::Topics(t) => format!("HTTP and queue topics {}", t.join(", ")),
            Self::Unknown(raw) => format!("{raw:?} (not understood by this version)"),
        }
    }

    /// Whether this is the default (so records of it stay as they were).
    pub fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }
}

impl fmt::Display for WorkerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

/// As the `WORKER_MODE` value (`""`, `"!"`, `"-"`, `"a,b"`).
impl Serialize for WorkerMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_env())
    }
}

/// A value this version cannot parse is kept as [`WorkerMode::Unknown`].
impl<'de> Deserialize<'de> for WorkerMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Ok(Self::parse(&raw).unwrap_or(Self::Unknown(raw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_mode_takes_max_or_a_number_up_to_32() {
        assert_eq!(ClusterMode::parse("max"), Ok(ClusterMode::PerCpu));
        assert_eq!(ClusterMode::parse("MAX"), Ok(ClusterMode::PerCpu));
        assert_eq!(ClusterMode::parse("4"), Ok(ClusterMode::Processes(4)));
        assert_eq!(ClusterMode::parse("32"), Ok(ClusterMode::Processes(32)));
        assert!(
            ClusterMode::parse("0")
                .unwrap_err()
                .unwrap()
                .contains("nothing")
        );
        assert!(
            ClusterMode::parse("33")
                .unwrap_err()
                .unwrap()
                .contains("32 worker IDs")
        );
        assert_eq!(ClusterMode::parse("two"), Err(None));
        assert_eq!(ClusterMode::parse("-1"), Err(None));
        let per_cpu = ClusterMode::PerCpu.processes().unwrap();
        assert!((1..=MAX_PROCESSES).contains(&per_cpu));
        assert_eq!(ClusterMode::Single.processes(), None);
    }

    #[test]
    fn worker_mode_reads_the_guides_values_and_topic_lists() {
        assert_eq!(WorkerMode::parse(""), Some(WorkerMode::All));
        assert_eq!(WorkerMode::parse("!"), Some(WorkerMode::HttpOnly));
        assert_eq!(WorkerMode::parse(" - "), Some(WorkerMode::Idle));
        let topics = WorkerMode::parse("record-events, workflow:process,record-events").unwrap();
        assert_eq!(
            topics,
            WorkerMode::Topics(vec!["record-events".into(), "workflow:process".into()])
        );
        assert!(topics.handles("workflow:process") && !topics.handles("mail"));
        assert!(topics.serves_http());
        assert!(!WorkerMode::HttpOnly.handles("record-events"));
        assert!(WorkerMode::HttpOnly.serves_http());
        assert!(!WorkerMode::Idle.serves_http() && !WorkerMode::Idle.handles("x"));
        for bad in ["a,,b", "a b", "!x", "*", "a,", &"x".repeat(65)] {
            assert_eq!(WorkerMode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn worker_mode_round_trips_as_its_env_value_and_keeps_unknown_ones() {
        for mode in [
            WorkerMode::All,
            WorkerMode::HttpOnly,
            WorkerMode::Idle,
            WorkerMode::Topics(vec!["a".into(), "b:c".into()]),
        ] {
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(serde_json::from_str::<WorkerMode>(&json).unwrap(), mode);
        }
        assert_eq!(
            serde_json::to_string(&WorkerMode::HttpOnly).unwrap(),
            "\"!\""
        );
        let later: WorkerMode = serde_json::from_str("\"*jobs*\"").unwrap();
        assert_eq!(later, WorkerMode::Unknown("*jobs*".into()));
        assert_eq!(later.short(), "?");
    }
}
