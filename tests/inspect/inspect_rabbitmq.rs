//! The inspector with the queue on the real RabbitMQ: counts over AMQP
//! (passive declares) and, from the management API (enabled by `.ci/run`),
//! the unacknowledged messages and the ack rate; the management API not
//! answering or refusing the login is one line in the server view, and the
//! AMQP figures stay.

use crate::common;

use clusterops::adapters::queue;
use clusterops::config::{Config, SecretUrl};
use clusterops::inspect::rabbit_mgmt::{self, Endpoint};
use clusterops::inspect::{Inspector, QueueView, Snapshot};
use common::nodes::eventually;
use common::{TestNs, amqp_url, free_port, redis_url};
use lapin::options::{BasicAckOptions, BasicGetOptions};
use std::collections::BTreeMap;
use std::time::Duration;

fn config(ns: &TestNs) -> Config {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    vars.insert("CLUSTER_NAME".into(), ns.name.clone());
    vars.insert("QUEUE_ADAPTER".into(), "rabbitmq".into());
    vars.insert("QUEUE_ADAPTER_RABBITMQ_URL".into(), amqp_url());
    vars.insert("REDIS_URL".into(), redis_url());
    Config::from_vars(&vars).unwrap()
}

fn jobs(snap: &Snapshot) -> Option<QueueView> {
    snap.queues
        .ok()
        .and_then(|qs| qs.iter().find(|q| q.name == "jobs").cloned())
}

fn management(snap: &Snapshot) -> Option<String> {
    snap.servers
        .iter()
        .find(|s| s.kind == "rabbitmq")
        .and_then(|s| s.management.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_messages_and_the_ack_rate_come_from_the_management_api() {
    let ns = TestNs::new("rmq-insp");
    let cfg = config(&ns);
    let q = queue::from_config(&cfg, "node-a").await.unwrap();
    for i in 0..3 {
        q.publish("jobs", format!("m{i}").as_bytes()).await.unwrap();
    }
    // The nodes list their queues in the catalogue; AMQP cannot list them.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("SADD")
        .arg(ns.namespace().key("queue-names"))
        .arg("jobs")
        .query_async(&mut conn)
        .await
        .unwrap();

    // One message taken and not acknowledged.
    let amqp = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = amqp.create_channel().await.unwrap();
    let main = format!("{}.jobs", ns.name);
    let held = ch
        .basic_get(main.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .expect("a message");

    let inspector = Inspector::new(cfg.clone());
    // The management API refreshes its queue figures every few seconds.
    let seen = eventually(Duration::from_secs(20), || async {
        let snap = inspector.snapshot().await;
        jobs(&snap).is_some_and(|j| j.waiting == 2 && j.in_flight == 1)
            && management(&snap).as_deref() == Some("ok")
    })
    .await;
    let snap = inspector.snapshot().await;
    assert!(seen, "{:?}\n{:?}", snap.queues, snap.servers);

    // Acknowledged deliveries give the queue an ack rate.
    held.delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    while let Some(m) = ch
        .basic_get(main.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
    {
        m.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
    }
    let rated = eventually(Duration::from_secs(30), || async {
        let snap = inspector.snapshot().await;
        jobs(&snap).is_some_and(|j| j.waiting == 0 && j.in_flight == 0 && j.ack_rate.is_some())
    })
    .await;
    let snap = inspector.snapshot().await;
    assert!(rated, "{:?}", snap.queues);
    let json = serde_json::to_string(&snap).unwrap();
    assert!(!json.contains("guest:guest"), "no password in the JSON");

    q.delete_queue("jobs").await.unwrap();
    let _ = amqp.close(0, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_management_api_that_is_down_or_refuses_the_login_is_one_line() {
    let http = reqwest::Client::new();
    let url = SecretUrl::parse(&amqp_url(), &["amqp"]).unwrap();
    let closed = Endpoint::from_amqp(&url)
        .unwrap()
        .with_base(&format!("http://127.0.0.1:{}", free_port()));
    let err = rabbit_mgmt::read_queues(&http, &closed, "x")
        .await
        .unwrap_err();
    assert!(err.ends_with("not reachable"), "{err}");
    assert_eq!(err.lines().count(), 1);

    let wrong = url.expose().replace("guest:guest", "guest:wrong");
    let wrong = SecretUrl::parse(&wrong, &["amqp"]).unwrap();
    let endpoint = Endpoint::from_amqp(&wrong).unwrap();
    let err = rabbit_mgmt::read_queues(&http, &endpoint, "x")
        .await
        .unwrap_err();
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(!err.contains("wrong"), "{err}");

    // The right login answers (an empty list for a namespace with no queue).
    let endpoint = Endpoint::from_amqp(&url).unwrap();
    let found = rabbit_mgmt::read_queues(&http, &endpoint, "no-such-cluster")
        .await
        .unwrap();
    assert!(found.is_empty());
}

/// `check`'s `rabbitmq-management` on a configuration whose management URL
/// is `management` (unset: next to the broker).
async fn management_check(ns: &TestNs, management: Option<&str>) -> (String, String) {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    vars.insert("CLUSTER_NAME".into(), ns.name.clone());
    vars.insert("QUEUE_ADAPTER".into(), "rabbitmq".into());
    vars.insert("QUEUE_ADAPTER_RABBITMQ_URL".into(), amqp_url());
    vars.insert("REDIS_URL".into(), redis_url());
    if let Some(m) = management {
        vars.insert("QUEUE_ADAPTER_RABBITMQ_MANAGEMENT_URL".into(), m.into());
    }
    let cfg = Config::from_vars(&vars).unwrap();
    let snap = Inspector::new(cfg.clone()).snapshot().await;
    let checks = clusterops::inspect::checks::run(&cfg, &snap);
    let c = checks
        .iter()
        .find(|c| c.id == "rabbitmq-management")
        .expect("the check is registered");
    (format!("{:?}", c.status), c.reason.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_url_is_configurable_and_check_warns_when_it_does_not_answer() {
    let ns = TestNs::new("rmq-mgmt");
    let port = free_port();
    let wrong = format!("http://guest:S3cretPw@127.0.0.1:{port}");
    let (status, reason) = management_check(&ns, Some(&wrong)).await;
    println!("{status}: {reason}");
    assert_eq!(status, "Warn");
    assert!(
        reason.starts_with(&format!(
            "management API http://guest:***@127.0.0.1:{port}: not reachable: in-flight counts"
        )),
        "{reason}"
    );
    assert!(!reason.contains("S3cretPw"), "{reason}");
    assert!(
        reason.contains("QUEUE_ADAPTER_RABBITMQ_MANAGEMENT_URL"),
        "{reason}"
    );

    // The right one, credentials given in it, and the default next to the broker.
    for right in [Some("http://guest:guest@127.0.0.1:15672"), None] {
        let (status, reason) = management_check(&ns, right).await;
        assert_eq!(status, "Pass", "{right:?}: {reason}");
    }
}
