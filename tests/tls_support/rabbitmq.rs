//! A private RabbitMQ node with a TLS listener only, beside the shared
//! broker: its own node name (`tls{port}@localhost`), AMQP, distribution
//! and TLS ports, data, logs and Erlang cookie in a temp dir, no plugins
//! (so it binds no management port), a certificate signed by a [`TestCa`].
//! Runs the server scripts of `/usr/lib/rabbitmq/bin` directly (the
//! `/usr/sbin` wrappers switch to the `rabbitmq` user and its cookie).
//! Stopped with `rabbitmqctl stop` on drop, killed if that fails.

use super::{Issued, TestCa, wait_for_port};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct PrivateRabbit {
    /// The TLS (amqps) port.
    pub port: u16,
    pub node: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn script(name: &str) -> PathBuf {
    let direct = Path::new("/usr/lib/rabbitmq/bin").join(name);
    if direct.exists() {
        direct
    } else {
        PathBuf::from(name)
    }
}

impl PrivateRabbit {
    /// Start a node serving amqps with `cert` (signed by `ca`) and wait up
    /// to `boot` for its TLS port.
    pub fn start(ca: &TestCa, cert: &Issued, boot: Duration) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::common::free_port();
        let amqp_port = crate::common::free_port();
        let dist_port = crate::common::free_port();
        let node = format!("tls{port}@localhost");
        let d = dir.path();
        std::fs::write(d.join("enabled_plugins"), "[].\n").expect("plugins file");
        std::fs::write(
            d.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{amqp_port}\n\
                 listeners.ssl.default = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {ca}\n\
                 ssl_options.certfile = {crt}\n\
                 ssl_options.keyfile = {key}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n\
                 loopback_users = none\n",
                ca = ca.cert.display(),
                crt = cert.cert.display(),
                key = cert.key.display(),
            ),
        )
        .expect("rabbitmq.conf");
        let cookie = d.join(".erlang.cookie");
        std::fs::write(&cookie, format!("CLUSTEROPSTLS{port}")).expect("cookie");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400))
            .expect("cookie mode");
        let log = std::fs::File::create(d.join("console.log")).expect("log");
        let log2 = log.try_clone().expect("log");
        let child = Command::new(script("rabbitmq-server"))
            .envs(Self::env_for(d, &node))
            .env("RABBITMQ_NODE_PORT", amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_PID_FILE", d.join("rabbit.pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .expect("rabbitmq-server is installed");
        let mut me = Self {
            port,
            node,
            dir,
            child: Some(child),
        };
        if !wait_for_port(port, boot) {
            let log = me.log();
            me.stop();
            panic!("private RabbitMQ did not open its TLS port {port} in {boot:?}:\n{log}");
        }
        me
    }

    fn env_for(d: &Path, node: &str) -> Vec<(String, String)> {
        vec![
            ("HOME".into(), d.display().to_string()),
            ("RABBITMQ_NODENAME".into(), node.to_string()),
        ]
    }

    /// The console output and the node's log.
    pub fn log(&self) -> String {
        let mut text =
            std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default();
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("log")) {
            for e in entries.flatten() {
                text += &std::fs::read_to_string(e.path()).unwrap_or_default();
            }
        }
        text
    }

    /// `rabbitmqctl -n NODE stop`, then kill the process group if it lingers.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new(script("rabbitmqctl"))
            .envs(Self::env_for(self.dir.path(), &self.node))
            .args(["-n", &self.node, "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The whole group: the shell script, beam.smp and its helpers.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.stop();
    }
}
