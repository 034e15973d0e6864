//! Private Redis topologies for the connectivity tests, each on free
//! loopback ports and stopped on drop: a private certificate authority made
//! with `openssl`, a TLS Redis, and a master with a replica watched by three
//! sentinels (optionally with passwords and TLS).

use super::free_port;
use super::tls_ca::{Issued, TestCa};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private CA with a server certificate for `localhost` and `127.0.0.1`,
/// a client certificate, and a second CA that signed nothing of ours.
pub struct Pki {
    ca: TestCa,
    other: TestCa,
    server: Issued,
    client: Issued,
}

impl Pki {
    pub fn new() -> Self {
        let ca = TestCa::new("clusterops test CA");
        let other = TestCa::new("clusterops other CA");
        let server = ca.server();
        let client = ca.client("client");
        Self {
            ca,
            other,
            server,
            client,
        }
    }

    pub fn ca(&self) -> String {
        self.ca.cert.display().to_string()
    }

    pub fn other_ca(&self) -> String {
        self.other.cert.display().to_string()
    }

    pub fn client_cert(&self) -> String {
        self.client.cert.display().to_string()
    }

    pub fn client_key(&self) -> String {
        self.client.key.display().to_string()
    }

    /// redis-server arguments that serve TLS with this CA's certificate.
    fn server_args(&self, client_certs: bool) -> Vec<String> {
        vec![
            "--tls-cert-file".into(),
            self.server.cert.display().to_string(),
            "--tls-key-file".into(),
            self.server.key.display().to_string(),
            "--tls-ca-cert-file".into(),
            self.ca(),
            "--tls-auth-clients".into(),
            if client_certs { "yes" } else { "no" }.into(),
        ]
    }

    /// redis-cli arguments for a TLS connection trusting this CA.
    fn cli_args(&self) -> Vec<String> {
        vec![
            "--tls".into(),
            "--cacert".into(),
            self.ca(),
            "--cert".into(),
            self.client_cert(),
            "--key".into(),
            self.client_key(),
        ]
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// `redis-cli` against `port` (TLS when `pki` is given, with `auth`): its
/// trimmed stdout, or `None` when it failed.
pub fn cli(port: u16, pki: Option<&Pki>, auth: Option<&str>, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(p) = pki {
        cmd.args(p.cli_args());
    }
    if let Some(a) = auth {
        cmd.args(["--no-auth-warning", "-a", a]);
    }
    let out = cmd.args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.starts_with("ERR") && !text.starts_with("NOAUTH"))
        .then_some(text)
}

/// Poll `ok` every 50 ms until it holds; panic naming `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not happen within {limit:?}");
}

/// One redis-server process, killed on drop.
pub struct Server {
    pub port: u16,
    child: Option<Child>,
}

impl Server {
    /// A server for a process the caller started.
    pub fn from_child(port: u16, child: Child) -> Self {
        Self {
            port,
            child: Some(child),
        }
    }

    /// Whether the process has not been killed.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn spawn(args: &[String], dir: &Path) -> Child {
        Command::new("redis-server")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed")
    }

    /// SIGKILL the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop (SIGSTOP) or continue (SIGCONT) the process, as a frozen host.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TLS-only Redis with the private CA's server certificate.
pub struct TlsRedis {
    pub server: Server,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    /// Listens on 127.0.0.1 and 127.0.0.2 (the certificate names only the
    /// first); `client_certs` requires a client certificate.
    pub fn start(pki: &Pki, client_certs: bool, password: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut args: Vec<String> = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1 127.0.0.2",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(pki.server_args(client_certs));
        if let Some(p) = password {
            args.extend(["--requirepass".to_string(), p.to_string()]);
        }
        let child = Server::spawn(&args, dir.path());
        let server = Server {
            port,
            child: Some(child),
        };
        wait_until("the TLS Redis answering", Duration::from_secs(10), || {
            cli(port, Some(pki), password, &["PING"]).as_deref() == Some("PONG")
        });
        Self { server, _dir: dir }
    }
}

/// Passwords of a Sentinel set: the data nodes' and the sentinels' own.
#[derive(Clone, Copy, Default)]
pub struct Secrets<'a> {
    pub data: Option<&'a str>,
    pub sentinel: Option<&'a str>,
}

