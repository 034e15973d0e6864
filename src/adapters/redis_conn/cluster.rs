//! Redis Cluster: telling a cluster node from a lone server, the shard map
//! (`CLUSTER SLOTS`), and sending a pipeline whose commands live in
//! different hash slots (redis-rs sends a pipeline to one node only, so it
//! is split here into one pipeline per slot, sent at once, and the replies
//! put back in order).

use super::{ConnectError, Endpoint, describe};
use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisError, RedisResult, Value};
use std::collections::HashMap;

/// How many times the cluster client re-sends a command that met a moved
/// slot, a refused connection or a cluster that is down (with waits of up to
/// 1 s between attempts): enough to ride out a shard failover once the
/// cluster has promoted a replica.
pub(crate) const RETRIES: u32 = 6;

/// How long one command may take on a cluster, its retries included.
pub(crate) const OVERALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// One shard: its master, its replicas and the slot ranges it serves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    /// The master, `host:port`.
    pub master: String,
    /// The replicas, `host:port` each.
    pub replicas: Vec<String>,
    /// Slot ranges, inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl Shard {
    /// Whether this shard serves `slot`.
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }

    /// The number of slots served.
    pub fn slot_count(&self) -> u32 {
        self.slots
            .iter()
            .map(|&(a, b)| u32::from(b) - u32::from(a) + 1)
            .sum()
    }
}

/// The hash slot of `key` (`CLUSTER KEYSLOT`).
pub fn slot_of(key: &[u8]) -> u16 {
    crate::adapters::hash_tag::key_slot(key)
}

/// Whether the server behind `conn` runs in cluster mode (`INFO cluster`
/// says `cluster_enabled:1`).
pub(crate) async fn is_cluster<C: ConnectionLike + Send>(conn: &mut C) -> RedisResult<bool> {
    let info: Value = redis::cmd("INFO").arg("cluster").query_async(conn).await?;
    let text = match info {
        Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::VerbatimString { text, .. } => text,
        Value::SimpleString(s) => s,
        _ => String::new(),
    };
    Ok(text.lines().any(|l| l.trim() == "cluster_enabled:1"))
}

/// Open the cluster connection of `ep` (a fixed server found to be a
/// cluster node).
pub(crate) async fn open(ep: &Endpoint) -> Result<ClusterConnection, ConnectError> {
    let client = ep.cluster_client()?;
    match tokio::time::timeout(super::CONNECT_TIMEOUT * 3, client.get_async_connection()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(ep.error(&e)),
        Err(_) => Err(ConnectError::new(
            ep.masked(),
            "connection to the cluster timed out",
        )),
    }
}

/// The shards as the node `conn` reaches says (`CLUSTER SLOTS`), one entry
/// per master, sorted by master address.
pub(crate) async fn shards(conn: &mut ClusterConnection) -> RedisResult<Vec<Shard>> {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SLOTS");
    let reply = conn
        .route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
        .await?;
    parse_slots(&reply).map_err(|e| {
        RedisError::from((redis::ErrorKind::Parse, "unexpected CLUSTER SLOTS reply", e))
    })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn node_address(v: &Value) -> Option<String> {
    let Value::Array(parts) = v else { return None };
    let host = text(parts.first()?)?;
    let Value::Int(port) = parts.get(1)? else {
        return None;
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Some(format!("{host}:{port}"))
}

/// Parse a `CLUSTER SLOTS` reply into shards.
pub(crate) fn parse_slots(reply: &Value) -> Result<Vec<Shard>, String> {
    let Value::Array(ranges) = reply else {
        return Err("not an array".into());
    };
    let mut by_master: HashMap<String, Shard> = HashMap::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err("a range is not an array".into());
        };
        let (Some(Value::Int(a)), Some(Value::Int(b))) = (fields.first(), fields.get(1)) else {
            return Err("a range without its bounds".into());
        };
        let bound = |n: i64| u16::try_from(n).map_err(|_| format!("slot {n} out of range"));
        let (a, b) = (bound(*a)?, bound(*b)?);
        let master = fields
            .get(2)
            .and_then(node_address)
            .ok_or("a range without its master")?;
        let replicas: Vec<String> = fields.iter().skip(3).filter_map(node_address).collect();
        let shard = by_master.entry(master.clone()).or_insert_with(|| Shard {
            master,
            replicas: Vec::new(),
            slots: Vec::new(),
        });
        shard.slots.push((a, b));
        for r in replicas {
            if !shard.replicas.contains(&r) {
                shard.replicas.push(r);
            }
        }
    }
    let mut shards: Vec<Shard> = by_master.into_values().collect();
    for s in &mut shards {
        s.slots.sort_unstable();
        s.replicas.sort();
    }
    shards.sort_by(|a, b| a.master.cmp(&b.master));
    Ok(shards)
}

