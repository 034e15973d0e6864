//! `clusterops demo --redis URL`: the same demo on a real Redis, with three
//! `clusterops node` child processes in a fresh temporary namespace, the
//! same synthetic workload through the Redis adapters, and the live
//! inspector as the console's source. Stopping deletes the namespace's keys.

use super::workload::{Counters, NODE_IDS, NodeControl, Workload, workload};
use crate::adapters::lock::{LockBackend, RedisLock};
use crate::adapters::pubsub::{RedisSignals, SyncSignals};
use crate::adapters::queue::{MessageQueue, QueueOptions, RedisQueue, RetryPolicy};
use crate::adapters::redis_conn::scan_page;
use crate::config::Config;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

struct Procs {
    exe: PathBuf,
    env_file: PathBuf,
    children: Mutex<Vec<Option<Child>>>,
}

impl Procs {
    fn spawn(&self, i: usize) -> Result<Child, String> {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        Command::new(&self.exe)
            .arg("node")
            .arg("--env-file")
            .arg(&self.env_file)
            .args(["--node-id", NODE_IDS[i], "--drain-timeout", "1"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))
    }

    fn terminate(&self, i: usize) {
        let child = self.children.lock().get_mut(i).and_then(Option::take);
        if let Some(mut c) = child {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[async_trait::async_trait]
impl NodeControl for Procs {
    async fn stop_node(&self, i: usize) {
        tokio::task::block_in_place(|| self.terminate(i));
    }
    async fn start_node(&self, i: usize) {
        match self.spawn(i) {
            Ok(c) => {
                if let Some(slot) = self.children.lock().get_mut(i) {
                    *slot = Some(c);
                }
            }
            Err(e) => tracing::error!("demo node {} did not start: {e}", NODE_IDS[i]),
        }
    }
}

/// The demo on a real Redis.
pub struct RedisDemo {
    config: Config,
    procs: Arc<Procs>,
    workload: Mutex<Option<JoinHandle<()>>>,
}

impl RedisDemo {
    /// Start three `clusterops node` children (the running executable) on
    /// `url` in a new namespace `demo-XXXXXX`, and the workload.
    pub async fn start(url: &str) -> Result<Self, String> {
        let name = format!("demo-{:06x}", rand::random::<u32>() & 0xff_ffff);
        let config = Config::all_redis(url, &name).map_err(|e| e.to_string())?;
        let secret = crate::config::parse_redis_url(url).map_err(|e| e.to_string())?;
        let env_file = std::env::temp_dir().join(format!("clusterops-{name}.env"));
        let vars = [
            "CACHE_REDIS_URL",
            "PUBSUB_ADAPTER_REDIS_URL",
            "QUEUE_ADAPTER_REDIS_URL",
            "LOCK_ADAPTER_REDIS_URL",
            "REDIS_URL",
        ];
        let mut env = format!(
            "CLUSTER_NAME={name}\nCACHE_DEFAULT_STORE=redis\nQUEUE_ADAPTER=redis\nLOCK_ADAPTER_DEFAULT=redis\n"
        );
        for v in vars {
            env.push_str(&format!("{v}={}\n", secret.expose()));
        }
        std::fs::write(&env_file, env)
            .map_err(|e| format!("cannot write {}: {e}", env_file.display()))?;
        let exe = std::env::current_exe().map_err(|e| format!("no executable path: {e}"))?;
        let procs = Arc::new(Procs {
            exe,
            env_file,
            children: Mutex::new(vec![None, None, None]),
        });
        for i in 0..NODE_IDS.len() {
            procs.start_node(i).await;
        }
        let ns = config.namespace.clone();
        let queue = RedisQueue::connect(
            &secret,
            ns.clone(),
            "demo-workload",
            QueueOptions {
                retry: RetryPolicy {
                    max_attempts: 2,
                    base_delay: Duration::from_millis(100),
                    max_delay: Duration::from_millis(100),
                },
                ..QueueOptions::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut locks: Vec<Arc<dyn LockBackend>> = Vec::new();
        for id in NODE_IDS {
            let l = RedisLock::connect(&secret, ns.clone(), id)
                .await
                .map_err(|e| e.to_string())?;
            locks.push(Arc::new(l));
        }
        let signals = RedisSignals::connect(&secret, ns, "demo-workload")
            .await
            .ok()
            .map(|s| Arc::new(s) as Arc<dyn SyncSignals>);
        let w = Workload {
            queue: Arc::new(queue) as Arc<dyn MessageQueue>,
            locks,
            signals,
            counters: Arc::new(Counters::default()),
            nodes: procs.clone(),
        };
        Ok(Self {
            config,
            procs,
            workload: Mutex::new(Some(tokio::spawn(workload(w)))),
        })
    }

    /// The temporary cluster's configuration (for the inspector).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stop the workload and the nodes, delete the namespace's keys and
    /// the env file.
    pub async fn stop(&self) {
        if let Some(w) = self.workload.lock().take() {
            w.abort();
        }
        let procs = self.procs.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for i in 0..NODE_IDS.len() {
                procs.terminate(i);
            }
            let _ = std::fs::remove_file(&procs.env_file);
        })
        .await;
        if let Some((_, url)) = self.config.coordination_redis()
            && let Ok(mut conn) = crate::adapters::redis_conn::connect(url).await
        {
            let pattern = self.config.namespace.pattern("*");
            let mut cursor = 0u64;
            loop {
                let Ok((next, keys)) = scan_page(&mut conn, cursor, &pattern, 1000).await else {
                    break;
                };
                if !keys.is_empty() {
                    // One DEL per key: in a Redis Cluster they are in
                    // different slots.
                    let mut pipe = redis::pipe();
                    for key in &keys {
                        pipe.cmd("DEL").arg(key).ignore();
                    }
                    let _: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
    }
}
