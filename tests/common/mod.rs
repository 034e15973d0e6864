//! Shared test helpers: a unique key namespace per test on the shared Redis
//! (cleaned up on drop), and private redis-server processes that a test may
//! kill and restart.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared Redis of the machine (override with CLUSTEROPS_TEST_REDIS_URL).
pub fn redis_url() -> String {
    std::env::var("CLUSTEROPS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_string())
}

/// The shared RabbitMQ (override with CLUSTEROPS_TEST_AMQP_URL).
pub fn amqp_url() -> String {
    std::env::var("CLUSTEROPS_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// A unique namespace for one test; every key under it is deleted on drop.
pub struct TestNs {
    pub name: String,
    pub url: String,
}

impl TestNs {
    pub fn new(label: &str) -> Self {
        Self::on(label, &redis_url())
    }

    pub fn on(label: &str, url: &str) -> Self {
        let name = format!("t-{label}-{:08x}", rand::random::<u32>());
        Self {
            name,
            url: url.to_string(),
        }
    }

    pub fn namespace(&self) -> clusterops::config::Namespace {
        clusterops::config::Namespace::new(&self.name).expect("test namespace is valid")
    }

    /// Keys currently under the namespace.
    pub fn keys(&self) -> Vec<String> {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return Vec::new();
        };
        let Ok(mut conn) = client.get_connection() else {
            return Vec::new();
        };
        let pattern = format!("{}:*", self.name);
        let iter: redis::RedisResult<redis::Iter<String>> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut conn);
        match iter {
            Ok(it) => it.filter_map(Result::ok).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let keys = self.keys();
        if keys.is_empty() {
            return;
        }
        if let Ok(client) = redis::Client::open(self.url.as_str())
            && let Ok(mut conn) = client.get_connection()
        {
            for chunk in keys.chunks(500) {
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(chunk).query(&mut conn);
            }
        }
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

/// A private redis-server on a free loopback port, killed on drop.
pub struct PrivateRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    persistent: bool,
    /// More `redis-server` options, after the defaults (they win).
    extra: Vec<String>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// A private server with `appendonly yes` and `appendfsync always` in its
    /// own directory: every acknowledged write survives `kill`/`restart`.
    pub fn start_persistent() -> Self {
        Self::start_with(true)
    }

    /// A private server without persistence, with `args` (`redis-server`
    /// options such as `["--save", "60 1"]`) after the defaults.
    pub fn start_args(args: &[&str]) -> Self {
        Self::start_full(false, args)
    }

    fn start_with(persistent: bool) -> Self {
        Self::start_full(persistent, &[])
    }

    fn start_full(persistent: bool, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut me = Self {
            port: free_port(),
            dir,
            child: None,
            persistent,
            extra: args.iter().map(|a| a.to_string()).collect(),
        };
        me.spawn();
        me
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn spawn(&mut self) {
        let aof: &[&str] = if self.persistent {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(aof)
            .args(&self.extra)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut c) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("private redis-server on port {} did not start", self.port);
    }

    /// Kill the server (SIGKILL); its data is gone unless it is persistent.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL database of its own for one test, dropped on drop.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn create(label: &str) -> Self {
        let name = format!(
            "t_{}_{:08x}",
            label.replace('-', "_"),
            rand::random::<u32>()
        );
        psql(&format!("CREATE DATABASE {name}"));
        Self { name }
    }

    /// `postgres://postgres@127.0.0.1:5432/{name}`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// Run one SQL statement in this database and return psql's unaligned output.
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                &self.name,
                "-tA",
                "-c",
                sql,
            ])
            .output()
            .expect("psql is installed");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            sql,
        ])
        .output()
        .expect("psql is installed");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub mod cluster;
pub mod faketime;
pub mod janitor;
pub mod nginx;
pub mod nodes;
pub mod rabbit_cluster;
pub mod rabbit_node;
pub mod status_cli;
pub mod tls_ca;
pub mod tmux;
pub mod topology;

/// A Redis ACL user that may only read (`+@read +@connection +info`), as an
/// operator would give a monitoring console; deleted on drop.
pub struct ReadOnlyUser {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl ReadOnlyUser {
    /// Create the user on the Redis at `admin_url`; `label` makes it unique.
    pub fn create(admin_url: &str, label: &str) -> Self {
        let name = format!("ro-{label}");
        let client = redis::Client::open(admin_url).expect("admin URL");
        let mut conn = client.get_connection().expect("admin connection");
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&name)
            .arg("reset")
            .arg("on")
            .arg(">ro-password")
            .arg("~*")
            .arg("&*")
            .arg("+@read")
            .arg("+@connection")
            .arg("+info")
            .query::<()>(&mut conn)
            .expect("ACL SETUSER");
        let url = admin_url.replace("redis://", &format!("redis://{name}:ro-password@"));
        Self {
            name,
            url,
            admin_url: admin_url.to_string(),
        }
    }
}

impl Drop for ReadOnlyUser {
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(self.admin_url.as_str())
            && let Ok(mut conn) = client.get_connection()
        {
            let _: redis::RedisResult<i64> = redis::cmd("ACL")
                .arg("DELUSER")
                .arg(&self.name)
                .query(&mut conn);
        }
    }
}
