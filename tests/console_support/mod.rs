//! Helpers for the console tests: an app fed with sample snapshots, drawn
//! into ratatui's TestBackend, and a ClusterActions that records its calls.
#![allow(dead_code)]

use clusterops::console::action::Action;
use clusterops::console::app::{App, AppOptions};
use clusterops::console::sample::TAKEN_AT_MS;
use clusterops::console::theme::Theme;
use clusterops::inspect::{Snapshot, Source};
use clusterops::operate::{ClusterActions, DeadLetter};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use parking_lot::Mutex;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// "Now" in every test: 3 s after the samples were taken.
pub const NOW_MS: u64 = TAKEN_AT_MS + 3_000;

/// An app and the receiving end of its outbox (operation outcomes).
pub struct Harness {
    pub app: App,
    pub outbox: mpsc::UnboundedReceiver<Action>,
    pub refresh: Arc<Notify>,
}

/// Options for a test app.
pub fn options(read_only: bool) -> AppOptions {
    AppOptions {
        read_only,
        theme: Theme::default_colors(),
        source_label: "snapshot tests/fixtures/cluster.json".into(),
        refresh: Duration::from_secs(2),
    }
}

/// An app with `actions` (None: snapshot mode) that has received `snaps` in order.
pub fn harness(
    snaps: Vec<Snapshot>,
    read_only: bool,
    actions: Option<Arc<dyn ClusterActions>>,
) -> Harness {
    let (tx, rx) = mpsc::unbounded_channel();
    let refresh = Arc::new(Notify::new());
    let mut app = App::new(options(read_only), actions, tx, refresh.clone());
    app.set_now(NOW_MS);
    for s in snaps {
        app.dispatch(Some(Action::Fetched(Box::new(s))));
    }
    Harness {
        app,
        outbox: rx,
        refresh,
    }
}

/// A snapshot-mode app showing `snap` alone.
pub fn snapshot_app(snap: Snapshot) -> App {
    harness(vec![snap], true, None).app
}

/// `snap` preceded by 30 earlier snapshots, 2 s apart, whose queue depth
/// and stream lag vary, so the sparklines have a history; in the first ten
/// the last node had not joined yet, so the Events view has something.
pub fn with_history(snap: Snapshot) -> Vec<Snapshot> {
    let mut out = Vec::new();
    for i in (1..=30u64).rev() {
        let mut s = snap.clone();
        s.taken_at_ms -= i * 2_000;
        let wave = (i * 7) % 11;
        if let Source::Ok(queues) = &mut s.queues {
            for q in queues.iter_mut() {
                q.waiting = q.waiting * wave / 10;
            }
        }
        if let Source::Ok(streams) = &mut s.streams {
            for r in streams.iter_mut().flat_map(|s| s.readers.iter_mut()) {
                r.lag = r.lag * ((i * 3) % 7) / 6;
            }
        }
        if i > 20
            && let Source::Ok(nodes) = &mut s.nodes
            && nodes.len() >= 3
            && let Some(last) = nodes.pop()
            && let Source::Ok(leases) = &mut s.leases
        {
            for l in leases
                .iter_mut()
                .filter(|l| l.holder.as_deref() == Some(last.id.node_id.as_str()))
            {
                (l.holder, l.holder_live, l.ttl_left_ms, l.acquired_at_ms) =
                    (None, false, None, None);
            }
        }
        out.push(s);
    }
    out.push(snap);
    out
}

/// Draw the app into a `w` x `h` test terminal.
pub fn draw(app: &mut App, w: u16, h: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| app.draw(f)).unwrap();
    terminal.backend().buffer().clone()
}

/// The screen as text, one line per row, trailing spaces removed.
pub fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        let mut skip = 0;
        for x in 0..area.width {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let sym = buf[(x, y)].symbol();
            line.push_str(sym);
            skip = unicode_width(sym).saturating_sub(1);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn unicode_width(s: &str) -> usize {
    ratatui::text::Span::raw(s).width()
}

/// Draw and return the text.
pub fn screen(app: &mut App, w: u16, h: u16) -> String {
    text(&draw(app, w, h))
}

/// A key without modifiers.
pub fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// Press each character of `s`.
pub fn type_str(app: &mut App, s: &str) {
    for c in s.chars() {
        app.press(key(KeyCode::Char(c)));
    }
}

/// A ClusterActions that records every call and answers with fixed outcomes.
#[derive(Default)]
pub struct Recording {
    pub calls: Mutex<Vec<String>>,
}

impl Recording {
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().clone()
    }

    fn record(&self, call: String) -> Result<String, String> {
        self.calls.lock().push(call);
        Ok("done".into())
    }
}

#[async_trait::async_trait]
impl ClusterActions for Recording {
    async fn set_maintenance(&self, reason: &str) -> Result<String, String> {
        self.record(format!("set_maintenance({reason})"))
    }
    async fn clear_maintenance(&self) -> Result<String, String> {
        self.record("clear_maintenance()".into())
    }
    async fn force_release_lock(&self, name: &str, token: u64) -> Result<String, String> {
        self.calls
            .lock()
            .push(format!("force_release_lock({name}, {token})"));
        Ok(format!("released {name}"))
    }
    async fn free_lease(&self, worker_id: u8, holder: &str) -> Result<String, String> {
        self.record(format!("free_lease({worker_id}, {holder})"))
    }
    async fn requeue_dead_letters(&self, queue: &str) -> Result<String, String> {
        self.record(format!("requeue_dead_letters({queue})"))
    }
    async fn purge_dead_letters(&self, queue: &str) -> Result<String, String> {
        self.calls
            .lock()
            .push(format!("purge_dead_letters({queue})"));
        Err("queue is locked by another operator".into())
    }
    async fn pause_queue(&self, queue: &str, reason: &str) -> Result<String, String> {
        self.record(format!("pause_queue({queue}, {reason})"))
    }
    async fn resume_queue(&self, queue: &str) -> Result<String, String> {
        self.record(format!("resume_queue({queue})"))
    }
    async fn list_dead_letters(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, String> {
        self.calls
            .lock()
            .push(format!("list_dead_letters({queue}, {limit})"));
        Ok((1..=3)
            .map(|i| DeadLetter {
                id: format!("msg-{i:03}"),
                age_ms: Some(i * 60_000),
                attempts: Some(5),
                reason: "SMTP 550 mailbox unavailable".into(),
            })
            .collect())
    }
}
