//! What a Redis Cluster needs split or walked that one server takes whole:
//! a pipeline whose commands live in different hash slots (redis-rs sends a
//! pipeline to one node only: split here into one pipeline per slot, sent
//! at once, the replies put back in order) and a `SCAN` (walked over every
//! master with a cursor that says which one).

use super::cluster::{Shard, shards, slot_of, split_address, text};
use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisError, RedisResult, Value};
use std::collections::HashMap;
use std::sync::Arc;

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

/// The shard map a split pipeline groups its slots by, read once and kept
/// until a reply says it is out of date (a moved slot, a node that does
/// not answer).
#[derive(Default)]
pub(crate) struct SlotMap(parking_lot::Mutex<Option<Arc<Vec<Shard>>>>);

impl SlotMap {
    async fn get(&self, conn: &mut ClusterConnection) -> Option<Arc<Vec<Shard>>> {
        if let Some(map) = self.0.lock().clone() {
            return Some(map);
        }
        let map = Arc::new(shards(conn).await.ok()?);
        *self.0.lock() = Some(map.clone());
        Some(map)
    }

    fn forget(&self) {
        *self.0.lock() = None;
    }
}

/// The commands (their indexes in the pipeline) of one hash slot.
type SlotGroup = (u16, Vec<usize>);

/// A reply that says the node asked does not serve the slot (now).
fn redirected(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN"))
}

/// Send `pipeline` over `conn`: as it is when its keys share one slot (or
/// it is a MULTI/EXEC, which must), else one pipeline per master (by the
/// shard map in `map`), all at once. A command without a key goes with the
/// keyed command before it (the `WAIT` after a write counts the replicas of
/// that write's master), or with the first keyed command when it comes
/// before every key. The commands of a master whose reply says a slot moved
/// (or that did not answer) are sent again one pipeline per slot, which the
/// cluster client routes and redirects by itself; the map is read again
/// next time. (Every command clusterops sends is harmless when repeated:
/// see [`super::SharedConn`].)
pub(crate) async fn send_pipeline(
    conn: &mut ClusterConnection,
    map: &SlotMap,
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
    // Each command's slot (a keyless one takes its neighbour's); each
    // multi-key command alone, the cluster client splits it.
    let mut alone = Vec::new();
    let mut by_slot: Vec<SlotGroup> = Vec::new();
    let mut index: HashMap<u16, usize> = HashMap::new();
    let mut current = first;
    for (i, c) in cmds.iter().enumerate() {
        if multi_key(c) {
            alone.push(i);
            continue;
        }
        let slot = slots[i].or(current);
        current = slot;
        let slot = slot.unwrap_or(0);
        let g = *index.entry(slot).or_insert_with(|| {
            by_slot.push((slot, Vec::new()));
            by_slot.len() - 1
        });
        by_slot[g].1.push(i);
    }
    // The slots grouped by the master that serves them.
    let shards = map.get(conn).await;
    let mut by_node: Vec<(Option<String>, Vec<SlotGroup>)> = Vec::new();
    for (slot, members) in by_slot {
        let master = shards
            .as_ref()
            .and_then(|m| m.iter().find(|s| s.serves(slot)))
            .map(|s| s.master.clone());
        match by_node
            .iter_mut()
            .find(|(m, _)| master.is_some() && *m == master)
        {
            Some((_, slots)) => slots.push((slot, members)),
            None => by_node.push((master, vec![(slot, members)])),
        }
    }
    let sends = by_node.iter().map(|(master, slots)| {
        let c = conn.clone();
        let cmds = &cmds;
        async move {
            if let Some((host, port)) = master.as_deref().and_then(split_address) {
                let members: Vec<usize> =
                    slots.iter().flat_map(|(_, m)| m.iter().copied()).collect();
                let mut sub = redis::pipe();
                for &i in &members {
                    sub.add_command(cmds[i].clone());
                }
                let route = SingleNodeRoutingInfo::ByAddress { host, port };
                match c.clone().route_pipeline(sub, 0, members.len(), route).await {
                    Ok(values)
                        if values.len() == members.len() && !values.iter().any(redirected) =>
                    {
                        return Ok(members.into_iter().zip(values).collect());
                    }
                    _ => map.forget(),
                }
            }
            per_slot(&c, cmds, slots).await
        }
    });
    let alone_sends = alone.iter().map(|&i| {
        let mut c = conn.clone();
        let cmd = cmds[i];
        async move { Ok::<_, RedisError>(vec![(i, c.req_packed_command(cmd).await?)]) }
    });
    let (grouped, single) = futures::future::join(
        futures::future::try_join_all(sends),
        futures::future::try_join_all(alone_sends),
    )
    .await;
    let mut out: Vec<Option<Value>> = vec![None; cmds.len()];
    for part in grouped?.into_iter().chain(single?) {
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

/// One pipeline per slot, routed (and redirected) by the cluster client.
async fn per_slot(
    conn: &ClusterConnection,
    cmds: &[&Cmd],
    slots: &[SlotGroup],
) -> RedisResult<Vec<(usize, Value)>> {
    let sends = slots.iter().map(|(slot, members)| {
        let mut c = conn.clone();
        async move {
            let mut sub = redis::pipe();
            for &i in members {
                sub.add_command(cmds[i].clone());
            }
            let route = SingleNodeRoutingInfo::SpecificNode(Route::new(*slot, SlotAddr::Master));
            let values = c.route_pipeline(sub, 0, members.len(), route).await?;
            Ok::<_, RedisError>(members.iter().copied().zip(values).collect::<Vec<_>>())
        }
    });
    Ok(futures::future::try_join_all(sends)
        .await?
        .into_iter()
        .flatten()
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

#[cfg(test)]
mod tests {
    use super::*;

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
