//! A Sentinel-managed Redis as a snapshot shows it: the master the
//! sentinels name, the role it reports, its replicas (state, lag) and each
//! sentinel's answer (the master it names, quorum, flags, `CKQUORUM`); the
//! figures `status`, `check` and the console all derive from it
//! ([`TopologyView::agreement`], [`TopologyView::summary`]).

use super::servers::parse_info;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The role a Redis server reports (`INFO replication` `role:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisRole {
    /// Takes writes.
    Master,
    /// Follows a master (`slave`).
    Replica,
    /// Anything else (another Redis version).
    #[serde(other)]
    Unknown,
}

impl RedisRole {
    /// From the text Redis uses (`master`, `slave`).
    pub fn parse(text: &str) -> Self {
        match text.trim() {
            "master" => Self::Master,
            "slave" | "replica" => Self::Replica,
            _ => Self::Unknown,
        }
    }

    /// The word an operator reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Replica => "replica",
            Self::Unknown => "unknown",
        }
    }
}

/// A replica's link state as its master reports it (`slaveN:…,state=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    /// Streaming the replication feed: it can be promoted.
    Online,
    /// Waiting for the master's RDB snapshot.
    WaitBgsave,
    /// Receiving the RDB snapshot.
    SendBulk,
    /// Snapshot sent, not yet online.
    RdbTransmitted,
    /// Anything else (another Redis version).
    #[serde(other)]
    Unknown,
}

impl ReplicaState {
    /// From the text Redis uses.
    pub fn parse(text: &str) -> Self {
        match text.trim() {
            "online" => Self::Online,
            "wait_bgsave" => Self::WaitBgsave,
            "send_bulk" => Self::SendBulk,
            "rdb_transmitted" => Self::RdbTransmitted,
            _ => Self::Unknown,
        }
    }

    /// The word Redis uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::WaitBgsave => "wait_bgsave",
            Self::SendBulk => "send_bulk",
            Self::RdbTransmitted => "rdb_transmitted",
            Self::Unknown => "unknown",
        }
    }
}

/// One flag of `SENTINEL MASTER name` `flags` (comma-separated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MasterFlag {
    /// The instance is a master.
    Master,
    /// Subjectively down: this sentinel cannot reach it.
    SDown,
    /// Objectively down: a quorum of sentinels cannot reach it.
    ODown,
    /// This sentinel has no link to it.
    Disconnected,
    /// A failover is running.
    FailoverInProgress,
    /// Anything else (`promoted`, `reconf_sent`, other versions).
    #[serde(other)]
    Unknown,
}

impl MasterFlag {
    /// The flags of a `flags` field.
    pub fn parse_list(text: &str) -> Vec<Self> {
        text.split(',')
            .filter(|f| !f.trim().is_empty())
            .map(|f| match f.trim() {
                "master" => Self::Master,
                "s_down" => Self::SDown,
                "o_down" => Self::ODown,
                "disconnected" => Self::Disconnected,
                "failover_in_progress" => Self::FailoverInProgress,
                _ => Self::Unknown,
            })
            .collect()
    }

    /// The word Sentinel uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::SDown => "s_down",
            Self::ODown => "o_down",
            Self::Disconnected => "disconnected",
            Self::FailoverInProgress => "failover_in_progress",
            Self::Unknown => "other",
        }
    }
}

/// One replica of the master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaView {
    /// `host:port`.
    pub address: String,
    /// Its link state.
    pub state: ReplicaState,
    /// Replication offset it acknowledged.
    pub offset: Option<u64>,
    /// Seconds since its last acknowledgement.
    pub lag_s: Option<u64>,
    /// Bytes of the replication stream it has not acknowledged yet.
    pub behind_bytes: Option<u64>,
}

impl ReplicaView {
    /// Whether it streams the feed (a failover can promote it).
    pub fn is_online(&self) -> bool {
        self.state == ReplicaState::Online
    }
}

/// A sentinel's `SENTINEL CKQUORUM name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumCheck {
    /// `OK`: enough sentinels to reach the quorum and authorize a failover.
    pub ok: bool,
    /// Usable sentinels it counted, when it says.
    #[serde(default)]
    pub usable: Option<u32>,
    /// Its answer, one line (`NOQUORUM 1 usable Sentinels…`).
    pub detail: String,
}

impl QuorumCheck {
    /// From the reply text (`OK 3 usable Sentinels…`) or an error (`NOQUORUM …`).
    pub fn parse(ok: bool, text: &str) -> Self {
        let detail = text.lines().next().unwrap_or("").trim().to_string();
        let usable = detail
            .split_whitespace()
            .skip_while(|w| w.parse::<u32>().is_err())
            .find_map(|w| w.parse().ok());
        Self { ok, usable, detail }
    }
}

