//! A private RabbitMQ node beside the shared broker: its own node name, AMQP
//! and distribution ports on loopback, data, logs and config in a directory
//! of its own, the Erlang cookie of the `.erlang.cookie` in the `HOME` it is
//! given (nodes sharing a `HOME` can form a cluster), no plugins (so no
//! management port, and a faster boot). Runs the server scripts of
//! `/usr/lib/rabbitmq/bin` directly (the `/usr/sbin` wrappers switch to the
//! `rabbitmq` user and its cookie). Stopped with `rabbitmqctl stop` on drop,
//! its process group killed if that fails. Used by the TLS tests
//! (`tls_support::rabbitmq`) and by [`super::rabbit_cluster`].

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `rabbitmq-server` process.
pub struct RabbitNode {
    /// `name@localhost`.
    pub node: String,
    /// The plain AMQP port (on 127.0.0.1).
    pub amqp_port: u16,
    /// The Erlang distribution port.
    pub dist_port: u16,
    home: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

/// A RabbitMQ script: `/usr/lib/rabbitmq/bin/NAME` when present, else on PATH.
pub fn script(name: &str) -> PathBuf {
    let direct = Path::new("/usr/lib/rabbitmq/bin").join(name);
    if direct.exists() {
        direct
    } else {
        PathBuf::from(name)
    }
}

/// Write `cookie` as `home/.erlang.cookie` (mode 0400, as Erlang wants).
pub fn write_cookie(home: &Path, cookie: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let path = home.join(".erlang.cookie");
    std::fs::write(&path, cookie).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Wait until something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

impl RabbitNode {
    /// Start node `name@localhost` with its data in `dir` (created), the
    /// cookie of `home` and `extra_conf` appended to its `rabbitmq.conf`
    /// (which already binds the AMQP listener to 127.0.0.1). Does not wait
    /// for it: see [`RabbitNode::wait_for_port`].
    pub fn spawn(name: &str, home: &Path, dir: &Path, extra_conf: &str) -> Result<Self, String> {
        let fail = |what: &str, e: std::io::Error| format!("{what} in {}: {e}", dir.display());
        std::fs::create_dir_all(dir).map_err(|e| fail("create_dir", e))?;
        let amqp_port = super::free_port();
        let dist_port = super::free_port();
        let node = format!("{name}@localhost");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").map_err(|e| fail("plugins", e))?;
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{amqp_port}\nloopback_users = none\n{extra_conf}"
            ),
        )
        .map_err(|e| fail("rabbitmq.conf", e))?;
        let log = std::fs::File::create(dir.join("console.log")).map_err(|e| fail("log", e))?;
        let log2 = log.try_clone().map_err(|e| fail("log", e))?;
        let child = Command::new(script("rabbitmq-server"))
            .current_dir(dir)
            .env("HOME", home)
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_PORT", amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("rabbit.pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("rabbitmq-server (is it installed?): {e}"))?;
        Ok(Self {
            node,
            amqp_port,
            dist_port,
            home: home.to_path_buf(),
            dir: dir.to_path_buf(),
            child: Some(child),
        })
    }

    /// `127.0.0.1:{AMQP port}`, for a URL.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.amqp_port)
    }

    /// Wait up to `within` for `port` (the AMQP port, or another listener
    /// of the config) to accept connections; the error carries the log.
    pub fn wait_for_port(&self, port: u16, within: Duration) -> Result<(), String> {
        if port_open(port, within) {
            Ok(())
        } else {
            Err(format!(
                "RabbitMQ node {} did not open port {port} in {within:?}:\n{}",
                self.node,
                self.log()
            ))
        }
    }

    /// `rabbitmqctl -n NODE ARGS…` (with the node's cookie); its stdout, or
    /// an error with its stderr.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(script("rabbitmqctl"))
            .current_dir(&self.dir)
            .env("HOME", &self.home)
            .args(["-n", &self.node])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("rabbitmqctl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "rabbitmqctl -n {} {}: {}{}",
                self.node,
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// The console output and the node's log (for failure messages).
    pub fn log(&self) -> String {
        let mut text = std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("log")) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "log") {
                    text += &std::fs::read_to_string(e.path()).unwrap_or_default();
                }
            }
        }
        text
    }

    /// Whether the server process still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL to the whole process group (the script, beam.smp and its
    /// helpers), as a crash of the machine's broker would; then reaped.
    pub fn kill9(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
    }

    /// `rabbitmqctl stop`, then kill the process group if it lingers.
    pub fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let _ = Command::new(script("rabbitmqctl"))
            .current_dir(&self.dir)
            .env("HOME", &self.home)
            .args(["-n", &self.node, "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !self.running() {
                // Exited and reaped: its process group id may be reused.
                self.child = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill9();
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        self.stop();
    }
}
