//! The database a backup is taken from: its URL read into parts (the
//! password kept out of `Debug` and every description) and the command line
//! of its tools (`pg_dump`, `pg_restore`, `mysqldump`, `mysql`), the
//! password passed in the environment.

use super::backup::BackupError;
use serde::{Deserialize, Serialize};
use std::process::Stdio;
use tokio::process::Command;

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
    /// The memory store of in-process nodes (the demo), dumped to a JSON
    /// file by `backup_store` rather than by a database tool.
    Memory,
}

/// A database to back up: where, as whom (the password is kept out of
/// [`std::fmt::Debug`]).
#[derive(Clone)]
pub struct Database {
    /// Kind.
    pub kind: DbKind,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    password: Option<String>,
    /// Database name.
    pub name: String,
    /// PostgreSQL `sslmode` from the URL's query, passed as `PGSSLMODE`.
    pub sslmode: Option<String>,
    /// The URL's `sslrootcert`, `sslcert` and `sslkey`, passed as
    /// `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY` (libpq reads them as it
    /// would the URL's parameters).
    pub ssl_files: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Database {
    /// From `postgres://user:pass@host:port/db` or `mysql://…` (`mariadb://`).
    pub fn from_url(raw: &str) -> Result<Self, BackupError> {
        let masked =
            crate::config::SecretUrl::parse(raw, &["postgres", "postgresql", "mysql", "mariadb"])
                .map(|u| u.masked().to_string())
                .unwrap_or_else(|_| "(unparsable URL)".to_string());
        let bad = |reason: &str| BackupError::Url {
            url: masked.clone(),
            reason: reason.to_string(),
        };
        let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
        let (kind, default_port) = match url.scheme() {
            "postgres" | "postgresql" => (DbKind::Postgres, 5432),
            "mysql" | "mariadb" => (DbKind::Mysql, 3306),
            _ => return Err(bad("expected postgres://, mysql:// or mariadb://")),
        };
        let name = url.path().trim_start_matches('/').to_string();
        if name.is_empty() {
            return Err(bad("no database name: add /<database> to the URL"));
        }
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let user = if url.username().is_empty() {
            match kind {
                DbKind::Postgres => "postgres".to_string(),
                DbKind::Mysql | DbKind::Memory => "root".to_string(),
            }
        } else {
            decode(url.username())
        };
        Ok(Self {
            kind,
            host: url.host_str().unwrap_or("127.0.0.1").to_string(),
            port: url.port().unwrap_or(default_port),
            user,
            password: url.password().map(decode),
            name: decode(&name),
            sslmode: url
                .query_pairs()
                .find(|(k, _)| k == "sslmode")
                .map(|(_, v)| v.into_owned()),
            ssl_files: [
                ("sslrootcert", "PGSSLROOTCERT"),
                ("sslcert", "PGSSLCERT"),
                ("sslkey", "PGSSLKEY"),
            ]
            .into_iter()
            .filter_map(|(param, var)| {
                url.query_pairs()
                    .find(|(k, _)| k == param)
                    .map(|(_, v)| (var, v.into_owned()))
            })
            .collect(),
        })
    }

    /// `postgres user@host:port/db` (no password).
    pub fn describe(&self) -> String {
        let kind = match self.kind {
            DbKind::Postgres => "postgres",
            DbKind::Mysql => "mysql",
            DbKind::Memory => "memory",
        };
        format!(
            "{kind} {}@{}:{}/{}",
            self.user, self.host, self.port, self.name
        )
    }

    /// The tool (`pg_dump`, `mysql`, …) with the connection arguments and
    /// the password in its environment, in its own process group.
    pub(super) fn command(&self, tool: &'static str) -> Command {
        let mut cmd = Command::new(tool);
        // Its own process group: a Ctrl-C at the terminal interrupts the
        // runbook, which stops the step (killing the tool), instead of
        // reaching the tool first and failing the step.
        cmd.kill_on_drop(true).process_group(0).stdin(Stdio::null());
        match self.kind {
            DbKind::Postgres => {
                cmd.args([
                    "--no-password",
                    "-h",
                    &self.host,
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    &self.user,
                ]);
                if let Some(p) = &self.password {
                    cmd.env("PGPASSWORD", p);
                }
                if let Some(m) = &self.sslmode {
                    cmd.env("PGSSLMODE", m);
                }
                for (var, value) in &self.ssl_files {
                    cmd.env(var, value);
                }
            }
            DbKind::Mysql => {
                cmd.args([
                    "--protocol=TCP",
                    "-h",
                    &self.host,
                    "-P",
                    &self.port.to_string(),
                    "-u",
                    &self.user,
                ]);
                match &self.password {
                    Some(p) => cmd.env("MYSQL_PWD", p),
                    None => cmd.env_remove("MYSQL_PWD"),
                };
            }
            DbKind::Memory => {}
        }
        cmd
    }
}
