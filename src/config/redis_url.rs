//! The Redis URL forms every `*_REDIS_URL` variable accepts, parsed into a
//! [`RedisTarget`]: one server (`redis://`, `rediss://`) or a master found
//! through Sentinel (`redis-sentinel://`, `rediss-sentinel://`), with the
//! TLS options (`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`,
//! `ssl_cert_reqs`) and the sentinels' own credentials
//! (`sentinel_username`, `sentinel_password`) as query parameters.
//!
//! The connection layer (`adapters::redis_conn`) turns a target into
//! clients; this module only reads text and checks files, so a wrong value
//! is reported when the configuration loads, naming its variable.

use percent_encoding::percent_decode_str;
use std::fmt;
use std::path::PathBuf;

/// Port of a sentinel when the URL gives none.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;
/// Port of a Redis server when the URL gives none.
pub const DEFAULT_REDIS_PORT: u16 = 6379;

/// The URL schemes of a Redis variable.
pub const REDIS_SCHEMES: &[&str] = &["redis", "rediss", "redis-sentinel", "rediss-sentinel"];

/// The query parameters a Redis URL may carry.
const PARAMETERS: &[&str] = &[
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "sentinel_username",
    "sentinel_password",
];

/// A secret that never shows in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Hidden(pub String);

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server at a fixed address.
    Direct {
        /// Host name or IP.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// The master named `master`, as the sentinels say.
    Sentinel {
        /// The sentinels' addresses, in the URL's order.
        sentinels: Vec<(String, u16)>,
        /// The monitored master's name (`#name`).
        master: String,
        /// ACL user for the sentinels (`sentinel_username`).
        username: Option<String>,
        /// Password for the sentinels (`sentinel_password`); the URL's own
        /// password is the data nodes'.
        password: Option<Hidden>,
    },
}

/// TLS settings of a `rediss://` or `rediss-sentinel://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// PEM bundle trusted instead of the system store (`ssl_ca_certs`);
    /// without it the system store is used, which honours `SSL_CERT_FILE`
    /// and `SSL_CERT_DIR`.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain, PEM (`ssl_certfile`).
    pub cert_file: Option<PathBuf>,
    /// Client key, PEM (`ssl_keyfile`).
    pub key_file: Option<PathBuf>,
    /// `false` only with `ssl_cert_reqs=none` (or `#insecure`): no
    /// certificate or host-name check at all.
    pub verify: bool,
}

/// A parsed Redis URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// One server, or Sentinel.
    pub topology: Topology,
    /// `Some` for the `rediss` schemes (TLS to the data nodes and, for
    /// Sentinel, to the sentinels too).
    pub tls: Option<TlsSettings>,
    /// Database index (`/3`).
    pub db: i64,
    /// ACL user of the data nodes.
    pub username: Option<String>,
    /// Password of the data nodes.
    pub password: Option<Hidden>,
}

