//! The Queues and Streams views with the backlog as time: the age of the
//! oldest unhandled entry, its trend over the last minute and the time to
//! drain it; a queue's pause shown, and `P` pausing or resuming it through
//! the ClusterActions (never in read-only mode). Drawn at 80x24 and 160x48.

use crate::console_support;

use clusterops::adapters::queue::PauseFlag;
use clusterops::console::action::Action;
use clusterops::console::app::Mode;
use clusterops::console::ops::{CONSOLE_PAUSE_REASON, Operation};
use clusterops::console::sample;
use clusterops::console::views::ViewId;
use clusterops::inspect::{Snapshot, Source};
use clusterops::operate::ClusterActions;
use console_support::*;
use std::sync::Arc;
use std::time::Duration;

/// The degraded sample's queues on Redis with ages; `email` paused.
fn snap_at(i: u64, waiting: u64) -> Snapshot {
    let mut s = sample::degraded();
    s.taken_at_ms -= (6 - i) * 5_000;
    if let Source::Ok(qs) = &mut s.queues {
        for q in qs.iter_mut() {
            q.backend = "redis".into();
            q.waiting = waiting;
            q.in_flight = 0;
            q.oldest_age_ms = Some(90_000);
        }
        qs[1].paused = Some(PauseFlag {
            by: "ann@ops".into(),
            reason: "SMTP relay down".into(),
            since_ms: s.taken_at_ms - 60_000,
        });
    }
    s
}

/// Six snapshots 5 s apart, 25 s in all: the backlog falls from 600 to
/// 350, 10 a second, so 350 left drain in 35 s.
fn draining() -> Vec<Snapshot> {
    (1..=6).map(|i| snap_at(i, 650 - 50 * i)).collect()
}

#[test]
fn the_queues_view_shows_age_trend_drain_and_the_pause() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = harness(draining(), true, None).app;
        app.dispatch(Some(Action::SwitchView(ViewId::Queues)));
        let text = screen(&mut app, w, h);
        assert!(text.contains("1m30s"), "the oldest job's age: {text}");
        assert!(text.contains("↓ 10/s"), "the trend: {text}");
        assert!(text.contains("35s"), "the time to drain: {text}");
        assert!(text.contains("paused"), "{text}");
        insta::assert_snapshot!(format!("queues_backlog_{w}x{h}"), text);
    }
}

#[test]
fn a_growing_backlog_has_no_drain_time() {
    let snaps: Vec<Snapshot> = (1..=6).map(|i| snap_at(i, 50 * i)).collect();
    let mut app = harness(snaps, true, None).app;
    app.dispatch(Some(Action::SwitchView(ViewId::Queues)));
    let text = screen(&mut app, 160, 48);
    assert!(text.contains("↑ 10/s"), "{text}");
    assert!(text.contains("—"), "{text}");
}

#[test]
fn the_streams_view_shows_how_far_behind_a_reader_is_in_time() {
    let mut app = harness(with_history(sample::degraded()), true, None).app;
    app.dispatch(Some(Action::SwitchView(ViewId::Streams)));
    let text = screen(&mut app, 160, 48);
    assert!(text.contains("BEHIND"), "{text}");
    insta::assert_snapshot!("streams_behind_160x48", text);
}

async fn settle(h: &mut Harness) {
    let outcome = tokio::time::timeout(Duration::from_secs(5), h.outbox.recv())
        .await
        .unwrap();
    h.app.dispatch(outcome);
}

#[tokio::test]
async fn p_pauses_an_active_queue_and_resumes_a_paused_one() {
    let rec = Arc::new(Recording::default());
    let actions: Arc<dyn ClusterActions> = rec.clone();
    let mut h = harness(vec![snap_at(6, 10)], false, Some(actions));
    type_str(&mut h.app, "6P");
    assert_eq!(
        h.app.mode(),
        &Mode::Confirm(Operation::PauseQueue {
            queue: "workflow".into(),
            reason: CONSOLE_PAUSE_REASON.into()
        })
    );
    let text = screen(&mut h.app, 80, 24);
    assert!(
        text.contains("Pauses every node's consumers of queue workflow"),
        "{text}"
    );
    type_str(&mut h.app, "y");
    settle(&mut h).await;
    type_str(&mut h.app, "jP");
    assert!(
        matches!(h.app.mode(), Mode::Confirm(Operation::ResumeQueue { queue, by, .. }) if queue == "email" && by == "ann@ops"),
        "{:?}",
        h.app.mode()
    );
    type_str(&mut h.app, "y");
    settle(&mut h).await;
    assert_eq!(
        rec.calls(),
        vec![
            format!("pause_queue(workflow, {CONSOLE_PAUSE_REASON})"),
            "resume_queue(email)".to_string()
        ]
    );
}

#[test]
fn read_only_mode_offers_no_pause() {
    let rec = Arc::new(Recording::default());
    let actions: Arc<dyn ClusterActions> = rec.clone();
    let mut h = harness(vec![snap_at(6, 10)], true, Some(actions));
    type_str(&mut h.app, "6P");
    assert_eq!(h.app.mode(), &Mode::Normal);
    assert!(rec.calls().is_empty());
}
