//! Snowflake IDs bit-compatible with NocoBase's `@nocobase/snowflake-id`,
//! issued under the node's worker-ID lease: strictly increasing per worker,
//! waiting out short clock steps back and full seconds, refusing when the
//! lease is not valid. Layout and guarantees: `docs/snowflake.md`.

mod layout;
#[cfg(test)]
mod tests;

pub use layout::{
    DecodeError, DecodedId, EPOCH_UNIX_SECONDS, LAST_UNIX_SECOND, MAX_ID, MAX_OFFSET_SECONDS,
    MAX_SEQUENCE, SEQUENCE_BITS, TIMESTAMP_BITS, WORKER_BITS, compose, decode, decode_str,
};

use crate::adapters::worker_id::WorkerLease;
use crate::clock::rfc3339;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The longest the generator waits for its clock (a step back, or a reused
/// worker ID's `last_ts`); beyond it, it refuses.
pub const MAX_CLOCK_WAIT: Duration = Duration::from_secs(2);

/// Wall-clock time source, injectable for tests.
pub trait Clock: Send + Sync + 'static {
    /// Time since 1970-01-01T00:00:00Z.
    fn now(&self) -> Duration;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Duration {
        crate::clock::since_epoch()
    }
}

impl<C: Clock> Clock for Arc<C> {
    #[inline]
    fn now(&self) -> Duration {
        (**self).now()
    }
}

/// Why the generator must wait before the next ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// 65,536 IDs were issued in this second.
    SequenceExhausted,
    /// The clock stepped back (by at most [`MAX_CLOCK_WAIT`]).
    ClockBehind,
    /// The worker ID's previous holders may have used up to a second this
    /// clock has not passed yet.
    ReusedWorkerId,
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SequenceExhausted => "65,536 IDs issued this second",
            Self::ClockBehind => "the clock stepped back",
            Self::ReusedWorkerId => "the worker ID was used up to a second not yet reached",
        })
    }
}

/// Why no ID was issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnowflakeError {
    /// Retry after `wait` ([`Snowflake::next_id`] does so by itself).
    #[error("no snowflake ID for {wait:?}: {reason}")]
    MustWait {
        /// How long.
        wait: Duration,
        /// Why.
        reason: WaitReason,
    },
    /// The worker-ID lease is not valid (self-fenced).
    #[error("no snowflake IDs: {reason}")]
    NoLease {
        /// What the lease says.
        reason: String,
    },
    /// The clock stepped back by more than [`MAX_CLOCK_WAIT`].
    #[error(
        "clock moved back {behind:?} (more than 2 s) behind the last ID of worker {worker_id}; \
         IDs resume when it catches up: check this node's time sync (NTP)"
    )]
    ClockBackwards {
        /// The worker ID.
        worker_id: u8,
        /// How far behind the last issued second the clock is.
        behind: Duration,
    },
    /// A previous holder of the worker ID may have issued IDs up to a
    /// second more than [`MAX_CLOCK_WAIT`] ahead of this clock.
    #[error(
        "worker ID {worker_id} was used up to {} by a previous holder; IDs resume in {wait:?} \
         when this node's clock passes it: if that is far, check this node's time sync (NTP)",
        rfc3339(*.until_unix)
    )]
    WorkerIdUsedUntil {
        /// The worker ID.
        worker_id: u8,
        /// Its `last_ts` (unix seconds).
        until_unix: u64,
        /// How long until the clock passes it.
        wait: Duration,
    },
    /// The clock is past what this holder persisted in `last_ts` (it jumped
    /// forward between renewals).
    #[error(
        "clock is ahead of the lease on worker ID {worker_id} (persisted up to {}); IDs resume \
         after the next renewal",
        rfc3339(*.cap_unix)
    )]
    AheadOfLease {
        /// The worker ID.
        worker_id: u8,
        /// The persisted `last_ts`.
        cap_unix: u64,
    },
    /// The clock is before the epoch or after the 2^53 horizon.
    #[error(
        "clock reads unix second {0}, outside the snowflake range 2020-11-10T16:00:00Z to \
         2156-12-17T22:28:15Z: check this node's clock"
    )]
    OutOfRange(u64),
}

/// Issues snowflake IDs under a worker-ID lease.
pub struct Snowflake<C: Clock = SystemClock> {
    lease: Arc<WorkerLease>,
    clock: C,
}

