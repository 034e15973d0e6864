//! The console's state and loop: applies [`Action`]s one at a time (keys,
//! snapshots, operation outcomes, ticks) and redraws after each, from the
//! last snapshot received; nothing here waits on the network.

use crate::clock::now_ms;
use crate::console::action::Action;
use crate::console::changes::{self, Event as ClusterEvent, EventLog, Level};
use crate::console::history::History;
use crate::console::ops::Operation;
use crate::console::runbook_driver::{RunDriver, RunbookOp};
use crate::console::theme::Theme;
use crate::console::tui::{Event, Tui};
use crate::console::verdict::{self, Assessment};
use crate::console::views::{self, Ctx, View, ViewId};
use crate::console::{input, ui};
use crate::inspect::{Snapshot, Verdict};
use crate::operate::ClusterActions;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// How often the screen is redrawn when nothing happens (ages move).
pub const TICK: Duration = Duration::from_secs(1);

/// What the app is doing with the keyboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Keys go to the view, then to the global keys.
    Normal,
    /// Typing a `/` filter (applied as typed).
    Filter,
    /// Typing a `:` view name.
    Command(String),
    /// The help overlay.
    Help,
    /// Typing the reason for maintenance.
    Prompt(String),
    /// The confirmation dialog of an operation.
    Confirm(Operation),
    /// Typing the version to upgrade to.
    Version(String),
    /// The confirmation dialog of a runbook operation, with what it does.
    RunbookConfirm(RunbookOp, Vec<String>),
    /// The runbook driven from here asks; one of its choices answers.
    RunbookPrompt(crate::runbook::Prompt),
}

/// How the app was started.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// No action is offered.
    pub read_only: bool,
    /// Styles.
    pub theme: Theme,
    /// Where snapshots come from, for the header (`snapshot FILE`, `live`).
    pub source_label: String,
    /// The refresh interval, for the header.
    pub refresh: Duration,
}

/// The console's whole state.
pub struct App {
    pub(crate) view: ViewId,
    pub(crate) views: Vec<Box<dyn View>>,
    pub(crate) mode: Mode,
    pub(crate) snapshot: Option<Snapshot>,
    /// Bumped with each snapshot received (views key their caches on it).
    pub(crate) snapshot_seq: u64,
    pub(crate) assessment: Assessment,
    pub(crate) history: History,
    pub(crate) backlog: crate::console::backlog::BacklogHistory,
    pub(crate) events: EventLog,
    /// The last fetch failure while it lasts: reason and unix ms.
    pub(crate) fetch_error: Option<(String, u64)>,
    pub(crate) now_ms: u64,
    pub(crate) status: Option<String>,
    pub(crate) options: AppOptions,
    /// The upgrade run shown in the Runbook view, once read.
    pub(crate) run: Option<crate::console::run_feed::RunPane>,
    /// Drives upgrades from the Runbook view (`--runbook`).
    pub(crate) runbook: Option<Arc<RunDriver>>,
    /// A line the Runbook view shows about upgrades here (the demo's).
    pub(crate) runbook_hint: Option<String>,
    /// Several clusters (`--env-file` more than once, `--contexts`).
    pub(crate) contexts: Option<crate::console::contexts::Contexts>,
    /// The live cluster's configuration, for the checks that read it.
    pub(crate) checks_config: Option<crate::config::Config>,
    actions: Option<Arc<dyn ClusterActions>>,
    pub(crate) outbox: mpsc::UnboundedSender<Action>,
    refresh: Arc<Notify>,
    quit: bool,
}

impl App {
    /// A console on no data yet. `actions` is `None` in snapshot mode; with
    /// `options.read_only` it is used only to look (the dead-letter list).
    /// Outcomes of spawned work come back through `outbox`; `refresh` wakes
    /// the poller on `r`.
    pub fn new(
        options: AppOptions,
        actions: Option<Arc<dyn ClusterActions>>,
        outbox: mpsc::UnboundedSender<Action>,
        refresh: Arc<Notify>,
    ) -> Self {
        Self {
            view: ViewId::Overview,
            views: views::all_views(),
            mode: Mode::Normal,
            snapshot: None,
            snapshot_seq: 0,
            assessment: Assessment {
                verdict: Verdict::Down,
                problems: vec![],
            },
            history: History::default(),
            backlog: Default::default(),
            events: EventLog::default(),
            fetch_error: None,
            now_ms: now_ms(),
            status: None,
            options,
            run: None,
            runbook: None,
            runbook_hint: None,
            contexts: None,
            checks_config: None,
            actions,
            outbox,
            refresh,
            quit: false,
        }
    }

    /// Run every check of `config` on each snapshot (live mode), not only
    /// the snapshot-only ones.
    pub fn set_checks_config(&mut self, config: crate::config::Config) {
        self.checks_config = Some(config);
    }

    /// Show `hint` in the Runbook view: how upgrades work in this console
    /// (the demo's: the prefilled version, the version that fails).
    pub fn set_runbook_hint(&mut self, hint: impl Into<String>) {
        self.runbook_hint = Some(hint.into());
    }

