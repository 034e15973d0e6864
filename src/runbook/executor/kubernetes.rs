//! The `kubernetes` executor: one Deployment or StatefulSet is the cluster.
//! Stop = scale to 0 and wait for its pods to go; starting the first node =
//! set the container's image tag to the version, scale to 1, wait for the
//! pod to be up (Ready, or started); each further node = scale one more and
//! wait. The engine
//! then checks each node's own health through the registry.

use super::kubernetes_workload::{self, WorkloadApi};
use super::{ExecError, Executor, NodeSlot, StepIo, check_value};
use crate::runbook::config::KubernetesConfig;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch};
use kube::core::Selector;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Poll interval while waiting for pods: a pod takes seconds to start or
/// go, and every poll is a list call to the API server.
const POLL: Duration = Duration::from_secs(1);

/// A Deployment or StatefulSet through the Kubernetes API.
#[derive(Clone)]
pub struct KubernetesExecutor {
    config: KubernetesConfig,
    client: kube::Client,
    workload: Arc<dyn WorkloadApi>,
    wait: Duration,
}

fn kerr(action: &str) -> impl Fn(kube::Error) -> ExecError + '_ {
    move |e| ExecError::Kubernetes(format!("{action}: {e}"))
}

impl KubernetesExecutor {
    /// Connect to `config.api_url`, else the kubeconfig or in-cluster config.
    pub async fn connect(config: KubernetesConfig) -> Result<Self, ExecError> {
        let client = match &config.api_url {
            Some(url) => {
                let uri = url
                    .parse()
                    .map_err(|e| ExecError::Kubernetes(format!("api_url {url:?}: {e}")))?;
                kube::Client::try_from(kube::Config::new(uri))
                    .map_err(kerr("creating the client"))?
            }
            None => kube::Client::try_default()
                .await
                .map_err(kerr("reading the kubeconfig or in-cluster configuration"))?,
        };
        Ok(Self::with_client(config, client))
    }

    /// Use an existing client.
    pub fn with_client(config: KubernetesConfig, client: kube::Client) -> Self {
        let wait = Duration::from_secs(config.pod_wait_s);
        let workload =
            kubernetes_workload::api(client.clone(), &config.namespace, config.workload).into();
        Self {
            config,
            client,
            workload,
            wait,
        }
    }

    fn what(&self) -> String {
        what(&self.config)
    }

    async fn scale(&self, replicas: u32, io: &dyn StepIo) -> Result<(), ExecError> {
        let action = format!("scaling {} to {replicas}", self.what());
        self.workload
            .scale(&self.config.name, replicas)
            .await
            .map_err(kerr(&action))?;
        io.line(&format!("scaled {} to {replicas}", self.what()));
        Ok(())
    }

    /// The pod selector and the container's current image.
    async fn read_workload(&self) -> Result<(Selector, Option<String>), ExecError> {
        let action = format!("reading {}", self.what());
        let spec = self
            .workload
            .read(&self.config.name, &self.config.container)
            .await
            .map_err(kerr(&action))?;
        let selector = kubernetes_workload::pod_selector(spec.selector, &self.what())
            .map_err(ExecError::Kubernetes)?;
        Ok((selector, spec.image))
    }

    async fn set_image(&self, image: &str, io: &dyn StepIo) -> Result<(), ExecError> {
        let patch = Patch::Strategic(json!({
            "spec": { "template": { "spec": { "containers": [
                { "name": self.config.container, "image": image }
            ] } } }
        }));
        let action = format!("setting the image of {}", self.what());
        self.workload
            .patch(&self.config.name, &patch)
            .await
            .map_err(kerr(&action))?;
        io.line(&format!(
            "set container {} of {} to {image}",
            self.config.container,
            self.what()
        ));
        Ok(())
    }

