//! What a Redis Cluster needs split or walked that one server takes whole:
//! a pipeline whose commands live in different hash slots (redis-rs sends a
//! pipeline to one node only: split here into one pipeline per slot, sent
//! at once, the replies put back in order) and a `SCAN` (walked over every
//! master with a cursor that says which one).

use super::cluster::{shards, slot_of, split_address, text};
use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisError, RedisResult, Value};
use std::collections::HashMap;

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
