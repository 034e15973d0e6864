//! Several clusters in one console (`--env-file a.env --env-file b.env`):
//! two env files on two namespaces of the local Redis, each context with
//! its own inspector and actions; `:ctx NAME` switches (the header names
//! the context, the views show its cluster), `:ctx` lists them, a snapshot
//! of the old context arriving after a switch is dropped, and an action
//! acts on the context shown. Drawn in a TestBackend.

use crate::common;
use crate::console_support;

use clusterops::adapters::lock::{LockBackend, RedisLock};
use clusterops::adapters::queue::{self, MessageQueue, QueueOptions};
use clusterops::config::{Config, SecretUrl};
use clusterops::console::action::Action;
use clusterops::console::app::App;
use clusterops::console::contexts::{Context, Contexts};
use clusterops::console::live::InspectorSource;
use clusterops::console::source::SnapshotSource;
use clusterops::console::views::ViewId;
use clusterops::operate::LiveActions;
use common::TestNs;
use console_support::*;
use crossterm::event::KeyCode;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn env_file(dir: &Path, name: &str, ns: &TestNs) -> std::path::PathBuf {
    common::status_cli::env_file(dir, &format!("{name}.env"), &ns.name, &ns.url)
}

fn context(name: &str, path: &Path, audit: &Path) -> Context {
    let config = Config::load(Some(path)).expect("env file");
    Context {
        name: name.into(),
        source: Arc::new(InspectorSource::new(config.clone())),
        actions: Some(Arc::new(LiveActions::new(
            config.clone(),
            "ops@test",
            audit,
        ))),
        config: Some(config),
    }
}

/// Contexts `a` and `b` on the two namespaces, sharing one audit file.
fn contexts_a_b(dir: &Path, a_ns: &TestNs, b_ns: &TestNs, audit: &Path) -> Contexts {
    Contexts::new(vec![
        context("a", &env_file(dir, "a", a_ns), audit),
        context("b", &env_file(dir, "b", b_ns), audit),
    ])
    .unwrap()
}

async fn fetch(app: &mut App, source: &Arc<dyn SnapshotSource>) {
    let snap = source.fetch().await.expect("a snapshot");
    app.dispatch(Some(Action::Fetched(Box::new(snap))));
}

fn command(app: &mut App, text: &str) {
    type_str(app, &format!(":{text}"));
    app.press(key(KeyCode::Enter));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctx_switches_between_two_clusters_each_with_its_own_source_and_actions() {
    let (a_ns, b_ns) = (TestNs::new("ctx-a"), TestNs::new("ctx-b"));
    let url = SecretUrl::parse(&a_ns.url, &["redis"]).unwrap();
    // Cluster a holds a lock; cluster b has a queue with a waiting job.
    let locks = RedisLock::connect(&url, a_ns.namespace(), "batch")
        .await
        .unwrap();
    let _guard = locks
        .try_acquire("only-in-a", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let q = queue::RedisQueue::connect(&url, b_ns.namespace(), "n1", QueueOptions::default())
        .await
        .unwrap();
    q.publish("only-in-b", b"job").await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let contexts = contexts_a_b(dir.path(), &a_ns, &b_ns, &audit);
    let source = contexts.source();
    let (tx, mut outbox) = tokio::sync::mpsc::unbounded_channel();
    let mut app = App::new(
        options(false),
        contexts.actions(),
        tx,
        Arc::new(tokio::sync::Notify::new()),
    );
    app.set_contexts(contexts.clone());
    fetch(&mut app, &source).await;
    let old = source.fetch().await.unwrap();
    app.set_now(old.taken_at_ms);

    app.dispatch(Some(Action::SwitchView(ViewId::Locks)));
    let text = screen(&mut app, 100, 24);
    assert!(text.contains("[a]") && text.contains(&a_ns.name), "{text}");
    assert!(text.contains("only-in-a"), "{text}");

    command(&mut app, "ctx");
    assert_eq!(app.status(), Some("contexts: a* b (:ctx NAME switches)"));
    command(&mut app, "ctx nope");
    assert_eq!(app.status(), Some("no context \"nope\": a* b"));

    command(&mut app, "ctx b");
    assert!(
        app.snapshot().is_none(),
        "the old cluster is not shown under b"
    );
    // A snapshot of a read before the switch arrives late: dropped.
    app.dispatch(Some(Action::Fetched(Box::new(old))));
    assert!(app.snapshot().is_none());
    fetch(&mut app, &source).await;
    let text = screen(&mut app, 100, 24);
    assert!(text.contains("[b]") && text.contains(&b_ns.name), "{text}");
    assert!(!text.contains("only-in-a"), "{text}");
    app.dispatch(Some(Action::SwitchView(ViewId::Queues)));
    let text = screen(&mut app, 100, 24);
    assert!(text.contains("only-in-b"), "{text}");

    // An action acts on the context shown: b's queue is paused, not a's.
    type_str(&mut app, "Py");
    let done = tokio::time::timeout(Duration::from_secs(10), outbox.recv())
        .await
        .unwrap();
    app.dispatch(done);
    assert!(
        q.paused("only-in-b").await.unwrap().is_some(),
        "{:?}",
        app.status()
    );
    let qa = queue::RedisQueue::connect(&url, a_ns.namespace(), "n1", QueueOptions::default())
        .await
        .unwrap();
    assert!(qa.paused("only-in-b").await.unwrap().is_none());

    command(&mut app, "ctx a");
    fetch(&mut app, &source).await;
    app.dispatch(Some(Action::SwitchView(ViewId::Locks)));
    assert!(screen(&mut app, 100, 24).contains("only-in-a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_holds_for_every_context() {
    let (a_ns, b_ns) = (TestNs::new("ctx-ro-a"), TestNs::new("ctx-ro-b"));
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let contexts = contexts_a_b(dir.path(), &a_ns, &b_ns, &audit);
    let source = contexts.source();
    let (tx, _outbox) = tokio::sync::mpsc::unbounded_channel();
    let mut app = App::new(
        options(true),
        contexts.actions(),
        tx,
        Arc::new(tokio::sync::Notify::new()),
    );
    app.set_contexts(contexts);
    for ctx in ["a", "b"] {
        command(&mut app, &format!("ctx {ctx}"));
        fetch(&mut app, &source).await;
        assert!(!app.actions_enabled(), "{ctx}");
        let text = screen(&mut app, 100, 24);
        assert!(
            text.contains("read-only") && text.contains(&format!("[{ctx}]")),
            "{text}"
        );
    }
}
