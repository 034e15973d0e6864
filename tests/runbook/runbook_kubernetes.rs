//! The kubernetes executor against a fake API server: no Kubernetes API
//! server can run here, so a tiny axum server answers the few endpoints the
//! executor uses (get/patch the Deployment or StatefulSet, patch its scale,
//! list pods by label), keeps replicas and image, and records every call.
//! The tests assert the sequence of scale and image calls, and the label
//! selector the pods are listed by.

use crate::runbook_support;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use clusterops::runbook::config::{KubernetesConfig, WorkloadKind};
use clusterops::runbook::executor::kubernetes::KubernetesExecutor;
use clusterops::runbook::{Executor, NodeSlot};
use parking_lot::Mutex;
use runbook_support::BufferIo;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Default)]
struct Fake {
    kind: &'static str,
    replicas: u32,
    /// What the pods show: lags one list behind a scale, like real pods.
    observed: u32,
    image: String,
    /// The workload's `spec.selector`.
    selector: Value,
    calls: Vec<String>,
}

type Shared = Arc<Mutex<Fake>>;

fn workload(f: &Fake) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": if f.kind == "statefulsets" { "StatefulSet" } else { "Deployment" },
        "metadata": {"name": "shop", "namespace": "prod"},
        "spec": {
            "replicas": f.replicas,
            "serviceName": "shop",
            "selector": f.selector,
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {"containers": [{"name": "app", "image": f.image}]}
            }
        }
    })
}

fn scale(n: u32) -> Value {
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "shop", "namespace": "prod"},
        "spec": {"replicas": n}, "status": {"replicas": n}
    })
}

async fn api(State(fake): State<Shared>, method: Method, uri: Uri, body: Bytes) -> Response {
    let mut f = fake.lock();
    let path = uri.path().to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let base = format!("/apis/apps/v1/namespaces/prod/{}/shop", f.kind);
    let reply = if path == base && method == Method::GET {
        f.calls.push("get workload".to_string());
        workload(&f)
    } else if path == base && method == Method::PATCH {
        let image = body["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        f.calls.push(format!("set image {image}"));
        f.image = image;
        workload(&f)
    } else if path == format!("{base}/scale") && method == Method::PATCH {
        let n = body["spec"]["replicas"].as_u64().unwrap_or(999) as u32;
        f.calls.push(format!("scale {n}"));
        f.replicas = n;
        scale(n)
    } else if path == "/api/v1/namespaces/prod/pods" && method == Method::GET {
        let selector: String = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "labelSelector")
            .map(|(_, v)| v.into_owned())
            .collect();
        f.calls.push(format!("list pods {selector}"));
        let pods: Vec<Value> = (0..f.observed)
            .map(|i| {
                json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("shop-{i}"), "namespace": "prod", "labels": {"app": "shop"}},
                    "spec": {"containers": [{"name": "app", "image": f.image}]},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]}
                })
            })
            .collect();
        f.observed = f.replicas;
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": pods})
    } else {
        f.calls.push(format!("UNEXPECTED {method} {path}"));
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"kind": "Status", "code": 404})),
        )
            .into_response();
    };
    axum::Json(reply).into_response()
}

async fn fake_api(kind: &'static str, replicas: u32, image: &str) -> (Shared, String) {
    fake_api_selecting(
        kind,
        replicas,
        image,
        json!({"matchLabels": {"app": "shop"}}),
    )
    .await
}

async fn fake_api_selecting(
    kind: &'static str,
    replicas: u32,
    image: &str,
    selector: Value,
) -> (Shared, String) {
    let fake: Shared = Arc::new(Mutex::new(Fake {
        kind,
        replicas,
        observed: replicas,
        image: image.to_string(),
        selector,
        calls: Vec::new(),
    }));
    let app = axum::Router::new().fallback(api).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (fake, format!("http://{addr}"))
}

fn config(workload: WorkloadKind, url: &str) -> KubernetesConfig {
    KubernetesConfig {
        namespace: "prod".to_string(),
        workload,
        name: "shop".to_string(),
        container: "app".to_string(),
        image: "registry.example.com/shop".to_string(),
        replicas: 3,
        api_url: Some(url.to_string()),
        pod_wait_s: 10,
    }
}

fn slot(index: usize) -> NodeSlot {
    NodeSlot {
        index,
        name: format!("replica-{}", index + 1),
        node_id: None,
    }
}