    /// Show several clusters, switched with `:ctx`: the first context is
    /// shown; its configuration's checks run on its snapshots.
    pub fn set_contexts(&mut self, contexts: crate::console::contexts::Contexts) {
        self.checks_config = contexts.current().config.clone();
        self.contexts = Some(contexts);
    }

    /// The name of the context shown, when there are contexts.
    pub fn context_name(&self) -> Option<&str> {
        self.contexts.as_ref().map(|c| c.current().name.as_str())
    }

    /// Whether keys that change the cluster are offered.
    pub fn actions_enabled(&self) -> bool {
        !self.options.read_only && self.actions.is_some()
    }

    /// Whether this console drives upgrades (`--runbook`, not read-only).
    pub fn runbook_enabled(&self) -> bool {
        !self.options.read_only && self.runbook.is_some()
    }

    /// Whether the action keys of the view shown are offered.
    pub fn view_actions_enabled(&self) -> bool {
        if self.view == ViewId::Runbook {
            self.runbook_enabled()
        } else {
            self.actions_enabled()
        }
    }

    /// The upgrade run shown in the Runbook view, once read.
    pub fn run_pane(&self) -> Option<&crate::console::run_feed::RunPane> {
        self.run.as_ref()
    }

    /// Whether read-only lookups (the dead-letter list) can be made.
    pub fn lookups_enabled(&self) -> bool {
        self.actions.is_some()
    }

    /// The view shown.
    pub fn view(&self) -> ViewId {
        self.view
    }

    /// The keyboard mode.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// Whether `q` or Ctrl-C was pressed.
    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// The snapshot shown.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Changes and action outcomes, newest first.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// The status-bar message, if any.
    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// The filter of the view shown.
    pub fn filter(&self) -> &str {
        self.views[self.view.index()].filter()
    }

    /// Fix the clock (tests draw at a known time).
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Handle one key and everything it leads to.
    pub fn press(&mut self, key: KeyEvent) {
        let action = self.handle_key(key);
        self.dispatch(action);
    }

    /// Apply an action and the actions it leads to.
    pub fn dispatch(&mut self, mut action: Option<Action>) {
        while let Some(a) = action {
            action = self.update(a);
        }
    }