impl RedisTarget {
    /// Parse `raw`. The error says what is wrong and never contains a
    /// password. Files named by TLS options are not read here (see
    /// [`RedisTarget::check_files`]).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = raw.split_once("://") else {
            return Err("not a URL: no scheme (redis://…)".to_string());
        };
        let (sentinel, tls) = match scheme.to_ascii_lowercase().as_str() {
            "redis" => (false, false),
            "rediss" => (false, true),
            "redis-sentinel" => (true, false),
            "rediss-sentinel" => (true, true),
            other => return Err(format!("scheme {other:?}")),
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(decode(f, "the master name")?)),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, q),
            None => (rest, ""),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (
                    Some(decode(user, "the user name")?).filter(|s| !s.is_empty()),
                    Some(Hidden(decode(pass, "the password")?)),
                ),
                None => (
                    Some(decode(u, "the user name")?).filter(|s| !s.is_empty()),
                    None,
                ),
            },
        };
        let db = match path.trim_matches('/') {
            "" => 0,
            p => match p.parse::<i64>() {
                Ok(db) if db >= 0 => db,
                _ => return Err("the database after the host must be a number, e.g. /0".into()),
            },
        };
        let mut params = Params::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value, key)?;
            params.set(key, value)?;
        }
        let default_port = if sentinel {
            DEFAULT_SENTINEL_PORT
        } else {
            DEFAULT_REDIS_PORT
        };
        let mut addrs = Vec::new();
        for h in hosts.split(',') {
            addrs.push(host_port(h, default_port)?);
        }
        if !tls && params.has_tls() {
            return Err(
                "ssl_* options need a TLS scheme (rediss:// or rediss-sentinel://)".to_string(),
            );
        }
        let tls = tls.then(|| params.tls());
        let topology = if sentinel {
            let master = fragment.filter(|m| !m.is_empty()).ok_or_else(|| {
                "the master's name is missing: end the URL with #name, e.g. \
                 redis-sentinel://host:26379#mymaster"
                    .to_string()
            })?;
            Topology::Sentinel {
                sentinels: addrs,
                master,
                username: params.sentinel_username.take(),
                password: params.sentinel_password.take().map(Hidden),
            }
        } else {
            if addrs.len() > 1 {
                return Err(
                    "several hosts: list sentinels with redis-sentinel://h1:26379,h2:26379#master"
                        .to_string(),
                );
            }
            if params.sentinel_username.is_some() || params.sentinel_password.is_some() {
                return Err("sentinel_* options need a redis-sentinel:// URL".to_string());
            }
            let mut tls = tls;
            match fragment.as_deref() {
                None => {}
                Some("insecure") if tls.is_some() => {
                    if let Some(t) = tls.as_mut() {
                        t.verify = false;
                    }
                }
                Some(_) => {
                    return Err("only #insecure may follow a rediss:// URL".to_string());
                }
            }
            let (host, port) = addrs.remove(0);
            return Ok(Self {
                topology: Topology::Direct { host, port },
                tls,
                db,
                username,
                password,
            });
        };
        Ok(Self {
            topology,
            tls,
            db,
            username,
            password,
        })
    }

    /// Check that every file a TLS option names can be read and holds
    /// PEM: the error names the option and the path.
    pub fn check_files(&self) -> Result<(), String> {
        let Some(tls) = &self.tls else { return Ok(()) };
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err("ssl_certfile and ssl_keyfile go together".to_string());
        }
        for (option, path) in [
            ("ssl_ca_certs", &tls.ca_file),
            ("ssl_certfile", &tls.cert_file),
            ("ssl_keyfile", &tls.key_file),
        ] {
            if let Some(path) = path {
                let text = std::fs::read(path)
                    .map_err(|e| format!("{option}={}: cannot read it: {e}", path.display()))?;
                if !text.windows(11).any(|w| w == b"-----BEGIN ") {
                    return Err(format!("{option}={}: not a PEM file", path.display()));
                }
            }
        }
        Ok(())
    }

    /// A short name for the server(s) behind this URL, for grouping and
    /// display: `host:port`, or `master@sentinel1,sentinel2` for Sentinel.
    pub fn server_name(&self) -> String {
        match &self.topology {
            Topology::Direct { host, port } => format!("{}:{port}", bracket(host)),
            Topology::Sentinel {
                sentinels, master, ..
            } => {
                let list: Vec<String> = sentinels
                    .iter()
                    .map(|(h, p)| format!("{}:{p}", bracket(h)))
                    .collect();
                format!("{master}@{}", list.join(","))
            }
        }
    }

    /// Whether `ssl_cert_reqs=none` (or `#insecure`) turned verification off.
    pub fn insecure(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| !t.verify)
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[derive(Default)]
struct Params {
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    reqs: Option<bool>,
    sentinel_username: Option<String>,
    sentinel_password: Option<String>,
}

impl Params {
    fn set(&mut self, key: &str, value: String) -> Result<(), String> {
        let slot = match key {
            "ssl_ca_certs" => &mut self.ca,
            "ssl_certfile" => &mut self.cert,
            "ssl_keyfile" => &mut self.key,
            "sentinel_username" => &mut self.sentinel_username,
            "sentinel_password" => &mut self.sentinel_password,
            "ssl_cert_reqs" => {
                self.reqs = Some(match value.to_ascii_lowercase().as_str() {
                    "required" => true,
                    "none" => false,
                    _ => return Err("ssl_cert_reqs is required or none".to_string()),
                });
                return Ok(());
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?} (accepted: {})",
                    PARAMETERS.join(", ")
                ));
            }
        };
        if value.is_empty() {
            return Err(format!("{key} is empty"));
        }
        *slot = Some(value);
        Ok(())
    }

    fn has_tls(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some() || self.reqs.is_some()
    }

    fn tls(&self) -> TlsSettings {
        TlsSettings {
            ca_file: self.ca.clone().map(PathBuf::from),
            cert_file: self.cert.clone().map(PathBuf::from),
            key_file: self.key.clone().map(PathBuf::from),
            verify: self.reqs.unwrap_or(true),
        }
    }
}

