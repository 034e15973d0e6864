//! The RabbitMQ management HTTP API, read when it answers: per queue the
//! unacknowledged messages (which AMQP cannot tell) and the message rates.
//! The API is looked for at `QUEUE_ADAPTER_RABBITMQ_MANAGEMENT_URL` when it
//! is set (its user and password, else the AMQP URL's), else on port 15672
//! of the AMQP host, with the AMQP URL's user, password and virtual host;
//! one `GET /api/queues/{vhost}` filtered to the cluster's queues
//! (`^<ns>\.`, at most [`PAGE_SIZE`]). For an `amqps://` URL the default is
//! HTTPS on port 15671 (the plugin's TLS listener), trusting the URL's
//! `?cacertfile=` besides the built-in public roots.

use super::types::QueueView;
use crate::config::SecretUrl;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;
use std::collections::HashMap;

/// The management API's port (the plugin's default).
pub const MANAGEMENT_PORT: u16 = 15672;
/// The management API's TLS port (the plugin's usual `management.ssl.port`).
pub const MANAGEMENT_TLS_PORT: u16 = 15671;
/// Queues read in one request (the cluster's main, dead and delay queues).
pub const PAGE_SIZE: usize = 500;

/// Where the management API is and how to log in.
#[derive(Clone)]
pub struct Endpoint {
    /// `http://host:15672` (no credentials).
    pub base: String,
    /// How errors name it: the base, or the configured URL, password masked.
    pub shown: String,
    user: String,
    password: String,
    /// The virtual host.
    pub vhost: String,
    /// For `amqps://` with `?cacertfile=`: a client that trusts that CA.
    client: Option<reqwest::Client>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Endpoint({}, user {}, vhost {:?})",
            self.shown, self.user, self.vhost
        )
    }
}

impl Endpoint {
    /// The management API next to the broker of `amqp` (`amqp://user:pass@host:5672/vhost`;
    /// no user: guest/guest; no vhost: `/`); next to the first broker of a
    /// URL naming several.
    pub fn from_amqp(amqp: &SecretUrl) -> Result<Self, String> {
        let first = amqp.first_host();
        let amqp = &first;
        let url = url::Url::parse(amqp.expose()).map_err(|e| format!("{amqp}: {e}"))?;
        let host = url.host_str().ok_or_else(|| format!("{amqp}: no host"))?;
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let decode = |s: &str| {
            (percent_decode_str(s).decode_utf8())
                .map(|d| d.into_owned())
                .map_err(|_| format!("{amqp}: bad percent-encoding"))
        };
        let (user, password) = match url.username() {
            "" => ("guest".to_string(), "guest".to_string()),
            u => (decode(u)?, decode(url.password().unwrap_or(""))?),
        };
        let vhost = match url.path().strip_prefix('/').unwrap_or("") {
            "" => "/".to_string(),
            v => decode(v)?,
        };
        let (base, client) = if url.scheme() == "amqps" {
            let ca = url
                .query_pairs()
                .find(|(k, _)| k == "cacertfile")
                .map(|(_, v)| v.into_owned());
            let client = match ca {
                Some(path) => Some(tls_client(&path).map_err(|e| format!("{amqp}: {e}"))?),
                None => None,
            };
            (format!("https://{host}:{MANAGEMENT_TLS_PORT}"), client)
        } else {
            (format!("http://{host}:{MANAGEMENT_PORT}"), None)
        };
        Ok(Self {
            shown: base.clone(),
            base,
            user,
            password,
            vhost,
            client,
        })
    }

    /// Same API on another base URL (tests: a closed port).
    pub fn with_base(mut self, base: &str) -> Self {
        self.base = base.trim_end_matches('/').to_string();
        self.shown = self.base.clone();
        self
    }

    /// The API of the queue's broker `amqp`, at `management` when given
    /// (`QUEUE_ADAPTER_RABBITMQ_MANAGEMENT_URL`: its user and password when
    /// it has some, else the AMQP URL's; an https URL also trusts the AMQP
    /// URL's `cacertfile`), else next to the broker ([`Endpoint::from_amqp`]).
    pub fn locate(amqp: &SecretUrl, management: Option<&SecretUrl>) -> Result<Self, String> {
        let mut e = Self::from_amqp(amqp)?;
        let Some(m) = management else {
            return Ok(e);
        };
        let mut url = url::Url::parse(m.expose()).map_err(|err| format!("{m}: {err}"))?;
        if !url.username().is_empty() {
            let decode = |s: &str| {
                (percent_decode_str(s).decode_utf8())
                    .map(|d| d.into_owned())
                    .map_err(|_| format!("{m}: bad percent-encoding"))
            };
            e.user = decode(url.username())?;
            e.password = decode(url.password().unwrap_or(""))?;
        }
        // Stripping credentials from a URL with a host cannot fail.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        e.base = url.as_str().trim_end_matches('/').to_string();
        e.shown = m.masked().trim_end_matches('/').to_string();
        if url.scheme() == "http" {
            e.client = None;
        }
        Ok(e)
    }
}

