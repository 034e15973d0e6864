//! One component per view. Each keeps its own state (selection, filter,
//! overlay), turns keys into [`Action`]s and draws itself from the
//! immutable [`Snapshot`] it is given; none of them ever waits on anything.

pub mod events;
pub mod locks;
pub mod nodes;
pub mod overview;
pub mod popup;
pub mod queues;
pub mod runbook;
pub mod servers;
mod servers_cluster;
mod servers_topology;
pub mod streams;
pub mod table;
pub mod worker_ids;

use crate::console::action::Action;
use crate::console::changes::EventLog;
use crate::console::history::History;
use crate::console::theme::Theme;
use crate::console::verdict::Assessment;
use crate::inspect::Snapshot;
use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::Rect;
use table::TableNav;

/// The nine views, in tab order (number keys 1-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewId {
    /// Verdict, counts, sparklines.
    Overview,
    /// The node table.
    Nodes,
    /// The 32 worker-ID slots.
    WorkerIds,
    /// Held locks.
    Locks,
    /// Sync-signal streams and their readers.
    Streams,
    /// Message queues.
    Queues,
    /// Redis and RabbitMQ servers.
    Servers,
    /// Changes noticed and action outcomes.
    Events,
    /// The current or last upgrade run.
    Runbook,
}

impl ViewId {
    /// Tab order.
    pub const ALL: [ViewId; 9] = [
        ViewId::Overview,
        ViewId::Nodes,
        ViewId::WorkerIds,
        ViewId::Locks,
        ViewId::Streams,
        ViewId::Queues,
        ViewId::Servers,
        ViewId::Events,
        ViewId::Runbook,
    ];

    /// Position in [`ViewId::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    /// The title on the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            ViewId::Overview => "Overview",
            ViewId::Nodes => "Nodes",
            ViewId::WorkerIds => "Worker IDs",
            ViewId::Locks => "Locks",
            ViewId::Streams => "Streams",
            ViewId::Queues => "Queues",
            ViewId::Servers => "Servers",
            ViewId::Events => "Events",
            ViewId::Runbook => "Runbook",
        }
    }

    /// The name `:` accepts (a prefix is enough).
    pub fn command_name(self) -> &'static str {
        match self {
            ViewId::Overview => "overview",
            ViewId::Nodes => "nodes",
            ViewId::WorkerIds => "workerids",
            ViewId::Locks => "locks",
            ViewId::Streams => "streams",
            ViewId::Queues => "queues",
            ViewId::Servers => "servers",
            ViewId::Events => "events",
            ViewId::Runbook => "runbook",
        }
    }

    /// The view a `:` command names: a prefix of its name, ignoring case,
    /// spaces, `-` and `_` (`:lo`, `:worker-ids`, `:Worker IDs`), or its number.
    pub fn by_name(name: &str) -> Option<ViewId> {
        let wanted: String = name
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect();
        if wanted.is_empty() {
            return None;
        }
        if let Ok(n) = wanted.parse::<usize>() {
            return n.checked_sub(1).and_then(|i| Self::ALL.get(i).copied());
        }
        let aliases = [
            ("wid", ViewId::WorkerIds),
            ("lease", ViewId::WorkerIds),
            ("dl", ViewId::Queues),
            ("upgrade", ViewId::Runbook),
        ];
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.command_name().starts_with(&wanted))
            .or_else(|| {
                aliases
                    .iter()
                    .find(|(a, _)| wanted.starts_with(a))
                    .map(|(_, v)| *v)
            })
    }

    /// The view after this one, wrapping.
    pub fn next(self) -> ViewId {
        Self::ALL[(self.index() + 1) % Self::ALL.len()]
    }

    /// The view before this one, wrapping.
    pub fn prev(self) -> ViewId {
        Self::ALL[(self.index() + Self::ALL.len() - 1) % Self::ALL.len()]
    }
}

