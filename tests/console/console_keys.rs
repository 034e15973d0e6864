//! Key handling on the console's components, without a terminal: moving,
//! filtering, switching views, `:` jumps, confirmation dialogs calling the
//! ClusterActions trait, and read-only mode offering nothing.

use crate::console_support;

use clusterops::console::action::Action;
use clusterops::console::app::Mode;
use clusterops::console::ops::Operation;
use clusterops::console::sample;
use clusterops::console::views::ViewId;
use clusterops::operate::ClusterActions;
use console_support::*;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::sync::Arc;
use std::time::Duration;

fn live(read_only: bool) -> (Harness, Arc<Recording>) {
    let rec = Arc::new(Recording::default());
    let actions: Arc<dyn ClusterActions> = rec.clone();
    (
        harness(vec![sample::degraded()], read_only, Some(actions)),
        rec,
    )
}

/// Wait for the spawned operation's outcome and apply it.
async fn settle(h: &mut Harness) {
    let outcome = tokio::time::timeout(Duration::from_secs(5), h.outbox.recv())
        .await
        .unwrap();
    h.app.dispatch(outcome);
}

fn asked(h: &Harness) -> Option<Operation> {
    match h.app.mode() {
        Mode::Confirm(op) => Some(op.clone()),
        _ => None,
    }
}