/// An HTTP client that also trusts the CA bundle at `path`.
fn tls_client(path: &str) -> Result<reqwest::Client, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cacertfile {path}: {e}"))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("cacertfile {path}: {e}"))?;
    certs
        .into_iter()
        .fold(reqwest::Client::builder(), |b, c| b.add_root_certificate(c))
        .timeout(super::health::HEALTH_TIMEOUT)
        .connect_timeout(super::health::HEALTH_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| format!("cacertfile {path}: {e}"))
}

/// One queue as the management API reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueFigures {
    /// Ready messages.
    pub ready: u64,
    /// Delivered, not acknowledged.
    pub unacked: u64,
    /// Consumers.
    pub consumers: u64,
    /// Acknowledgements per second (last sample), when there were any.
    pub ack_rate: Option<f64>,
    /// Publishes per second, when there were any.
    pub publish_rate: Option<f64>,
}

#[derive(Deserialize)]
struct Page {
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    name: String,
    #[serde(default)]
    messages_ready: u64,
    #[serde(default)]
    messages_unacknowledged: u64,
    #[serde(default)]
    consumers: u64,
    #[serde(default)]
    message_stats: Option<Stats>,
}

#[derive(Deserialize)]
struct Stats {
    ack_details: Option<Rate>,
    publish_details: Option<Rate>,
}

#[derive(Deserialize)]
struct Rate {
    rate: f64,
}

/// Parse a `GET /api/queues/{vhost}` page into figures by queue name.
pub fn parse_page(body: &[u8]) -> Result<HashMap<String, QueueFigures>, String> {
    let page: Page = serde_json::from_slice(body)
        .map_err(|e| format!("management API: not a queue list ({e})"))?;
    Ok(page
        .items
        .into_iter()
        .map(|q| {
            let stats = q.message_stats.as_ref();
            let figures = QueueFigures {
                ready: q.messages_ready,
                unacked: q.messages_unacknowledged,
                consumers: q.consumers,
                ack_rate: stats.and_then(|s| s.ack_details.as_ref()).map(|r| r.rate),
                publish_rate: stats
                    .and_then(|s| s.publish_details.as_ref())
                    .map(|r| r.rate),
            };
            (q.name, figures)
        })
        .collect())
}

/// The figures of every queue whose name starts with `{prefix}.`; `Err`
/// (one line) when the API does not answer, refuses the login, or answers
/// something else.
pub async fn read_queues(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    prefix: &str,
) -> Result<HashMap<String, QueueFigures>, String> {
    let pattern = format!("^{}\\.", regex_escape(prefix));
    let vhost = utf8_percent_encode(&endpoint.vhost, NON_ALPHANUMERIC);
    let columns = "name,messages_ready,messages_unacknowledged,consumers,\
                   message_stats.ack_details.rate,message_stats.publish_details.rate";
    let page_size = PAGE_SIZE.to_string();
    let http = endpoint.client.as_ref().unwrap_or(http);
    let resp = http
        .get(format!("{}/api/queues/{vhost}", endpoint.base))
        .query(&[
            ("page", "1"),
            ("page_size", page_size.as_str()),
            ("use_regex", "true"),
            ("name", pattern.as_str()),
            ("columns", columns),
        ])
        .basic_auth(&endpoint.user, Some(&endpoint.password))
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                format!("management API {}: not reachable", endpoint.shown)
            } else if e.is_timeout() {
                format!("management API {}: no answer in time", endpoint.shown)
            } else {
                format!("management API {}: {}", endpoint.shown, without_url(&e))
            }
        })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!(
            "management API {}: HTTP {}{}",
            endpoint.shown,
            status.as_u16(),
            if status.as_u16() == 401 {
                " (the user may not log in to it: set the credentials in \
                 QUEUE_ADAPTER_RABBITMQ_MANAGEMENT_URL or give the AMQP user the management tag)"
            } else {
                ""
            }
        ));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("management API {}: {}", endpoint.shown, without_url(&e)))?;
    parse_page(&body)
}

/// Put the management figures into the views of the cluster `ns`'s
/// queues: the unacknowledged messages of the main queue join `in_flight`
/// (beside the delay queues' messages), and its ack rate is the queue's.
pub fn apply(views: &mut [QueueView], ns: &str, figures: &HashMap<String, QueueFigures>) {
    for view in views {
        if let Some(f) = figures.get(&format!("{ns}.{}", view.name)) {
            view.in_flight += f.unacked;
            view.ack_rate = f.ack_rate;
        }
    }
}

