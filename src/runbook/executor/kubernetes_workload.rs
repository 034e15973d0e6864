//! The Deployment or StatefulSet behind the `kubernetes` executor: the
//! reads and patches both kinds share, written once over kube's `Api<K>`,
//! and the pod selector they declare (`matchLabels` and `matchExpressions`)
//! turned into a list query by kube's selector conversion.

use crate::runbook::config::WorkloadKind;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Patch, PatchParams};
use kube::core::Selector;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;

/// A workload kind the executor drives: where its pod selector and its pod
/// template are (the same fields in both kinds' specs, in two types).
pub(super) trait Workload:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// `spec.selector` and `spec.template`.
    fn selector_and_template(&self) -> (&LabelSelector, &PodTemplateSpec);
}

impl Workload for Deployment {
    fn selector_and_template(&self) -> (&LabelSelector, &PodTemplateSpec) {
        (&self.spec.selector, &self.spec.template)
    }
}

impl Workload for StatefulSet {
    fn selector_and_template(&self) -> (&LabelSelector, &PodTemplateSpec) {
        (&self.spec.selector, &self.spec.template)
    }
}

/// What the executor reads from its workload.
pub(super) struct WorkloadSpec {
    /// The pod selector as declared.
    pub selector: LabelSelector,
    /// The image of the named container, if it has one.
    pub image: Option<String>,
}

/// The workload's API, whichever its kind.
#[async_trait::async_trait]
pub(super) trait WorkloadApi: Send + Sync {
    /// `GET` it: its selector and the image of `container`.
    async fn read(&self, name: &str, container: &str) -> Result<WorkloadSpec, kube::Error>;
    /// `PATCH …/scale` to `replicas`.
    async fn scale(&self, name: &str, replicas: u32) -> Result<(), kube::Error>;
    /// `PATCH` it (the pod template).
    async fn patch(&self, name: &str, patch: &Patch<Value>) -> Result<(), kube::Error>;
}

#[async_trait::async_trait]
impl<K: Workload> WorkloadApi for Api<K> {
    async fn read(&self, name: &str, container: &str) -> Result<WorkloadSpec, kube::Error> {
        let w = self.get(name).await?;
        let (selector, template) = w.selector_and_template();
        let image = template
            .spec
            .iter()
            .flat_map(|p| &p.containers)
            .find(|c| c.name == container)
            .and_then(|c| c.image.clone());
        Ok(WorkloadSpec {
            selector: selector.clone(),
            image,
        })
    }

    async fn scale(&self, name: &str, replicas: u32) -> Result<(), kube::Error> {
        let patch = Patch::Merge(serde_json::json!({ "spec": { "replicas": replicas } }));
        self.patch_scale(name, &PatchParams::default(), &patch)
            .await
            .map(|_| ())
    }

    async fn patch(&self, name: &str, patch: &Patch<Value>) -> Result<(), kube::Error> {
        Api::patch(self, name, &PatchParams::default(), patch)
            .await
            .map(|_| ())
    }
}

/// The API of the workload of `kind` in `namespace`.
pub(super) fn api(
    client: kube::Client,
    namespace: &str,
    kind: WorkloadKind,
) -> Box<dyn WorkloadApi> {
    match kind {
        WorkloadKind::Deployment => Box::new(Api::<Deployment>::namespaced(client, namespace)),
        WorkloadKind::StatefulSet => Box::new(Api::<StatefulSet>::namespaced(client, namespace)),
    }
}

/// The list query for a workload's pods: every `matchLabels` pair and every
/// `matchExpressions` requirement (In, NotIn, Exists, DoesNotExist), ANDed
/// as Kubernetes does. An empty selector would list every pod of the
/// namespace, so it is refused, as is an operator Kubernetes does not know.
pub(super) fn pod_selector(selector: LabelSelector, what: &str) -> Result<Selector, String> {
    let selector = Selector::try_from(selector)
        .map_err(|e| format!("{what}: spec.selector cannot be used to list its pods: {e}"))?;
    if selector.selects_all() {
        return Err(format!(
            "{what} has an empty spec.selector (no matchLabels, no matchExpressions); \
             the executor finds its pods by it"
        ));
    }
    Ok(selector)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(json: serde_json::Value) -> LabelSelector {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn match_expressions_are_part_of_the_pod_query() {
        let s = pod_selector(
            selector(serde_json::json!({
                "matchLabels": {"app": "shop"},
                "matchExpressions": [
                    {"key": "track", "operator": "In", "values": ["stable", "canary"]},
                    {"key": "legacy", "operator": "DoesNotExist"}
                ]
            })),
            "deployment prod/shop",
        )
        .unwrap();
        assert_eq!(s.to_string(), "app=shop,track in (canary,stable),!legacy");
    }

    #[test]
    fn an_empty_or_unknown_selector_is_refused_with_the_workload_named() {
        let e = pod_selector(selector(serde_json::json!({})), "deployment prod/shop").unwrap_err();
        assert!(
            e.contains("deployment prod/shop has an empty spec.selector"),
            "{e}"
        );
        let e = pod_selector(
            selector(serde_json::json!({
                "matchExpressions": [{"key": "a", "operator": "Near"}]
            })),
            "statefulset prod/db",
        )
        .unwrap_err();
        assert!(e.starts_with("statefulset prod/db: spec.selector"), "{e}");
    }
}