#[test]
fn number_keys_tab_and_shift_tab_switch_views() {
    let mut app = snapshot_app(sample::healthy());
    assert_eq!(app.view(), ViewId::Overview);
    type_str(&mut app, "4");
    assert_eq!(app.view(), ViewId::Locks);
    app.press(key(KeyCode::Tab));
    assert_eq!(app.view(), ViewId::Streams);
    app.press(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
    app.press(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
    assert_eq!(app.view(), ViewId::WorkerIds);
    type_str(&mut app, "8");
    app.press(key(KeyCode::Tab));
    assert_eq!(app.view(), ViewId::Runbook);
    type_str(&mut app, "9");
    assert_eq!(app.view(), ViewId::Runbook);
    app.press(key(KeyCode::Tab));
    assert_eq!(app.view(), ViewId::Overview, "Tab wraps around");
}

#[test]
fn colon_jumps_to_a_view_by_name() {
    let mut app = snapshot_app(sample::healthy());
    type_str(&mut app, ":que");
    assert_eq!(app.mode(), &Mode::Command("que".into()));
    assert!(screen(&mut app, 80, 24).contains(":que█"));
    app.press(key(KeyCode::Enter));
    assert_eq!(app.view(), ViewId::Queues);
    assert_eq!(app.mode(), &Mode::Normal);

    type_str(&mut app, ":wid");
    app.press(key(KeyCode::Enter));
    assert_eq!(app.view(), ViewId::WorkerIds);

    type_str(&mut app, ":nope");
    app.press(key(KeyCode::Enter));
    assert_eq!(app.view(), ViewId::WorkerIds);
    assert!(
        app.status().unwrap().starts_with("no view named \"nope\""),
        "{:?}",
        app.status()
    );

    type_str(&mut app, ":lo");
    app.press(key(KeyCode::Esc));
    assert_eq!(app.view(), ViewId::WorkerIds, "Esc cancels the jump");
    type_str(&mut app, ":q");
    app.press(key(KeyCode::Enter));
    assert!(app.should_quit());
}

#[test]
fn the_filter_narrows_the_rows_of_the_current_table_only() {
    let mut app = snapshot_app(sample::large());
    type_str(&mut app, "4/record:00");
    assert_eq!(app.mode(), &Mode::Filter);
    let text = screen(&mut app, 80, 24);
    assert!(text.contains("Locks 1/100 of 1000 /record:00"), "{text}");
    assert!(
        text.contains("/record:00█"),
        "the filter is typed in the status line: {text}"
    );
    app.press(key(KeyCode::Backspace));
    app.press(key(KeyCode::Enter));
    assert_eq!(app.mode(), &Mode::Normal);
    assert_eq!(app.filter(), "record:0");
    type_str(&mut app, "2");
    assert_eq!(app.filter(), "", "each view has its own filter");
    type_str(&mut app, "4");
    assert_eq!(app.filter(), "record:0");
    app.press(key(KeyCode::Esc));
    assert_eq!(app.filter(), "", "Esc clears the filter");
    type_str(&mut app, "/zzz");
    assert!(screen(&mut app, 80, 24).contains("nothing matches /zzz"));
    app.press(key(KeyCode::Esc));
    assert_eq!(app.filter(), "");
}

#[test]
fn q_quits_and_ctrl_c_quits_from_any_mode() {
    let mut app = snapshot_app(sample::healthy());
    type_str(&mut app, "q");
    assert!(app.should_quit());
    let mut app = snapshot_app(sample::healthy());
    type_str(&mut app, "/abc");
    app.press(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.should_quit());
}

#[test]
fn help_opens_and_closes_and_q_in_help_only_closes_it() {
    let mut app = snapshot_app(sample::healthy());
    type_str(&mut app, "?");
    assert_eq!(app.mode(), &Mode::Help);
    type_str(&mut app, "q");
    assert_eq!(app.mode(), &Mode::Normal);
    assert!(!app.should_quit());
}

#[tokio::test]
async fn navigation_selects_the_lock_that_x_offers_to_release() {
    let (mut h, _) = live(false);
    type_str(&mut h.app, "4G");
    type_str(&mut h.app, "X");
    let Some(Operation::ForceReleaseLock { name, .. }) = asked(&h) else {
        panic!("{:?}", h.app.mode())
    };
    assert_eq!(
        name, "cron:cleanup",
        "G selects the last row (shortest held)"
    );
    h.app.press(key(KeyCode::Esc));
    type_str(&mut h.app, "gjX");
    let Some(Operation::ForceReleaseLock {
        name,
        holder,
        holder_live,
        fencing_token,
        ..
    }) = asked(&h)
    else {
        panic!()
    };
    assert_eq!(
        (name.as_str(), holder.as_str(), holder_live, fencing_token),
        ("report:daily", "node-old", false, 1188)
    );
    h.app.press(key(KeyCode::Esc));
    type_str(&mut h.app, "/migr");
    h.app.press(key(KeyCode::Enter));
    type_str(&mut h.app, "X");
    assert!(
        matches!(asked(&h), Some(Operation::ForceReleaseLock { name, .. }) if name == "migrations")
    );
}

#[tokio::test]
async fn confirming_a_force_release_calls_the_trait_and_logs_the_outcome() {
    let (mut h, rec) = live(false);
    type_str(&mut h.app, "4X");
    assert!(screen(&mut h.app, 80, 24).contains("fencing token 977"));
    type_str(&mut h.app, "y");
    assert_eq!(h.app.mode(), &Mode::Normal);
    settle(&mut h).await;
    assert_eq!(rec.calls(), vec!["force_release_lock(migrations, 977)"]);
    let first = h.app.events().iter().next().unwrap();
    assert_eq!(
        first.text,
        "force-release lock migrations (token 977): released migrations"
    );
    type_str(&mut h.app, "8");
    assert!(
        screen(&mut h.app, 80, 24).contains("done   force-release lock migrations (token 977)")
    );
}

#[tokio::test]
async fn cancelling_a_dialog_calls_nothing() {
    let (mut h, rec) = live(false);
    type_str(&mut h.app, "4X");
    type_str(&mut h.app, "k");
    assert!(asked(&h).is_some(), "other keys leave the dialog open");
    h.app.press(key(KeyCode::Esc));
    assert_eq!(h.app.mode(), &Mode::Normal);
    assert_eq!(
        h.app.status(),
        Some("cancelled: force-release lock migrations (token 977)")
    );
    type_str(&mut h.app, "Xn");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rec.calls().is_empty());
}

#[tokio::test]
async fn maintenance_asks_a_reason_then_confirms() {
    let (mut h, rec) = live(false);
    type_str(&mut h.app, "M");
    assert_eq!(h.app.mode(), &Mode::Prompt(String::new()));
    h.app.press(key(KeyCode::Enter));
    assert!(
        h.app.status().unwrap().contains("type why"),
        "an empty reason is refused"
    );
    type_str(&mut h.app, "upgrade to 1.5");
    h.app.press(key(KeyCode::Enter));
    assert_eq!(
        asked(&h),
        Some(Operation::SetMaintenance {
            reason: "upgrade to 1.5".into()
        })
    );
    let text = screen(&mut h.app, 80, 24);
    assert!(text.contains("reason: upgrade to 1.5"), "{text}");
    type_str(&mut h.app, "y");
    settle(&mut h).await;
    assert_eq!(rec.calls(), vec!["set_maintenance(upgrade to 1.5)"]);
}

#[tokio::test]
async fn maintenance_on_is_offered_to_be_cleared() {
    let rec = Arc::new(Recording::default());
    let mut snap = sample::healthy();
    snap.maintenance =
        clusterops::inspect::Source::Ok(Some(clusterops::inspect::MaintenanceView {
            by: "alice".into(),
            reason: "db upgrade".into(),
            since_ms: sample::TAKEN_AT_MS - 60_000,
        }));
    let mut h = harness(vec![snap], false, Some(rec.clone()));
    type_str(&mut h.app, "M");
    assert_eq!(
        asked(&h),
        Some(Operation::ClearMaintenance {
            by: "alice".into(),
            reason: "db upgrade".into()
        })
    );
    type_str(&mut h.app, "y");
    settle(&mut h).await;
    assert_eq!(rec.calls(), vec!["clear_maintenance()"]);
}

#[tokio::test]
async fn only_a_dead_nodes_lease_can_be_freed() {
    let (mut h, rec) = live(false);
    type_str(&mut h.app, "3F");
    assert_eq!(asked(&h), None);
    assert!(
        h.app.status().unwrap().contains("held by live node node-a"),
        "{:?}",
        h.app.status()
    );
    type_str(&mut h.app, "lllll");
    assert!(
        screen(&mut h.app, 80, 24).contains("worker ID 05: held by node-old (NOT live: stale)")
    );
    type_str(&mut h.app, "F");
    assert_eq!(
        asked(&h),
        Some(Operation::FreeLease {
            worker_id: 5,
            holder: "node-old".into()
        })
    );
    type_str(&mut h.app, "y");
    settle(&mut h).await;
    assert_eq!(rec.calls(), vec!["free_lease(5, node-old)"]);
}

#[tokio::test]
async fn dead_letters_are_listed_requeued_and_purged() {
    let (mut h, rec) = live(false);
    type_str(&mut h.app, "6R");
    assert_eq!(h.app.status(), Some("queue workflow has no dead letters"));
    type_str(&mut h.app, "j");
    h.app.press(key(KeyCode::Enter));
    settle(&mut h).await;
    let text = screen(&mut h.app, 80, 24);
    assert!(
        text.contains("msg-001") && text.contains("SMTP 550 mailbox unavailable"),
        "{text}"
    );
    h.app.press(key(KeyCode::Esc));
    type_str(&mut h.app, "R");
    assert_eq!(
        asked(&h),
        Some(Operation::RequeueDeadLetters {
            queue: "email".into(),
            count: 17
        })
    );
    type_str(&mut h.app, "y");
    settle(&mut h).await;
    type_str(&mut h.app, "Dy");
    settle(&mut h).await;
    assert_eq!(
        rec.calls(),
        vec![
            "list_dead_letters(email, 50)",
            "requeue_dead_letters(email)",
            "purge_dead_letters(email)"
        ]
    );
    let texts: Vec<_> = h.app.events().iter().map(|e| e.text.clone()).collect();
    assert_eq!(
        texts[0],
        "purge dead letters of email: queue is locked by another operator"
    );
    assert_eq!(texts[1], "requeue dead letters of email: done");
}

#[tokio::test]
async fn read_only_mode_offers_no_action() {
    let (mut h, rec) = live(true);
    for keys in ["MX", "4X", "3lllllF", "6jR", "6jD"] {
        type_str(&mut h.app, keys);
        assert_eq!(h.app.mode(), &Mode::Normal, "{keys}");
    }
    h.app
        .dispatch(Some(Action::Ask(Operation::PurgeDeadLetters {
            queue: "email".into(),
            count: 17,
        })));
    assert_eq!(h.app.mode(), &Mode::Normal, "even an Ask action is refused");
    for v in ViewId::ALL {
        h.app.dispatch(Some(Action::SwitchView(v)));
        let text = screen(&mut h.app, 160, 48);
        let footer = text.lines().last().unwrap();
        assert!(
            footer.contains("? help") && !footer.contains("actions"),
            "{v:?}: {footer}"
        );
        type_str(&mut h.app, "?");
        let help = screen(&mut h.app, 160, 48);
        for word in [
            "force-release",
            "free the selected",
            "requeue",
            "purge",
            "set maintenance",
        ] {
            assert!(!help.contains(word), "{v:?} help offers {word}");
        }
        h.app.press(key(KeyCode::Esc));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(rec.calls().is_empty());
}

#[test]
fn snapshot_mode_is_read_only() {
    let mut app = snapshot_app(sample::degraded());
    assert!(!app.actions_enabled());
    type_str(&mut app, "4X");
    assert_eq!(app.mode(), &Mode::Normal);
    assert!(
        screen(&mut app, 80, 24)
            .lines()
            .next()
            .unwrap()
            .contains("read-only")
    );
}

#[test]
fn r_asks_the_poller_for_a_snapshot_now() {
    let mut h = harness(vec![sample::healthy()], true, None);
    let notified = h.refresh.clone();
    type_str(&mut h.app, "r");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(1), notified.notified())
            .await
            .expect("refresh notified");
    });
}

#[test]
fn nodes_enter_opens_details_and_esc_closes_them() {
    let mut app = snapshot_app(sample::degraded());
    type_str(&mut app, "2j");
    app.press(key(KeyCode::Enter));
    assert!(screen(&mut app, 80, 24).contains("Node node-b"));
    type_str(&mut app, "j");
    assert!(
        screen(&mut app, 80, 24).contains("Node node-b"),
        "keys do not move under the overlay"
    );
    app.press(key(KeyCode::Esc));
    assert!(!screen(&mut app, 80, 24).contains("Node node-b"));
}

#[test]
fn changes_between_snapshots_appear_in_events() {
    let mut app = snapshot_app(sample::healthy());
    let mut next = sample::degraded();
    next.taken_at_ms += 2_000;
    app.dispatch(Some(Action::Fetched(Box::new(next))));
    type_str(&mut app, "8");
    let text = screen(&mut app, 120, 24);
    assert!(
        text.contains("node node-b unhealthy: database unreachable"),
        "{text}"
    );
    assert!(text.contains("worker ID 5 taken by node-old"), "{text}");
    assert!(text.contains("queue email: dead letters 0 → 17"), "{text}");
}
