//! The shared lease handle: which worker ID this node holds, until when
//! (monotonic), and the window of seconds it may issue snowflake IDs in.
//! The allocator writes it; the snowflake generator reads it per ID.

use parking_lot::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// No worker ID held (value of the `worker_id` mirror).
const NO_WORKER: u32 = u32::MAX;
/// `valid_until` of a lease that never expires (the random, single-node ID).
const FOREVER: u64 = u64::MAX;

/// The process-wide origin of the monotonic deadlines.
fn mono_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Monotonic nanoseconds since the process origin.
#[inline]
pub(crate) fn mono_ns() -> u64 {
    mono_at(Instant::now())
}

/// An instant as monotonic nanoseconds since the process origin.
pub(crate) fn mono_at(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(mono_base()).as_nanos()).unwrap_or(FOREVER - 1)
}

/// Where a lease stands, for error messages and status displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseStatus {
    /// A fixed worker ID with no Redis behind it (single node only).
    Fixed,
    /// No worker ID yet: the allocator is looking for a free one.
    Acquiring,
    /// A worker ID is held (it may still have expired if renewals stopped:
    /// see [`WorkerLease::is_valid`]).
    Held,
    /// The lease was taken over or deleted; the allocator is re-acquiring.
    Lost,
    /// Released on shutdown; no more IDs.
    Released,
}

impl LeaseStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Fixed,
            1 => Self::Acquiring,
            2 => Self::Held,
            3 => Self::Lost,
            _ => Self::Released,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Self::Fixed => 0,
            Self::Acquiring => 1,
            Self::Held => 2,
            Self::Lost => 3,
            Self::Released => 4,
        }
    }
}

/// The seconds a holder may issue IDs in, and what it issued last. Guarded
/// by one mutex so the generator sees a consistent worker ID, floor and cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// The worker ID, `None` while no lease is held.
    pub worker_id: Option<u8>,
    /// Unix second the previous holders of this ID may have reached
    /// (`last_ts` when acquired): issue only seconds strictly above it.
    pub floor_sec: u64,
    /// Unix second persisted in `last_ts` by this holder: issue only
    /// seconds up to it.
    pub cap_sec: u64,
    /// The second of the last ID issued under this lease (0: none yet).
    pub last_sec: u64,
    /// The sequence of the last ID issued in `last_sec`.
    pub seq: u16,
}

impl Window {
    const EMPTY: Window = Window {
        worker_id: None,
        floor_sec: 0,
        cap_sec: 0,
        last_sec: 0,
        seq: 0,
    };

    /// The highest second any ID issued under this lease (or before it,
    /// by earlier holders) can carry: what `last_ts` must at least say.
    pub fn issued_bound(&self) -> u64 {
        self.floor_sec.max(self.last_sec)
    }
}

/// The node's worker-ID lease, shared between the allocator (which keeps
/// it renewed) and the snowflake generator (which checks it per ID).
///
/// Reading it is lock-free except for the one short mutex the generator
/// takes per ID; nothing holds that mutex across an `.await`.
#[derive(Debug)]
pub struct WorkerLease {
    /// Monotonic deadline (ns since the process origin); 0 = fenced.
    valid_until: AtomicU64,
    /// Mirror of the window's worker ID for observers; `NO_WORKER` if none.
    worker_id: AtomicU32,
    status: AtomicU8,
    /// Bumped each time a (new) worker ID is installed.
    generation: AtomicU64,
    /// Successful renewals so far (for metrics).
    renewals: AtomicU64,
    /// The last acquisition or renewal was not confirmed by a replica
    /// (Sentinel mode): the lease runs on its last confirmed cap/deadline.
    unconfirmed: AtomicBool,
    pub(crate) window: Mutex<Window>,
}

impl WorkerLease {
    /// A lease with no worker ID yet, fenced.
    pub(crate) fn acquiring() -> Self {
        mono_base();
        Self {
            valid_until: AtomicU64::new(0),
            worker_id: AtomicU32::new(NO_WORKER),
            status: AtomicU8::new(LeaseStatus::Acquiring.as_u8()),
            generation: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
            unconfirmed: AtomicBool::new(false),
            window: Mutex::new(Window::EMPTY),
        }
    }

    /// A worker ID that is never renewed, never expires and has no reuse
    /// floor: for a single node (no `REDIS_URL`), benchmarks and tests.
    /// Two nodes with the same fixed ID can issue the same IDs.
    pub fn fixed(worker_id: u8) -> std::sync::Arc<Self> {
        let lease = Self::acquiring();
        let id = worker_id & super::MAX_WORKER_ID;
        *lease.window.lock() = Window {
            worker_id: Some(id),
            floor_sec: 0,
            cap_sec: u64::MAX,
            last_sec: 0,
            seq: 0,
        };
        lease.worker_id.store(u32::from(id), Ordering::Release);
        lease.generation.store(1, Ordering::Release);
        lease
            .status
            .store(LeaseStatus::Fixed.as_u8(), Ordering::Release);
        lease.valid_until.store(FOREVER, Ordering::Release);
        std::sync::Arc::new(lease)
    }

    /// The worker ID held, if any (it may have expired: see
    /// [`WorkerLease::is_valid`]).
    pub fn worker_id(&self) -> Option<u8> {
        u8::try_from(self.worker_id.load(Ordering::Acquire)).ok()
    }

