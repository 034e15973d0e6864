//! assets/kubernetes/*.yaml parse into the Kubernetes API types, and agree
//! with the kube executor's configuration in assets/runbook.example.toml
//! (namespace, workload name, container, image, replicas), with each other
//! (labels, selectors, the ConfigMap and Secret the pods read, RBAC), with
//! the configuration the nodes validate, and with the node's shutdown.

use clusterops::config::{Config, VARIABLES};
use clusterops::runbook::config::{ExecutorConfig, KubernetesConfig, RunbookConfig, WorkloadKind};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use std::collections::BTreeMap;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/kubernetes");

/// Every document of every manifest, as (file, kind, value).
fn documents() -> Vec<(String, String, serde_json::Value)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "manifests missing in {DIR}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value = serde_json::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
            let kind = value["kind"].as_str().unwrap_or_default().to_string();
            out.push((path.display().to_string(), kind, value));
        }
    }
    out
}

/// The one document of `kind`, as its API type (unknown fields refused by
/// a round trip: what the type drops, the manifest should not have).
fn one<T: serde::de::DeserializeOwned + serde::Serialize>(kind: &str) -> T {
    let docs: Vec<_> = documents()
        .into_iter()
        .filter(|(_, k, _)| k == kind)
        .collect();
    assert_eq!(docs.len(), 1, "expected one {kind} in the manifests");
    let (file, _, value) = &docs[0];
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{file}: not a valid {kind}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_no_dropped_fields(file, "", value, &back);
    typed
}

fn assert_no_dropped_fields(
    file: &str,
    at: &str,
    given: &serde_json::Value,
    typed: &serde_json::Value,
) {
    match (given, typed) {
        (serde_json::Value::Object(g), serde_json::Value::Object(t)) => {
            for (k, v) in g {
                let path = format!("{at}.{k}");
                let tv = t.get(k).unwrap_or_else(|| {
                    panic!("{file}: {path} is not a field of the API type (typo?)")
                });
                assert_no_dropped_fields(file, &path, v, tv);
            }
        }
        (serde_json::Value::Array(g), serde_json::Value::Array(t)) => {
            for (i, (gv, tv)) in g.iter().zip(t).enumerate() {
                assert_no_dropped_fields(file, &format!("{at}[{i}]"), gv, tv);
            }
        }
        _ => {}
    }
}

/// The kubernetes executor block of the example runbook (commented out
/// there), uncommented and parsed with the rest of the example.
fn example_kube_config() -> KubernetesConfig {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/runbook.example.toml"
    ))
    .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "# kind = \"kubernetes\"")
        .expect("the example has a kubernetes executor block")
        - 1;
    let mut block = String::new();
    for l in &lines[start..] {
        let Some(rest) = l.strip_prefix("# ") else {
            break;
        };
        if rest.starts_with('(') {
            break;
        }
        block.push_str(rest);
        block.push('\n');
    }
    let toml = format!("[cluster]\nname = \"shop\"\n{block}[backup]\nkind = \"none\"\n");
    match RunbookConfig::parse(&toml, "kube-example")
        .unwrap()
        .executor
    {
        ExecutorConfig::Kubernetes(k) => k,
        other => panic!("expected the kubernetes executor, got {}", other.kind()),
    }
}

fn app_container(d: &Deployment, name: &str) -> Container {
    let pod = d.spec.template.spec.as_ref().unwrap();
    pod.containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name} in the Deployment"))
        .clone()
}

fn labels(l: &Option<BTreeMap<String, String>>) -> BTreeMap<String, String> {
    l.clone().unwrap_or_default()
}

#[test]
fn every_document_parses_into_its_api_type() {
    let kinds: Vec<String> = documents().into_iter().map(|(_, k, _)| k).collect();
    for kind in &kinds {
        match kind.as_str() {
            "Deployment" => drop(one::<Deployment>(kind)),
            "Service" => drop(one::<Service>(kind)),
            "ConfigMap" => drop(one::<ConfigMap>(kind)),
            "Secret" => drop(one::<Secret>(kind)),
            "PersistentVolumeClaim" => drop(one::<PersistentVolumeClaim>(kind)),
            "Role" => drop(one::<Role>(kind)),
            "RoleBinding" => drop(one::<RoleBinding>(kind)),
            "ServiceAccount" => drop(one::<k8s_openapi::api::core::v1::ServiceAccount>(kind)),
            other => panic!("unexpected kind {other:?} in the manifests"),
        }
    }
    for (file, _, v) in documents() {
        assert_eq!(
            v["metadata"]["namespace"], "prod",
            "{file}: every object in namespace prod"
        );
    }
}

#[test]
fn the_deployment_is_what_the_example_runbook_drives() {
    let k = example_kube_config();
    let d: Deployment = one("Deployment");
    assert_eq!(k.workload, WorkloadKind::Deployment);
    assert_eq!(d.metadata.name.as_deref(), Some(k.name.as_str()));
    assert_eq!(d.metadata.namespace.as_deref(), Some(k.namespace.as_str()));
    let spec = &d.spec;
    assert_eq!(spec.replicas, Some(k.replicas as i32));
    assert_eq!(
        spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
        Some("Recreate"),
        "no rolling update: two versions must never run side by side"
    );
    let c = app_container(&d, &k.container);
    let image = c.image.clone().unwrap();
    let (repo, tag) = image.rsplit_once(':').unwrap();
    assert_eq!(repo, k.image, "the executor sets <image>:<version>");
    assert!(
        clusterops::runbook::check_version(tag).is_ok(),
        "tag {tag} is a version"
    );

    // The executor finds pods by matchLabels; the template must carry them
    // and the Service must select the same pods.
    let selector = labels(&spec.selector.match_labels);
    assert!(!selector.is_empty());
    let template = labels(&spec.template.metadata.as_ref().unwrap().labels);
    for (key, value) in &selector {
        assert_eq!(template.get(key), Some(value), "template label {key}");
    }
    let svc: Service = one("Service");
    assert_eq!(labels(&svc.spec.as_ref().unwrap().selector), selector);
    let port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
    assert!(
        c.ports
            .as_ref()
            .unwrap()
            .iter()
            .any(|p| p.name.as_deref() == Some("http")),
        "the container names its port http"
    );
}

