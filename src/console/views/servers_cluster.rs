//! The Servers view's lines for a Redis Cluster: its state and slots on one
//! line, then one row per master (the role it reports, replicas up of
//! known, slots, memory, keys), a master that is not ok marked `!` and its
//! error on the line below; drawn from the snapshot only.

use crate::console::format;
use crate::console::theme::Theme;
use crate::inspect::cluster_view::SLOTS;
use crate::inspect::{ClusterView, RedisRole};
use ratatui::text::{Line, Span};

/// The master column's width.
const MASTER: usize = 21;

/// The cluster line, the shards' header and one row per shard.
pub fn lines(c: &ClusterView, t: &Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let state = c.state.as_deref().unwrap_or("unknown");
    let ok = c.slots_ok.map_or_else(|| "?".into(), |n| n.to_string());
    let nodes = c
        .known_nodes
        .map_or_else(String::new, |n| format!(" · {n} nodes"));
    out.push(Line::from(vec![
        Span::styled("cluster   ", t.dim),
        Span::styled(
            format!("state {state}"),
            if c.is_ok() { t.ok } else { t.bad },
        ),
        Span::raw(format!(
            " · {ok}/{SLOTS} slots ok · {} masters{nodes}",
            c.shards.len()
        )),
    ]));
    let unassigned = SLOTS.saturating_sub(c.slots_covered);
    if unassigned > 0 {
        out.push(Line::from(Span::styled(
            format!("  {unassigned} slots served by no master"),
            t.bad,
        )));
    }
    out.push(Line::from(Span::styled(
        format!(
            "  {:<MASTER$} {:<7} {:>4} {:>5} {:>10} {:>9}",
            "MASTER", "ROLE", "REPL", "SLOTS", "MEMORY", "KEYS"
        ),
        t.dim,
    )));
    for s in &c.shards {
        let ok = s.is_ok();
        let dash = || "-".to_string();
        let role = s.role.map_or("-", RedisRole::as_str);
        let up = s.replicas_up();
        let repl = format!("{up}/{}", s.replicas.len());
        let memory = s.used_memory.map_or_else(dash, format::bytes);
        let keys = s.keys.map_or_else(dash, format::count);
        let style = if ok { t.text } else { t.bad };
        out.push(Line::from(vec![
            Span::styled(if ok { "  " } else { "! " }, t.bad),
            Span::styled(format!("{:<MASTER$} {role:<7} ", s.master), style),
            Span::styled(format!("{repl:>4}"), if up == 0 { t.warn } else { style }),
            Span::styled(
                format!(" {:>5} {memory:>10} {keys:>9}", s.slot_count),
                style,
            ),
        ]));
        if let Some(e) = &s.error {
            out.push(Line::from(Span::styled(format!("    {e}"), t.bad)));
        } else if let Some(st) = s
            .cluster_state
            .as_deref()
            .filter(|st| *st != "ok" && Some(*st) != c.state.as_deref())
        {
            out.push(Line::from(Span::styled(
                format!("    says cluster_state {st}"),
                t.bad,
            )));
        }
    }
    out
}