fn decode(text: &str, what: &str) -> Result<String, String> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("{what} is not valid UTF-8 once percent-decoded"))
}

fn host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    if text.is_empty() {
        return Err("no host".to_string());
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("host {text:?}: unclosed ["))?;
        (h, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("no host".to_string());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || "/?#@".contains(c))
    {
        return Err(format!("host {host:?} is not a host name"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("port {p:?} of {host} is not a port number")),
        },
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinel(t: &RedisTarget) -> (&Vec<(String, u16)>, &str) {
        match &t.topology {
            Topology::Sentinel {
                sentinels, master, ..
            } => (sentinels, master),
            Topology::Direct { .. } => panic!("not sentinel"),
        }
    }

    #[test]
    fn a_plain_url_is_one_server() {
        let t = RedisTarget::parse("redis://u:p%40ss@cache:6380/2").unwrap();
        assert_eq!(
            t.topology,
            Topology::Direct {
                host: "cache".into(),
                port: 6380
            }
        );
        assert_eq!(t.db, 2);
        assert_eq!(t.username.as_deref(), Some("u"));
        assert_eq!(t.password, Some(Hidden("p@ss".into())));
        assert!(t.tls.is_none());
        assert!(!format!("{t:?}").contains("p@ss"));
    }

    #[test]
    fn a_sentinel_url_lists_sentinels_and_the_master() {
        let t = RedisTarget::parse(
            "rediss-sentinel://:pw@s1:5000,s2,[::1]:5002/3?sentinel_password=spw&ssl_ca_certs=/ca.pem#mymaster",
        )
        .unwrap();
        let (s, m) = sentinel(&t);
        assert_eq!(m, "mymaster");
        assert_eq!(
            s,
            &vec![
                ("s1".to_string(), 5000),
                ("s2".to_string(), DEFAULT_SENTINEL_PORT),
                ("::1".to_string(), 5002)
            ]
        );
        assert_eq!(t.db, 3);
        let tls = t.tls.clone().unwrap();
        assert_eq!(tls.ca_file, Some(PathBuf::from("/ca.pem")));
        assert!(tls.verify);
        assert_eq!(t.server_name(), "mymaster@s1:5000,s2:26379,[::1]:5002");
        let shown = format!("{t:?}");
        assert!(!shown.contains("spw") && !shown.contains("pw\""), "{shown}");
    }

    #[test]
    fn wrong_urls_say_what_is_wrong() {
        for (raw, wanted) in [
            ("redis-sentinel://s1:26379", "master's name is missing"),
            ("redis://h1,h2", "several hosts"),
            ("redis://h?ssl_ca_certs=/x", "need a TLS scheme"),
            (
                "rediss://h?ssl_ca_cert=/x",
                "unknown parameter \"ssl_ca_cert\"",
            ),
            ("rediss://h?ssl_cert_reqs=maybe", "required or none"),
            ("redis://h:99999", "not a port number"),
            ("redis://h/abc", "must be a number"),
            ("rediss://h#other", "only #insecure"),
            ("redis://h?sentinel_password=x", "need a redis-sentinel"),
            ("http://h", "scheme"),
        ] {
            let err = RedisTarget::parse(raw).unwrap_err();
            assert!(err.contains(wanted), "{raw}: {err}");
        }
    }

    #[test]
    fn insecure_is_explicit() {
        assert!(
            RedisTarget::parse("rediss://h?ssl_cert_reqs=none")
                .unwrap()
                .insecure()
        );
        assert!(
            RedisTarget::parse("rediss://h#insecure")
                .unwrap()
                .insecure()
        );
        assert!(!RedisTarget::parse("rediss://h").unwrap().insecure());
    }

    #[test]
    fn tls_files_are_checked() {
        let t = RedisTarget::parse("rediss://h?ssl_ca_certs=/nonexistent/ca.pem").unwrap();
        let err = t.check_files().unwrap_err();
        assert!(
            err.starts_with("ssl_ca_certs=/nonexistent/ca.pem: cannot read"),
            "{err}"
        );
        let t = RedisTarget::parse("rediss://h?ssl_certfile=/a.pem").unwrap();
        assert!(t.check_files().unwrap_err().contains("go together"));
    }
}
