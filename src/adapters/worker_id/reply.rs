//! Reading script replies: integers and strings from Redis values, and the
//! "no free worker ID" error from the acquire script's list of holders.

use super::scripts;
use super::{HolderInfo, WORKER_IDS, WorkerIdError};
use crate::config::Namespace;
use redis::Value;

pub(crate) fn no_free_id(ns: &Namespace, values: &[Value]) -> WorkerIdError {
    let mut holders = Vec::new();
    let mut unusable = Vec::new();
    let mut in_use = 0;
    for (id, value) in (0..WORKER_IDS).zip(values) {
        let text = as_string(value).unwrap_or_default();
        if text.is_empty() {
            unusable.push(scripts::last_ts_key(ns, id));
            continue;
        }
        in_use += 1;
        let name = HolderInfo::parse(&text)
            .map(|h| h.node)
            .unwrap_or_else(|| format!("unreadable ({})", scripts::lease_key(ns, id)));
        if !holders.contains(&name) {
            holders.push(name);
        }
    }
    holders.sort();
    WorkerIdError::NoFreeId {
        in_use,
        total: usize::from(WORKER_IDS),
        holders,
        unusable,
    }
}

pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn as_u64(v: &Value) -> Option<u64> {
    as_i64(v).and_then(|i| u64::try_from(i).ok())
}

pub(crate) fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

pub(crate) fn as_array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        other => vec![other],
    }
}