    /// Turn a key into an action, according to the mode.
    pub fn handle_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        self.status = None;
        match self.mode.clone() {
            Mode::Normal => self.normal_key(key),
            _ => input::mode_key(self, key),
        }
    }

    /// Call `f` with the view shown, the snapshot and what every view reads
    /// besides it; `None` before the first snapshot.
    pub(crate) fn with_view<R>(
        &mut self,
        f: impl FnOnce(&mut dyn View, &Snapshot, &Ctx) -> R,
    ) -> Option<R> {
        let actions_enabled = self.actions_enabled();
        let runbook_enabled = self.runbook_enabled();
        let snap = self.snapshot.as_ref()?;
        let ctx = Ctx {
            theme: &self.options.theme,
            now_ms: self.now_ms,
            snapshot_seq: self.snapshot_seq,
            history: &self.history,
            backlog: &self.backlog,
            events: &self.events,
            assessment: &self.assessment,
            actions_enabled,
            lookups_enabled: self.actions.is_some(),
            run: self.run.as_ref(),
            runbook_enabled,
            runbook_hint: self.runbook_hint.as_deref(),
        };
        Some(f(self.views[self.view.index()].as_mut(), snap, &ctx))
    }

    fn normal_key(&mut self, key: KeyEvent) -> Option<Action> {
        if let Some(Some(a)) = self.with_view(|view, snap, ctx| view.handle_key(key, snap, ctx)) {
            return Some(a);
        }
        let view = &mut self.views[self.view.index()];
        match key.code {
            KeyCode::Char('q') => Some(Action::Quit),
            KeyCode::Char(c @ '1'..='9') => {
                Some(Action::SwitchView(ViewId::ALL[c as usize - '1' as usize]))
            }
            KeyCode::Tab => Some(Action::NextView),
            KeyCode::BackTab => Some(Action::PrevView),
            KeyCode::Char('?') => {
                self.mode = Mode::Help;
                Some(Action::Render)
            }
            KeyCode::Char('/') if view.filterable() => {
                self.mode = Mode::Filter;
                Some(Action::Render)
            }
            KeyCode::Char(':') => {
                self.mode = Mode::Command(String::new());
                Some(Action::Render)
            }
            KeyCode::Esc if !view.filter().is_empty() => {
                view.set_filter(String::new());
                Some(Action::Render)
            }
            KeyCode::Char('r') => Some(Action::RefreshNow),
            _ => None,
        }
    }

    /// Apply one action; returns a follow-up action, if any.
    pub fn update(&mut self, action: Action) -> Option<Action> {
        match action {
            Action::Quit => self.quit = true,
            Action::Tick => self.now_ms = now_ms(),
            Action::Render | Action::Resize => {}
            Action::SwitchView(v) => self.view = v,
            Action::NextView => self.view = self.view.next(),
            Action::PrevView => self.view = self.view.prev(),
            Action::RefreshNow => {
                self.refresh.notify_one();
                self.status = Some("refreshing…".into());
            }
            Action::Fetched(snap) => {
                // A snapshot of another context (read before a switch) is
                // not this context's.
                let other = self
                    .contexts
                    .as_ref()
                    .and_then(|c| c.current().config.as_ref())
                    .is_some_and(|c| c.fingerprint() != snap.config_fingerprint);
                if !other {
                    self.on_snapshot(*snap);
                }
            }
            Action::SwitchContext(name) => return self.switch_context(name),
            Action::FetchFailed { reason, at_ms } => {
                if self.fetch_error.is_none() {
                    self.log(at_ms, Level::Bad, format!("fetch failed: {reason}"));
                }
                self.fetch_error = Some((reason, at_ms));
            }
            Action::PromptMaintenanceReason => {
                if self.actions_enabled() {
                    self.mode = Mode::Prompt(String::new());
                }
            }
            Action::Ask(op) => {
                if self.actions_enabled() {
                    self.mode = Mode::Confirm(op);
                }
            }
            Action::OperationDone { op, outcome, at_ms } => {
                let (level, text) = match &outcome {
                    Ok(done) => (Level::Done, format!("{}: {done}", op.summary())),
                    Err(why) => (Level::Failed, format!("{}: {why}", op.summary())),
                };
                tracing::info!(operation = %op.summary(), outcome = ?outcome, "operation finished");
                self.status = Some(text.clone());
                self.log(at_ms, level, text);
                return Some(Action::RefreshNow);
            }
            Action::ListDeadLetters(queue) => self.list_dead_letters(queue),
            ref a @ Action::DeadLettersListed { .. } => {
                self.views[ViewId::Queues.index()].on_action(a);
            }
            Action::Status(s) => self.status = Some(s),
            Action::RunFetched(pane) => self.run = Some(*pane),
            a @ (Action::PromptRunbookVersion
            | Action::AskRunbook(_)
            | Action::RunbookAsk(_)
            | Action::RunbookAskWithdrawn
            | Action::RunbookProgress(_)
            | Action::RunbookFinished { .. }) => return self.on_runbook_action(a),
        }
        None
    }

    fn on_snapshot(&mut self, snap: Snapshot) {
        if self.fetch_error.take().is_some() {
            self.log(self.now_ms, Level::Info, "fetching works again".into());
        }
        if let Some(prev) = &self.snapshot
            && prev.taken_at_ms != snap.taken_at_ms
        {
            for e in changes::diff(prev, &snap) {
                self.events.push(e);
            }
        }
        self.history.push(&snap);
        self.backlog.push(&snap);
        self.assessment = verdict::assess_with(self.checks_config.as_ref(), &snap);
        self.snapshot = Some(snap);
        self.snapshot_seq = self.snapshot_seq.wrapping_add(1);
    }

    pub(crate) fn log(&mut self, at_ms: u64, level: Level, text: String) {
        self.events.push(ClusterEvent { at_ms, level, text });
    }

    /// Run a confirmed operation on its own task; its outcome comes back as
    /// [`Action::OperationDone`].
    pub(crate) fn run_operation(&mut self, op: Operation) {
        let Some(actions) = self.actions.clone().filter(|_| !self.options.read_only) else {
            return;
        };
        tracing::info!(operation = %op.summary(), "operation confirmed");
        self.status = Some(format!("{}…", op.summary()));
        let tx = self.outbox.clone();
        tokio::spawn(async move {
            let outcome = op.run(actions.as_ref()).await;
            let _ = tx.send(Action::OperationDone {
                op,
                outcome,
                at_ms: now_ms(),
            });
        });
    }

    fn list_dead_letters(&mut self, queue: String) {
        let Some(actions) = self.actions.clone() else {
            return;
        };
        let tx = self.outbox.clone();
        tokio::spawn(async move {
            let result = actions
                .list_dead_letters(&queue, views::queues::DEAD_LETTER_LIMIT)
                .await;
            let _ = tx.send(Action::DeadLettersListed { queue, result });
        });
    }

    /// Draw the whole screen.
    pub fn draw(&mut self, frame: &mut ratatui::Frame) {
        ui::draw(self, frame);
    }
}

/// Run the console until `q`: terminal events, snapshots from the poller,
/// operation outcomes and the tick, one at a time, redrawing after each.
pub async fn run(
    mut app: App,
    tui: &mut Tui,
    mut snapshots: mpsc::Receiver<Action>,
    mut outcomes: mpsc::UnboundedReceiver<Action>,
) -> std::io::Result<()> {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tui.draw(|f| app.draw(f))?;
    loop {
        let action = tokio::select! {
            event = tui.next_event() => match event {
                Some(Event::Key(key)) => app.handle_key(key),
                Some(Event::Resize) => Some(Action::Resize),
                Some(Event::Error(e)) => return Err(e),
                None => Some(Action::Quit),
            },
            Some(a) = snapshots.recv() => Some(a),
            Some(a) = outcomes.recv() => Some(a),
            _ = tick.tick() => Some(Action::Tick),
        };
        app.dispatch(action);
        if app.should_quit() {
            return Ok(());
        }
        tui.draw(|f| app.draw(f))?;
    }
}
