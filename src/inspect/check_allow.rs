//! The operator's policy for `clusterops check`: `--allow NAME`, warnings
//! accepted (e.g. `redis-version` on a Redis 7 that stays) that are still
//! listed, marked allowed, and not counted for the exit code (a failure is
//! never allowed); and `--require-nodes`, no registered node as a failure.

use super::types::{CheckResult, CheckStatus, Snapshot};

/// Every check id, in the order [`super::checks::run`] gives them.
pub const CHECK_IDS: &[&str] = &[
    "sources-reachable",
    "nodes-healthy",
    "same-fingerprint",
    "same-version",
    "shared-adapters",
    "separate-redis-databases",
    "tls-verification",
    "sentinel-quorum",
    "redis-replicas",
    "redis-cluster-state",
    "redis-cluster-replicas",
    "redis-version",
    "rabbitmq-version",
    "rabbitmq-management",
    "eviction-policy",
    "redis-persistence",
    "worker-id-capacity",
    "process-capacity",
    "stale-worker-ids",
    "clock-skew",
    "shared-storage",
    "unreadable-keys",
];

/// An `--allow` value that names no check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--allow {name:?}: no such check; expected one of {}", CHECK_IDS.join(", "))]
pub struct UnknownCheck {
    /// The value given.
    pub name: String,
}

/// Every name must be a check id.
pub fn validate(names: &[String]) -> Result<(), UnknownCheck> {
    match names.iter().find(|n| !CHECK_IDS.contains(&n.as_str())) {
        Some(name) => Err(UnknownCheck { name: name.clone() }),
        None => Ok(()),
    }
}

/// Whether `result` is a warning the operator allowed.
pub fn is_allowed(result: &CheckResult, allowed: &[String]) -> bool {
    result.status == CheckStatus::Warn && allowed.contains(&result.id)
}

/// The results as they count: allowed warnings left out.
pub fn counted(results: &[CheckResult], allowed: &[String]) -> Vec<CheckResult> {
    results
        .iter()
        .filter(|r| !is_allowed(r, allowed))
        .cloned()
        .collect()
}

/// Like [`super::checks::exit_code`], allowed warnings counted as passes.
pub fn exit_code(results: &[CheckResult], allowed: &[String]) -> i32 {
    super::checks::exit_code(&counted(results, allowed))
}

/// `--require-nodes`: when the registry was read and holds no node (every
/// node down or stopped), `nodes-healthy` fails instead of warning.
pub fn require_nodes(results: &mut [CheckResult], snap: &Snapshot) {
    if !snap.nodes.ok().is_some_and(Vec::is_empty) {
        return;
    }
    for r in results.iter_mut().filter(|r| r.id == "nodes-healthy") {
        r.status = CheckStatus::Fail;
        r.reason = "no node is registered: the whole cluster is down (--require-nodes)".into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: &str, status: CheckStatus) -> CheckResult {
        CheckResult {
            id: id.into(),
            status,
            reason: String::new(),
        }
    }

    #[test]
    fn an_allowed_warning_is_not_counted_but_a_failure_always_is() {
        let allow = vec!["redis-version".to_string()];
        let warn = [
            r("redis-version", CheckStatus::Warn),
            r("nodes-healthy", CheckStatus::Pass),
        ];
        assert_eq!(exit_code(&warn, &[]), 1);
        assert_eq!(exit_code(&warn, &allow), 0);
        let other = [
            r("redis-version", CheckStatus::Warn),
            r("stale-worker-ids", CheckStatus::Warn),
        ];
        assert_eq!(exit_code(&other, &allow), 1);
        let fail = [r("redis-version", CheckStatus::Fail)];
        assert_eq!(exit_code(&fail, &allow), 2);
        assert!(!is_allowed(&fail[0], &allow));
    }

    #[test]
    fn unknown_names_are_refused() {
        assert_eq!(validate(&["redis-version".into()]), Ok(()));
        let e = validate(&["redis-versoin".into()]).unwrap_err();
        assert!(e.to_string().contains("no such check"), "{e}");
    }
}
