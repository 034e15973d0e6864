//! The runbook run the console shows: read on its own task (never while
//! drawing) from the Redis mirror of the journal (`<ns>:runbook:journal`,
//! XRANGE only: it works as a read-only ACL user) and from the local journal
//! file when there is one, rebuilt into a [`RunView`] and sent to the app as
//! [`Action::RunFetched`].

use crate::adapters::redis_conn;
use crate::adapters::redis_conn::SharedConn;
use crate::clock::now_ms;
use crate::config::{Config, Namespace, SecretUrl};
use crate::console::action::Action;
use crate::runbook::journal::{self, Entry, Event};
use crate::runbook::view::{RunView, last_run};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Stream entries read per XRANGE call.
const PAGE: usize = 500;

/// What the Runbook view draws: the current or last run, where it was read,
/// and why a source could not be read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunPane {
    /// The run, if any was found.
    pub run: Option<RunView>,
    /// Where the run shown was read (`journal FILE`, `stream KEY`).
    pub from: String,
    /// Every place looked at, for the "no run" message.
    pub looked_at: Vec<String>,
    /// A source that could not be read (one line, no secret).
    pub error: Option<String>,
    /// Unix ms of the read.
    pub fetched_at_ms: u64,
}

/// Reads the run from the mirror stream and the local journal.
pub struct RunFeed {
    redis: Option<(SecretUrl, String)>,
    conn: Option<SharedConn>,
    last_id: String,
    stream: Vec<Entry>,
    journal: Option<PathBuf>,
    file_stamp: Option<(u64, std::time::SystemTime)>,
    file_entries: Vec<Entry>,
}

impl RunFeed {
    /// Follow the cluster of `config` (its coordination Redis, if any) and
    /// the local journal at `journal`, if given.
    pub fn new(config: Option<&Config>, journal: Option<PathBuf>) -> Self {
        let redis = config.and_then(|c| {
            c.coordination_redis()
                .map(|(_, url)| (url.clone(), journal::mirror_key(&c.namespace)))
        });
        Self::with(redis, journal)
    }

    /// Follow the mirror stream of `ns` on the Redis at `url` (any user
    /// that may XRANGE), and the local journal at `journal`, if given.
    pub fn on(url: SecretUrl, ns: &Namespace, journal: Option<PathBuf>) -> Self {
        Self::with(Some((url, journal::mirror_key(ns))), journal)
    }

    fn with(redis: Option<(SecretUrl, String)>, journal: Option<PathBuf>) -> Self {
        Self {
            redis,
            conn: None,
            last_id: "-".to_string(),
            stream: Vec::new(),
            journal,
            file_stamp: None,
            file_entries: Vec::new(),
        }
    }

    /// Read what is new and rebuild the run.
    pub async fn fetch(&mut self) -> RunPane {
        let mut pane = RunPane {
            fetched_at_ms: now_ms(),
            ..RunPane::default()
        };
        let mut errors = Vec::new();
        if let Some(path) = &self.journal {
            pane.looked_at.push(format!("journal {}", path.display()));
            if let Err(e) = self.read_file().await {
                errors.push(e);
            }
        }
        if let Some((_, key)) = &self.redis {
            pane.looked_at.push(format!("stream {key}"));
            if let Err(e) = self.read_stream().await {
                errors.push(e);
            }
        }
        let from_file = last_run(&self.file_entries);
        let from_stream = last_run(&self.stream);
        let (run, from) = match (from_file, from_stream) {
            (Some(f), Some(s)) => {
                let file_wins = if f.run_id == s.run_id {
                    f.entries >= s.entries
                } else {
                    f.started_at_ms >= s.started_at_ms
                };
                if file_wins {
                    (Some(f), pane.looked_at.first().cloned())
                } else {
                    (Some(s), pane.looked_at.last().cloned())
                }
            }
            (Some(f), None) => (Some(f), pane.looked_at.first().cloned()),
            (None, Some(s)) => (Some(s), pane.looked_at.last().cloned()),
            (None, None) => (None, None),
        };
        pane.run = run;
        pane.from = from.unwrap_or_default();
        if !errors.is_empty() {
            pane.error = Some(errors.join("; "));
        }
        pane
    }

    async fn read_file(&mut self) -> Result<(), String> {
        let Some(path) = self.journal.clone() else {
            return Ok(());
        };
        let meta = match tokio::fs::metadata(&path).await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.file_entries.clear();
                self.file_stamp = None;
                return Ok(());
            }
            Err(e) => return Err(format!("journal {}: {e}", path.display())),
        };
        let stamp = (meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH));
        if self.file_stamp == Some(stamp) {
            return Ok(());
        }
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| format!("journal {}: {e}", path.display()))?;
        // Lenient: a line being written right now is left for the next read.
        let (entries, _) = journal::parse(&path, &text, true).map_err(|e| e.to_string())?;
        self.file_entries = from_last_start(entries);
        self.file_stamp = Some(stamp);
        Ok(())
    }

    async fn read_stream(&mut self) -> Result<(), String> {
        let Some((url, key)) = self.redis.clone() else {
            return Ok(());
        };
        if self.conn.is_none() {
            let conn = redis_conn::connect(&url)
                .await
                .map_err(|e| format!("stream {key}: {e}"))?;
            self.conn = Some(conn);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        loop {
            let start = if self.last_id == "-" {
                "-".to_string()
            } else {
                format!("({}", self.last_id)
            };
            let page: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                .arg(&key)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(PAGE)
                .query_async(conn)
                .await
                .map_err(|e| format!("stream {key} on {}: {e}", url.masked()))?;
            let n = page.len();
            for (id, fields) in page {
                self.last_id = id;
                let Some((_, line)) = fields.iter().find(|(f, _)| f == "entry") else {
                    continue;
                };
                match serde_json::from_str::<Entry>(line) {
                    Ok(e) => {
                        if matches!(e.event, Event::RunStarted { .. }) {
                            self.stream.clear();
                        }
                        self.stream.push(e);
                    }
                    Err(e) => {
                        tracing::warn!(%key, id = %self.last_id, error = %e, "a mirror entry is not a journal event");
                    }
                }
            }
            if n < PAGE {
                return Ok(());
            }
        }
    }
}

/// The entries from the last run start on.
fn from_last_start(mut entries: Vec<Entry>) -> Vec<Entry> {
    if let Some(i) = entries
        .iter()
        .rposition(|e| matches!(e.event, Event::RunStarted { .. }))
    {
        entries.drain(..i);
    }
    entries
}

/// Read the run now, then every `every`, on its own task; send
/// [`Action::RunFetched`] when it changed. Ends when the receiver is dropped.
pub fn spawn_run_poller(
    mut feed: RunFeed,
    every: Duration,
    tx: mpsc::UnboundedSender<Action>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<RunPane> = None;
        loop {
            let mut pane = feed.fetch().await;
            let changed = last.as_ref().is_none_or(|l| {
                let mut l = l.clone();
                l.fetched_at_ms = pane.fetched_at_ms;
                l != pane
            });
            if changed {
                last = Some(pane.clone());
                pane.fetched_at_ms = now_ms();
                if tx.send(Action::RunFetched(Box::new(pane))).is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = tx.closed() => return,
            }
        }
    })
}
