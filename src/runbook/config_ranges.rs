//! The accepted range of every duration in the runbook configuration. They
//! are checked when the file is loaded and again before a run starts, so a
//! timeout too large for the clock (`drain_s = 9223372036854775807`) is one
//! error line naming the key, never an overflow in the middle of a run with
//! the maintenance flag already set. [`deadline_in`] is the one way a
//! configured number of seconds becomes a deadline.

use super::config::{ConfigError, ExecutorConfig, RunbookConfig};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// Timeouts of the steps (`[timeouts] *_s`): 1 s to a week.
pub const STEP_TIMEOUT_S: RangeInclusive<u64> = 1..=7 * 24 * 3600;
/// Timeouts of the executors (`stop_timeout_s`, `timeout_s`,
/// `pod_wait_s`): 1 s to a day.
pub const EXECUTOR_TIMEOUT_S: RangeInclusive<u64> = 1..=24 * 3600;
/// `[timeouts] poll_ms`: 10 ms to a minute.
pub const POLL_MS: RangeInclusive<u64> = 10..=60_000;

/// One duration of the configuration: its key, value, range and unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationKey {
    /// `timeouts.drain_s`, `executor.timeout_s`, …
    pub key: &'static str,
    /// The configured value.
    pub value: u64,
    /// What is accepted.
    pub range: RangeInclusive<u64>,
    /// `seconds` or `milliseconds`, with the upper bound in words.
    pub unit: &'static str,
}

/// Every duration `config` holds.
pub fn durations(config: &RunbookConfig) -> Vec<DurationKey> {
    let t = &config.timeouts;
    let step = |key, value| DurationKey {
        key,
        value,
        range: STEP_TIMEOUT_S,
        unit: "seconds, up to a week",
    };
    let exec = |key, value| DurationKey {
        key,
        value,
        range: EXECUTOR_TIMEOUT_S,
        unit: "seconds, up to a day",
    };
    let mut out = vec![
        step("timeouts.drain_s", t.drain_s),
        step("timeouts.stop_s", t.stop_s),
        step("timeouts.first_node_s", t.first_node_s),
        step("timeouts.node_s", t.node_s),
        step("timeouts.restore_s", t.restore_s),
        DurationKey {
            key: "timeouts.poll_ms",
            value: t.poll_ms,
            range: POLL_MS,
            unit: "milliseconds, up to a minute",
        },
    ];
    match &config.executor {
        ExecutorConfig::Process(p) => out.push(exec("executor.stop_timeout_s", p.stop_timeout_s)),
        ExecutorConfig::Command(c) => out.push(exec("executor.timeout_s", c.timeout_s)),
        ExecutorConfig::Kubernetes(k) => out.push(exec("executor.pod_wait_s", k.pod_wait_s)),
        ExecutorConfig::Manual(_) => {}
    }
    out
}

/// The first duration out of its range, as a one-line error.
pub fn check(config: &RunbookConfig) -> Result<(), ConfigError> {
    match durations(config)
        .into_iter()
        .find(|d| !d.range.contains(&d.value))
    {
        Some(d) => Err(ConfigError::Invalid(format!(
            "{} = {} is out of range: expected {} to {} ({})",
            d.key,
            d.value,
            d.range.start(),
            d.range.end(),
            d.unit
        ))),
        None => Ok(()),
    }
}

/// `now + secs`, or an error naming `key` when the clock cannot hold it
/// (only reachable with a configuration built in code, bypassing
/// [`check`]).
pub fn deadline_in(secs: u64, key: &str) -> Result<Instant, String> {
    Instant::now()
        .checked_add(Duration::from_secs(secs))
        .ok_or_else(|| format!("{key} = {secs} s is beyond what the clock can wait"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "[cluster]\nname = \"shop\"\n[executor]\nkind = \"command\"\nstop = \"x\"\nstart = \"y\"\n[[nodes]]\nname = \"app1\"\n[backup]\nkind = \"none\"\n";

    fn load(extra: &str) -> Result<RunbookConfig, String> {
        RunbookConfig::parse(&format!("{OK}{extra}"), "t").map_err(|e| e.to_string())
    }

    #[test]
    fn every_duration_has_a_range_and_the_defaults_are_in_it() {
        let config = load("").unwrap();
        let keys: Vec<&str> = durations(&config).iter().map(|d| d.key).collect();
        assert_eq!(keys.len(), 7, "{keys:?}");
        check(&config).unwrap();
    }

    #[test]
    fn out_of_range_values_name_the_key_and_the_range() {
        let err = load("[timeouts]\ndrain_s = 9223372036854775807\n").unwrap_err();
        assert_eq!(
            err,
            "runbook configuration: timeouts.drain_s = 9223372036854775807 is out of range: \
             expected 1 to 604800 (seconds, up to a week)"
        );
        let err = load("[timeouts]\npoll_ms = 5\n").unwrap_err();
        assert!(err.contains("timeouts.poll_ms = 5 is out of range: expected 10 to 60000"));
        let err = load("[timeouts]\nnode_s = 0\n").unwrap_err();
        assert!(err.contains("timeouts.node_s = 0"), "{err}");
        let cfg = OK.replace("start = \"y\"", "start = \"y\"\ntimeout_s = 86401");
        let err = RunbookConfig::parse(&cfg, "t").unwrap_err().to_string();
        assert!(err.contains("executor.timeout_s = 86401 is out of range: expected 1 to 86400"));
        load("[timeouts]\ndrain_s = 604800\npoll_ms = 60000\n").unwrap();
    }

    #[test]
    fn a_deadline_too_far_is_an_error_not_a_panic() {
        assert!(deadline_in(60, "timeouts.drain_s").is_ok());
        let err = deadline_in(u64::MAX, "timeouts.drain_s").unwrap_err();
        assert!(
            err.starts_with("timeouts.drain_s = 18446744073709551615 s"),
            "{err}"
        );
    }
}
