//! RabbitMQ over `amqps://` against a real TLS broker: a private RabbitMQ
//! node started here with a certificate of the test's own CA. The queue
//! adapter publishes and consumes through it with `?cacertfile=`; without
//! the CA, or with another CA, it fails with one line; a port that never
//! finishes the handshake fails within the deadline.

use crate::common;
use crate::tls_support;

use clusterops::adapters::queue::{self, QueueError, QueueOptions, RabbitQueue, handler};
use clusterops::config::{Config, SecretUrl};
use common::TestNs;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tls_support::TestCa;
use tls_support::rabbitmq::PrivateRabbit;

fn amqp(url: &str) -> SecretUrl {
    SecretUrl::parse(url, &["amqp", "amqps"]).expect("test URL")
}

async fn untrusted(url: &str) -> String {
    let ns = TestNs::new("amqps-bad");
    let err = RabbitQueue::connect(&amqp(url), ns.namespace(), "t", QueueOptions::default())
        .await
        .err()
        .expect("the connection must fail");
    assert!(matches!(err, QueueError::AmqpUntrusted { .. }), "{err}");
    err.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_adapter_publishes_and_consumes_over_amqps_with_cacertfile() {
    let ca = TestCa::new("clusterops amqps CA");
    let broker = PrivateRabbit::start(&ca, &ca.server(), Duration::from_secs(90));
    let ns = TestNs::new("amqps");
    let url = format!(
        "amqps://guest:guest@localhost:{}/%2f?cacertfile={}",
        broker.port,
        ca.cert.display()
    );
    let vars: BTreeMap<String, String> = [
        ("CLUSTER_NAME", ns.name.as_str()),
        ("QUEUE_ADAPTER", "rabbitmq"),
        ("QUEUE_ADAPTER_RABBITMQ_URL", url.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::from_vars(&vars).expect("the amqps URL is accepted");
    let q = queue::from_config_with(&config, "tls-node", QueueOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", broker.log()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let sub = q
        .subscribe(
            "jobs",
            1,
            handler(move |msg| {
                let tx = tx.clone();
                async move {
                    let text = String::from_utf8_lossy(&msg.payload).into_owned();
                    tx.send(text).map_err(|e| e.to_string())
                }
            }),
        )
        .await
        .unwrap();
    q.publish("jobs", b"over TLS").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the message arrives")
        .expect("the handler ran");
    assert_eq!(got, "over TLS");
    sub.shutdown().await.unwrap();
    q.delete_queue("jobs").await.unwrap();

    // Without the CA (the system roots do not have it), and with another CA.
    let port = broker.port;
    let err = untrusted(&format!("amqps://guest:Pw-n0t-shown@localhost:{port}/%2f")).await;
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("amqps://guest:***@localhost:{port}/%2f"))
            && err.contains("certificate not trusted")
            && err.contains("add ?cacertfile=/path/to/ca.pem")
            && err.contains("SSL_CERT_FILE")
            && !err.contains("Pw-n0t-shown"),
        "{err}"
    );
    let other = TestCa::new("clusterops other CA");
    let err = untrusted(&format!(
        "amqps://guest:Pw-n0t-shown@localhost:{port}/%2f?cacertfile={}",
        other.cert.display()
    ))
    .await;
    assert!(
        err.contains("certificate not trusted")
            && err.contains(&format!("the CA in ?cacertfile={}", other.cert.display()))
            && !err.contains("Pw-n0t-shown"),
        "{err}"
    );
}

#[tokio::test]
async fn a_port_that_never_finishes_the_tls_handshake_fails_within_the_deadline() {
    // Accepts connections and says nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for s in listener.incoming().flatten() {
            open.push(s);
        }
    });
    let ns = TestNs::new("amqps-slow");
    let started = Instant::now();
    let url = amqp(&format!("amqps://guest:Pw-n0t-shown@127.0.0.1:{port}/%2f"));
    let err = RabbitQueue::connect(&url, ns.namespace(), "t", QueueOptions::default())
        .await
        .err()
        .expect("no broker there");
    let took = started.elapsed();
    assert!(matches!(err, QueueError::AmqpTimeout { .. }), "{err}");
    assert!(
        took < queue::AMQP_CONNECT_DEADLINE + Duration::from_secs(5),
        "{took:?}"
    );
    let err = err.to_string();
    assert!(
        err.contains("no answer within") && !err.contains("Pw-n0t-shown"),
        "{err}"
    );
}

#[test]
fn a_missing_or_garbage_cacertfile_is_refused_when_the_config_loads() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("ca.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    for (file, says) in [
        (
            "/nonexistent/ca.pem".to_string(),
            "cannot read /nonexistent/ca.pem",
        ),
        (garbage.display().to_string(), "holds no PEM certificate"),
    ] {
        let url = format!("amqps://app:Pw-n0t-shown@localhost:5671/%2f?cacertfile={file}");
        let vars: BTreeMap<String, String> = [
            ("QUEUE_ADAPTER", "rabbitmq"),
            ("QUEUE_ADAPTER_RABBITMQ_URL", url.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let err = Config::from_vars(&vars).unwrap_err().to_string();
        assert!(
            err.starts_with("QUEUE_ADAPTER_RABBITMQ_URL: ")
                && err.contains("cacertfile: ")
                && err.contains(says)
                && !err.contains("Pw-n0t-shown"),
            "{err}"
        );
    }
}
