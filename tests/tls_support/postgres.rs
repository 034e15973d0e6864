//! A private PostgreSQL server (`initdb` in a temp dir, `pg_ctl start` on a
//! free loopback port) that accepts TLS connections only (`hostssl` in
//! pg_hba.conf: a plaintext login is rejected), with a certificate signed
//! by a [`TestCa`]; the database `certdb` also demands a client
//! certificate whose CN is the user. Runs as `postgres` when the test runs
//! as root (initdb refuses root). Stopped on drop.

use super::{Issued, TestCa, chown, is_root, wait_for_port};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
}

/// The newest `/usr/lib/postgresql/*/bin`, else the `PATH`.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .unwrap_or_else(|| PathBuf::from(""))
}

/// Run a server tool as the server's user.
fn as_server_user(tool: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(tool);
        c
    } else {
        Command::new(tool)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().expect(what);
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivatePostgres {
    /// Start a server with `cert` (signed by `ca`); `ca` also verifies
    /// client certificates for `certdb`.
    pub fn start(ca: &TestCa, cert: &Issued) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let bin = bin_dir();
        let port = crate::common::free_port();
        // The server reads its own copies (its user must own the key).
        let (crt, key, root) = (
            dir.path().join("server.crt"),
            dir.path().join("server.key"),
            dir.path().join("ca.crt"),
        );
        std::fs::copy(&cert.cert, &crt).expect("copy cert");
        std::fs::copy(&cert.key, &key).expect("copy key");
        std::fs::copy(&ca.cert, &root).expect("copy CA");
        chown(dir.path(), "postgres");
        let mut initdb = as_server_user(&bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"]);
        run(initdb, "initdb");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl certdb all 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostssl all all ::1/128 trust\n",
        )
        .expect("pg_hba.conf");
        chown(&data, "postgres");
        let opts = format!(
            "-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c ssl=on \
             -c ssl_cert_file={crt} -c ssl_key_file={key} -c ssl_ca_file={root} -c fsync=off",
            sock = dir.path().display(),
            crt = crt.display(),
            key = key.display(),
            root = root.display(),
        );
        let mut start = as_server_user(&bin.join("pg_ctl"));
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("server.log"))
            .args(["-o", &opts, "-w", "-t", "30", "start"]);
        let me = Self {
            port,
            dir,
            data,
            bin,
        };
        run(start, "pg_ctl start");
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "private PostgreSQL did not listen on {port}: {}",
            me.log()
        );
        me.psql("CREATE DATABASE certdb");
        me
    }

    /// `postgres://postgres@{host}:{port}/{db}` plus `query`.
    pub fn url(&self, host: &str, db: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/{db}{query}", self.port)
    }

    /// Run SQL over the Unix socket (no TLS needed there).
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-tA", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let mut stop = as_server_user(&self.bin.join("pg_ctl"));
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = stop.output();
    }
}
