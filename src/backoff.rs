//! How long a reconnect loop waits after failures in a row: backon's
//! exponential policy, with jitter where many nodes retry the same server.
//!
//! With jitter a delay is stretched by a random 0-100 % (backon's jitter), so
//! the consumers of every node that lost Redis at the same moment come back
//! spread over the interval instead of all at once. The stretch is counted
//! in `longest`: the doubling stops at half of it, so no wait is longer than
//! `longest`.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// Failures past this many do not lengthen the delay further (the doubling
/// has long reached its cap by then; this bounds the work per delay).
const MAX_DOUBLINGS: u32 = 32;

/// The longer of two durations (`Duration::max` is not `const`).
const fn later(a: Duration, b: Duration) -> Duration {
    if a.as_nanos() > b.as_nanos() { a } else { b }
}

/// Half of `d` (the `/` operator is not `const`).
const fn half(d: Duration) -> Duration {
    let odd_second = if d.as_secs() % 2 == 1 {
        1_000_000_000
    } else {
        0
    };
    Duration::new(d.as_secs() / 2, (odd_second + d.subsec_nanos()) / 2)
}

/// A delay schedule: `first`, doubling, capped.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    jitter: bool,
}

impl Backoff {
    /// From `first` (stretched by up to 100 %) doubling; never longer than
    /// `longest`. For loops that many processes run against one server.
    pub const fn jittered(first: Duration, longest: Duration) -> Self {
        Self {
            first,
            cap: later(half(longest), first),
            jitter: true,
        }
    }

    /// `first`, `2 × first`, … up to `cap`, without jitter: for a loop only
    /// one process runs (the console's poller), where exact delays read better.
    pub const fn steady(first: Duration, cap: Duration) -> Self {
        Self {
            first,
            cap: later(cap, first),
            jitter: false,
        }
    }

    /// This schedule as a backon policy, for `Retryable::retry`: it never
    /// gives up by itself (the caller's `when` decides that).
    pub fn policy(&self) -> ExponentialBuilder {
        let policy = ExponentialBuilder::new()
            .with_min_delay(self.first)
            .with_max_delay(self.cap)
            .with_factor(2.0)
            .without_max_times();
        if self.jitter {
            policy.with_jitter()
        } else {
            policy
        }
    }

    /// The delay after `failures` failures in a row (0: the first retry).
    pub fn delay(&self, failures: u32) -> Duration {
        let n = usize::try_from(failures.min(MAX_DOUBLINGS)).unwrap_or(0);
        // Without a limit on times or total delay, backon's exponential
        // backoff yields a delay every time; the cap is the fallback anyway.
        let d = self.policy().build().nth(n).unwrap_or(self.cap);
        // backon doubles in f32 seconds (50 ms becomes 100.000001 ms): to the
        // nearest millisecond, so a steady schedule reads as it is written.
        let ms = d.as_nanos().saturating_add(500_000) / 1_000_000;
        Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// A counter of failures in a row on this schedule.
    pub fn start(self) -> Retries {
        Retries {
            policy: self,
            failures: 0,
        }
    }
}

/// A reconnect loop's state: the schedule and the failures so far.
#[derive(Debug, Clone)]
pub struct Retries {
    policy: Backoff,
    failures: u32,
}

impl Retries {
    /// The delay before the next attempt (and one more failure counted).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.policy.delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        d
    }

    /// After a success: the next failure waits the first delay again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn steady_delays_double_up_to_the_cap() {
        let b = Backoff::steady(ms(500), ms(5000));
        let got: Vec<_> = (0..6).map(|n| b.delay(n)).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 5000, 5000].map(ms));
        assert_eq!(b.delay(u32::MAX), ms(5000));
    }

    #[test]
    fn jittered_delays_stay_within_first_and_longest() {
        let b = Backoff::jittered(ms(50), ms(2000));
        for _ in 0..200 {
            let first = b.delay(0);
            assert!(first >= ms(50) && first <= ms(100), "{first:?}");
            let late = b.delay(40);
            assert!(late >= ms(1000) && late <= ms(2000), "{late:?}");
        }
    }

    #[test]
    fn a_reset_starts_the_schedule_again() {
        let mut r = Backoff::steady(ms(50), ms(2000)).start();
        assert_eq!(r.next_delay(), ms(50));
        assert_eq!(r.next_delay(), ms(100));
        r.reset();
        assert_eq!(r.next_delay(), ms(50));
    }
}
