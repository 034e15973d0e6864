//! The Servers view's lines for a Redis behind Sentinel: the master and
//! the role it reports, the sentinels (agreement, quorum, each one's
//! answer) and the replicas with their lag, drawn from the snapshot only.

use crate::console::format;
use crate::console::theme::Theme;
use crate::inspect::{RedisRole, ReplicaView, TopologyView};
use ratatui::text::{Line, Span};

/// One label, then the spans.
fn row(label: &'static str, t: &Theme, spans: Vec<Span<'static>>) -> Line<'static> {
    let mut all = vec![Span::styled(label, t.dim)];
    all.extend(spans);
    Line::from(all)
}

/// The topology, one line per fact, sentinels and replicas indented below.
pub fn lines(topo: &TopologyView, t: &Theme) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let a = topo.agreement();
    let master = match &topo.master {
        Some(m) => {
            let role = match (topo.read_from == topo.master, topo.read_role) {
                (true, Some(RedisRole::Master)) => Span::styled(" reports master", t.ok),
                (true, Some(role)) => Span::styled(format!(" reports {}", role.as_str()), t.bad),
                _ => Span::styled(" not read", t.warn),
            };
            let offset = topo
                .master_repl_offset
                .map_or_else(String::new, |o| format!(" · offset {}", format::count(o)));
            vec![
                Span::raw(format!("{} {m}", topo.master_name)),
                role,
                Span::styled(offset, t.dim),
            ]
        }
        None => vec![Span::styled(
            format!("{}: no sentinel names a master", topo.master_name),
            t.bad,
        )],
    };
    out.push(row("master    ", t, master));

    let agree_style = if a.dissenting.is_empty() && a.quorum.is_some_and(|q| a.answered as u32 >= q)
    {
        if a.answered == a.total { t.ok } else { t.warn }
    } else {
        t.bad
    };
    let quorum = a
        .quorum
        .map_or_else(|| "quorum ?".into(), |q| format!("quorum {q}"));
    let ck = topo
        .sentinels
        .iter()
        .find_map(|s| s.ckquorum.as_ref().filter(|q| !q.ok))
        .or_else(|| topo.sentinels.iter().find_map(|s| s.ckquorum.as_ref()));
    let ck = ck.map_or_else(
        || Span::raw(""),
        |q| {
            let word = if q.ok {
                "CKQUORUM OK"
            } else {
                "CKQUORUM FAILED"
            };
            let usable = q
                .usable
                .map_or_else(String::new, |u| format!(", {u} usable"));
            Span::styled(
                format!(" · {word}{usable}"),
                if q.ok { t.text } else { t.bad },
            )
        },
    );
    out.push(row(
        "sentinels ",
        t,
        vec![
            Span::styled(format!("{}/{} agree", a.agreeing, a.total), agree_style),
            Span::raw(format!(" · {quorum}")),
            ck,
        ],
    ));
    // The sentinels that name the master on one line; each other one on its own.
    let agreeing: Vec<&str> = topo
        .sentinels
        .iter()
        .filter(|s| s.answered && s.names_master.is_some() && s.names_master == topo.master)
        .map(|s| s.address.as_str())
        .collect();
    if let (false, Some(m)) = (agreeing.is_empty(), &topo.master) {
        let verb = if agreeing.len() == 1 { "names" } else { "name" };
        out.push(Line::from(format!("  {} {verb} {m}", agreeing.join(", "))));
    }
    for s in &topo.sentinels {
        let what = if !s.answered {
            Span::styled(
                format!("no answer: {}", s.error.as_deref().unwrap_or("?")),
                t.bad,
            )
        } else {
            match &s.names_master {
                Some(m) if topo.master.as_ref() == Some(m) => continue,
                Some(m) => Span::styled(format!("names {m}"), t.bad),
                None => Span::styled(format!("knows no {}", topo.master_name), t.bad),
            }
        };
        out.push(Line::from(vec![
            Span::raw(format!("  {} ", s.address)),
            what,
        ]));
    }

    // One replica (the usual case) on the label's line; more listed below.
    let replica = |r: &ReplicaView| {
        let lag = r.lag_s.map_or_else(|| "?".into(), |l| format!("{l}s"));
        let behind = r
            .behind_bytes
            .map_or_else(String::new, |b| format!(" · {} behind", format::bytes(b)));
        let style = if r.is_online() { t.text } else { t.warn };
        vec![
            Span::raw(format!("{} ", r.address)),
            Span::styled(r.state.as_str(), style),
            Span::raw(format!(" · lag {lag}{behind}")),
        ]
    };
    match topo.replicas.as_slice() {
        [] => out.push(row(
            "replicas  ",
            t,
            vec![Span::styled("none: a failover has nowhere to go", t.warn)],
        )),
        [one] => out.push(row("replicas  ", t, replica(one))),
        many => {
            let style = if topo.online_replicas().next().is_some() {
                t.text
            } else {
                t.warn
            };
            out.push(row(
                "replicas  ",
                t,
                vec![Span::styled(topo.replicas_summary(), style)],
            ));
            for r in many {
                let mut spans = vec![Span::raw("  ")];
                spans.extend(replica(r));
                out.push(Line::from(spans));
            }
        }
    }
    out
}
