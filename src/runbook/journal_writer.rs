//! The journal's writer: appends one JSON line per event to
//! `journal.jsonl`. Every line is written before the runbook goes on (a
//! killed runbook loses none); the events that decide a resume -- run and
//! step starts and ends, decisions, the backup, rollback, pause,
//! interruption -- are also fsynced before it goes on, while output lines
//! are fsynced within a second by a background thread, off the runtime's
//! threads (a crash of the machine may lose the last second of output,
//! never a step event).

use super::journal::{Entry, Event, JournalError, io, read};
use crate::clock::now_ms;
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How long an output line may wait for its fsync.
pub const OUTPUT_SYNC: Duration = Duration::from_secs(1);

/// Whether an event is fsynced before the runbook goes on: all but output
/// lines (an event added later is, by default).
fn is_boundary(event: &Event) -> bool {
    !matches!(event, Event::Output { .. })
}

/// The open file, the last seq, and whether it is closed for good
/// ([`Journal::append_last`]).
#[derive(Debug)]
struct Tail {
    file: File,
    seq: u64,
    closed: bool,
}

/// An open journal, appending (see the module's text for what is fsynced
/// when).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    tail: Mutex<Tail>,
    /// Output written since the last fsync.
    unsynced: Arc<AtomicBool>,
    /// Dropped with the journal: the syncer then syncs once more and ends.
    _stop_syncer: mpsc::Sender<()>,
}

impl Journal {
    /// Open (or create) the journal and read what it holds. A truncated last
    /// line or a garbage line is an error naming the file and line.
    pub fn open(path: &Path) -> Result<(Journal, Vec<Entry>), JournalError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(path, "create its folder"))?;
        }
        let entries = read(path)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(path, "open it for appending"))?;
        // A complete last line without its newline (killed between the two
        // writes): finish it so the next entry starts on its own line.
        let len = file.metadata().map_err(io(path, "stat it"))?.len();
        if len > 0 {
            let text = std::fs::read(path).map_err(io(path, "read it"))?;
            if text.last() != Some(&b'\n') {
                file.write_all(b"\n").map_err(io(path, "append to it"))?;
            }
        }
        let seq = entries.last().map(|e| e.seq).unwrap_or(0);
        let unsynced = Arc::new(AtomicBool::new(false));
        let syncer = file.try_clone().map_err(io(path, "open it for fsync"))?;
        let stop = spawn_syncer(path, syncer, Arc::clone(&unsynced))?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                tail: Mutex::new(Tail {
                    file,
                    seq,
                    closed: false,
                }),
                unsynced,
                _stop_syncer: stop,
            },
            entries,
        ))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one event (fsynced unless it is an output line); returns the
    /// entry and its JSON line.
    pub fn append(&self, run_id: &str, event: Event) -> Result<(Entry, String), JournalError> {
        self.append_locked(&mut self.tail.lock(), run_id, event)
    }

    fn append_locked(
        &self,
        tail: &mut Tail,
        run_id: &str,
        event: Event,
    ) -> Result<(Entry, String), JournalError> {
        if tail.closed {
            return Err(JournalError::Io {
                path: self.path.clone(),
                action: "append to it",
                source: std::io::Error::other("the journal is closed: the runbook is exiting"),
            });
        }
        let sync = is_boundary(&event);
        let entry = Entry {
            seq: tail.seq + 1,
            at_ms: now_ms(),
            run_id: run_id.to_string(),
            event,
        };
        let line = serde_json::to_string(&entry).map_err(|e| JournalError::Io {
            path: self.path.clone(),
            action: "encode an event",
            source: std::io::Error::other(e),
        })?;
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        // One write call for the whole line: an interruption between two
        // awaits never cuts it.
        tail.file
            .write_all(&bytes)
            .map_err(io(&self.path, "append to it"))?;
        if sync {
            // Also makes the output lines before it durable.
            self.unsynced.store(false, Ordering::Release);
            tail.file.sync_data().map_err(io(&self.path, "fsync it"))?;
        } else {
            self.unsynced.store(true, Ordering::Release);
        }
        tail.seq = entry.seq;
        Ok((entry, line))
    }

    /// Append `event` (if any) as the last line and refuse every later
    /// append: the process is about to exit at once (a second Ctrl-C), and
    /// no line may be cut by the exit. Waits for an append in progress.
    pub fn append_last(&self, run_id: &str, event: Option<Event>) -> Result<(), JournalError> {
        let mut tail = self.tail.lock();
        let result = match event {
            Some(e) => self.append_locked(&mut tail, run_id, e).map(|_| ()),
            None => Ok(()),
        };
        if self.unsynced.swap(false, Ordering::AcqRel) {
            let _ = tail.file.sync_data();
        }
        tail.closed = true;
        result
    }
}

/// The thread that fsyncs output lines, on its own handle of the file so
/// that appends never wait for it: every [`OUTPUT_SYNC`] if anything was
/// written unsynced, and once more when the journal is dropped.
fn spawn_syncer(
    path: &Path,
    file: File,
    unsynced: Arc<AtomicBool>,
) -> Result<mpsc::Sender<()>, JournalError> {
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("journal-fsync".to_string())
        .spawn(move || {
            loop {
                let done = matches!(
                    stopped.recv_timeout(OUTPUT_SYNC),
                    Err(mpsc::RecvTimeoutError::Disconnected)
                );
                if unsynced.swap(false, Ordering::AcqRel)
                    && let Err(e) = file.sync_data()
                {
                    // The next step event's fsync reports it to the run.
                    tracing::warn!(error = %e, "journal: fsync of output lines failed");
                    unsynced.store(true, Ordering::Release);
                }
                if done {
                    return;
                }
            }
        })
        .map_err(io(path, "start its fsync thread"))?;
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::plan::StepKind;

    fn output(line: &str) -> Event {
        Event::Output {
            step: StepKind::Preflight,
            line: line.to_string(),
        }
    }

    #[test]
    fn output_lines_are_written_at_once_and_synced_within_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c").join("journal.jsonl");
        let (journal, entries) = Journal::open(&path).unwrap();
        assert!(entries.is_empty());
        journal.append("r1", output("one")).unwrap();
        // Written: another reader (a resume after kill -9) sees it now.
        assert_eq!(read(&path).unwrap().len(), 1);
        assert!(journal.unsynced.load(Ordering::Acquire));
        // The syncer takes it within OUTPUT_SYNC.
        let deadline = std::time::Instant::now() + OUTPUT_SYNC * 5;
        while journal.unsynced.load(Ordering::Acquire) {
            assert!(std::time::Instant::now() < deadline, "never synced");
            std::thread::sleep(Duration::from_millis(20));
        }
        // A step event is synced in the call itself.
        journal.append("r1", output("two")).unwrap();
        journal
            .append(
                "r1",
                Event::RunPaused {
                    after: StepKind::Preflight,
                },
            )
            .unwrap();
        assert!(!journal.unsynced.load(Ordering::Acquire));
        let seqs: Vec<u64> = read(&path).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
    }

    #[test]
    fn a_closed_journal_refuses_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let (journal, _) = Journal::open(&path).unwrap();
        journal.append("r1", output("one")).unwrap();
        journal.append_last("r1", None).unwrap();
        assert!(!journal.unsynced.load(Ordering::Acquire));
        assert!(journal.append("r1", output("two")).is_err());
        drop(journal);
        let (_, entries) = Journal::open(&path).unwrap();
        assert_eq!(entries.len(), 1);
    }
}