/// Split `host:port` (IPv6 in brackets).
pub(crate) fn split_address(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// The upper-case name of `cmd` and its argument at `i`.
fn arg(cmd: &Cmd, i: usize) -> Option<&[u8]> {
    cmd.args_iter().nth(i).and_then(|a| match a {
        redis::Arg::Simple(b) => Some(b),
        _ => None,
    })
}

/// The first key of `cmd`, for the commands clusterops sends (`None`: the
/// command has no key, e.g. `INFO`, `WAIT`, `TIME`, `PING`).
pub(crate) fn first_key(cmd: &Cmd) -> Option<&[u8]> {
    let name = arg(cmd, 0)?.to_ascii_uppercase();
    match name.as_slice() {
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let keys: u64 = std::str::from_utf8(arg(cmd, 2)?).ok()?.parse().ok()?;
            if keys == 0 { None } else { arg(cmd, 3) }
        }
        b"XREAD" | b"XREADGROUP" => {
            let at = cmd.args_iter().position(
                |a| matches!(a, redis::Arg::Simple(b) if b.eq_ignore_ascii_case(b"STREAMS")),
            )?;
            arg(cmd, at + 1)
        }
        b"XGROUP" | b"XINFO" | b"OBJECT" | b"MEMORY" => arg(cmd, 2),
        b"INFO" | b"TIME" | b"WAIT" | b"PING" | b"SCAN" | b"CLUSTER" | b"SCRIPT" | b"PUBLISH"
        | b"ROLE" | b"DBSIZE" | b"CONFIG" | b"CLIENT" | b"ECHO" | b"SELECT" | b"FUNCTION"
        | b"COMMAND" | b"SLOWLOG" | b"LATENCY" | b"MULTI" | b"EXEC" | b"DISCARD" => None,
        _ => arg(cmd, 1),
    }
}

/// Whether `cmd` names several keys the cluster client splits by itself
/// (`DEL a b`, `UNLINK …`, `MGET …`, `EXISTS …`, `TOUCH …`).
fn multi_key(cmd: &Cmd) -> bool {
    let Some(name) = arg(cmd, 0) else {
        return false;
    };
    let name = name.to_ascii_uppercase();
    matches!(
        name.as_slice(),
        b"DEL" | b"UNLINK" | b"MGET" | b"EXISTS" | b"TOUCH"
    ) && cmd.args_iter().count() > 2
}

