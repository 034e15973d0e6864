//! Secret-bearing values: connection URLs whose passwords are masked and the
//! `APP_KEY`, which is never shown, only fingerprinted.

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;

/// Short, stable, non-reversible fingerprint of a secret or a set of settings:
/// the first 12 hex digits of its SHA-256.
pub fn short_hash(input: &[u8]) -> String {
    let digest = Sha256::digest(input);
    hex::encode(&digest[..6])
}

/// A connection URL (Redis or AMQP) that may carry a password.
///
/// `Display`, `Debug` and `Serialize` show it with the password replaced by
/// `***`; only [`SecretUrl::expose`] gives the real string, for connecting.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    raw: String,
    masked: String,
}

impl SecretUrl {
    /// Parse a URL and check its scheme is one of `schemes`.
    ///
    /// The error string says what is wrong and never contains the value.
    pub fn parse(raw: &str, schemes: &[&str]) -> Result<Self, String> {
        if let Some(scheme) = sentinel_scheme(raw) {
            // Several hosts (`h1:26379,h2:26379`) are not a URL authority,
            // so the Sentinel form is checked by its own parser.
            if !schemes.contains(&scheme.as_str()) {
                return Err(format!("scheme {scheme:?}"));
            }
            super::redis_url::RedisTarget::parse(raw)?;
            return Ok(Self {
                raw: raw.to_string(),
                masked: mask_url_text(raw),
            });
        }
        if let Some(hosts) = super::amqp_hosts::split_hosts(raw) {
            // Several brokers (`amqp://u:p@h1:5672,h2:5672/vhost`): each
            // one must be a URL of its own.
            let scheme = raw.split_once("://").map_or("", |(s, _)| s);
            if !schemes.contains(&scheme.to_ascii_lowercase().as_str()) {
                return Err(format!("scheme {scheme:?}"));
            }
            let hosts = hosts?;
            for (i, host) in hosts.iter().enumerate() {
                Self::parse(host, schemes)
                    .map_err(|e| format!("host {} of {}: {e}", i + 1, hosts.len()))?;
            }
            return Ok(Self {
                raw: raw.to_string(),
                masked: mask_url_text(raw),
            });
        }
        let parsed = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
        if !schemes.contains(&parsed.scheme()) {
            return Err(format!("scheme {:?}", parsed.scheme()));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err("no host".to_string());
        }
        let mut masked = parsed.clone();
        if masked.password().is_some() {
            // Setting a password on a URL with a host cannot fail.
            let _ = masked.set_password(Some("***"));
        }
        Ok(Self {
            raw: raw.to_string(),
            masked: mask_query_secrets(masked.as_str()),
        })
    }

    /// The real URL, password included: pass it to a client, never to a log.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The URL with its password masked.
    pub fn masked(&self) -> &str {
        &self.masked
    }

    /// One URL per broker of an AMQP URL naming several
    /// (`amqp://u:p@h1,h2:5673/vhost`, see [`super::amqp_hosts`]), in the
    /// order given; the URL itself for every other URL.
    pub fn hosts(&self) -> Vec<SecretUrl> {
        let split = match super::amqp_hosts::split_hosts(&self.raw) {
            Some(Ok(urls)) => urls
                .iter()
                .filter_map(|u| Self::parse(u, super::amqp_hosts::MULTI_HOST_SCHEMES).ok())
                .collect(),
            _ => Vec::new(),
        };
        if split.is_empty() {
            vec![self.clone()]
        } else {
            split
        }
    }

    /// The first of [`SecretUrl::hosts`]: the URL itself when it names one.
    pub fn first_host(&self) -> SecretUrl {
        self.hosts()
            .into_iter()
            .next()
            .unwrap_or_else(|| self.clone())
    }

    /// Host and port, for grouping adapters by server; for a Sentinel URL
    /// `master@sentinel1,sentinel2` (one name for the master it finds).
    pub fn host_port(&self) -> String {
        if sentinel_scheme(&self.raw).is_some() {
            return super::redis_url::RedisTarget::parse(&self.raw)
                .map(|t| t.server_name())
                .unwrap_or_default();
        }
        match url::Url::parse(&self.raw) {
            Ok(u) => format!(
                "{}:{}",
                u.host_str().unwrap_or(""),
                u.port_or_known_default().unwrap_or(6379)
            ),
            Err(_) => String::new(),
        }
    }

    /// The Redis database index in the path (`/3`), 0 when absent.
    pub fn redis_db(&self) -> Option<i64> {
        if sentinel_scheme(&self.raw).is_some() {
            return super::redis_url::RedisTarget::parse(&self.raw)
                .ok()
                .map(|t| t.db);
        }
        let u = url::Url::parse(&self.raw).ok()?;
        let path = u.path().trim_start_matches('/');
        if path.is_empty() {
            Some(0)
        } else {
            path.parse().ok()
        }
    }
}

/// The scheme of a `redis-sentinel://` or `rediss-sentinel://` URL.
fn sentinel_scheme(raw: &str) -> Option<String> {
    let (scheme, _) = raw.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    scheme.ends_with("-sentinel").then_some(scheme)
}

/// Replace the value of every query parameter whose name contains
/// `password` (`sentinel_password=…`) with `***`.
fn mask_query_secrets(text: &str) -> String {
    let Some(q) = text.find('?') else {
        return text.to_string();
    };
    let (head, rest) = text.split_at(q + 1);
    let (query, fragment) = match rest.find('#') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.to_ascii_lowercase().contains("password") => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{head}{}{fragment}", masked.join("&"))
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.masked)
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked)
    }
}