/// One sentinel of the URL and what it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentinelView {
    /// `host:port` as the URL lists it.
    pub address: String,
    /// Whether it answered (within the timeout).
    pub answered: bool,
    /// Why it did not, or what it refused (one line, never a password).
    #[serde(default)]
    pub error: Option<String>,
    /// The master address it names (`GET-MASTER-ADDR-BY-NAME`), `None`
    /// when it knows no master by that name.
    #[serde(default)]
    pub names_master: Option<String>,
    /// The quorum it is configured with.
    #[serde(default)]
    pub quorum: Option<u32>,
    /// Other sentinels it knows of.
    #[serde(default)]
    pub other_sentinels: Option<u32>,
    /// Its flags for the master.
    #[serde(default)]
    pub flags: Vec<MasterFlag>,
    /// Its `CKQUORUM`.
    #[serde(default)]
    pub ckquorum: Option<QuorumCheck>,
}

impl SentinelView {
    /// A sentinel that did not answer.
    pub fn no_answer(address: String, why: String) -> Self {
        Self {
            address,
            answered: false,
            error: Some(why),
            names_master: None,
            quorum: None,
            other_sentinels: None,
            flags: Vec::new(),
            ckquorum: None,
        }
    }
}

/// A Sentinel URL's topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyView {
    /// The monitored master's name (`#mymaster`).
    pub master_name: String,
    /// The master address most answering sentinels name.
    #[serde(default)]
    pub master: Option<String>,
    /// The server the inspector read (`INFO`) through its connection,
    /// which follows the master.
    #[serde(default)]
    pub read_from: Option<String>,
    /// The role that server reports.
    #[serde(default)]
    pub read_role: Option<RedisRole>,
    /// Its `master_repl_offset`.
    #[serde(default)]
    pub master_repl_offset: Option<u64>,
    /// The replicas it reports.
    #[serde(default)]
    pub replicas: Vec<ReplicaView>,
    /// Every sentinel of the URL, in its order.
    #[serde(default)]
    pub sentinels: Vec<SentinelView>,
}

/// Whether the sentinels agree, in figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// Sentinels in the URL.
    pub total: usize,
    /// Those that answered.
    pub answered: usize,
    /// Answering ones that name [`TopologyView::master`].
    pub agreeing: usize,
    /// The quorum most answering sentinels are configured with.
    pub quorum: Option<u32>,
    /// Answering sentinels that name another master (or none): `address -> named`.
    pub dissenting: Vec<(String, Option<String>)>,
    /// `address: detail` of each answering sentinel whose `CKQUORUM` failed.
    pub ckquorum_failed: Vec<String>,
    /// Whether a sentinel flags the master objectively down.
    pub o_down: bool,
}

impl TopologyView {
    /// Build it from the sentinels' answers and the `INFO` text of the
    /// server at `read_from` (the inspector's connection).
    pub fn build(
        master_name: String,
        sentinels: Vec<SentinelView>,
        read_from: Option<String>,
        info: Option<&str>,
    ) -> Self {
        let master = most_named(&sentinels);
        let map = info.map(parse_info).unwrap_or_default();
        let read_role = map.get("role").map(|r| RedisRole::parse(r));
        let master_repl_offset = map.get("master_repl_offset").and_then(|v| v.parse().ok());
        let replicas = info
            .map(|text| replicas(text, master_repl_offset))
            .unwrap_or_default();
        Self {
            master_name,
            master,
            read_from,
            read_role,
            master_repl_offset,
            replicas,
            sentinels,
        }
    }

    /// How many sentinels answered and agree, and the quorum.
    pub fn agreement(&self) -> Agreement {
        let answering: Vec<&SentinelView> = self.sentinels.iter().filter(|s| s.answered).collect();
        let named = |s: &SentinelView| s.names_master.is_some() && s.names_master == self.master;
        let mut quorums: BTreeMap<u32, usize> = BTreeMap::new();
        for q in answering.iter().filter_map(|s| s.quorum) {
            *quorums.entry(q).or_default() += 1;
        }
        Agreement {
            total: self.sentinels.len(),
            answered: answering.len(),
            agreeing: answering.iter().filter(|s| named(s)).count(),
            quorum: quorums
                .iter()
                .max_by_key(|(q, n)| (**n, std::cmp::Reverse(**q)))
                .map(|(q, _)| *q),
            dissenting: answering
                .iter()
                .filter(|s| !named(s))
                .map(|s| (s.address.clone(), s.names_master.clone()))
                .collect(),
            ckquorum_failed: answering
                .iter()
                .filter_map(|s| {
                    let q = s.ckquorum.as_ref()?;
                    (!q.ok).then(|| format!("{}: {}", s.address, q.detail))
                })
                .collect(),
            o_down: answering
                .iter()
                .any(|s| s.flags.contains(&MasterFlag::ODown)),
        }
    }