    /// Whether IDs may be issued now: a worker ID is held and its last
    /// renewal is recent enough (monotonic clock).
    #[inline]
    pub fn is_valid(&self) -> bool {
        let until = self.valid_until.load(Ordering::Acquire);
        until == FOREVER || mono_ns() < until
    }

    /// How long the lease stays valid without another renewal (`None` when
    /// fenced, `Duration::MAX` for a fixed ID).
    pub fn remaining(&self) -> Option<Duration> {
        let until = self.valid_until.load(Ordering::Acquire);
        if until == FOREVER {
            return Some(Duration::MAX);
        }
        let now = mono_ns();
        (now < until).then(|| Duration::from_nanos(until - now))
    }

    /// Where the lease stands.
    pub fn status(&self) -> LeaseStatus {
        LeaseStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    /// How many worker IDs were installed so far (1 after the first
    /// acquisition; +1 after each re-acquisition).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the last lease write (acquisition or renewal) was not
    /// confirmed by a Redis replica within its wait (Sentinel mode only):
    /// the lease then runs on its last confirmed cap and deadline, and IDs
    /// stop when that runs out (see `docs/snowflake.md`).
    pub fn is_unconfirmed(&self) -> bool {
        self.unconfirmed.load(Ordering::Acquire)
    }

    pub(crate) fn set_unconfirmed(&self, unconfirmed: bool) {
        self.unconfirmed.store(unconfirmed, Ordering::Release);
    }

    /// A human reason why the lease is not valid now, for errors.
    pub fn fence_reason(&self) -> String {
        if self.is_unconfirmed() && !self.is_valid() {
            return "no Redis replica confirmed the worker-ID lease (the master that holds \
                    it, behind Sentinel or in a Redis Cluster, has no synced replica, or it \
                    lags): IDs resume once a replica acknowledges the lease"
                .to_string();
        }
        match (self.status(), self.worker_id()) {
            (LeaseStatus::Acquiring, _) => {
                "no worker ID yet: the allocator is still looking for a free one".to_string()
            }
            (LeaseStatus::Lost, _) => {
                "the worker-ID lease was lost (taken over or deleted in Redis); \
                 the allocator is re-acquiring a free ID"
                    .to_string()
            }
            (LeaseStatus::Released, _) => "the worker-ID lease was released (shutdown)".to_string(),
            (_, Some(id)) => format!(
                "the lease on worker ID {id} was not renewed in time (Redis unreachable?); \
                 IDs resume after the next successful renewal"
            ),
            (_, None) => "no worker ID held".to_string(),
        }
    }

    // ---- written by the allocator ----

    /// Install a freshly acquired worker ID. `valid_until` is a monotonic
    /// deadline from [`mono_at`].
    pub(crate) fn install(&self, worker_id: u8, floor_sec: u64, cap_sec: u64, valid_until: u64) {
        self.valid_until.store(0, Ordering::Release);
        {
            let mut w = self.window.lock();
            *w = Window {
                worker_id: Some(worker_id),
                floor_sec,
                cap_sec,
                last_sec: 0,
                seq: 0,
            };
        }
        self.worker_id
            .store(u32::from(worker_id), Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.status
            .store(LeaseStatus::Held.as_u8(), Ordering::Release);
        self.valid_until.store(valid_until, Ordering::Release);
    }

    /// A renewal succeeded: raise the cap, push the deadline.
    pub(crate) fn extend(&self, cap_sec: u64, valid_until: u64) {
        {
            let mut w = self.window.lock();
            w.cap_sec = w.cap_sec.max(cap_sec);
        }
        self.valid_until.store(valid_until, Ordering::Release);
        self.renewals.fetch_add(1, Ordering::Relaxed);
    }

    /// How many renewals have succeeded so far.
    pub fn renewals(&self) -> u64 {
        self.renewals.load(Ordering::Relaxed)
    }

    /// Stop issuing at once and forget the worker ID (lease lost).
    pub(crate) fn fence_lost(&self) {
        self.valid_until.store(0, Ordering::Release);
        {
            let mut w = self.window.lock();
            *w = Window::EMPTY;
        }
        self.worker_id.store(NO_WORKER, Ordering::Release);
        self.status
            .store(LeaseStatus::Lost.as_u8(), Ordering::Release);
    }

    /// Stop issuing for good (release) and return the highest second any
    /// ID under this worker ID may carry, to persist in `last_ts`.
    pub(crate) fn close(&self) -> Option<(u8, u64)> {
        self.valid_until.store(0, Ordering::Release);
        self.status
            .store(LeaseStatus::Released.as_u8(), Ordering::Release);
        let mut w = self.window.lock();
        let held = w.worker_id.map(|id| (id, w.issued_bound()));
        *w = Window::EMPTY;
        drop(w);
        self.worker_id.store(NO_WORKER, Ordering::Release);
        held
    }

    /// The seconds this holder may issue IDs in, `(floor, cap)`: strictly
    /// above `floor`, at most `cap` (both unix seconds); `None` when no
    /// worker ID is held. For status displays and tests.
    pub fn bounds(&self) -> Option<(u64, u64)> {
        let w = self.window.lock();
        w.worker_id.map(|_| (w.floor_sec, w.cap_sec))
    }

    /// The current window (a copy), for the allocator's bookkeeping.
    pub(crate) fn window_snapshot(&self) -> Window {
        *self.window.lock()
    }
}