#[tokio::test]
async fn an_upgrade_scales_to_zero_sets_the_image_then_scales_up_one_at_a_time() {
    let (fake, url) = fake_api("deployments", 3, "registry.example.com/shop:1").await;
    let ex = KubernetesExecutor::connect(config(WorkloadKind::Deployment, &url))
        .await
        .unwrap();
    assert_eq!(ex.slots().len(), 3);
    assert!(
        ex.slots().iter().all(|s| s.node_id.is_none()),
        "pods are counted, not named"
    );
    let io = BufferIo::new();

    ex.stop_all(&io).await.unwrap();
    for i in 0..3 {
        ex.start(&slot(i), "2", &io).await.unwrap();
    }
    let calls = fake.lock().calls.clone();
    assert!(
        !calls.iter().any(|c| c.starts_with("UNEXPECTED")),
        "{calls:#?}"
    );
    let changes: Vec<&str> = calls
        .iter()
        .map(String::as_str)
        .filter(|c| c.starts_with("scale") || c.starts_with("set image"))
        .collect();
    assert_eq!(
        changes,
        vec![
            "scale 0",
            "set image registry.example.com/shop:2",
            "scale 1",
            "scale 2",
            "scale 3"
        ]
    );
    // It waited for the pods: after scale 0 the first list still showed 3.
    let after_zero = calls.iter().position(|c| c == "scale 0").unwrap();
    let lists = calls[after_zero..]
        .iter()
        .take_while(|c| !c.starts_with("get"))
        .filter(|c| c.starts_with("list pods"))
        .count();
    assert!(lists >= 2, "{calls:#?}");
    assert!(
        calls.iter().any(|c| c == "list pods app=shop"),
        "{calls:#?}"
    );
    assert_eq!(fake.lock().replicas, 3);
    assert!(
        io.text()
            .contains("3 pod(s) up on registry.example.com/shop:2"),
        "{}",
        io.text()
    );

    // Starting the first replica again (a resume) does not set the image twice.
    fake.lock().calls.clear();
    ex.start(&slot(0), "2", &io).await.unwrap();
    assert!(!fake.lock().calls.iter().any(|c| c.starts_with("set image")));
}

#[tokio::test]
async fn a_statefulset_is_scaled_through_its_own_endpoint() {
    let (fake, url) = fake_api("statefulsets", 2, "registry.example.com/shop:1").await;
    let ex = KubernetesExecutor::connect(config(WorkloadKind::StatefulSet, &url))
        .await
        .unwrap();
    let io = BufferIo::new();
    ex.stop_all(&io).await.unwrap();
    ex.start(&slot(0), "1", &io).await.unwrap();
    let calls = fake.lock().calls.clone();
    assert!(
        !calls.iter().any(|c| c.starts_with("UNEXPECTED")),
        "{calls:#?}"
    );
    assert!(calls.contains(&"scale 0".to_string()) && calls.contains(&"scale 1".to_string()));
    assert!(
        !calls.iter().any(|c| c.starts_with("set image")),
        "the image is already 1"
    );
}

#[tokio::test]
async fn an_unsafe_version_is_refused_before_any_call() {
    let (fake, url) = fake_api("deployments", 1, "registry.example.com/shop:1").await;
    let ex = KubernetesExecutor::connect(config(WorkloadKind::Deployment, &url))
        .await
        .unwrap();
    assert!(
        ex.start(&slot(0), "2@sha256:x", &BufferIo::new())
            .await
            .is_err()
    );
    assert!(fake.lock().calls.is_empty());
}

#[tokio::test]
async fn pods_are_listed_by_the_whole_selector_match_expressions_included() {
    // Before: only matchLabels made the query, so a workload selecting its
    // pods by expressions was refused, and one with both listed pods the
    // expressions exclude (and counted them as its own).
    let (fake, url) = fake_api_selecting(
        "deployments",
        1,
        "registry.example.com/shop:1",
        json!({
            "matchLabels": {"app": "shop"},
            "matchExpressions": [
                {"key": "track", "operator": "In", "values": ["stable"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        }),
    )
    .await;
    let ex = KubernetesExecutor::connect(config(WorkloadKind::Deployment, &url))
        .await
        .unwrap();
    let io = BufferIo::new();
    ex.stop_all(&io).await.unwrap();
    ex.start(&slot(0), "1", &io).await.unwrap();
    let calls = fake.lock().calls.clone();
    let lists: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("list pods"))
        .collect();
    assert!(!lists.is_empty(), "{calls:#?}");
    assert!(
        lists
            .iter()
            .all(|c| *c == "list pods app=shop,track in (stable),!canary"),
        "{calls:#?}"
    );
    assert!(
        io.text()
            .contains("no pods left (app=shop,track in (stable),!canary)"),
        "{}",
        io.text()
    );

    // Expressions alone select too.
    let (fake, url) = fake_api_selecting(
        "statefulsets",
        1,
        "registry.example.com/shop:1",
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["shop", "shop-v2"]}]}),
    )
    .await;
    let ex = KubernetesExecutor::connect(config(WorkloadKind::StatefulSet, &url))
        .await
        .unwrap();
    ex.stop_all(&BufferIo::new()).await.unwrap();
    assert!(
        fake.lock()
            .calls
            .iter()
            .any(|c| c == "list pods app in (shop,shop-v2)"),
        "{:#?}",
        fake.lock().calls
    );
}

#[tokio::test]
async fn a_workload_without_a_selector_is_refused_naming_it() {
    let (fake, url) =
        fake_api_selecting("deployments", 1, "registry.example.com/shop:1", json!({})).await;
    let ex = KubernetesExecutor::connect(config(WorkloadKind::Deployment, &url))
        .await
        .unwrap();
    let err = ex.stop_all(&BufferIo::new()).await.unwrap_err().to_string();
    assert!(
        err.contains("deployment prod/shop has an empty spec.selector"),
        "{err}"
    );
    assert!(
        !fake.lock().calls.iter().any(|c| c.starts_with("scale")),
        "nothing is scaled without a selector"
    );
}
