//! A private Redis Cluster on free loopback ports, stopped on drop: three
//! masters (optionally each with one replica) made with `redis-server
//! --cluster-enabled yes` and joined with `redis-cli --cluster create`,
//! optionally with a password (`--requirepass`/`--masterauth`). A killed
//! node can be started again on its port (it rejoins, as a replica of the
//! node promoted in its place).
//! Ports stay below 55535: the cluster bus listens on port + 10000.

use super::topology::{Server, wait_until};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A loopback port below 55535 whose bus port (port + 10000) is free too.
pub fn free_cluster_port() -> u16 {
    for _ in 0..1000 {
        let port: u16 = 20000 + rand::random::<u16>() % 35000;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10000) {
            return port;
        }
    }
    panic!("no free port pair for a cluster node");
}

/// The running cluster: `nodes[..masters]` started as masters, the rest as
/// their replicas (the roles change after a failover: ask [`Self::role`]).
pub struct RedisCluster {
    pub nodes: Vec<Server>,
    dir: tempfile::TempDir,
    password: Option<String>,
}

impl RedisCluster {
    /// Three masters, each with `replicas` replicas (0 or 1), all slots
    /// covered, cluster state ok. `node-timeout` is 1 s so a failover takes
    /// a few seconds.
    pub fn start(replicas: usize) -> Self {
        Self::start_with(replicas, None)
    }

    /// [`Self::start`], every node requiring `password` (also the password
    /// its replicas authenticate with); [`Self::url`] carries it.
    pub fn start_with(replicas: usize, password: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let count = 3 * (1 + replicas);
        let mut nodes = Vec::new();
        for _ in 0..count {
            let port = free_cluster_port();
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("node dir");
            nodes.push(Server::from_child(
                port,
                spawn_node(port, &node_dir, password),
            ));
        }
        let password = password.map(str::to_string);
        for n in &nodes {
            wait_until("a cluster node answering", Duration::from_secs(10), || {
                cli_as(password.as_deref(), n.port, &["PING"]).as_deref() == Some("PONG")
            });
        }
        let mut create = Command::new("redis-cli");
        if let Some(p) = &password {
            create.args(["-a", p, "--no-auth-warning"]);
        }
        create.args(["--cluster", "create"]);
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli is installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self {
            nodes,
            dir,
            password,
        };
        cluster.wait_ok(Duration::from_secs(20));
        // A replica that has not synced yet never takes over its master
        // (its data counts as too old): wait for every one.
        for i in 0..cluster.nodes.len() {
            if cluster.role(i).as_deref() == Some("slave") {
                cluster.wait_synced_replica(i, Duration::from_secs(20));
            }
        }
        // Until every node has heard of every replica (`CLUSTER SLOTS`
        // lists only the replicas the node asked knows).
        wait_until(
            "every node knowing every replica",
            Duration::from_secs(20),
            || {
                cluster.nodes.iter().all(|n| {
                    cluster.cli(n.port, &["CLUSTER", "NODES"]).is_some_and(|t| {
                        t.lines().filter(|l| l.contains("slave")).count() == 3 * replicas
                    })
                })
            },
        );
        cluster
    }

