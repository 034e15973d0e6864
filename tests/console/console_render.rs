//! Every console view drawn from fixed snapshots at 80x24 and 160x48 and
//! compared with reviewed screen files (tests/console/snapshots/); plus the
//! overlays an operator meets and the highlights that carry meaning.

use crate::console_support;

use clusterops::console::action::Action;
use clusterops::console::sample;
use clusterops::console::views::ViewId;
use console_support::*;
use crossterm::event::KeyCode;

/// All eight views of one app, one after the other, as one text.
fn all_views(app: &mut clusterops::console::app::App, w: u16, h: u16) -> String {
    let mut out = String::new();
    for v in ViewId::ALL {
        app.dispatch(Some(Action::SwitchView(v)));
        out.push_str(&format!("──── {} ({w}x{h}) ────\n", v.title()));
        out.push_str(&screen(app, w, h));
    }
    out
}

#[test]
fn every_view_of_every_sample_cluster_renders_at_80x24_and_160x48() {
    for (name, snap) in sample::all() {
        for (w, h) in [(80, 24), (160, 48)] {
            let mut app = harness(with_history(snap.clone()), true, None).app;
            let text = all_views(&mut app, w, h);
            insta::assert_snapshot!(format!("{name}_{w}x{h}"), text);
        }
    }
}

#[test]
fn a_sentinel_failover_and_a_silent_sentinel_show_as_events() {
    // Before: all three sentinels answer and name 10.0.0.21.
    let mut before = sample::sentinel();
    before.taken_at_ms -= 2_000;
    if let Some(t) = &mut before.servers[0].topology {
        let mut third = t.sentinels[0].clone();
        third.address = "10.0.0.9:26379".into();
        t.sentinels[2] = third;
    }
    // After: they name 10.0.0.22, and 10.0.0.9 no longer answers.
    let mut after = sample::sentinel();
    after.servers[0].topology = Some(sample::sentinel_topology(
        "10.0.0.22:6379",
        "10.0.0.21:6379",
    ));
    let mut app = harness(vec![before, after], true, None).app;
    app.dispatch(Some(Action::SwitchView(ViewId::Events)));
    let text = screen(&mut app, 80, 24);
    assert!(
        text.contains("failover: mymaster moved from 10.0.0.21:6379 to 10.0.0.22:6379"),
        "{text}"
    );
    assert!(
        text.contains("sentinel 10.0.0.9:26379 (mymaster) stopped answering"),
        "{text}"
    );
    insta::assert_snapshot!("sentinel_failover_events_80x24", text);
    app.dispatch(Some(Action::SwitchView(ViewId::Servers)));
    let text = screen(&mut app, 80, 24);
    assert!(
        text.contains("master    mymaster 10.0.0.22:6379 reports master"),
        "{text}"
    );
}

#[test]
fn enter_on_a_node_shows_all_its_details() {
    let mut app = snapshot_app(sample::degraded());
    type_str(&mut app, "2jj");
    app.press(key(KeyCode::Enter));
    let text = screen(&mut app, 80, 24);
    assert!(text.contains("Node node-c"), "{text}");
    assert!(
        text.contains("differs in      CACHE_REDIS_URL, APP_KEY"),
        "{text}"
    );
    insta::assert_snapshot!("node_details_80x24", text);
    app.press(key(KeyCode::Esc));
    assert!(!screen(&mut app, 80, 24).contains("differs in"));
}

#[test]
fn help_lists_the_keys_of_the_view_and_no_action_when_read_only() {
    let mut app = snapshot_app(sample::degraded());
    type_str(&mut app, "4?");
    let text = screen(&mut app, 80, 24);
    insta::assert_snapshot!("help_locks_read_only_80x24", text);
    assert!(text.contains("refresh now"));
    assert!(!text.contains("force-release"), "{text}");
}

#[test]
fn help_lists_the_action_keys_when_actions_are_enabled() {
    let rec = std::sync::Arc::new(Recording::default());
    let mut app = harness(vec![sample::degraded()], false, Some(rec)).app;
    type_str(&mut app, "4?");
    let text = screen(&mut app, 80, 24);
    assert!(
        text.contains("X") && text.contains("force-release the selected lock"),
        "{text}"
    );
}

#[tokio::test]
async fn the_confirmation_dialog_names_holder_and_fencing_token() {
    let rec = std::sync::Arc::new(Recording::default());
    let mut app = harness(vec![sample::degraded()], false, Some(rec)).app;
    type_str(&mut app, "4X");
    let text = screen(&mut app, 80, 24);
    insta::assert_snapshot!("confirm_force_release_80x24", text);
    assert!(
        text.contains("Deletes lock migrations, held 14m05s by node-a (live)."),
        "{text}"
    );
    assert!(text.contains("fencing token 977"), "{text}");
}

#[test]
fn a_failed_fetch_keeps_the_data_greyed_under_a_banner() {
    let mut app = snapshot_app(sample::healthy());
    app.dispatch(Some(Action::FetchFailed {
        reason: "cannot read cluster.json: No such file or directory (os error 2)".into(),
        at_ms: NOW_MS,
    }));
    app.set_now(NOW_MS + 31_000);
    let buf = draw(&mut app, 80, 24);
    let text = text(&buf);
    insta::assert_snapshot!("stale_banner_80x24", text);
    assert!(
        text.contains("showing data 34s old · fetch failed 22:13:23, retrying"),
        "{text}"
    );
    assert!(
        text.contains("cluster.json: No such file or directory"),
        "{text}"
    );
    assert!(text.contains("HEALTHY"), "the last good data stays: {text}");
    let theme = clusterops::console::theme::Theme::default_colors();
    assert_eq!(
        buf[(2, 6)].fg,
        theme.stale.fg.unwrap(),
        "the body is greyed"
    );

    app.dispatch(Some(Action::Fetched(Box::new(sample::healthy()))));
    assert!(
        !screen(&mut app, 80, 24).contains("fetch failed"),
        "recovers by itself"
    );
}