/// Send `pipeline` over `conn`: as it is when its keys share one slot (or
/// it is a MULTI/EXEC, which must), else one pipeline per slot at once.
/// A command without a key goes with the keyed command before it (the
/// `WAIT` after a write counts the replicas of that write's master), or
/// with the first keyed command when it comes before every key.
pub(crate) async fn send_pipeline(
    conn: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    if pipeline.is_transaction() {
        return conn.req_packed_commands(pipeline, offset, count).await;
    }
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let slots: Vec<Option<u16>> = cmds
        .iter()
        .map(|c| {
            if multi_key(c) {
                None
            } else {
                first_key(c).map(slot_of)
            }
        })
        .collect();
    let first = slots.iter().flatten().next().copied();
    let single_slot = slots.iter().flatten().all(|s| Some(*s) == first);
    if single_slot && !cmds.iter().any(|c| multi_key(c)) {
        return conn.req_packed_commands(pipeline, offset, count).await;
    }
    // Group the commands: by slot, and each multi-key command alone.
    enum Group {
        Slot(u16, Vec<usize>),
        Alone(usize),
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<u16, usize> = HashMap::new();
    let mut current = first;
    for (i, c) in cmds.iter().enumerate() {
        if multi_key(c) {
            groups.push(Group::Alone(i));
            continue;
        }
        let slot = slots[i].or(current);
        current = slot;
        let slot = slot.unwrap_or(0);
        match index.get(&slot) {
            Some(&g) => {
                if let Group::Slot(_, members) = &mut groups[g] {
                    members.push(i);
                }
            }
            None => {
                index.insert(slot, groups.len());
                groups.push(Group::Slot(slot, vec![i]));
            }
        }
    }
    let sends = groups.iter().map(|g| {
        let mut c = conn.clone();
        let cmds = &cmds;
        async move {
            match g {
                Group::Alone(i) => Ok(vec![(*i, c.req_packed_command(cmds[*i]).await?)]),
                Group::Slot(slot, members) => {
                    let mut sub = redis::pipe();
                    for &i in members {
                        sub.add_command(cmds[i].clone());
                    }
                    let route =
                        SingleNodeRoutingInfo::SpecificNode(Route::new(*slot, SlotAddr::Master));
                    let values = c.route_pipeline(sub, 0, members.len(), route).await?;
                    Ok::<_, RedisError>(members.iter().copied().zip(values).collect())
                }
            }
        }
    });
    let mut out: Vec<Option<Value>> = vec![None; cmds.len()];
    for part in futures::future::try_join_all(sends).await? {
        for (i, v) in part {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(v);
            }
        }
    }
    Ok(out
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|v| v.unwrap_or(Value::Nil))
        .collect())
}

/// Bits of a cluster-wide SCAN cursor that hold the master's own cursor;
/// the bits above hold the master's index in the shard map.
const CURSOR_BITS: u32 = 48;

/// `SCAN cursor …` over the whole cluster: the masters one after the other
/// (in the order of `shards`, read anew when a scan starts at 0), with a
/// cursor that says which master and where in it. So every SCAN loop
/// written for one server reads every shard. A master whose own cursor
/// needs more than 48 bits (a table of over 2^48 buckets) is an error.
pub(crate) async fn scan(
    conn: &mut ClusterConnection,
    masters: &parking_lot::Mutex<Vec<String>>,
    cmd: &Cmd,
) -> RedisResult<Value> {
    let bad =
        |what: &str| RedisError::from((redis::ErrorKind::Client, "cluster SCAN", what.to_string()));
    let cursor: u64 = arg(cmd, 1)
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("the cursor is not a number"))?;
    if cursor == 0 {
        let map = shards(conn).await?;
        *masters.lock() = map.into_iter().map(|s| s.master).collect();
    }
    let index = usize::try_from(cursor >> CURSOR_BITS).unwrap_or(usize::MAX);
    let own = cursor & ((1u64 << CURSOR_BITS) - 1);
    let (address, count) = {
        let m = masters.lock();
        (m.get(index).cloned(), m.len())
    };
    let Some(address) = address else {
        return Ok(Value::Array(vec![
            Value::BulkString(b"0".to_vec()),
            Value::Array(Vec::new()),
        ]));
    };
    let (host, port) = split_address(&address).ok_or_else(|| bad("bad node address"))?;
    let mut inner = redis::cmd("SCAN");
    inner.arg(own);
    for a in cmd.args_iter().skip(2) {
        if let redis::Arg::Simple(b) = a {
            inner.arg(b);
        }
    }
    let reply = conn
        .route_command(
            inner,
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
        )
        .await?;
    let Value::Array(mut parts) = reply else {
        return Err(bad("the SCAN reply is not an array"));
    };
    let keys = parts
        .pop()
        .ok_or_else(|| bad("the SCAN reply has no keys"))?;
    let next: u64 = parts
        .first()
        .and_then(text)
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad("the SCAN reply has no cursor"))?;
    if next >> CURSOR_BITS != 0 {
        return Err(bad("a master's SCAN cursor does not fit in 48 bits"));
    }
    let next = match next {
        0 if index + 1 < count => ((index as u64) + 1) << CURSOR_BITS,
        0 => 0,
        n => ((index as u64) << CURSOR_BITS) | n,
    };
    Ok(Value::Array(vec![
        Value::BulkString(next.to_string().into_bytes()),
        keys,
    ]))
}

/// Whether `cmd` is `SCAN`.
pub(crate) fn is_scan(cmd: &Cmd) -> bool {
    arg(cmd, 0).is_some_and(|n| n.eq_ignore_ascii_case(b"SCAN"))
}