impl Snowflake<SystemClock> {
    /// A generator on the system clock.
    pub fn new(lease: Arc<WorkerLease>) -> Self {
        Self::with_clock(lease, SystemClock)
    }
}

impl<C: Clock> fmt::Debug for Snowflake<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snowflake")
            .field("worker_id", &self.lease.worker_id())
            .field("status", &self.lease.status())
            .finish()
    }
}

fn until(target: Duration, now: Duration) -> Duration {
    target.saturating_sub(now)
}

impl<C: Clock> Snowflake<C> {
    /// A generator on a given clock (tests).
    pub fn with_clock(lease: Arc<WorkerLease>, clock: C) -> Self {
        Self { lease, clock }
    }

    /// The lease this generator issues under.
    pub fn lease(&self) -> &Arc<WorkerLease> {
        &self.lease
    }

    /// The next ID, or why there is none now; never blocks. A
    /// [`SnowflakeError::MustWait`] says how long to wait before retrying.
    #[inline]
    pub fn try_next_id(&self) -> Result<u64, SnowflakeError> {
        if !self.lease.is_valid() {
            return Err(self.no_lease());
        }
        let now = self.clock.now();
        let sec = now.as_secs();
        if sec.wrapping_sub(EPOCH_UNIX_SECONDS) > MAX_OFFSET_SECONDS {
            return Err(SnowflakeError::OutOfRange(sec));
        }
        let mut w = self.lease.window.lock();
        let Some(worker_id) = w.worker_id else {
            drop(w);
            return Err(self.no_lease());
        };
        let seq = if sec > w.last_sec {
            if sec <= w.floor_sec {
                let wait = until(Duration::from_secs(w.floor_sec + 1), now);
                let until_unix = w.floor_sec;
                drop(w);
                return Err(if wait <= MAX_CLOCK_WAIT {
                    SnowflakeError::MustWait {
                        wait,
                        reason: WaitReason::ReusedWorkerId,
                    }
                } else {
                    SnowflakeError::WorkerIdUsedUntil {
                        worker_id,
                        until_unix,
                        wait,
                    }
                });
            }
            0
        } else if sec == w.last_sec {
            if w.seq == MAX_SEQUENCE {
                drop(w);
                return Err(SnowflakeError::MustWait {
                    wait: until(Duration::from_secs(sec + 1), now),
                    reason: WaitReason::SequenceExhausted,
                });
            }
            w.seq + 1
        } else {
            let behind = until(Duration::from_secs(w.last_sec), now);
            drop(w);
            return Err(if behind <= MAX_CLOCK_WAIT {
                SnowflakeError::MustWait {
                    wait: behind,
                    reason: WaitReason::ClockBehind,
                }
            } else {
                SnowflakeError::ClockBackwards { worker_id, behind }
            });
        };
        if sec > w.cap_sec {
            let cap_unix = w.cap_sec;
            drop(w);
            return Err(SnowflakeError::AheadOfLease {
                worker_id,
                cap_unix,
            });
        }
        w.last_sec = sec;
        w.seq = seq;
        drop(w);
        Ok(compose(sec, worker_id, seq))
    }

    /// The next ID, sleeping (Tokio) through the short waits: the next
    /// second when 65,536 IDs were issued in this one, a clock step back of
    /// at most 2 s, a reused worker ID's `last_ts` at most 2 s ahead.
    pub async fn next_id(&self) -> Result<u64, SnowflakeError> {
        loop {
            match self.try_next_id() {
                Err(SnowflakeError::MustWait { wait, .. }) => {
                    tokio::time::sleep(wait.max(Duration::from_micros(100))).await;
                }
                other => return other,
            }
        }
    }

    /// [`Snowflake::next_id`] for synchronous callers: blocks the thread
    /// while waiting (never call it on an async runtime thread).
    pub fn next_id_blocking(&self) -> Result<u64, SnowflakeError> {
        loop {
            match self.try_next_id() {
                Err(SnowflakeError::MustWait { wait, .. }) => {
                    std::thread::sleep(wait.max(Duration::from_micros(100)));
                }
                other => return other,
            }
        }
    }

    #[cold]
    fn no_lease(&self) -> SnowflakeError {
        SnowflakeError::NoLease {
            reason: self.lease.fence_reason(),
        }
    }
}