fn probe_path(p: &Option<k8s_openapi::api::core::v1::Probe>) -> String {
    p.as_ref()
        .and_then(|p| p.http_get.as_ref())
        .and_then(|h| h.path.clone())
        .unwrap_or_default()
}

#[test]
fn probes_and_shutdown_match_the_node() {
    let k = example_kube_config();
    let d: Deployment = one("Deployment");
    let c = app_container(&d, &k.container);
    // Ready = the health check (503 in maintenance, draining, error); alive
    // and started = the status route, which answers in every state.
    assert_eq!(probe_path(&c.readiness_probe), "/api/__health_check");
    assert_eq!(probe_path(&c.liveness_probe), "/api/status");
    assert_eq!(probe_path(&c.startup_probe), "/api/status");
    let startup = c.startup_probe.as_ref().unwrap();
    let budget = startup.period_seconds.unwrap_or(10) * startup.failure_threshold.unwrap_or(3);
    let runbook = RunbookConfig::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/runbook.example.toml"
    )))
    .unwrap();
    assert!(
        budget as u64 >= runbook.timeouts.first_node_s,
        "the startup probe ({budget} s) must allow the first node's migration ({} s)",
        runbook.timeouts.first_node_s
    );

    // The node: listens on the pod IP (it registers that address), named
    // after the pod, and drains for --drain-timeout seconds on SIGTERM.
    let args = c.args.clone().unwrap();
    assert_eq!(c.command.as_deref(), Some(&["clusterops".to_string()][..]));
    assert_eq!(args[0], "node");
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].clone())
            .unwrap_or_else(|| panic!("the node has no {name}"))
    };
    assert_eq!(flag("--listen"), "$(POD_IP):13000");
    assert_eq!(flag("--node-id"), "$(POD_NAME)");
    let drain: i64 = flag("--drain-timeout").parse().unwrap();
    let pre_stop = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.sleep.as_ref())
        .map(|s| s.seconds)
        .expect("a preStop sleep");
    let grace = d
        .spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .termination_grace_period_seconds
        .unwrap_or(30);
    assert!(
        grace >= pre_stop + drain + 5,
        "grace {grace} s < preStop {pre_stop} s + drain {drain} s + 5 s to leave the registry"
    );
    let env_names: Vec<String> = c.env.clone().unwrap().into_iter().map(|e| e.name).collect();
    assert!(env_names.contains(&"POD_IP".into()) && env_names.contains(&"POD_NAME".into()));
}

#[test]
fn the_pods_environment_is_a_valid_cluster_configuration() {
    let d: Deployment = one("Deployment");
    let cm: ConfigMap = one("ConfigMap");
    let secret: Secret = one("Secret");
    let c = app_container(&d, "app");
    let refs: Vec<String> = c
        .env_from
        .clone()
        .unwrap()
        .into_iter()
        .filter_map(|e| {
            e.config_map_ref
                .map(|r| r.name)
                .or(e.secret_ref.map(|r| r.name))
        })
        .collect();
    assert_eq!(
        refs,
        vec![
            cm.metadata.name.clone().unwrap(),
            secret.metadata.name.clone().unwrap()
        ]
    );
    let mut vars = cm.data.clone().unwrap();
    vars.extend(secret.string_data.clone().unwrap());
    for key in vars.keys() {
        assert!(
            VARIABLES.contains(&key.as_str()),
            "{key} is not a clusterops variable"
        );
    }
    assert!(
        cm.data
            .as_ref()
            .unwrap()
            .keys()
            .all(|k| k != "APP_KEY" && k != "DB_URL"),
        "secrets belong in the Secret"
    );
    let config = Config::from_vars(&vars).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.is_clustered() && config.local_adapters().is_empty());
    assert_eq!(config.namespace.name(), example_kube_config().name);
    // STORAGE_PATH is the shared volume's mount.
    let mount = c.volume_mounts.clone().unwrap()[0].mount_path.clone();
    assert_eq!(config.storage_path.unwrap().display().to_string(), mount);
}

#[test]
fn the_runbook_account_may_do_what_the_executor_does_and_no_more() {
    let k = example_kube_config();
    let role: Role = one("Role");
    let binding: RoleBinding = one("RoleBinding");
    assert_eq!(binding.role_ref.name, role.metadata.name.clone().unwrap());
    let rules = role.rules.unwrap();
    let allows = |resource: &str, verb: &str| {
        rules.iter().any(|r| {
            r.resources
                .as_ref()
                .is_some_and(|rs| rs.iter().any(|x| x == resource))
                && r.verbs.iter().any(|v| v == verb)
                && r.resource_names
                    .as_ref()
                    .is_none_or(|n| n.contains(&k.name))
        })
    };
    for (resource, verb) in [
        ("deployments", "get"),
        ("deployments", "patch"),
        ("deployments/scale", "patch"),
        ("pods", "list"),
    ] {
        assert!(
            allows(resource, verb),
            "the runbook needs {verb} on {resource}"
        );
    }
    assert!(!allows("pods", "delete") && !allows("deployments", "delete"));
    assert!(rules.iter().all(|r| !r.verbs.iter().any(|v| v == "*")));
}
