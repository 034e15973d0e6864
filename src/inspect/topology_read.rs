//! Asking a Sentinel URL's sentinels about its master, for a snapshot: every
//! sentinel at once, each with one pipeline (`GET-MASTER-ADDR-BY-NAME`,
//! `MASTER`, `CKQUORUM`) on a short-lived connection bounded by
//! [`SENTINEL_DEADLINE`], so a dead or frozen sentinel costs at most that
//! long and never stalls the snapshot. Read commands only.

use super::counted::Requests;
use super::topology::{MasterFlag, QuorumCheck, SentinelView};
use crate::adapters::redis_conn::sentinel::open_sentinel;
use crate::adapters::redis_conn::{Endpoint, describe};
use crate::config::SecretUrl;
use crate::config::redis_url::Topology;
use redis::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The longest one sentinel may take to connect and answer.
pub const SENTINEL_DEADLINE: Duration = Duration::from_millis(1500);

/// The master's name and every sentinel's answer, or `None` when `url` is
/// not a Sentinel URL.
pub async fn read_sentinels(
    url: &SecretUrl,
    requests: &Arc<Requests>,
) -> Option<(String, Vec<SentinelView>)> {
    let ep = Endpoint::new(url).ok()?;
    let Topology::Sentinel {
        sentinels, master, ..
    } = &ep.target().topology
    else {
        return None;
    };
    let answers = futures::future::join_all(
        sentinels
            .iter()
            .map(|(host, port)| ask(&ep, host, *port, master, requests)),
    )
    .await;
    Some((master.clone(), answers))
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// One sentinel's view of `master`, within [`SENTINEL_DEADLINE`].
async fn ask(
    ep: &Endpoint,
    host: &str,
    port: u16,
    master: &str,
    requests: &Arc<Requests>,
) -> SentinelView {
    let addr = host_port(host, port);
    let query = async {
        let client = ep.sentinel_client(host, port).map_err(|e| e.reason)?;
        let mut conn = open_sentinel(&client).await?;
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(master);
        pipe.cmd("SENTINEL").arg("MASTER").arg(master);
        pipe.cmd("SENTINEL").arg("CKQUORUM").arg(master);
        let _in_flight = requests.start();
        let replies: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| describe(&e))?;
        Ok::<_, String>(replies)
    };
    match tokio::time::timeout(SENTINEL_DEADLINE, query).await {
        Err(_) => SentinelView::no_answer(
            addr,
            format!("no answer within {} ms", SENTINEL_DEADLINE.as_millis()),
        ),
        Ok(Err(why)) => SentinelView::no_answer(addr, one_line(&why)),
        Ok(Ok(replies)) => parse(addr, &replies),
    }
}

fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_string()
}

/// A sentinel's three replies as a [`SentinelView`].
pub fn parse(address: String, replies: &[Value]) -> SentinelView {
    let mut view = SentinelView {
        address,
        answered: true,
        error: None,
        names_master: None,
        quorum: None,
        other_sentinels: None,
        flags: Vec::new(),
        ckquorum: None,
    };
    let mut errors = Vec::new();
    match replies.first() {
        Some(Value::Array(parts)) => match parts.as_slice() {
            [host, port] => match (text(host), text(port).and_then(|p| p.parse::<u16>().ok())) {
                (Some(h), Some(p)) => view.names_master = Some(host_port(&h, p)),
                _ => errors.push("GET-MASTER-ADDR-BY-NAME: unexpected reply".to_string()),
            },
            _ => errors.push("GET-MASTER-ADDR-BY-NAME: unexpected reply".to_string()),
        },
        Some(Value::Nil) | None => {}
        Some(Value::ServerError(e)) => errors.push(server_error(e)),
        Some(_) => errors.push("GET-MASTER-ADDR-BY-NAME: unexpected reply".to_string()),
    }
    match replies.get(1) {
        Some(Value::ServerError(e)) => errors.push(server_error(e)),
        Some(v) => {
            let f = fields(v);
            view.quorum = f.get("quorum").and_then(|q| q.parse().ok());
            view.other_sentinels = f.get("num-other-sentinels").and_then(|q| q.parse().ok());
            view.flags = f
                .get("flags")
                .map(|t| MasterFlag::parse_list(t))
                .unwrap_or_default();
        }
        None => {}
    }
    view.ckquorum = match replies.get(2) {
        Some(Value::ServerError(e)) => Some(QuorumCheck::parse(false, &server_error(e))),
        Some(v) => text(v).map(|t| QuorumCheck::parse(true, &t)),
        None => None,
    };
    if !errors.is_empty() {
        errors.dedup();
        view.error = Some(errors.join("; "));
    }
    view
}

fn server_error(e: &redis::ServerError) -> String {
    one_line(&format!("{} {}", e.code(), e.details().unwrap_or("")))
}

/// A reply as text, when it is one.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".to_string()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// `SENTINEL MASTER` fields: a flat array of names and values (RESP2) or a
/// map (RESP3).
fn fields(v: &Value) -> BTreeMap<String, String> {
    let pairs: Vec<(&Value, &Value)> = match v {
        Value::Array(items) => items.chunks_exact(2).map(|kv| (&kv[0], &kv[1])).collect(),
        Value::Map(items) => items.iter().map(|(k, v)| (k, v)).collect(),
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_sentinels_pipeline_becomes_its_view() {
        let master = Value::Array(
            [
                "name",
                "mymaster",
                "flags",
                "master,s_down",
                "num-other-sentinels",
                "2",
                "quorum",
                "2",
            ]
            .iter()
            .map(|s| bulk(s))
            .collect(),
        );
        let replies = vec![
            Value::Array(vec![bulk("127.0.0.1"), bulk("6380")]),
            master,
            Value::SimpleString(
                "OK 3 usable Sentinels. Quorum and failover authorization can be reached".into(),
            ),
        ];
        let v = parse("127.0.0.1:26379".into(), &replies);
        assert!(v.answered && v.error.is_none());
        assert_eq!(v.names_master.as_deref(), Some("127.0.0.1:6380"));
        assert_eq!((v.quorum, v.other_sentinels), (Some(2), Some(2)));
        assert_eq!(v.flags, vec![MasterFlag::Master, MasterFlag::SDown]);
        let q = v.ckquorum.unwrap();
        assert!(q.ok && q.usable == Some(3));
    }

    #[test]
    fn a_sentinel_that_knows_no_such_master_answers_without_naming_one() {
        let v = parse("h:1".into(), &[Value::Nil]);
        assert!(v.answered && v.names_master.is_none() && v.ckquorum.is_none());
    }
}
