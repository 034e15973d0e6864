//! The keys, per view, as the `?` help lists them; action keys appear only
//! when actions are enabled (never in `--read-only` or `--snapshot` mode).

use crate::console::views::ViewId;

/// One key and what it does.
pub type KeyHelp = (&'static str, &'static str);

/// Keys every view has.
pub const GLOBAL: [KeyHelp; 10] = [
    ("1-9", "switch view"),
    ("Tab / Shift-Tab", "next / previous view"),
    (
        ":name / :ctx NAME",
        "jump to a view (:nodes, :wid, …) / cluster",
    ),
    ("/", "filter the rows (Enter keeps it, Esc clears it)"),
    ("j k / ↓ ↑", "move"),
    ("g G", "first / last"),
    ("PgDn PgUp / Ctrl-d Ctrl-u", "page"),
    ("r", "refresh now"),
    ("?", "this help (Esc closes)"),
    ("q / Ctrl-C", "quit"),
];

/// Keys of one view that read only.
pub fn view_keys(view: ViewId) -> &'static [KeyHelp] {
    match view {
        ViewId::Overview => &[],
        ViewId::Nodes => &[("Enter", "the selected node's details (Esc closes)")],
        ViewId::WorkerIds => &[("h j k l / arrows", "move in the grid")],
        ViewId::Locks => &[],
        ViewId::Streams => &[("j k", "select a channel; its readers show below")],
        ViewId::Queues => &[(
            "Enter",
            "list the selected queue's dead letters (Esc closes)",
        )],
        ViewId::Servers => &[],
        ViewId::Events => &[],
        ViewId::Runbook => &[
            ("j k", "select a step; its output tail shows below"),
            ("f", "follow the running step again"),
        ],
    }
}

/// Keys of one view that change the cluster (each asks for confirmation).
pub fn action_keys(view: ViewId) -> &'static [KeyHelp] {
    match view {
        ViewId::Overview => &[("M", "set maintenance (asks a reason) or clear it")],
        ViewId::WorkerIds => &[("F", "free the selected lease (dead holder only)")],
        ViewId::Locks => &[("X", "force-release the selected lock")],
        ViewId::Queues => &[
            ("R", "requeue the selected queue's dead letters"),
            ("D", "purge the selected queue's dead letters"),
            (
                "P",
                "pause the selected queue's consumers on every node, or resume them",
            ),
        ],
        ViewId::Runbook => &[
            ("U", "start an upgrade (asks the version, shows the plan)"),
            ("C", "continue (resume) the unfinished run"),
            ("B", "roll the unfinished run back"),
            ("A", "abort the unfinished run (changes nothing)"),
            ("I", "interrupt the run in progress at a safe point"),
        ],
        _ => &[],
    }
}

/// Every key of `view`, for the help overlay.
pub fn help(view: ViewId, actions_enabled: bool) -> Vec<KeyHelp> {
    let mut keys: Vec<KeyHelp> = view_keys(view).to_vec();
    if actions_enabled {
        keys.extend_from_slice(action_keys(view));
    }
    keys.extend_from_slice(&GLOBAL);
    keys
}

/// The short hint in the status bar.
pub fn hint(view: ViewId, actions_enabled: bool) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if actions_enabled {
        parts.extend(action_keys(view).iter().map(|(k, _)| *k));
    }
    let base = "? help  / filter  : jump  r refresh  q quit";
    if parts.is_empty() {
        base.to_string()
    } else {
        format!("{} actions  {base}", parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_help_lists_no_action() {
        for v in ViewId::ALL {
            let ro = help(v, false);
            for (k, _) in action_keys(v) {
                assert!(
                    !ro.iter().any(|(key, _)| key == k),
                    "{v:?} lists {k} in read-only mode"
                );
            }
            assert!(!hint(v, false).contains("actions"));
        }
        assert!(help(ViewId::Locks, true).iter().any(|(k, _)| *k == "X"));
    }
}