    /// Replicas streaming the feed.
    pub fn online_replicas(&self) -> impl Iterator<Item = &ReplicaView> {
        self.replicas.iter().filter(|r| r.is_online())
    }

    /// Whether the server the inspector read is the master the sentinels
    /// name and reports itself master.
    pub fn master_confirmed(&self) -> bool {
        self.master.is_some()
            && self.read_from == self.master
            && self.read_role == Some(RedisRole::Master)
    }

    /// One line: `sentinel mymaster: master 127.0.0.1:6380 (3/3 sentinels
    /// agree, quorum 2), 1 replica online lag 0s`.
    pub fn summary(&self) -> String {
        let a = self.agreement();
        let quorum = a
            .quorum
            .map_or_else(|| "quorum unknown".to_string(), |q| format!("quorum {q}"));
        let mut out = match &self.master {
            Some(m) => format!(
                "sentinel {}: master {m} ({}/{} sentinels agree, {quorum})",
                self.master_name, a.agreeing, a.total
            ),
            None => format!(
                "sentinel {}: no master named ({}/{} sentinels answered)",
                self.master_name, a.answered, a.total
            ),
        };
        if self.master.is_some() && !self.master_confirmed() {
            match (&self.read_from, self.read_role) {
                (Some(r), Some(role)) if Some(r) == self.master.as_ref() => {
                    out.push_str(&format!(", but it reports role {}", role.as_str()));
                }
                (Some(r), _) => out.push_str(&format!(", read from {r}")),
                (None, _) => out.push_str(", not read"),
            }
        }
        out.push_str(", ");
        out.push_str(&self.replicas_summary());
        out
    }

    /// `1 replica online lag 0s`, `no replica online`, `2 replicas online
    /// lag 3s, 1 send_bulk`.
    pub fn replicas_summary(&self) -> String {
        let online: Vec<&ReplicaView> = self.online_replicas().collect();
        let mut out = match online.len() {
            0 => "no replica online".to_string(),
            n => {
                let lag = online.iter().filter_map(|r| r.lag_s).max();
                let lag = lag.map_or_else(String::new, |l| format!(" lag {l}s"));
                let s = if n == 1 { "" } else { "s" };
                format!("{n} replica{s} online{lag}")
            }
        };
        let mut others: BTreeMap<&str, usize> = BTreeMap::new();
        for r in self.replicas.iter().filter(|r| !r.is_online()) {
            *others.entry(r.state.as_str()).or_default() += 1;
        }
        for (state, n) in others {
            out.push_str(&format!(", {n} {state}"));
        }
        out
    }
}

/// The address most sentinels name (the first named on a tie).
fn most_named(sentinels: &[SentinelView]) -> Option<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for named in sentinels.iter().filter_map(|s| s.names_master.as_deref()) {
        match counts.iter_mut().find(|(a, _)| *a == named) {
            Some((_, n)) => *n += 1,
            None => counts.push((named, 1)),
        }
    }
    let best = counts.iter().map(|(_, n)| *n).max()?;
    counts
        .iter()
        .find(|(_, n)| *n == best)
        .map(|(a, _)| a.to_string())
}

/// The `slaveN:ip=…,port=…,state=…,offset=…,lag=…` lines of an `INFO` text.
pub fn replicas(info: &str, master_offset: Option<u64>) -> Vec<ReplicaView> {
    info.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter_map(|l| {
            let (key, rest) = l.split_once(':')?;
            let n = key.strip_prefix("slave")?;
            n.parse::<u32>().ok()?;
            let fields: BTreeMap<&str, &str> = rest
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .collect();
            let ip = fields.get("ip")?;
            let port = fields.get("port")?;
            let host = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            let offset = fields.get("offset").and_then(|v| v.parse::<u64>().ok());
            Some(ReplicaView {
                address: format!("{host}:{port}"),
                state: ReplicaState::parse(fields.get("state").unwrap_or(&"")),
                offset,
                lag_s: fields.get("lag").and_then(|v| v.parse().ok()),
                behind_bytes: master_offset.zip(offset).map(|(m, o)| m.saturating_sub(o)),
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
