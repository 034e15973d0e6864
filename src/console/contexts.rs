//! Several clusters in one console, like k9s contexts: each context is a
//! name with its own snapshot source, actions and configuration; one is
//! active. The poller reads the active one ([`Contexts::source`]), the
//! dialogs act on it ([`Contexts::actions`]); `:ctx NAME` switches and
//! `:ctx` lists them. Read-only applies to every context alike.

use crate::config::Config;
use crate::console::source::SnapshotSource;
use crate::inspect::Snapshot;
use crate::operate::{ClusterActions, DeadLetter};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One cluster the console can show.
pub struct Context {
    /// The name `:ctx` takes and the header shows.
    pub name: String,
    /// Where its snapshots come from.
    pub source: Arc<dyn SnapshotSource>,
    /// What may change it (`None`: look only).
    pub actions: Option<Arc<dyn ClusterActions>>,
    /// Its configuration, for the checks that read it.
    pub config: Option<Config>,
}

/// The contexts and which one is shown.
#[derive(Clone)]
pub struct Contexts {
    list: Arc<Vec<Context>>,
    active: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Contexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contexts")
            .field("names", &self.names())
            .field("active", &self.active())
            .finish()
    }
}

impl Contexts {
    /// `list`, the first one active; `None` when empty.
    pub fn new(list: Vec<Context>) -> Option<Self> {
        (!list.is_empty()).then(|| Self {
            list: Arc::new(list),
            active: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|c| c.name.as_str()).collect()
    }

    /// The active context's index.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst).min(self.list.len() - 1)
    }

    /// The active context.
    pub fn current(&self) -> &Context {
        &self.list[self.active()]
    }

    /// The context `name` names: exactly, else as the only one it is a
    /// prefix of (ignoring case).
    pub fn find(&self, name: &str) -> Option<usize> {
        let wanted = name.trim().to_lowercase();
        if let Some(i) = self
            .list
            .iter()
            .position(|c| c.name.to_lowercase() == wanted)
        {
            return Some(i);
        }
        let matching: Vec<usize> = (0..self.list.len())
            .filter(|i| self.list[*i].name.to_lowercase().starts_with(&wanted))
            .collect();
        match matching.as_slice() {
            [one] if !wanted.is_empty() => Some(*one),
            _ => None,
        }
    }

    /// Show context `i` from now on.
    pub fn switch(&self, i: usize) {
        self.active
            .store(i.min(self.list.len() - 1), Ordering::SeqCst);
    }

    /// The snapshot source the poller reads: always the active context's.
    pub fn source(&self) -> Arc<dyn SnapshotSource> {
        Arc::new(Switching(self.clone()))
    }

    /// The actions the dialogs call: the active context's; `None` when no
    /// context has any.
    pub fn actions(&self) -> Option<Arc<dyn ClusterActions>> {
        self.list
            .iter()
            .any(|c| c.actions.is_some())
            .then(|| Arc::new(Switching(self.clone())) as Arc<dyn ClusterActions>)
    }
}

/// Reads from, and acts on, whichever context is active.
struct Switching(Contexts);

impl Switching {
    fn actions(&self) -> Result<Arc<dyn ClusterActions>, String> {
        let c = self.0.current();
        c.actions
            .clone()
            .ok_or_else(|| format!("context {} offers no action", c.name))
    }
}

#[async_trait::async_trait]
impl SnapshotSource for Switching {
    async fn fetch(&self) -> Result<Snapshot, String> {
        // A switch while reading: read the new context instead, so an old
        // context's snapshot never arrives after the switch.
        loop {
            let i = self.0.active();
            let got = self.0.list[i].source.fetch().await;
            if self.0.active() == i {
                return got;
            }
        }
    }
}

