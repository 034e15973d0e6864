//! A real nginx (/usr/sbin/nginx) running `assets/nginx.conf` in front of
//! test backends on loopback: the asset with the test's addresses and port,
//! wrapped in a main configuration that keeps every file in a temp folder.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ASSET: &str = include_str!("../../assets/nginx.conf");
pub const PAGE: &str = include_str!("../../assets/maintenance.html");

/// The asset with the test's backends (`max_fails=1 fail_timeout=<s>s`),
/// listening on `127.0.0.1:port`, files in `dir`.
pub fn config(dir: &Path, port: u16, backends: &[&str], fail_timeout_s: u64) -> String {
    let mut servers_done = false;
    let mut body = String::new();
    for line in ASSET.lines() {
        let t = line.trim_start();
        if t.starts_with("server 10.0.0.") {
            if !servers_done {
                for b in backends {
                    body.push_str(&format!(
                        "    server {b} max_fails=1 fail_timeout={fail_timeout_s}s;\n"
                    ));
                }
                servers_done = true;
            }
            continue;
        }
        let line = match t {
            "listen 80;" => format!("    listen 127.0.0.1:{port};"),
            "root /usr/share/clusterops;" => format!("    root {}/www;", dir.display()),
            _ => line.to_string(),
        };
        body.push_str(&line);
        body.push('\n');
    }
    assert!(
        servers_done && body.contains(&format!(":{port};")),
        "the asset changed shape:\n{body}"
    );
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{body}}}\n"
    )
}

/// A running nginx, killed on drop.
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Nginx {
    /// Check the configuration (`nginx -t`), start nginx and wait until it
    /// accepts connections.
    pub async fn start(backends: &[&str], fail_timeout_s: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("www")).unwrap();
        std::fs::write(dir.path().join("www/maintenance.html"), PAGE).unwrap();
        let port = super::free_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), port, backends, fail_timeout_s)).unwrap();
        let test = Command::new("/usr/sbin/nginx")
            .arg("-t")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            test.status.success(),
            "nginx -t: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let nginx = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                nginx.error_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        nginx
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
