//! The shared-storage check: each node writes a marker file under
//! `STORAGE_PATH`; a node that cannot see another live node's marker reports
//! "storage is not shared" (the deployment guide requires one shared
//! storage folder in multi-node mode). A node removes only the marker it
//! wrote: the file's content carries an owner token it compares first.

use std::io;
use std::path::{Path, PathBuf};

const MARKER_DIR: &str = ".clusterops/nodes";

/// The marker file of `node_id` under `root`.
pub fn marker_path(root: &Path, node_id: &str) -> PathBuf {
    root.join(MARKER_DIR).join(node_id)
}

/// A marker this process wrote: where, and the exact content (node id,
/// start time, pid and a random owner token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The file.
    pub path: PathBuf,
    /// What this process wrote into it.
    pub content: String,
}

/// What [`Marker::remove`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerRemoval {
    /// The file held our content and is gone.
    Removed,
    /// The file was already gone.
    Missing,
    /// The file holds another owner's content (another process wrote the
    /// same node id's marker): left in place.
    NotOurs,
    /// The file could not be read or removed.
    Failed,
}

/// Write this node's marker (its id, start time, pid and an owner token).
pub fn write_marker(root: &Path, node_id: &str, started_at_ms: u64) -> io::Result<Marker> {
    let path = marker_path(root, node_id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let content = format!(
        "{node_id} {started_at_ms} pid={} owner={:016x}\n",
        std::process::id(),
        rand::random::<u64>()
    );
    std::fs::write(&path, &content)?;
    Ok(Marker { path, content })
}

impl Marker {
    /// Remove the marker on a clean shutdown, but only when the file still
    /// holds what this process wrote: a marker rewritten by another process
    /// (the same node id started twice) is never deleted.
    pub fn remove(&self) -> MarkerRemoval {
        match std::fs::read_to_string(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => MarkerRemoval::Missing,
            Err(_) => MarkerRemoval::Failed,
            Ok(found) if found != self.content => MarkerRemoval::NotOurs,
            Ok(_) => match std::fs::remove_file(&self.path) {
                Ok(()) => MarkerRemoval::Removed,
                Err(e) if e.kind() == io::ErrorKind::NotFound => MarkerRemoval::Missing,
                Err(_) => MarkerRemoval::Failed,
            },
        }
    }
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
        let a = write_marker(shared.path(), "a", 1).unwrap();
        write_marker(shared.path(), "b", 2).unwrap();
        write_marker(other.path(), "c", 3).unwrap();
        assert_eq!(check_shared(shared.path(), ["a", "b"]), Ok(()));
        assert_eq!(
            check_shared(shared.path(), ["a", "c"]),
            Err(vec!["c".to_string()])
        );
        assert_eq!(a.remove(), MarkerRemoval::Removed);
        assert_eq!(a.remove(), MarkerRemoval::Missing);
        assert_eq!(
            check_shared(shared.path(), ["a"]),
            Err(vec!["a".to_string()])
        );
    }

    #[test]
    fn a_marker_rewritten_by_another_process_is_not_removed() {
        let shared = tempfile::tempdir().unwrap();
        let first = write_marker(shared.path(), "app1", 1).unwrap();
        // The same node id written again (a duplicate started with it): the
        // first owner's shutdown must leave the new marker alone, and the
        // duplicate's shutdown must not delete a marker it did not write.
        let second = write_marker(shared.path(), "app1", 1).unwrap();
        assert_ne!(first.content, second.content);
        assert_eq!(first.remove(), MarkerRemoval::NotOurs);
        assert_eq!(check_shared(shared.path(), ["app1"]), Ok(()));
        assert_eq!(second.remove(), MarkerRemoval::Removed);
    }
}