#[async_trait::async_trait]
impl ClusterActions for Switching {
    async fn set_maintenance(&self, reason: &str) -> Result<String, String> {
        self.actions()?.set_maintenance(reason).await
    }
    async fn clear_maintenance(&self) -> Result<String, String> {
        self.actions()?.clear_maintenance().await
    }
    async fn force_release_lock(&self, name: &str, token: u64) -> Result<String, String> {
        self.actions()?.force_release_lock(name, token).await
    }
    async fn free_lease(&self, worker_id: u8, holder: &str) -> Result<String, String> {
        self.actions()?.free_lease(worker_id, holder).await
    }
    async fn requeue_dead_letters(&self, queue: &str) -> Result<String, String> {
        self.actions()?.requeue_dead_letters(queue).await
    }
    async fn purge_dead_letters(&self, queue: &str) -> Result<String, String> {
        self.actions()?.purge_dead_letters(queue).await
    }
    async fn list_dead_letters(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, String> {
        self.actions()?.list_dead_letters(queue, limit).await
    }
    async fn pause_queue(&self, queue: &str, reason: &str) -> Result<String, String> {
        self.actions()?.pause_queue(queue, reason).await
    }
    async fn resume_queue(&self, queue: &str) -> Result<String, String> {
        self.actions()?.resume_queue(queue).await
    }
}

/// `name = "path.env"` lines of a contexts file (TOML, under
/// `[contexts]`; a relative path is next to the file), by name; the error names the file and what is
/// wrong, in one line.
pub fn parse_contexts_file(
    path: &std::path::Path,
    text: &str,
) -> Result<Vec<(String, std::path::PathBuf)>, String> {
    let value: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("{}: not TOML: {}", path.display(), e.message()))?;
    let Some(table) = value.get("contexts").and_then(|v| v.as_table()) else {
        return Err(format!(
            "{}: no [contexts] table (write `[contexts]` then `name = \"file.env\"` lines)",
            path.display()
        ));
    };
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let mut out = Vec::new();
    for (name, file) in table {
        let Some(file) = file.as_str() else {
            return Err(format!(
                "{}: contexts.{name} must be the path of an env file, in quotes",
                path.display()
            ));
        };
        out.push((name.clone(), base.join(file)));
    }
    if out.is_empty() {
        return Err(format!("{}: [contexts] lists no context", path.display()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::sample;

    struct Fixed(Snapshot);

    #[async_trait::async_trait]
    impl SnapshotSource for Fixed {
        async fn fetch(&self) -> Result<Snapshot, String> {
            Ok(self.0.clone())
        }
    }

    fn ctx(name: &str, cluster: &str) -> Context {
        let mut s = sample::healthy();
        s.cluster = cluster.into();
        Context {
            name: name.into(),
            source: Arc::new(Fixed(s)),
            actions: None,
            config: None,
        }
    }

    #[tokio::test]
    async fn the_source_follows_the_active_context() {
        let c = Contexts::new(vec![ctx("prod", "p"), ctx("staging", "s")]).unwrap();
        let source = c.source();
        assert_eq!(source.fetch().await.unwrap().cluster, "p");
        c.switch(c.find("st").unwrap());
        assert_eq!(source.fetch().await.unwrap().cluster, "s");
        assert_eq!(c.find("PROD"), Some(0));
        assert_eq!(c.find("x"), None);
        assert!(c.actions().is_none(), "no context acts");
    }

    #[test]
    fn a_contexts_file_maps_names_to_env_files_next_to_it() {
        let p = std::path::Path::new("/etc/clusterops/contexts.toml");
        let got = parse_contexts_file(
            p,
            "[contexts]\nprod = \"prod.env\"\nstaging = \"/x/s.env\"\n",
        )
        .unwrap();
        assert_eq!(got[0], ("prod".into(), "/etc/clusterops/prod.env".into()));
        assert_eq!(got[1].1, std::path::PathBuf::from("/x/s.env"));
        assert!(
            parse_contexts_file(p, "prod = 1")
                .unwrap_err()
                .contains("no [contexts]")
        );
        assert!(
            parse_contexts_file(p, "[contexts]\nprod = 1")
                .unwrap_err()
                .contains("contexts.prod")
        );
        assert!(
            parse_contexts_file(p, "[contexts")
                .unwrap_err()
                .contains("not TOML")
        );
    }
}
