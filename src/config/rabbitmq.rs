//! The RabbitMQ queue's own settings: the type of its queues
//! (`QUEUE_ADAPTER_RABBITMQ_QUEUE_TYPE`) and where its management API
//! answers (`QUEUE_ADAPTER_RABBITMQ_MANAGEMENT_URL`), parsed and validated
//! one line per wrong variable.

use super::{ConfigProblem, SecretUrl, mask_url_text};
use serde::Serialize;
use std::fmt;

/// The variable naming the queue type.
pub const QUEUE_TYPE_VAR: &str = "QUEUE_ADAPTER_RABBITMQ_QUEUE_TYPE";
/// The variable naming the management API.
pub const MANAGEMENT_URL_VAR: &str = "QUEUE_ADAPTER_RABBITMQ_MANAGEMENT_URL";
const MANAGEMENT_SHAPE: &str = "http(s)://[user:password@]host:port[/path prefix]";

/// The kind of RabbitMQ queue the adapter declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RabbitQueueType {
    /// Replicated (Raft) queues with a delivery counter: poison messages are
    /// dead-lettered after `QueueOptions::max_deliveries`.
    #[default]
    Quorum,
    /// Classic queues: no delivery counter, so no bound on redeliveries
    /// after crashes.
    Classic,
}

impl RabbitQueueType {
    /// `quorum` or `classic` (the `x-queue-type` value).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quorum => "quorum",
            Self::Classic => "classic",
        }
    }

    /// Parse `quorum` or `classic`, case-insensitive.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "quorum" => Some(Self::Quorum),
            "classic" => Some(Self::Classic),
            _ => None,
        }
    }
}

impl fmt::Display for RabbitQueueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RabbitMQ settings beside the AMQP URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RabbitSettings {
    /// `QUEUE_ADAPTER_RABBITMQ_QUEUE_TYPE`; `None` when unset (then
    /// `QueueOptions::rabbitmq_queue_type` decides: quorum by default).
    pub queue_type: Option<RabbitQueueType>,
    /// `QUEUE_ADAPTER_RABBITMQ_MANAGEMENT_URL`; `None`: port 15672 (15671
    /// for amqps) of the AMQP host with the AMQP credentials.
    pub management_url: Option<SecretUrl>,
}

/// Check a management API URL: http or https, a host, no query.
pub fn parse_management_url(raw: &str) -> Result<SecretUrl, String> {
    let url = SecretUrl::parse(raw, &["http", "https"])?;
    let parsed = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("no query or fragment is accepted after the path".to_string());
    }
    Ok(url)
}

/// Read both variables; every wrong one is a problem.
pub(super) fn parse<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> (RabbitSettings, Vec<ConfigProblem>) {
    let mut problems = Vec::new();
    let queue_type = match get(QUEUE_TYPE_VAR) {
        None => None,
        Some(raw) => {
            let parsed = RabbitQueueType::parse(raw);
            if parsed.is_none() {
                problems.push(ConfigProblem {
                    variable: QUEUE_TYPE_VAR.to_string(),
                    given: Some(format!("{:?}", mask_url_text(raw))),
                    reason: None,
                    accepted: "quorum or classic".to_string(),
                });
            }
            parsed
        }
    };
    let management_url = match get(MANAGEMENT_URL_VAR) {
        None => None,
        Some(raw) => match parse_management_url(raw) {
            Ok(u) => Some(u),
            Err(why) => {
                problems.push(ConfigProblem {
                    variable: MANAGEMENT_URL_VAR.to_string(),
                    given: Some(format!("{:?}", mask_url_text(raw))),
                    reason: Some(why),
                    accepted: MANAGEMENT_SHAPE.to_string(),
                });
                None
            }
        },
    };
    (
        RabbitSettings {
            queue_type,
            management_url,
        },
        problems,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run(pairs: &[(&str, &str)]) -> (RabbitSettings, Vec<String>) {
        let vars: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (s, p) = parse(|n| vars.get(n).map(String::as_str));
        (s, p.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn queue_type_is_quorum_or_classic() {
        let (s, p) = run(&[(QUEUE_TYPE_VAR, "Classic")]);
        assert_eq!((s.queue_type, p.len()), (Some(RabbitQueueType::Classic), 0));
        let (_, p) = run(&[(QUEUE_TYPE_VAR, "stream")]);
        assert_eq!(
            p,
            vec![
                "QUEUE_ADAPTER_RABBITMQ_QUEUE_TYPE: \"stream\" is not accepted; expected quorum or classic"
            ]
        );
    }

    #[test]
    fn management_url_is_checked_and_masked() {
        let (s, p) = run(&[(MANAGEMENT_URL_VAR, "https://ops:S3cret@mq:15671")]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            s.management_url.map(|u| u.masked().to_string()),
            Some("https://ops:***@mq:15671/".to_string())
        );
        for bad in [
            "amqp://u:S3cret@mq:5672",
            "http://u:S3cret@",
            "http://mq:1/?x=1",
        ] {
            let (_, p) = run(&[(MANAGEMENT_URL_VAR, bad)]);
            assert_eq!(p.len(), 1, "{bad}");
            assert!(p[0].starts_with(MANAGEMENT_URL_VAR), "{p:?}");
            assert!(!p[0].contains("S3cret"), "{p:?}");
        }
    }
}
