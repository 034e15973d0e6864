//! Whether a Redis server keeps its data across a restart: its AOF
//! (`aof_enabled` of `INFO persistence`) and its RDB save points (`CONFIG
//! GET save`, which an ACL may refuse or a renamed command may not
//! answer). Read beside `INFO` on the servers that hold locks or worker
//! IDs; the `redis-persistence` check ([`super::checks_persistence`])
//! and `status --json` (`servers[].persistence`) show it.

use redis::Value;
use serde::{Deserialize, Serialize};

/// A Redis server's persistence, as far as it could be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persistence {
    /// `aof_enabled` of `INFO persistence`; `None` when `INFO` did not say.
    pub aof: Option<bool>,
    /// The RDB save points of `CONFIG GET save` (`3600 1 300 100`; empty:
    /// none); `None` when they could not be read.
    pub rdb_save: Option<String>,
    /// Why the save points could not be read (`CONFIG` refused by an ACL,
    /// or renamed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdb_save_error: Option<String>,
    /// Whether a restart keeps the data (AOF on, or at least one save
    /// point); `None` when that could not be determined.
    pub keeps_data: Option<bool>,
}

impl Persistence {
    /// From the server's `INFO` text and its `CONFIG GET save` answer.
    pub fn new(info: &str, save: Result<String, String>) -> Self {
        let aof = info
            .lines()
            .find_map(|l| l.trim_end_matches('\r').strip_prefix("aof_enabled:"))
            .map(|v| v.trim() != "0");
        let (rdb_save, rdb_save_error) = match save {
            Ok(points) => (Some(points.trim().to_string()), None),
            Err(e) => (None, Some(e)),
        };
        let keeps_data = match (aof, rdb_save.as_deref()) {
            (Some(true), _) => Some(true),
            (_, Some(points)) if !points.is_empty() => Some(true),
            (Some(false), Some(_)) => Some(false),
            _ => None,
        };
        Self {
            aof,
            rdb_save,
            rdb_save_error,
            keeps_data,
        }
    }

    /// What it keeps, in a few words: `AOF`, `RDB save 60 1`, `AOF and RDB
    /// save 3600 1`, `no AOF, no RDB save points`, or why that is unknown.
    pub fn describe(&self) -> String {
        let rdb = self
            .rdb_save
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(|p| format!("RDB save {p}"));
        match (self.aof, rdb, &self.rdb_save_error) {
            (Some(true), Some(rdb), _) => format!("AOF and {rdb}"),
            (Some(true), None, _) => "AOF".to_string(),
            (_, Some(rdb), _) => rdb,
            (Some(false), None, None) => "no AOF, no RDB save points".to_string(),
            (aof, None, why) => format!(
                "{}, RDB save points unknown ({})",
                match aof {
                    Some(false) => "AOF off",
                    _ => "AOF unknown",
                },
                why.as_deref().unwrap_or("not read")
            ),
        }
    }

    /// Several servers (the masters of a Redis Cluster) as one: the first
    /// that keeps nothing, else the first that is unknown, else the first.
    pub fn worst<'a>(all: impl IntoIterator<Item = &'a Persistence>) -> Option<Persistence> {
        let all: Vec<&Persistence> = all.into_iter().collect();
        all.iter()
            .find(|p| p.keeps_data == Some(false))
            .or_else(|| all.iter().find(|p| p.keeps_data.is_none()))
            .or_else(|| all.first())
            .map(|p| (*p).clone())
    }
}

/// The save points of a `CONFIG GET save` reply, or why there are none to
/// read (the server's error, e.g. `NOPERM …` or `ERR unknown command`).
pub fn parse_config_save(reply: &Value) -> Result<String, String> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    };
    let found = match reply {
        Value::Array(parts) => parts
            .chunks_exact(2)
            .find(|kv| text(&kv[0]).as_deref() == Some("save"))
            .and_then(|kv| text(&kv[1])),
        Value::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some("save"))
            .and_then(|(_, v)| text(v)),
        Value::ServerError(e) => {
            let line = format!("{} {}", e.code(), e.details().unwrap_or(""));
            return Err(format!(
                "CONFIG GET save refused: {}",
                line.lines().next().unwrap_or("").trim()
            ));
        }
        _ => None,
    };
    found.ok_or_else(|| format!("CONFIG GET save: unexpected reply {reply:?}"))
}

/// Append `CONFIG GET save`.
pub fn add_config_save(pipe: &mut redis::Pipeline) {
    pipe.cmd("CONFIG").arg("GET").arg("save");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn aof_or_a_save_point_keeps_the_data() {
        let off = "# Persistence\r\naof_enabled:0\r\n";
        let on = "# Persistence\r\naof_enabled:1\r\n";
        let none = Persistence::new(off, Ok(String::new()));
        assert_eq!(none.keeps_data, Some(false));
        assert_eq!(none.describe(), "no AOF, no RDB save points");
        let aof = Persistence::new(on, Ok(String::new()));
        assert_eq!(aof.keeps_data, Some(true));
        assert_eq!(aof.describe(), "AOF");
        let rdb = Persistence::new(off, Ok("60 1".into()));
        assert_eq!(rdb.keeps_data, Some(true));
        assert_eq!(rdb.describe(), "RDB save 60 1");
        // AOF on is enough even when CONFIG is refused.
        let refused = Err("CONFIG GET save refused: NOPERM".to_string());
        assert_eq!(Persistence::new(on, refused.clone()).keeps_data, Some(true));
        let unknown = Persistence::new(off, refused);
        assert_eq!(unknown.keeps_data, None);
        assert_eq!(
            unknown.describe(),
            "AOF off, RDB save points unknown (CONFIG GET save refused: NOPERM)"
        );
        assert_eq!(
            Persistence::new("redis_version:7.0.15\r\n", Ok(String::new())).keeps_data,
            None
        );
        assert_eq!(
            Persistence::worst([&aof, &none, &rdb]).map(|p| p.keeps_data),
            Some(Some(false))
        );
        assert_eq!(Persistence::worst([&aof, &rdb]), Some(aof.clone()));
        assert_eq!(Persistence::worst([]), None);
    }

    #[test]
    fn config_get_save_replies_are_parsed_and_refusals_are_errors() {
        let resp2 = Value::Array(vec![bulk("save"), bulk("3600 1 300 100")]);
        assert_eq!(parse_config_save(&resp2).unwrap(), "3600 1 300 100");
        let resp3 = Value::Map(vec![(bulk("save"), bulk(""))]);
        assert_eq!(parse_config_save(&resp3).unwrap(), "");
        let denied = redis::parse_redis_value(
            b"-NOPERM User ro has no permissions to run the 'config|get' command\r\n",
        )
        .unwrap();
        let e = parse_config_save(&denied).unwrap_err();
        assert!(
            e.starts_with("CONFIG GET save refused: NOPERM User ro"),
            "{e}"
        );
        let renamed =
            redis::parse_redis_value(b"-ERR unknown command 'CONFIG', with args\r\n").unwrap();
        assert!(
            parse_config_save(&renamed)
                .unwrap_err()
                .contains("ERR unknown command")
        );
        assert!(parse_config_save(&Value::Array(vec![])).is_err());
        assert!(parse_config_save(&Value::Nil).is_err());
    }
}