    /// Pods of the workload: (total, up ones running `image` if given).
    async fn pods(
        &self,
        selector: &Selector,
        image: Option<&str>,
    ) -> Result<(usize, usize), ExecError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.config.namespace);
        let list = api
            .list(&ListParams::default().labels_from(selector))
            .await
            .map_err(kerr("listing pods"))?;
        let total = list.items.len();
        let up = list
            .items
            .iter()
            .filter(|p| {
                let right_image = image.is_none_or(|want| {
                    p.spec.as_ref().is_some_and(|s| {
                        s.containers.iter().any(|c| {
                            c.name == self.config.container && c.image.as_deref() == Some(want)
                        })
                    })
                });
                pod_is_up(p, &self.config.container) && right_image
            })
            .count();
        Ok((total, up))
    }

    /// List the pods every [`POLL`] until `done(total, up)` says so; after
    /// the wait, the timeout error names `node` and what `waiting` says.
    async fn wait_for_pods(
        &self,
        selector: &Selector,
        image: Option<&str>,
        node: &str,
        done: impl Fn(usize, usize) -> bool,
        waiting: impl Fn(usize, usize) -> String,
    ) -> Result<(usize, usize), ExecError> {
        let started = Instant::now();
        loop {
            let (total, up) = self.pods(selector, image).await?;
            if done(total, up) {
                return Ok((total, up));
            }
            if started.elapsed() > self.wait {
                return Err(ExecError::Timeout {
                    node: node.to_string(),
                    what: waiting(total, up),
                    secs: self.wait.as_secs(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn image(&self, version: &str) -> String {
        format!("{}:{version}", self.config.image)
    }
}

/// A pod whose node serves: Ready, or its container running and started
/// (its startup probe passed). A node in maintenance -- the whole cluster
/// during an upgrade -- answers 503 on its health check, so a readiness
/// probe on `/api/__health_check` keeps it un-Ready until the flag is
/// cleared at step 8; the engine then checks the node itself through the
/// registry and its `/api/status`.
pub fn pod_is_up(pod: &Pod, container: &str) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let ready = status
        .conditions
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let started = status.container_statuses.as_ref().is_some_and(|cs| {
        cs.iter().any(|c| {
            c.name == container
                && c.started == Some(true)
                && c.state.as_ref().is_some_and(|s| s.running.is_some())
        })
    });
    ready || started
}

fn what(config: &KubernetesConfig) -> String {
    format!("{} {}/{}", config.workload, config.namespace, config.name)
}

/// `replica-1` .. `replica-N`; node ids unknown (pods are counted).
pub fn slots(config: &KubernetesConfig) -> Vec<NodeSlot> {
    (0..config.replicas as usize)
        .map(|index| NodeSlot {
            index,
            name: format!("replica-{}", index + 1),
            node_id: None,
        })
        .collect()
}

/// What stopping does.
pub fn describe_stop(config: &KubernetesConfig) -> String {
    format!(
        "scale {} to 0 and wait until its pods are gone",
        what(config)
    )
}

/// What starting `slot` does.
pub fn describe_start(config: &KubernetesConfig, slot: &NodeSlot, version: &str) -> String {
    if slot.index == 0 {
        format!(
            "set container {} of {} to {}:{version}, scale to 1, wait for the pod to be up (Ready or started)",
            config.container,
            what(config),
            config.image
        )
    } else {
        format!(
            "scale {} to {} and wait for the new pod to be up (Ready or started)",
            what(config),
            slot.index + 1
        )
    }
}

#[async_trait::async_trait]
impl Executor for KubernetesExecutor {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn slots(&self) -> Vec<NodeSlot> {
        slots(&self.config)
    }

    fn describe_stop(&self) -> String {
        describe_stop(&self.config)
    }

    fn describe_start(&self, slot: &NodeSlot, version: &str) -> String {
        describe_start(&self.config, slot, version)
    }

    async fn stop_all(&self, io: &dyn StepIo) -> Result<(), ExecError> {
        let (selector, _) = self.read_workload().await?;
        self.scale(0, io).await?;
        self.wait_for_pods(
            &selector,
            None,
            &self.what(),
            |total, _| total == 0,
            |total, _| format!("scale to 0 ({total} pods left)"),
        )
        .await?;
        io.line(&format!("no pods left ({selector})"));
        Ok(())
    }

    async fn start(
        &self,
        slot: &NodeSlot,
        version: &str,
        io: &dyn StepIo,
    ) -> Result<(), ExecError> {
        check_value("version", version)?;
        let image = self.image(version);
        let (selector, current) = self.read_workload().await?;
        if current.as_deref() != Some(image.as_str()) {
            self.set_image(&image, io).await?;
        }
        let want = slot.index + 1;
        self.scale(want as u32, io).await?;
        let (_, up) = self
            .wait_for_pods(
                &selector,
                Some(&image),
                &slot.name,
                |_, up| up >= want,
                |_, up| format!("pod up on {image} ({up} of {want})"),
            )
            .await?;
        io.line(&format!("{up} pod(s) up on {image}"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_started_pod_in_maintenance_is_up_though_not_ready() {
        let in_maintenance = pod(json!({
            "metadata": {"name": "shop-1"},
            "status": {
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{
                    "name": "app", "image": "r/shop:2", "imageID": "", "ready": false,
                    "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": "2026-11-24T08:00:00Z"}}
                }]
            }
        }));
        assert!(pod_is_up(&in_maintenance, "app"));
        assert!(!pod_is_up(&in_maintenance, "sidecar"));
        let starting = pod(json!({
            "metadata": {"name": "shop-2"},
            "status": {"containerStatuses": [{
                "name": "app", "image": "r/shop:2", "imageID": "", "ready": false,
                "restartCount": 0, "started": false,
                "state": {"running": {"startedAt": "2026-11-24T08:00:00Z"}}
            }]}
        }));
        assert!(!pod_is_up(&starting, "app"));
        let ready = pod(json!({
            "metadata": {"name": "shop-3"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }));
        assert!(pod_is_up(&ready, "app"));
    }
}