/// Mask a password in text that may or may not parse as a URL, for error
/// messages about malformed values: everything between `://user:` and the
/// last `@` before the host is replaced.
pub fn mask_url_text(raw: &str) -> String {
    mask_query_secrets(&mask_userinfo(raw))
}

fn mask_userinfo(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://") else {
        // Not URL-shaped: mask from the first ':' to the last '@', if any.
        return match (raw.find(':'), raw.rfind('@')) {
            (Some(colon), Some(at)) if colon < at => format!("{}:***{}", &raw[..colon], &raw[at..]),
            _ => raw.to_string(),
        };
    };
    let rest = &raw[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return raw.to_string();
    };
    let userinfo = &authority[..at];
    let user = match userinfo.find(':') {
        Some(colon) => &userinfo[..colon],
        None => return raw.to_string(),
    };
    format!("{}{}:***{}", &raw[..scheme_end + 3], user, &rest[at..])
}

/// The application key. Never displayed: every rendering is its fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct AppKey(String);

impl AppKey {
    /// Wrap a key value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// `sha256:` and the first 12 hex digits of the key's SHA-256.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", short_hash(self.0.as_bytes()))
    }

    /// The key itself, for signing; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

impl fmt::Debug for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppKey({})", self.fingerprint())
    }
}

impl Serialize for AppKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_masked_everywhere() {
        let u = SecretUrl::parse("redis://app:hunter2@cache.internal:6380/2", &["redis"]).unwrap();
        for shown in [
            u.to_string(),
            format!("{u:?}"),
            serde_json::to_string(&u).unwrap(),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        assert_eq!(u.expose(), "redis://app:hunter2@cache.internal:6380/2");
        assert_eq!(u.redis_db(), Some(2));
        assert_eq!(u.host_port(), "cache.internal:6380");
    }

    #[test]
    fn malformed_url_error_does_not_leak_the_password() {
        let err = SecretUrl::parse("redis://:s3cret@:bad port/0", &["redis"]).unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
        let err = SecretUrl::parse("http://u:s3cret@host/0", &["redis"]).unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("http"), "{err}");
        assert_eq!(mask_url_text("redis//:s3cret@h"), "redis//:***@h");
    }

    #[test]
    fn app_key_shows_only_a_fingerprint() {
        let k = AppKey::new("super-secret-key");
        for shown in [
            k.to_string(),
            format!("{k:?}"),
            serde_json::to_string(&k).unwrap(),
        ] {
            assert!(!shown.contains("super-secret"), "{shown}");
            assert!(shown.starts_with("sha256:") || shown.contains("sha256:"));
        }
    }

    #[test]
    fn mask_url_text_handles_odd_shapes() {
        assert_eq!(mask_url_text("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(mask_url_text("redis://u:p@w@h/0"), "redis://u:***@h/0");
        assert_eq!(mask_url_text("redis://h/0"), "redis://h/0");
        assert_eq!(mask_url_text("not a url"), "not a url");
        assert_eq!(
            mask_url_text(
                "redis-sentinel://:pw@s1,s2/0?sentinel_password=spw&ssl_cert_reqs=none#m"
            ),
            "redis-sentinel://:***@s1,s2/0?sentinel_password=***&ssl_cert_reqs=none#m"
        );
    }

    #[test]
    fn an_amqp_url_with_several_hosts_is_checked_host_by_host_and_masked() {
        let schemes = &["amqp", "amqps"];
        let u = SecretUrl::parse("amqp://app:hunter2@mq1:5672,mq2:5673/%2f", schemes).unwrap();
        for shown in [u.to_string(), format!("{u:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert_eq!(u.masked(), "amqp://app:***@mq1:5672,mq2:5673/%2f");
        let hosts: Vec<String> = u.hosts().iter().map(|h| h.expose().to_string()).collect();
        assert_eq!(
            hosts,
            vec![
                "amqp://app:hunter2@mq1:5672/%2f",
                "amqp://app:hunter2@mq2:5673/%2f"
            ]
        );
        assert_eq!(u.hosts()[1].masked(), "amqp://app:***@mq2:5673/%2f");
        let one = SecretUrl::parse("amqp://app:hunter2@mq1/%2f", schemes).unwrap();
        assert_eq!(one.hosts(), vec![one.clone()]);
        for (bad, why) in [
            ("amqp://app:hunter2@mq1,mq2:x/%2f", "host 2 of 2: not a URL"),
            ("amqp://app:hunter2@mq1,,mq3", "host 2 of 3 is empty"),
            ("redis://app:hunter2@a,b", "scheme \"redis\""),
        ] {
            let err = SecretUrl::parse(bad, schemes).unwrap_err();
            assert!(err.starts_with(why), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn a_sentinel_url_is_masked_and_named_by_its_master() {
        let u = SecretUrl::parse(
            "redis-sentinel://app:hunter2@s1:26379,s2:26380/4?sentinel_password=spw#mymaster",
            &["redis-sentinel"],
        )
        .unwrap();
        for shown in [
            u.to_string(),
            format!("{u:?}"),
            serde_json::to_string(&u).unwrap(),
        ] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("spw"),
                "{shown}"
            );
        }
        assert_eq!(u.host_port(), "mymaster@s1:26379,s2:26380");
        assert_eq!(u.redis_db(), Some(4));
        let u = SecretUrl::parse("rediss://h:1/0?sentinel_password=x", &["rediss"]).unwrap();
        assert!(!u.masked().contains("=x"), "{}", u.masked());
    }
}
