//! [`SnapshotSource`]: anything that produces [`Snapshot`]s of a cluster
//! (the live inspector, a saved file, the in-process demo). The console
//! polls one on its own task and only receives what it returns.

use super::Snapshot;

/// Something that can produce a snapshot of the cluster. The inspector
/// implements it for live mode (`console::live::InspectorSource`),
/// `console::source::FileSource` for saved snapshots, `demo::DemoSource`
/// for the in-process demo.
///
/// ```
/// use clusterops::inspect::source::SnapshotSource;
/// use clusterops::inspect::Snapshot;
/// struct Fixed(Snapshot);
/// #[async_trait::async_trait]
/// impl SnapshotSource for Fixed {
///     async fn fetch(&self) -> Result<Snapshot, String> { Ok(self.0.clone()) }
/// }
/// ```
#[async_trait::async_trait]
pub trait SnapshotSource: Send + Sync {
    /// Read the cluster once; the error is one line for the banner (never a
    /// password).
    async fn fetch(&self) -> Result<Snapshot, String>;
}
