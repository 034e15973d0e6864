//! The shared-storage check: each node writes a marker file under
//! `STORAGE_PATH`; a node that cannot see another live node's marker reports
//! "storage is not shared" (the deployment guide requires one shared
//! storage folder in multi-node mode).

use std::io;
use std::path::{Path, PathBuf};

const MARKER_DIR: &str = ".clusterops/nodes";

/// The marker file of `node_id` under `root`.
pub fn marker_path(root: &Path, node_id: &str) -> PathBuf {
    root.join(MARKER_DIR).join(node_id)
}

/// Write this node's marker (its id and start time).
pub fn write_marker(root: &Path, node_id: &str, started_at_ms: u64) -> io::Result<PathBuf> {
    let path = marker_path(root, node_id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, format!("{node_id} {started_at_ms}\n"))?;
    Ok(path)
}

/// Remove this node's marker (clean shutdown). A missing marker is fine.
pub fn remove_marker(root: &Path, node_id: &str) {
    let _ = std::fs::remove_file(marker_path(root, node_id));
}

/// Check the markers of `others` (live nodes' ids). `Ok(())` when every one
/// is visible; otherwise the ids whose markers are missing.
pub fn check_shared<'a>(
    root: &Path,
    others: impl IntoIterator<Item = &'a str>,
) -> Result<(), Vec<String>> {
    let missing: Vec<String> = others
        .into_iter()
        .filter(|id| !marker_path(root, id).exists())
        .map(str::to_string)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_sees_markers_in_the_same_folder_only() {
        let shared = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        write_marker(shared.path(), "a", 1).unwrap();
        write_marker(shared.path(), "b", 2).unwrap();
        write_marker(other.path(), "c", 3).unwrap();
        assert_eq!(check_shared(shared.path(), ["a", "b"]), Ok(()));
        assert_eq!(
            check_shared(shared.path(), ["a", "c"]),
            Err(vec!["c".to_string()])
        );
        remove_marker(shared.path(), "a");
        assert_eq!(
            check_shared(shared.path(), ["a"]),
            Err(vec!["a".to_string()])
        );
    }
}
