//! Generator rules on an injected clock: sequence exhaustion, clock steps
//! back, the reuse floor, the persisted cap, the fence.

use super::*;
use crate::adapters::worker_id::{WorkerLease, mono_ns};
use std::sync::atomic::{AtomicU64, Ordering};

/// A wall clock the test moves by hand (nanoseconds since 1970).
#[derive(Default)]
struct FakeClock(AtomicU64);

impl FakeClock {
    fn at(secs: u64, millis: u64) -> Arc<Self> {
        let c = Arc::new(Self::default());
        c.set(secs, millis);
        c
    }
    fn set(&self, secs: u64, millis: u64) {
        self.0
            .store(secs * 1_000_000_000 + millis * 1_000_000, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

const T: u64 = 1_700_000_000;

fn leased(worker: u8, floor: u64, cap: u64) -> Arc<WorkerLease> {
    let lease = Arc::new(WorkerLease::acquiring());
    lease.install(worker, floor, cap, mono_ns() + 60_000_000_000);
    lease
}

#[test]
fn the_sequence_runs_through_65536_ids_then_waits_for_the_next_second() {
    let clock = FakeClock::at(T, 250);
    let gen_ = Snowflake::with_clock(WorkerLease::fixed(3), Arc::clone(&clock));
    let mut last = 0;
    for expected_seq in 0..=u32::from(MAX_SEQUENCE) {
        let id = gen_.try_next_id().unwrap();
        assert!(id > last, "IDs strictly increase");
        last = id;
        let d = decode(id).unwrap();
        assert_eq!(
            (d.unix_seconds, d.worker_id, u32::from(d.sequence)),
            (T, 3, expected_seq)
        );
    }
    match gen_.try_next_id() {
        Err(SnowflakeError::MustWait { wait, reason }) => {
            assert_eq!(reason, WaitReason::SequenceExhausted);
            assert_eq!(wait, Duration::from_millis(750));
        }
        other => panic!("expected a wait for the next second, got {other:?}"),
    }
    clock.set(T + 1, 0);
    let d = decode(gen_.try_next_id().unwrap()).unwrap();
    assert_eq!((d.unix_seconds, d.sequence), (T + 1, 0));
}

#[test]
fn a_clock_step_back_of_up_to_two_seconds_is_waited_out() {
    let clock = FakeClock::at(T, 500);
    let gen_ = Snowflake::with_clock(WorkerLease::fixed(1), Arc::clone(&clock));
    let first = gen_.try_next_id().unwrap();
    clock.set(T - 1, 200);
    match gen_.try_next_id() {
        Err(SnowflakeError::MustWait { wait, reason }) => {
            assert_eq!(reason, WaitReason::ClockBehind);
            assert_eq!(wait, Duration::from_millis(800));
        }
        other => panic!("expected a wait, got {other:?}"),
    }
    // Back in the same second: the sequence continues.
    clock.set(T, 10);
    let next = gen_.try_next_id().unwrap();
    assert!(next > first);
    assert_eq!(decode(next).unwrap().sequence, 1);
}

#[test]
fn a_clock_step_back_of_more_than_two_seconds_is_refused() {
    let clock = FakeClock::at(T, 0);
    let gen_ = Snowflake::with_clock(WorkerLease::fixed(1), Arc::clone(&clock));
    gen_.try_next_id().unwrap();
    clock.set(T - 3, 0);
    match gen_.try_next_id() {
        Err(
            e @ SnowflakeError::ClockBackwards {
                worker_id: 1,
                behind,
            },
        ) => {
            assert_eq!(behind, Duration::from_secs(3));
            assert!(e.to_string().contains("NTP"), "{e}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_reused_worker_id_waits_until_the_clock_passes_its_last_ts() {
    let clock = FakeClock::at(T, 400);
    let gen_ = Snowflake::with_clock(leased(9, T + 1, T + 20), Arc::clone(&clock));
    match gen_.try_next_id() {
        Err(SnowflakeError::MustWait { wait, reason }) => {
            assert_eq!(reason, WaitReason::ReusedWorkerId);
            assert_eq!(wait, Duration::from_millis(1600));
        }
        other => panic!("expected a wait, got {other:?}"),
    }
    clock.set(T + 1, 999);
    assert!(matches!(
        gen_.try_next_id(),
        Err(SnowflakeError::MustWait { .. })
    ));
    clock.set(T + 2, 0);
    let d = decode(gen_.try_next_id().unwrap()).unwrap();
    assert_eq!((d.unix_seconds, d.worker_id, d.sequence), (T + 2, 9, 0));
}

#[test]
fn a_reused_worker_id_far_in_the_future_is_refused_with_the_date() {
    let clock = FakeClock::at(T, 0);
    let gen_ = Snowflake::with_clock(leased(4, T + 30, T + 40), clock);
    match gen_.try_next_id() {
        Err(
            e @ SnowflakeError::WorkerIdUsedUntil {
                worker_id: 4,
                until_unix,
                ..
            },
        ) => {
            assert_eq!(until_unix, T + 30);
            assert!(e.to_string().contains(&rfc3339(T + 30)), "{e}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn seconds_past_the_persisted_cap_are_refused() {
    let clock = FakeClock::at(T, 0);
    let gen_ = Snowflake::with_clock(leased(2, 0, T + 1), Arc::clone(&clock));
    gen_.try_next_id().unwrap();
    clock.set(T + 1, 0);
    gen_.try_next_id().unwrap();
    clock.set(T + 2, 0);
    assert!(matches!(
        gen_.try_next_id(),
        Err(SnowflakeError::AheadOfLease { worker_id: 2, cap_unix }) if cap_unix == T + 1
    ));
    // A renewal raises the cap.
    gen_.lease().extend(T + 5, mono_ns() + 60_000_000_000);
    assert_eq!(
        decode(gen_.try_next_id().unwrap()).unwrap().unix_seconds,
        T + 2
    );
}

#[test]
fn a_fenced_lease_issues_nothing_and_says_why() {
    let lease = Arc::new(WorkerLease::acquiring());
    let gen_ = Snowflake::with_clock(Arc::clone(&lease), FakeClock::at(T, 0));
    assert!(matches!(
        gen_.try_next_id(),
        Err(SnowflakeError::NoLease { .. })
    ));
    lease.install(5, 0, u64::MAX, mono_ns() + 60_000_000_000);
    gen_.try_next_id().unwrap();
    lease.fence_lost();
    match gen_.try_next_id() {
        Err(SnowflakeError::NoLease { reason }) => assert!(reason.contains("lost"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // An expired deadline fences too, even with the worker ID still set.
    lease.install(6, 0, u64::MAX, mono_ns());
    assert!(matches!(
        gen_.try_next_id(),
        Err(SnowflakeError::NoLease { .. })
    ));
}

#[test]
fn a_new_worker_id_restarts_the_sequence_and_keeps_its_floor() {
    let clock = FakeClock::at(T, 0);
    let lease = leased(1, 0, u64::MAX);
    let gen_ = Snowflake::with_clock(Arc::clone(&lease), Arc::clone(&clock));
    gen_.try_next_id().unwrap();
    gen_.try_next_id().unwrap();
    lease.install(7, T - 5, u64::MAX, mono_ns() + 60_000_000_000);
    let d = decode(gen_.try_next_id().unwrap()).unwrap();
    assert_eq!((d.worker_id, d.sequence), (7, 0));
}

#[test]
fn clocks_outside_the_snowflake_range_are_refused() {
    let gen_ = Snowflake::with_clock(
        WorkerLease::fixed(0),
        FakeClock::at(EPOCH_UNIX_SECONDS - 1, 0),
    );
    assert!(matches!(
        gen_.try_next_id(),
        Err(SnowflakeError::OutOfRange(_))
    ));
    let gen_ = Snowflake::with_clock(
        WorkerLease::fixed(0),
        FakeClock::at(LAST_UNIX_SECOND + 1, 0),
    );
    assert!(matches!(
        gen_.try_next_id(),
        Err(SnowflakeError::OutOfRange(_))
    ));
    let gen_ = Snowflake::with_clock(WorkerLease::fixed(31), FakeClock::at(LAST_UNIX_SECOND, 0));
    assert_eq!(gen_.try_next_id().unwrap(), (1 << 53) - 1 - 65_535);
}

#[test]
fn a_released_fixed_lease_stops_issuing() {
    let lease = WorkerLease::fixed(0);
    let gen_ = Snowflake::with_clock(Arc::clone(&lease), FakeClock::at(T, 0));
    gen_.try_next_id().unwrap();
    assert_eq!(lease.close(), Some((0, T)));
    assert!(matches!(
        gen_.try_next_id(),
        Err(SnowflakeError::NoLease { .. })
    ));
}
