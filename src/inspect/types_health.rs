//! A node's health-check answer in the snapshot ([`Health`], part of the
//! contract in `types.rs`, which re-exports it): the HTTP status, the first
//! line of the body and the round trip, read once into a typed
//! [`HealthAnswer`] (serving, degraded, refused in a named state, idle, no
//! answer) so that nobody matches on the body's words again.

use crate::node::state::NodeState;
use serde::{Deserialize, Serialize};

/// Result of `GET /api/__health_check` on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "HealthJson")]
pub struct Health {
    /// HTTP status, `None` when the request failed.
    pub http_status: Option<u16>,
    /// First line of the body, or the request error.
    pub detail: String,
    /// Round-trip time, ms.
    pub latency_ms: u64,
    /// What the answer says, typed (read from the status and the body).
    pub answer: HealthAnswer,
}

/// What a node's health check answered (docs/node.md: `200 ok`, `200
/// degraded: …`, `503 {state}: {reason}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthAnswer {
    /// 200 `ok` ([`crate::node::http::HEALTH_OK`], or any other 200 body
    /// but a degraded one): it serves.
    Serving,
    /// 200 `degraded: …`: it serves without something the cluster relies
    /// on (its Redis, its worker ID).
    Degraded,
    /// 503 `{state}: {reason}`: it does not serve, in the state it names
    /// (`maintenance`, `starting`, `draining`, `error`, or a state of
    /// another version).
    Refused(NodeState),
    /// 503 `idle: WORKER_MODE=- …` ([`crate::node::http::IDLE_LINE`]): a
    /// running node that serves no app requests by configuration.
    Idle,
    /// Another status, or a 503 body that names no state.
    Other,
    /// No answer (refused, unreachable, timed out).
    NoAnswer,
}

impl HealthAnswer {
    /// Read a health check's status and the first line of its body.
    pub fn read(http_status: Option<u16>, line: &str) -> Self {
        use crate::node::http::{HEALTH_DEGRADED, IDLE_LINE};
        let word = line.split_once(':').map(|(word, _)| word.trim());
        let idle = IDLE_LINE.split_once(':').map(|(word, _)| word);
        match http_status {
            None => HealthAnswer::NoAnswer,
            Some(200) if word == Some(HEALTH_DEGRADED) => HealthAnswer::Degraded,
            Some(200) => HealthAnswer::Serving,
            Some(503) if word == idle => HealthAnswer::Idle,
            Some(503) => match word {
                Some(word) if !word.is_empty() && !word.contains(char::is_whitespace) => {
                    HealthAnswer::Refused(NodeState::parse(word))
                }
                _ => HealthAnswer::Other,
            },
            Some(_) => HealthAnswer::Other,
        }
    }
}

/// [`Health`] as JSON: snapshots saved before `answer` existed read it
/// from the status and the detail.
#[derive(Deserialize)]
struct HealthJson {
    http_status: Option<u16>,
    detail: String,
    latency_ms: u64,
    #[serde(default)]
    answer: Option<HealthAnswer>,
}

impl From<HealthJson> for Health {
    fn from(j: HealthJson) -> Self {
        let answer = j
            .answer
            .unwrap_or_else(|| HealthAnswer::read(j.http_status, &j.detail));
        Health {
            http_status: j.http_status,
            detail: j.detail,
            latency_ms: j.latency_ms,
            answer,
        }
    }
}

impl Health {
    /// A health check's status, the first line of its body (or the request
    /// error) and its round trip, with the answer read from them.
    pub fn read(http_status: Option<u16>, detail: impl Into<String>, latency_ms: u64) -> Self {
        let detail = detail.into();
        Health {
            answer: HealthAnswer::read(http_status, &detail),
            http_status,
            detail,
            latency_ms,
        }
    }

    /// 200.
    pub fn is_healthy(&self) -> bool {
        self.http_status == Some(200)
    }

    /// 200, but the node says it is degraded (its Redis is unreachable or it
    /// lost its worker ID): it serves, with reduced guarantees.
    pub fn is_degraded(&self) -> bool {
        self.answer == HealthAnswer::Degraded
    }

    /// 503 from a node that says it is in `state`.
    pub fn refused_in(&self, state: &NodeState) -> bool {
        matches!(&self.answer, HealthAnswer::Refused(s) if s == state)
    }
}
