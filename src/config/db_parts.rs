//! The database given in parts, as the deployment guide's `.env` does:
//! `DB_DIALECT`, `DB_HOST`, `DB_PORT`, `DB_DATABASE`, `DB_USER`,
//! `DB_PASSWORD`. When `DB_URL` is unset and any part is set, the parts
//! make the URL (`postgres://…`, `mysql://…`, `mariadb://…`); the dialect
//! also names the runbook's backup kind (`postgres` or `mysql`).

use super::SecretUrl;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

/// Percent-encoded in the user, password and database name: everything but
/// letters, digits and URL-safe `-` `_` `.` `~`.
const PART: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The parts' variables, in the order the guide lists them: the six that
/// follow `DB_URL` in [`super::VARIABLES`] (one list of names, not two).
pub const DB_PART_VARIABLES: &[&str] = super::VARIABLES.split_at(DB_PARTS_AT).1.split_at(6).0;

/// Where `DB_DIALECT` stands in [`super::VARIABLES`].
const DB_PARTS_AT: usize = 16;

/// A database URL made from the parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbFromParts {
    /// `postgres`, `mysql` or `mariadb`.
    pub dialect: &'static str,
    /// The runbook's `[backup] kind` for it: `postgres` or `mysql`.
    pub backup_kind: &'static str,
    /// The URL (password masked when shown).
    pub url: SecretUrl,
}

/// One wrong part: the variable, what was given (never a password), and
/// what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbPartProblem {
    /// The variable.
    pub variable: &'static str,
    /// What was given (never `DB_PASSWORD`).
    pub given: Option<String>,
    /// What is accepted.
    pub accepted: String,
}

/// `Ok(None)` when no part is set (or `DB_URL` is set: it wins).
pub fn db_url_from_parts<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<DbFromParts>, Vec<DbPartProblem>> {
    if get("DB_URL").is_some() || DB_PART_VARIABLES.iter().all(|v| get(v).is_none()) {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let (dialect, backup_kind, default_port, default_user) = match get("DB_DIALECT")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("postgres") | Some("postgresql") => ("postgres", "postgres", 5432, "postgres"),
        Some("mysql") => ("mysql", "mysql", 3306, "root"),
        Some("mariadb") => ("mariadb", "mysql", 3306, "root"),
        Some(_) => {
            problems.push(DbPartProblem {
                variable: "DB_DIALECT",
                given: get("DB_DIALECT").map(str::to_string),
                accepted: "postgres, mysql or mariadb".into(),
            });
            ("postgres", "postgres", 5432, "postgres")
        }
    };
    let host = get("DB_HOST").unwrap_or("localhost");
    if host.contains(['/', '@', '?', '#', ' ']) {
        problems.push(DbPartProblem {
            variable: "DB_HOST",
            given: Some(host.to_string()),
            accepted: "a host name or IP address".into(),
        });
    }
    let port = match get("DB_PORT") {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                problems.push(DbPartProblem {
                    variable: "DB_PORT",
                    given: Some(p.to_string()),
                    accepted: "a port number from 1 to 65535".into(),
                });
                default_port
            }
        },
    };
    let Some(database) = get("DB_DATABASE") else {
        problems.push(DbPartProblem {
            variable: "DB_DATABASE",
            given: None,
            accepted: "the database name (required when the database is given in parts: DB_HOST, DB_DIALECT, …)".into(),
        });
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let enc = |s: &str| utf8_percent_encode(s, PART).to_string();
    let user = enc(get("DB_USER").unwrap_or(default_user));
    let auth = match get("DB_PASSWORD") {
        Some(pw) => format!("{user}:{}", enc(pw)),
        None => user,
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let raw = format!("{dialect}://{auth}@{host}:{port}/{}", enc(database));
    match SecretUrl::parse(&raw, &["postgres", "mysql", "mariadb"]) {
        Ok(url) => Ok(Some(DbFromParts {
            dialect,
            backup_kind,
            url,
        })),
        Err(why) => Err(vec![DbPartProblem {
            variable: "DB_HOST",
            given: Some(host.to_string()),
            accepted: format!("a host name or IP address ({why})"),
        }]),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_part_variables_are_the_six_after_db_url() {
        let all = super::super::VARIABLES;
        assert_eq!(all[super::DB_PARTS_AT - 1], "DB_URL");
        assert_eq!(super::DB_PART_VARIABLES.first(), Some(&"DB_DIALECT"));
        assert_eq!(super::DB_PART_VARIABLES.last(), Some(&"DB_PASSWORD"));
    }

    use super::*;
    use std::collections::BTreeMap;

    fn parts(pairs: &[(&str, &str)]) -> Result<Option<DbFromParts>, Vec<DbPartProblem>> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        db_url_from_parts(|k| map.get(k).map(String::as_str).filter(|v| !v.is_empty()))
    }

    #[test]
    fn the_guide_parts_make_a_url_with_the_password_encoded() {
        let db = parts(&[
            ("DB_DIALECT", "postgres"),
            ("DB_HOST", "10.0.0.7"),
            ("DB_PORT", "5433"),
            ("DB_DATABASE", "nocobase"),
            ("DB_USER", "app"),
            ("DB_PASSWORD", "p@ss:w/rd"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            db.url.expose(),
            "postgres://app:p%40ss%3Aw%2Frd@10.0.0.7:5433/nocobase"
        );
        assert!(!db.url.masked().contains("p%40ss"));
        assert_eq!(db.backup_kind, "postgres");
        let my = parts(&[("DB_DIALECT", "mariadb"), ("DB_DATABASE", "shop")])
            .unwrap()
            .unwrap();
        assert_eq!(my.url.expose(), "mariadb://root@localhost:3306/shop");
        assert_eq!(my.backup_kind, "mysql");
    }

    #[test]
    fn db_url_wins_and_no_part_means_no_database() {
        assert_eq!(parts(&[]).unwrap(), None);
        assert_eq!(parts(&[("DB_HOST", "")]).unwrap(), None);
        let with_url = parts(&[("DB_URL", "postgres://a@b/c"), ("DB_HOST", "h")]);
        assert_eq!(with_url.unwrap(), None);
    }

    #[test]
    fn wrong_parts_name_their_variable_and_never_the_password() {
        let e = parts(&[
            ("DB_DIALECT", "oracle"),
            ("DB_PORT", "99999"),
            ("DB_PASSWORD", "Secr3t"),
            ("DB_DATABASE", "x"),
        ])
        .unwrap_err();
        let vars: Vec<&str> = e.iter().map(|p| p.variable).collect();
        assert_eq!(vars, ["DB_DIALECT", "DB_PORT"]);
        assert!(!format!("{e:?}").contains("Secr3t"));
        let e = parts(&[("DB_HOST", "db")]).unwrap_err();
        assert_eq!(e[0].variable, "DB_DATABASE");
    }
}
