//! Checks of how clusterops reaches its servers: TLS verification turned
//! off on a Redis URL, and (with Sentinel) whether the sentinels agree on a
//! master and the master has a replica to fail over to.

use super::types::{CheckResult, CheckStatus};
use crate::config::Config;
use crate::config::redis_url::RedisTarget;

fn result(id: &str, status: CheckStatus, reason: impl Into<String>) -> CheckResult {
    CheckResult {
        id: id.to_string(),
        status,
        reason: reason.into(),
    }
}

/// Every TLS URL verifies its server's certificate: `ssl_cert_reqs=none`
/// (or `#insecure`) is a warning that names each variable.
pub fn tls_verification(config: &Config) -> CheckResult {
    let urls = config.redis_urls();
    let insecure: Vec<&str> = urls
        .iter()
        .filter(|(_, u)| RedisTarget::parse(u.expose()).is_ok_and(|t| t.insecure()))
        .map(|(var, _)| *var)
        .collect();
    let tls = urls
        .iter()
        .filter(|(_, u)| RedisTarget::parse(u.expose()).is_ok_and(|t| t.tls.is_some()))
        .count();
    if !insecure.is_empty() {
        result(
            "tls-verification",
            CheckStatus::Warn,
            format!(
                "{}: ssl_cert_reqs=none, the server's certificate is NOT checked: anyone on the \
                 network path can read and change this traffic; trust the CA with ssl_ca_certs instead",
                insecure.join(", ")
            ),
        )
    } else if tls == 0 {
        result(
            "tls-verification",
            CheckStatus::Pass,
            "no Redis URL uses TLS (rediss://)",
        )
    } else {
        result(
            "tls-verification",
            CheckStatus::Pass,
            format!("{tls} TLS Redis URL(s), each verifying its server's certificate"),
        )
    }
}