    /// After killing master `dead`: wait until every running node has
    /// marked it failed and the cluster is ok again (its replica promoted).
    pub fn wait_promoted(&self, dead: usize, limit: Duration) {
        let port = format!(":{}@", self.nodes[dead].port);
        wait_until("the dead master's replica promoted", limit, || {
            self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                let ok = self
                    .cli(n.port, &["CLUSTER", "INFO"])
                    .is_some_and(|t| t.contains("cluster_state:ok"));
                let marked = self.cli(n.port, &["CLUSTER", "NODES"]).is_some_and(|t| {
                    t.lines()
                        .filter(|l| l.contains(&port))
                        .all(|l| l.contains("fail") && !l.contains("fail?"))
                });
                ok && marked
            })
        });
    }

    /// Wait until every running node says `cluster_state:ok` and knows the
    /// same number of masters with slots.
    pub fn wait_ok(&self, limit: Duration) {
        wait_until("the cluster state ok", limit, || {
            self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                self.cli(n.port, &["CLUSTER", "INFO"])
                    .is_some_and(|t| t.contains("cluster_state:ok"))
            })
        });
    }

    /// A URL naming node `i` (with the password, when there is one).
    pub fn url(&self, i: usize) -> String {
        let auth = self
            .password
            .as_ref()
            .map_or_else(String::new, |p| format!(":{p}@"));
        format!("redis://{auth}127.0.0.1:{}/0", self.nodes[i].port)
    }

    /// `redis-cli` on node port `port`, with the password (see [`cli`]).
    pub fn cli(&self, port: u16, args: &[&str]) -> Option<String> {
        cli_as(self.password.as_deref(), port, args)
    }

    /// `master` or `slave`, as node `i` says (`None` when it does not answer).
    pub fn role(&self, i: usize) -> Option<String> {
        self.cli(self.nodes[i].port, &["ROLE"])?
            .lines()
            .next()
            .map(|s| s.trim().to_string())
    }

    /// The index of the node that serves `key` as master now (the one
    /// whose `GET` is not redirected).
    pub fn master_of(&self, key: &str) -> usize {
        self.masters()
            .into_iter()
            .find(|&i| {
                cli_raw(self.password.as_deref(), self.nodes[i].port, &["GET", key])
                    .is_some_and(|t| !t.starts_with("MOVED"))
            })
            .unwrap_or_else(|| panic!("no master serves {key}"))
    }

    /// Start node `i` again after [`Self::kill`], on its port with its
    /// `nodes.conf`: it rejoins the cluster, as a replica of the node
    /// promoted in its place when there was one (its data is not kept:
    /// no persistence, it resyncs).
    pub fn restart(&mut self, i: usize) {
        let port = self.nodes[i].port;
        let node_dir = self.dir.path().join(port.to_string());
        let child = spawn_node(port, &node_dir, self.password.as_deref());
        self.nodes[i] = Server::from_child(port, child);
        wait_until(
            "a restarted cluster node answering",
            Duration::from_secs(10),
            || self.cli(port, &["PING"]).as_deref() == Some("PONG"),
        );
    }

    /// Wait until node `i` is a replica whose link to its master is up and
    /// whose initial sync is done.
    pub fn wait_synced_replica(&self, i: usize, limit: Duration) {
        let port = self.nodes[i].port;
        wait_until("a replica synced with its master", limit, || {
            self.cli(port, &["INFO", "replication"]).is_some_and(|t| {
                t.contains("role:slave")
                    && t.contains("master_link_status:up")
                    && t.contains("master_sync_in_progress:0")
            })
        });
    }

    /// Kill node `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// The indexes of the nodes answering as masters.
    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running() && self.role(i).as_deref() == Some("master"))
            .collect()
    }

    /// The folder holding each node's files.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// Start one cluster node on `port`, its files in `dir` (no persistence,
/// `node-timeout` 1 s), requiring `password` when given.
fn spawn_node(port: u16, dir: &std::path::Path, password: Option<&str>) -> std::process::Child {
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "1000",
        "--save",
        "",
        "--appendonly",
        "no",
        // Replicas sync at once (the default waits 5 s for more replicas to
        // share a diskless transfer): a replica that has never synced may
        // not be promoted.
        "--repl-diskless-sync-delay",
        "0",
        "--dir",
        &dir.display().to_string(),
    ]);
    if let Some(p) = password {
        cmd.args(["--requirepass", p, "--masterauth", p]);
    }
    cmd.current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed")
}

/// `redis-cli -p port args…` (no `-c`): trimmed stdout, `None` on failure or
/// an error reply.
pub fn cli(port: u16, args: &[&str]) -> Option<String> {
    cli_as(None, port, args)
}

fn cli_as(password: Option<&str>, port: u16, args: &[&str]) -> Option<String> {
    cli_raw(password, port, args).filter(|t| !t.starts_with("ERR") && !t.starts_with("MOVED"))
}

fn cli_raw(password: Option<&str>, port: u16, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new("redis-cli");
    if let Some(p) = password {
        cmd.args(["-a", p, "--no-auth-warning"]);
    }
    let out = cmd
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