/// A client error without the request URL it may quote.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(u) = e.url() {
        text = text.replace(&format!(" ({u})"), "").replace(u.as_str(), "");
    }
    text
}

/// Escape the regex metacharacters of a namespace name (`.` at least).
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_comes_from_the_amqp_url_and_hides_the_password() {
        let url =
            SecretUrl::parse("amqp://ops:p%40ss@mq.example:5672/prod%2Fa", &["amqp"]).unwrap();
        let e = Endpoint::from_amqp(&url).unwrap();
        assert_eq!(e.base, "http://mq.example:15672");
        assert_eq!((e.user.as_str(), e.password.as_str()), ("ops", "p@ss"));
        assert_eq!(e.vhost, "prod/a");
        assert!(!format!("{e:?}").contains("p@ss"));
        let bare = SecretUrl::parse("amqp://127.0.0.1", &["amqp"]).unwrap();
        let e = Endpoint::from_amqp(&bare).unwrap();
        assert_eq!((e.user.as_str(), e.vhost.as_str()), ("guest", "/"));
        let several = SecretUrl::parse("amqp://ops:pw@mq1:5672,mq2:5673/shop", &["amqp"]).unwrap();
        let e = Endpoint::from_amqp(&several).unwrap();
        assert_eq!(
            (e.base.as_str(), e.vhost.as_str()),
            ("http://mq1:15672", "shop")
        );
    }

    #[test]
    fn a_configured_management_url_wins_and_its_password_is_masked() {
        let amqp = SecretUrl::parse("amqp://app:AmqpPw@mq:5672/shop", &["amqp"]).unwrap();
        let m =
            SecretUrl::parse("https://ops:S3cret@mgmt.example:8443/rabbit/", &["https"]).unwrap();
        let e = Endpoint::locate(&amqp, Some(&m)).unwrap();
        assert_eq!(e.base, "https://mgmt.example:8443/rabbit");
        assert_eq!(e.shown, "https://ops:***@mgmt.example:8443/rabbit");
        assert_eq!((e.user.as_str(), e.password.as_str()), ("ops", "S3cret"));
        assert_eq!(e.vhost, "shop");
        assert!(!format!("{e:?}").contains("S3cret"));
        let bare = SecretUrl::parse("http://127.0.0.1:15999", &["http"]).unwrap();
        let e = Endpoint::locate(&amqp, Some(&bare)).unwrap();
        assert_eq!(
            (e.base.as_str(), e.user.as_str()),
            ("http://127.0.0.1:15999", "app")
        );
        let e = Endpoint::locate(&amqp, None).unwrap();
        assert_eq!(e.base, "http://mq:15672");
    }

    #[test]
    fn a_queue_page_is_parsed_and_garbage_is_an_error() {
        let body = br#"{"items":[{"name":"c1.jobs","messages_ready":3,"messages_unacknowledged":2,"consumers":1,"message_stats":{"ack_details":{"rate":1.5},"publish_details":{"rate":0.0}}},{"name":"c1.jobs.dead"}],"page":1}"#;
        let page = parse_page(body).unwrap();
        assert_eq!(
            page["c1.jobs"],
            QueueFigures {
                ready: 3,
                unacked: 2,
                consumers: 1,
                ack_rate: Some(1.5),
                publish_rate: Some(0.0),
            }
        );
        assert_eq!(page["c1.jobs.dead"], QueueFigures::default());
        let err = parse_page(b"<html>login</html>").unwrap_err();
        assert!(err.starts_with("management API: not a queue list"), "{err}");
        assert!(parse_page(br#"{"items":[{"name":1}]}"#).is_err());
    }

    #[test]
    fn an_amqps_url_looks_for_the_api_over_https_trusting_its_cacertfile() {
        let tls = SecretUrl::parse("amqps://ops:pw@mq.example:5671/%2f", &["amqps"]).unwrap();
        let e = Endpoint::from_amqp(&tls).unwrap();
        assert_eq!(e.base, "https://mq.example:15671");
        assert!(e.client.is_none(), "no cacertfile: the built-in roots");
        let missing = SecretUrl::parse(
            "amqps://ops:pw@mq.example/%2f?cacertfile=/nonexistent/ca.pem",
            &["amqps"],
        )
        .unwrap();
        let err = Endpoint::from_amqp(&missing).unwrap_err();
        assert!(
            err.contains("cacertfile /nonexistent/ca.pem") && !err.contains("pw@"),
            "{err}"
        );
    }

    #[test]
    fn the_namespace_is_escaped_in_the_name_filter() {
        assert_eq!(regex_escape("shop.eu-1"), "shop\\.eu-1");
    }
}