/// What every view may read besides the snapshot.
pub struct Ctx<'a> {
    /// Styles.
    pub theme: &'a Theme,
    /// Now, unix ms (for "ago").
    pub now_ms: u64,
    /// Which snapshot this is: bumped with each one received, so a view
    /// may keep what it derived from the snapshot (sorted rows) until the
    /// next one.
    pub snapshot_seq: u64,
    /// Totals of recent snapshots.
    pub history: &'a History,
    /// Per queue and stream backlogs of the last minute (trend, drain).
    pub backlog: &'a crate::console::backlog::BacklogHistory,
    /// Changes and action outcomes.
    pub events: &'a EventLog,
    /// The verdict on the snapshot shown.
    pub assessment: &'a Assessment,
    /// Whether keys that change the cluster are offered.
    pub actions_enabled: bool,
    /// Whether read-only lookups (the dead-letter list) can be made.
    pub lookups_enabled: bool,
    /// The upgrade run read from the journal (`None`: nothing to follow,
    /// e.g. snapshot mode).
    pub run: Option<&'a crate::console::run_feed::RunPane>,
    /// Whether this console can drive upgrades (`--runbook`, not read-only).
    pub runbook_enabled: bool,
    /// How upgrades work in this console, for the Runbook view (the demo).
    pub runbook_hint: Option<&'a str>,
}

/// One view of the console.
pub trait View {
    /// Handle a key; `None` when the view does not use it (the app then tries
    /// its global keys).
    fn handle_key(&mut self, key: KeyEvent, snap: &Snapshot, ctx: &Ctx) -> Option<Action>;
    /// Draw into `area`.
    fn draw(&mut self, frame: &mut Frame, area: Rect, snap: &Snapshot, ctx: &Ctx);
    /// The selection and filter of the view's table, when it shows one:
    /// [`View::filter`] and [`View::set_filter`] use it.
    fn nav(&self) -> Option<&TableNav> {
        None
    }
    /// [`View::nav`], to change.
    fn nav_mut(&mut self) -> Option<&mut TableNav> {
        None
    }
    /// The current `/` filter.
    fn filter(&self) -> &str {
        self.nav().map_or("", |nav| nav.filter.as_str())
    }
    /// Set the `/` filter and select the first row (views without rows
    /// ignore it).
    fn set_filter(&mut self, filter: String) {
        if let Some(nav) = self.nav_mut() {
            nav.filter = filter;
            nav.selected = 0;
        }
    }
    /// Whether the view filters rows.
    fn filterable(&self) -> bool {
        true
    }
    /// React to an action meant for it (e.g. the dead letters arrived).
    fn on_action(&mut self, _action: &Action) {}
    /// Whether a detail overlay is open (Esc closes it first).
    fn overlay_open(&self) -> bool {
        false
    }
}

/// A fresh component for each view, in [`ViewId::ALL`] order.
pub fn all_views() -> Vec<Box<dyn View>> {
    vec![
        Box::new(overview::Overview),
        Box::new(nodes::Nodes::default()),
        Box::new(worker_ids::WorkerIds::default()),
        Box::new(locks::Locks::default()),
        Box::new(streams::Streams::default()),
        Box::new(queues::Queues::default()),
        Box::new(servers::Servers::default()),
        Box::new(events::Events::default()),
        Box::new(runbook::Runbook::default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_is_named_by_a_prefix_an_alias_or_its_number() {
        assert_eq!(ViewId::by_name("lo"), Some(ViewId::Locks));
        assert_eq!(ViewId::by_name("Worker IDs"), Some(ViewId::WorkerIds));
        assert_eq!(ViewId::by_name("worker-ids"), Some(ViewId::WorkerIds));
        assert_eq!(ViewId::by_name("wid"), Some(ViewId::WorkerIds));
        assert_eq!(ViewId::by_name("3"), Some(ViewId::WorkerIds));
        assert_eq!(ViewId::by_name("9"), Some(ViewId::Runbook));
        assert_eq!(ViewId::by_name("10"), None);
        assert_eq!(ViewId::by_name("ru"), Some(ViewId::Runbook));
        assert_eq!(ViewId::by_name("upgrade"), Some(ViewId::Runbook));
        assert_eq!(ViewId::by_name("s"), Some(ViewId::Streams));
        assert_eq!(ViewId::by_name("se"), Some(ViewId::Servers));
        assert_eq!(ViewId::by_name("bogus"), None);
        assert_eq!(ViewId::Runbook.next(), ViewId::Overview);
        assert_eq!(ViewId::Overview.prev(), ViewId::Runbook);
    }
}
