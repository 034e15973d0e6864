//! Reading a journal back: parse its lines (a truncated last line is told
//! apart from a damaged one), read a file, repair a cut last line.

use super::journal::{Entry, Event, JournalError, UnknownEvent, io};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fs::OpenOptions;
use std::path::Path;

/// A journal line before its event is read: [`Entry`] reads through it.
#[derive(Deserialize)]
pub struct RawEntry {
    seq: u64,
    at_ms: u64,
    run_id: String,
    #[serde(flatten)]
    event: Map<String, Value>,
}

impl TryFrom<RawEntry> for Entry {
    type Error = serde_json::Error;

    /// A known event with a wrong field is an error; an `event` name this
    /// version does not know is [`Event::Unknown`] (and a warning).
    fn try_from(raw: RawEntry) -> Result<Self, Self::Error> {
        let value = Value::Object(raw.event);
        let event = match Event::deserialize(&value) {
            Ok(event) => event,
            Err(e) => {
                let Value::Object(mut fields) = value else {
                    return Err(e);
                };
                let name = match fields.remove("event") {
                    Some(Value::String(name)) if !Event::NAMES.contains(&name.as_str()) => name,
                    _ => return Err(e),
                };
                tracing::warn!(
                    event = %name,
                    run_id = %raw.run_id,
                    seq = raw.seq,
                    "journal event this version does not know: counted in the run, not folded"
                );
                Event::Unknown(UnknownEvent {
                    event: name,
                    fields,
                })
            }
        };
        Ok(Entry {
            seq: raw.seq,
            at_ms: raw.at_ms,
            run_id: raw.run_id,
            event,
        })
    }
}

/// Parse a journal's text. `lenient`: a truncated last line is dropped and
/// reported in the second value instead of failing.
pub fn parse(
    path: &Path,
    text: &str,
    lenient: bool,
) -> Result<(Vec<Entry>, Option<usize>), JournalError> {
    let mut entries = Vec::new();
    let ends_with_newline = text.ends_with('\n');
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    let last = lines.len();
    for (i, raw) in lines.iter().enumerate() {
        let line_no = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Entry>(raw) {
            Ok(e) => entries.push(e),
            Err(err) => {
                if line_no == last && !ends_with_newline {
                    if lenient {
                        return Ok((entries, Some(line_no)));
                    }
                    return Err(JournalError::Truncated {
                        path: path.to_path_buf(),
                        line: line_no,
                    });
                }
                return Err(JournalError::Garbage {
                    path: path.to_path_buf(),
                    line: line_no,
                    reason: err.to_string(),
                });
            }
        }
    }
    Ok((entries, None))
}

/// Read a journal strictly (a missing file is empty).
pub fn read(path: &Path) -> Result<Vec<Entry>, JournalError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text, false).map(|(e, _)| e),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(path, "read it")(e)),
    }
}

/// Drop a truncated last line. Returns the line dropped, if any. A garbage
/// line elsewhere is still an error (this does not guess).
pub fn repair(path: &Path) -> Result<Option<usize>, JournalError> {
    let text = std::fs::read_to_string(path).map_err(io(path, "read it"))?;
    let (_, dropped) = parse(path, &text, true)?;
    if dropped.is_some() {
        let keep = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path, "open it"))?;
        file.set_len(keep as u64).map_err(io(path, "truncate it"))?;
        file.sync_all().map_err(io(path, "fsync it"))?;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name in [`Event::NAMES`] is one serde knows: without its fields
    /// it is a damaged line, never an unknown event (a misspelt name would
    /// read as unknown).
    #[test]
    fn every_known_name_is_a_known_event() {
        for name in Event::NAMES {
            let line = format!(r#"{{"seq":1,"at_ms":1,"run_id":"r","event":"{name}"}}"#);
            assert!(serde_json::from_str::<Entry>(&line).is_err(), "{name}");
        }
        let line = r#"{"seq":1,"at_ms":1,"run_id":"r","event":"later_thing","x":[1]}"#;
        let entry: Entry = serde_json::from_str(line).unwrap();
        assert_eq!(entry.event.name(), "later_thing");
        assert_eq!(
            serde_json::to_value(&entry).unwrap(),
            serde_json::from_str::<Value>(line).unwrap(),
            "written back as it was read"
        );
    }
}