/// A master, one replica and three sentinels watching them as `mymaster`
/// (quorum 2, down-after 1 s), all on loopback.
pub struct SentinelSet<'a> {
    pub data: Vec<Server>,
    pub sentinels: Vec<Server>,
    pki: Option<&'a Pki>,
    secrets: Secrets<'a>,
    dir: tempfile::TempDir,
}

pub const MASTER_NAME: &str = "mymaster";

impl<'a> SentinelSet<'a> {
    pub fn start(pki: Option<&'a Pki>, secrets: Secrets<'a>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let master_port = free_port();
        let replica_port = free_port();
        let mut data = Vec::new();
        for (port, replica_of) in [(master_port, None), (replica_port, Some(master_port))] {
            let args = data_args(pki, secrets, port, replica_of);
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("node dir");
            let child = Server::spawn(&args, &node_dir);
            data.push(Server {
                port,
                child: Some(child),
            });
        }
        let mut set = Self {
            data,
            sentinels: Vec::new(),
            pki,
            secrets,
            dir,
        };
        set.wait_replica_synced(replica_port);
        for _ in 0..3 {
            let port = free_port();
            let conf = set.dir.path().join(format!("sentinel-{port}.conf"));
            let mut text = String::new();
            text.push_str(&format!(
                "bind 127.0.0.1\ndir {}\n",
                set.dir.path().display()
            ));
            match pki {
                Some(p) => {
                    text.push_str(&format!(
                        "port 0\ntls-port {port}\ntls-replication yes\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\ntls-auth-clients no\n",
                        p.server.cert.display(),
                        p.server.key.display(),
                        p.ca()
                    ));
                }
                None => text.push_str(&format!("port {port}\n")),
            }
            text.push_str(&format!(
                "sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 4000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n"
            ));
            if let Some(p) = secrets.data {
                text.push_str(&format!("sentinel auth-pass {MASTER_NAME} {p}\n"));
            }
            if let Some(p) = secrets.sentinel {
                text.push_str(&format!("requirepass {p}\nsentinel sentinel-pass {p}\n"));
            }
            std::fs::write(&conf, text).expect("sentinel.conf");
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .current_dir(set.dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed");
            set.sentinels.push(Server {
                port,
                child: Some(child),
            });
        }
        // Every sentinel sees the replica and the two other sentinels.
        for i in 0..3 {
            wait_until(
                "the sentinels finding each other",
                Duration::from_secs(20),
                || {
                    set.sentinel_field(i, "num-other-sentinels").as_deref() == Some("2")
                        && set.sentinel_field(i, "num-slaves").as_deref() == Some("1")
                },
            );
        }
        set
    }

    fn wait_replica_synced(&self, replica: u16) {
        wait_until("the replica syncing", Duration::from_secs(30), || {
            self.data_cli(replica, &["INFO", "replication"])
                .is_some_and(|t| t.contains("master_link_status:up"))
        });
    }

    /// `SENTINEL MASTER mymaster` field `name` as sentinel `i` sees it.
    pub fn sentinel_field(&self, i: usize, name: &str) -> Option<String> {
        let out = self.sentinel_cli(i, &["SENTINEL", "MASTER", MASTER_NAME])?;
        let lines: Vec<&str> = out.lines().collect();
        lines
            .iter()
            .position(|l| *l == name)
            .and_then(|p| lines.get(p + 1))
            .map(|s| s.to_string())
    }

    pub fn sentinel_cli(&self, i: usize, args: &[&str]) -> Option<String> {
        cli(
            self.sentinels[i].port,
            self.pki,
            self.secrets.sentinel,
            args,
        )
    }

    pub fn data_cli(&self, port: u16, args: &[&str]) -> Option<String> {
        cli(port, self.pki, self.secrets.data, args)
    }

    /// The master's port, as sentinel 0 says.
    pub fn master_port(&self) -> u16 {
        self.sentinel_cli(0, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME])
            .and_then(|t| t.lines().nth(1).and_then(|p| p.trim().parse().ok()))
            .expect("sentinel 0 names the master")
    }

    /// The port of the data node that is not the master now.
    pub fn replica_port(&self) -> u16 {
        let master = self.master_port();
        self.data
            .iter()
            .map(|s| s.port)
            .find(|p| *p != master)
            .expect("a replica")
    }