/// Open a connection to each master of the cluster behind `conn`.
pub(crate) async fn master_clients(
    ep: &Endpoint,
    conn: &mut ClusterConnection,
) -> Result<Vec<(String, redis::Client)>, ConnectError> {
    let map = shards(conn)
        .await
        .map_err(|e| ConnectError::new(ep.masked(), describe(&e)))?;
    let mut out = Vec::new();
    for s in map {
        let (host, port) = split_address(&s.master).ok_or_else(|| {
            ConnectError::new(ep.masked(), format!("bad node address {}", s.master))
        })?;
        out.push((s.master.clone(), ep.cluster_node_client(&host, port)?));
    }
    Ok(out)
}

/// The client of the master that serves `key` now.
pub(crate) async fn owner_client(
    ep: &Endpoint,
    conn: &mut ClusterConnection,
    key: &[u8],
) -> Result<(String, redis::Client), ConnectError> {
    let slot = slot_of(key);
    let map = shards(conn)
        .await
        .map_err(|e| ConnectError::new(ep.masked(), describe(&e)))?;
    let shard = map.iter().find(|s| s.serves(slot)).ok_or_else(|| {
        ConnectError::new(
            ep.masked(),
            format!("no master serves slot {slot} (cluster down?)"),
        )
    })?;
    let (host, port) = split_address(&shard.master).ok_or_else(|| {
        ConnectError::new(ep.masked(), format!("bad node address {}", shard.master))
    })?;
    Ok((shard.master.clone(), ep.cluster_node_client(&host, port)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn slots_group_by_master() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000),
                node("127.0.0.1", 7003),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node("127.0.0.1", 7001),
            ]),
            Value::Array(vec![
                Value::Int(10923),
                Value::Int(16383),
                node("::1", 7000),
            ]),
        ]);
        let shards = parse_slots(&reply).expect("parses");
        assert_eq!(shards.len(), 3);
        assert_eq!(shards[0].master, "127.0.0.1:7000");
        assert_eq!(shards[0].replicas, vec!["127.0.0.1:7003".to_string()]);
        assert_eq!(shards[0].slot_count(), 5461);
        assert!(shards[1].serves(5461) && !shards[1].serves(5460));
        assert_eq!(shards[2].master, "[::1]:7000");
        assert_eq!(split_address("[::1]:7000"), Some(("::1".into(), 7000)));
        assert!(parse_slots(&Value::Int(1)).is_err());
        assert!(parse_slots(&Value::Array(vec![Value::Array(vec![Value::Int(0)])])).is_err());
    }

    #[test]
    fn first_keys_of_the_commands_clusterops_sends() {
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc").arg(2).arg("k1").arg("k2").arg("x");
        assert_eq!(first_key(&eval), Some(b"k1".as_slice()));
        let mut none = redis::cmd("EVALSHA");
        none.arg("abc").arg(0);
        assert_eq!(first_key(&none), None);
        let mut xread = redis::cmd("XREADGROUP");
        xread
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("BLOCK")
            .arg(5)
            .arg("STREAMS")
            .arg("s")
            .arg(">");
        assert_eq!(first_key(&xread), Some(b"s".as_slice()));
        let mut info = redis::cmd("XINFO");
        info.arg("STREAM").arg("s");
        assert_eq!(first_key(&info), Some(b"s".as_slice()));
        assert_eq!(first_key(&redis::cmd("WAIT")), None);
        let mut get = redis::cmd("GET");
        get.arg("k");
        assert_eq!(first_key(&get), Some(b"k".as_slice()));
        let mut del = redis::cmd("DEL");
        del.arg("a").arg("b");
        assert!(multi_key(&del));
        let mut del1 = redis::cmd("DEL");
        del1.arg("a");
        assert!(!multi_key(&del1));
        assert_eq!(
            slot_of(b"{user1000}.following"),
            slot_of(b"{user1000}.followers")
        );
        assert_eq!(slot_of(b"123456789"), 12739);
        assert_eq!(slot_of(b"a{}b"), slot_of(b"a{}b"));
        assert_ne!(slot_of(b"{}x"), slot_of(b"x"));
        assert_eq!(slot_of(b"x:{tag}"), slot_of(b"tag"));
    }
}
