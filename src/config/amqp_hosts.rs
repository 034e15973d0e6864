//! AMQP URLs naming several brokers of one RabbitMQ cluster:
//! `amqp://user:password@host1[:port],host2[:port]…[/vhost][?query]`.
//! Such a URL is split into one URL per broker (same credentials, virtual
//! host and query); clients connect to the first broker that answers, in the
//! order given, and go through the list again when that connection is lost.
//! Every entry must be a host (empty entries are refused); each one is then
//! checked as a single-broker URL by [`super::SecretUrl::parse`].

/// The schemes whose URLs may name several hosts.
pub const MULTI_HOST_SCHEMES: &[&str] = &["amqp", "amqps"];

/// One URL per host of `raw` when it is an `amqp://` or `amqps://` URL
/// naming several hosts (comma-separated); `None` for every other URL. The
/// error says which entry is empty, without the URL (it holds a password).
pub fn split_hosts(raw: &str) -> Option<Result<Vec<String>, String>> {
    let (scheme, rest) = raw.split_once("://")?;
    if !MULTI_HOST_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // A password may hold a comma: only what follows the last '@' is hosts.
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    if !hosts.contains(',') {
        return None;
    }
    let entries: Vec<&str> = hosts.split(',').collect();
    let count = entries.len();
    Some(
        entries
            .iter()
            .enumerate()
            .map(|(i, host)| {
                if host.trim().is_empty() {
                    Err(format!(
                        "host {} of {count} is empty (separate hosts with one comma: \
                         host1:port,host2:port)",
                        i + 1
                    ))
                } else {
                    Ok(format!("{scheme}://{userinfo}{host}{tail}"))
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_per_host_with_the_same_credentials_vhost_and_query() {
        let urls = split_hosts("amqps://app:p,w@mq1:5671,mq2,[::1]:5673/%2f?cacertfile=/ca.pem")
            .expect("several hosts")
            .expect("valid");
        assert_eq!(
            urls,
            vec![
                "amqps://app:p,w@mq1:5671/%2f?cacertfile=/ca.pem",
                "amqps://app:p,w@mq2/%2f?cacertfile=/ca.pem",
                "amqps://app:p,w@[::1]:5673/%2f?cacertfile=/ca.pem",
            ]
        );
        assert_eq!(
            split_hosts("amqp://h1,h2").and_then(Result::ok),
            Some(vec!["amqp://h1".to_string(), "amqp://h2".to_string()])
        );
    }

    #[test]
    fn single_hosts_and_other_schemes_are_not_split() {
        assert!(split_hosts("amqp://u:p,q@mq:5672/%2f").is_none());
        assert!(split_hosts("redis://a,b/0").is_none());
        assert!(split_hosts("redis-sentinel://a:1,b:2/0#m").is_none());
        assert!(split_hosts("not a url").is_none());
    }

    #[test]
    fn an_empty_entry_is_named() {
        let err = split_hosts("amqp://u:S3cret@mq1,,mq3/%2f")
            .expect("several hosts")
            .unwrap_err();
        assert!(err.starts_with("host 2 of 3 is empty"), "{err}");
        assert!(!err.contains("S3cret"), "{err}");
        let err = split_hosts("amqp://mq1,").expect("several").unwrap_err();
        assert!(err.starts_with("host 2 of 2 is empty"), "{err}");
    }
}