    /// `redis-sentinel://…#mymaster` (or `rediss-sentinel://` with the CA),
    /// with the passwords in it.
    pub fn url(&self, db: u8) -> String {
        let scheme = if self.pki.is_some() {
            "rediss-sentinel"
        } else {
            "redis-sentinel"
        };
        let auth = self
            .secrets
            .data
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let mut query = Vec::new();
        if let Some(p) = self.pki {
            query.push(format!("ssl_ca_certs={}", p.ca()));
        }
        if let Some(p) = self.secrets.sentinel {
            query.push(format!("sentinel_password={p}"));
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        format!(
            "{scheme}://{auth}{}/{db}{query}#{MASTER_NAME}",
            hosts.join(",")
        )
    }

    /// Force a failover (`SENTINEL FAILOVER`) and wait until the sentinels
    /// name the old replica and it reports itself master; returns the new
    /// master's port.
    pub fn failover(&self) -> u16 {
        let old = self.master_port();
        let deadline = Instant::now() + Duration::from_secs(30);
        // A sentinel refuses while a previous failover is still settling.
        while self
            .sentinel_cli(0, &["SENTINEL", "FAILOVER", MASTER_NAME])
            .as_deref()
            != Some("OK")
        {
            assert!(
                Instant::now() < deadline,
                "SENTINEL FAILOVER kept being refused"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut new = old;
        wait_until("the failover", Duration::from_secs(30), || {
            new = self.master_port();
            new != old
                && self
                    .data_cli(new, &["ROLE"])
                    .is_some_and(|r| r.starts_with("master"))
        });
        // Wait for the old master to follow the new one, so the next
        // failover has a replica to promote.
        wait_until(
            "the old master becoming a synced replica",
            Duration::from_secs(30),
            || {
                self.data_cli(old, &["INFO", "replication"])
                    .is_some_and(|t| {
                        t.contains("role:slave") && t.contains("master_link_status:up")
                    })
                    && self.sentinel_field(0, "num-slaves").as_deref() == Some("1")
            },
        );
        new
    }

    /// Start the (killed) data node on `port` again, empty, as a replica of
    /// `master` (the caller waits for it to sync).
    pub fn restart_data_as_replica(&mut self, port: u16, master: u16) {
        let node_dir = self.dir.path().join(port.to_string());
        // Empty: no RDB file left from an earlier sync as a replica.
        let _ = std::fs::remove_file(node_dir.join("dump.rdb"));
        let args = data_args(self.pki, self.secrets, port, Some(master));
        let child = Server::spawn(&args, &node_dir);
        let server = self.data_server(port);
        server.kill();
        server.child = Some(child);
    }

    pub fn data_server(&mut self, port: u16) -> &mut Server {
        self.data
            .iter_mut()
            .find(|s| s.port == port)
            .expect("a data node on that port")
    }
}

/// A data node's arguments: no persistence, the data password, and
/// `--replicaof` when it starts as a replica.
fn data_args(
    pki: Option<&Pki>,
    secrets: Secrets,
    port: u16,
    replica_of: Option<u16>,
) -> Vec<String> {
    let mut args = node_args(pki, port);
    args.extend([
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        // A replica syncs at once (the default waits 5 s for more replicas
        // to share a diskless transfer, which on a loaded machine ran the
        // 15 s wait for the first sync out).
        "--repl-diskless-sync-delay".into(),
        "0".into(),
    ]);
    if let Some(p) = secrets.data {
        args.extend([
            "--requirepass".into(),
            p.into(),
            "--masterauth".into(),
            p.into(),
        ]);
    }
    if let Some(m) = replica_of {
        args.extend(["--replicaof".into(), "127.0.0.1".into(), m.to_string()]);
    }
    args
}

fn node_args(pki: Option<&Pki>, port: u16) -> Vec<String> {
    let mut args: Vec<String> = vec!["--bind".into(), "127.0.0.1".into()];
    match pki {
        Some(p) => {
            args.extend([
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
            ]);
            args.extend(["--tls-replication".into(), "yes".into()]);
            args.extend(p.server_args(false));
        }
        None => args.extend(["--port".into(), port.to_string()]),
    }
    args
}
