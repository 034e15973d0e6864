//! Values other nodes (or anything else) wrote in Redis: registry records,
//! the maintenance flag, worker-ID lease holders, lock values, versions,
//! snowflake IDs. Each is read or reported unreadable, never a panic.
#![no_main]

use clusterops::adapters::lock::HolderValue;
use clusterops::adapters::snowflake;
use clusterops::adapters::worker_id::HolderInfo;
use clusterops::node::maintenance;
use clusterops::node::registry::parse_entry;
use clusterops::node::version::AppVersion;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (Vec<u8>, i64)| {
    let (bytes, ttl) = data;
    let value = redis::Value::BulkString(bytes.clone());
    let _ = parse_entry("ns:node:x", &value, &redis::Value::Int(ttl));
    let _ = maintenance::parse("ns:maintenance", &value);
    let _ = HolderValue::parse(&bytes);
    if let Ok(text) = std::str::from_utf8(&bytes) {
        let _ = HolderInfo::parse(text);
        let _ = AppVersion::parse(text);
        let _ = snowflake::decode_str(text);
    }
});
