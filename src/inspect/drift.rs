//! Drift: which nodes run with a configuration fingerprint or an app
//! version other than the majority's, and which settings differ.

use super::types::Drift;
use std::collections::BTreeMap;

/// What drift detection needs to know about one node.
#[derive(Debug, Clone)]
pub struct NodeFacts<'a> {
    /// Node id.
    pub node_id: &'a str,
    /// Configuration fingerprint.
    pub fingerprint: &'a str,
    /// Per-setting fingerprints.
    pub parts: &'a BTreeMap<String, String>,
    /// App version.
    pub app_version: &'a str,
}

/// The most common value; ties go to the smallest, so the answer is stable.
fn majority<'a>(values: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    let best = counts.values().copied().max()?;
    counts.into_iter().find(|(_, n)| *n == best).map(|(v, _)| v)
}

/// Compute the cluster's drift and, per node, the settings that differ from
/// the majority value of that setting (names only, never values).
pub fn compute(nodes: &[NodeFacts<'_>]) -> (Drift, BTreeMap<String, Vec<String>>) {
    let majority_fp = majority(nodes.iter().map(|n| n.fingerprint));
    let majority_version = majority(nodes.iter().map(|n| n.app_version));
    let mut settings: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for n in nodes {
        for (k, v) in n.parts {
            settings.entry(k.as_str()).or_default().push(v.as_str());
        }
    }
    let majority_parts: BTreeMap<&str, &str> = settings
        .into_iter()
        .filter_map(|(k, vs)| majority(vs.into_iter()).map(|m| (k, m)))
        .collect();
    let mut per_node = BTreeMap::new();
    for n in nodes {
        let differing: Vec<String> = majority_parts
            .iter()
            .filter(|(k, m)| n.parts.get(**k).map(String::as_str) != Some(**m))
            .map(|(k, _)| (*k).to_string())
            .collect();
        per_node.insert(n.node_id.to_string(), differing);
    }
    let drift = Drift {
        majority_fingerprint: majority_fp.map(str::to_string),
        majority_version: majority_version.map(str::to_string),
        fingerprint: nodes
            .iter()
            .filter(|n| Some(n.fingerprint) != majority_fp)
            .map(|n| n.node_id.to_string())
            .collect(),
        version: nodes
            .iter()
            .filter(|n| Some(n.app_version) != majority_version)
            .map(|n| n.node_id.to_string())
            .collect(),
    };
    (drift, per_node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_odd_node_out_is_named_with_its_differing_setting() {
        let same = parts(&[("CACHE", "a"), ("APP_KEY", "k")]);
        let other = parts(&[("CACHE", "a"), ("APP_KEY", "z")]);
        let nodes = [
            NodeFacts {
                node_id: "n1",
                fingerprint: "f1",
                parts: &same,
                app_version: "1",
            },
            NodeFacts {
                node_id: "n2",
                fingerprint: "f1",
                parts: &same,
                app_version: "1",
            },
            NodeFacts {
                node_id: "n3",
                fingerprint: "f2",
                parts: &other,
                app_version: "2",
            },
        ];
        let (drift, per_node) = compute(&nodes);
        assert_eq!(drift.majority_fingerprint.as_deref(), Some("f1"));
        assert_eq!(drift.fingerprint, vec!["n3"]);
        assert_eq!(drift.version, vec!["n3"]);
        assert_eq!(per_node["n3"], vec!["APP_KEY"]);
        assert!(per_node["n1"].is_empty());
    }

    #[test]
    fn no_nodes_no_drift() {
        let (drift, per_node) = compute(&[]);
        assert_eq!(drift, Drift::default());
        assert!(per_node.is_empty());
    }
}