#[test]
fn before_the_first_snapshot_the_console_says_what_it_waits_for() {
    let mut app = harness(vec![], true, None).app;
    assert!(
        screen(&mut app, 80, 24)
            .contains("waiting for the first snapshot from snapshot tests/fixtures/cluster.json")
    );
    app.dispatch(Some(Action::FetchFailed {
        reason: "connection refused".into(),
        at_ms: NOW_MS,
    }));
    let text = screen(&mut app, 80, 24);
    assert!(
        text.contains("cannot read a snapshot") && text.contains("connection refused"),
        "{text}"
    );
}

#[test]
fn dead_letters_are_not_available_in_snapshot_mode() {
    let mut app = snapshot_app(sample::degraded());
    type_str(&mut app, "6j");
    app.press(key(KeyCode::Enter));
    let text = screen(&mut app, 80, 24);
    insta::assert_snapshot!("dead_letters_snapshot_mode_80x24", text);
    assert!(text.contains("Dead letters of email"), "{text}");
    assert!(
        text.contains("not available in read-only snapshot mode"),
        "{text}"
    );
}

#[test]
fn drift_dead_letters_and_stale_leases_are_highlighted() {
    let theme = clusterops::console::theme::Theme::default_colors();
    let bad = theme.bad.fg.unwrap();
    let mut app = snapshot_app(sample::degraded());
    let find = |buf: &ratatui::buffer::Buffer, needle: &str| -> (u16, u16) {
        let t = text(buf);
        let (y, line) = t
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(needle))
            .expect(needle);
        let x = line[..line.find(needle).unwrap()].chars().count();
        (x as u16, y as u16)
    };
    app.dispatch(Some(Action::SwitchView(ViewId::Nodes)));
    let buf = draw(&mut app, 80, 24);
    assert_eq!(buf[find(&buf, "≠b71e04")].fg, bad, "fingerprint drift");
    app.dispatch(Some(Action::SwitchView(ViewId::Queues)));
    let buf = draw(&mut app, 160, 48);
    let (_, y) = find(&buf, "email");
    let (x, _) = find(&buf, "DEAD");
    assert_eq!(buf[(x, y)].fg, bad, "dead letters");
    app.dispatch(Some(Action::SwitchView(ViewId::WorkerIds)));
    let buf = draw(&mut app, 80, 24);
    assert_eq!(buf[find(&buf, "05 stale")].fg, bad, "stale lease");
}

#[test]
fn the_mono_theme_draws_without_colour() {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut opts = options(true);
    opts.theme = clusterops::console::theme::Theme::mono();
    let mut app = clusterops::console::app::App::new(opts, None, tx, Default::default());
    app.set_now(NOW_MS);
    app.dispatch(Some(Action::Fetched(Box::new(sample::degraded()))));
    for v in ViewId::ALL {
        app.dispatch(Some(Action::SwitchView(v)));
        let buf = draw(&mut app, 80, 24);
        assert!(
            buf.content()
                .iter()
                .all(|c| c.fg == ratatui::style::Color::Reset
                    && c.bg == ratatui::style::Color::Reset),
            "{v:?}"
        );
    }
}

#[test]
fn a_cluster_master_that_does_not_answer_is_marked_in_the_servers_view() {
    let mut snap = sample::redis_cluster();
    let Some(c) = snap.servers[0].cluster.as_mut() else {
        panic!("the sample is a cluster");
    };
    c.state = Some("fail".into());
    c.slots_ok = Some(10923);
    c.slots_fail = Some(5461);
    let dead = &mut c.shards[2];
    dead.error = Some("Connection refused (os error 111)".into());
    (dead.role, dead.used_memory, dead.keys, dead.cluster_state) = (None, None, None, None);
    let mut app = snapshot_app(snap);
    app.dispatch(Some(Action::SwitchView(ViewId::Servers)));
    let buf = draw(&mut app, 80, 24);
    let t = text(&buf);
    for part in [
        "state fail · 10923/16384 slots ok · 3 masters",
        "! 10.0.0.33:6379        -        0/0  5461          -         -",
        "    Connection refused (os error 111)",
        "master 10.0.0.33:6379 does not answer",
    ] {
        assert!(t.contains(part), "{part}:\n{t}");
    }
    let bad = clusterops::console::theme::Theme::default_colors().bad.fg;
    let (y, line) = t
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("! 10.0.0.33"))
        .expect("the dead master's row");
    let x = line[..line.find("10.0.0.33").expect("address")]
        .chars()
        .count();
    assert_eq!(
        buf[(x as u16, y as u16)].fg,
        bad.expect("a colour"),
        "in red"
    );
    let ok_row = t
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("10.0.0.31:6379        master"))
        .expect("a live master's row");
    let x = ok_row.1[..ok_row.1.find("10.0.0.31").expect("address")]
        .chars()
        .count();
    assert_ne!(buf[(x as u16, ok_row.0 as u16)].fg, bad.expect("a colour"));
}
