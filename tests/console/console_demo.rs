//! The demo without a terminal: three in-process nodes on shared memory
//! adapters and the snapshot its source builds while the workload runs.

use crate::common;

use clusterops::console::source::SnapshotSource;
use clusterops::console::verdict;
use clusterops::demo::{DEMO_QUEUE, DemoCluster};
use clusterops::inspect::Verdict;
use common::nodes::eventually;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_source_shows_three_serving_nodes_locks_queue_traffic_and_dead_letters() {
    let cluster = DemoCluster::start().await.unwrap();
    let source = cluster.source();
    assert!(
        eventually(Duration::from_secs(10), || async {
            let snap = source.fetch().await.unwrap();
            let nodes = snap.nodes.ok().unwrap();
            nodes.len() == 3 && nodes.iter().all(|n| n.health.is_healthy())
        })
        .await,
        "three nodes serve"
    );
    // Job 5 fails both attempts and becomes a dead letter (~2 s in).
    assert!(
        eventually(Duration::from_secs(15), || async {
            let snap = source.fetch().await.unwrap();
            let q = snap.queues.ok().unwrap();
            q.iter().any(|q| q.name == DEMO_QUEUE && q.dead_letters > 0)
        })
        .await,
        "failed jobs reach the dead letters"
    );
    let snap = source.fetch().await.unwrap();
    let nodes = snap.nodes.ok().unwrap();
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.node_id.as_str()).collect();
    assert_eq!(ids, ["demo-a", "demo-b", "demo-c"]);
    assert!(
        nodes
            .iter()
            .all(|n| n.id.state == clusterops::inspect::NodeState::Running),
        "{nodes:?}"
    );
    let held = snap.leases.ok().unwrap();
    assert_eq!(held.len(), 32);
    assert!(held.iter().filter(|l| l.holder.is_some()).count() >= 1);
    let locks = snap.locks.ok().unwrap();
    assert!(locks.iter().all(|l| l.holder.starts_with("demo-")));
    let streams = snap.streams.ok().unwrap();
    assert!(streams[0].length > 0, "signals were sent");
    let a = verdict::assess(&snap);
    assert_eq!(a.verdict, Verdict::Degraded, "{:?}", a.problems);
    assert!(
        a.problems.iter().any(|p| p.text.contains("dead letters")),
        "{:?}",
        a.problems
    );
    cluster.stop().await;
}
