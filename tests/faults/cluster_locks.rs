//! The lock half of `cluster_failover`: two processes of lock clients
//! (`lock_clients.rs`) on different nodes of the cluster take one lock and
//! write to a fenced PostgreSQL row, while a monitor thread reads their
//! lines and resumes the processes that froze themselves at random. Before
//! each kill the scenario makes one client freeze with the lock's token in
//! hand ([`LockLoad::freeze`]) and resumes it after the failover
//! ([`LockLoad::thaw`]): its write is then stale and the resource must
//! refuse it. Afterwards [`LockLoad::finish`] reads the resource's log:
//! tokens written after each promotion must be above every token handed out
//! before the kill, accepted writes must carry increasing tokens, and every
//! stale write must have been refused.

use crate::common::TestDb;
use crate::lock_clients::{self, ClientArgs, SCHEMA};
use crate::procs::{self, ChildProc};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The lock TTL.
const TTL: Duration = Duration::from_millis(200);
/// A process that froze itself at random is resumed after this long.
const PAUSE: Duration = Duration::from_millis(600);
/// One acquisition in this many freezes its process at random.
const PAUSE_ONE_IN: u32 = 3000;
/// Each client rests this long after a release (keeps the 2-core machine
/// free enough for the cluster's 1 s node timeout).
const REST: Duration = Duration::from_millis(5);

/// Where the monitor answers a freeze: the frozen client's token.
type Answer = mpsc::Sender<Result<u64, String>>;

enum Cmd {
    Freeze(usize, Answer),
    Thaw,
}

/// When a fault happened, for the checks (unix ms).
#[derive(Debug, Clone, Copy)]
pub struct FaultTimes {
    /// Just before the kill.
    pub killed_ms: u64,
    /// Once the cluster said `ok` again with a replica promoted.
    pub promoted_ms: u64,
    /// The token of the client frozen just before the kill.
    pub frozen_token: u64,
}

/// What the monitor counted.
#[derive(Default)]
struct Counts {
    random_pauses: u64,
    lost_before_write: u64,
}

/// The lock clients and their monitor.
pub struct LockLoad {
    db: TestDb,
    tx: mpsc::Sender<Cmd>,
    thread: std::thread::JoinHandle<Result<Counts, String>>,
}

/// What the resource's log says.
pub struct LockFigures {
    pub writes: u64,
    pub accepted: u64,
    pub refused: u64,
    pub random_pauses: u64,
    pub lost_before_write: u64,
    pub stale_holders: u64,
    pub stale_refused: u64,
    /// Per fault: the highest token handed out before the kill (accepted,
    /// or held by the frozen client) and the
    /// lowest token written (by a client that was not frozen) after the
    /// promotion.
    pub tokens: Vec<(u64, u64)>,
}

impl LockLoad {
    /// Two client processes, on `urls[0]` and `urls[1]`, taking the lock
    /// `lock` of namespace `ns`; waits until both are ready.
    pub fn start(urls: [String; 2], ns: &str, lock: &str) -> Result<Self, String> {
        let db = TestDb::create("faults_cluster_lock");
        db.query(SCHEMA);
        let mut children = Vec::new();
        for (i, url) in urls.into_iter().enumerate() {
            let label = ["A", "B"][i].to_string();
            let args = ClientArgs {
                redis: url,
                ns: ns.to_string(),
                lock: lock.to_string(),
                db: db.url(),
                label: label.clone(),
                base: 0,
                target: u64::MAX,
                ttl: TTL,
                pause_one_in: PAUSE_ONE_IN,
                rest: REST,
            };
            let child = ChildProc::spawn(lock_clients::ROLE, &args.to_args(), &label)?;
            child.wait_for_line("ready", Duration::from_secs(20))?;
            children.push(child);
        }
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || monitor(children, rx));
        Ok(Self { db, tx, thread })
    }

    /// Make a client of process `i` freeze with the lock held, right
    /// before its protected write; returns its token once it is frozen.
    pub fn freeze(&self, i: usize) -> Result<u64, String> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .send(Cmd::Freeze(i, reply))
            .map_err(|_| "the lock monitor stopped".to_string())?;
        answer
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "the lock monitor did not answer".to_string())?
    }

    /// Resume the clients frozen by [`Self::freeze`].
    pub fn thaw(&self) {
        let _ = self.tx.send(Cmd::Thaw);
    }

    /// Stop the clients and check the resource's log against `faults`.
    pub fn finish(self, faults: &[FaultTimes]) -> Result<LockFigures, String> {
        drop(self.tx);
        let counts = self
            .thread
            .join()
            .map_err(|_| "the lock monitor panicked".to_string())??;
        let db = &self.db;
        let nums = |sql: &str| -> Result<Vec<u64>, String> {
            let row = db.query(sql);
            row.split('|')
                .map(|v| v.parse::<u64>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("unexpected psql output {row:?} for {sql}"))
        };
        let n = nums(
            "SELECT count(*), count(ord), count(*) FILTER (WHERE kind = 'stale'), \
             count(*) FILTER (WHERE kind = 'stale' AND ord IS NULL) FROM writes",
        )?;
        let [writes, accepted, stale_holders, stale_refused] = n[..] else {
            return Err("unexpected psql output".into());
        };
        let out_of_order = nums(
            "SELECT count(*) FROM (SELECT token, lag(token) OVER (ORDER BY ord) AS prev \
             FROM writes WHERE ord IS NOT NULL) s WHERE token <= prev",
        )?;
        if out_of_order != [0] {
            return Err(format!(
                "{out_of_order:?} accepted writes carried a token not above the one before"
            ));
        }
        let ts = |ms: u64| format!("to_timestamp({ms} / 1000.0)");
        let mut tokens = Vec::new();
        for (k, f) in faults.iter().enumerate() {
            let t = nums(&format!(
                "SELECT coalesce(max(token) FILTER (WHERE ord IS NOT NULL AND at < {}), 0), \
                 coalesce(min(token) FILTER (WHERE kind = 'normal' AND at > {}), 0), \
                 count(*) FILTER (WHERE ord IS NOT NULL AND at > {}) FROM writes",
                ts(f.killed_ms),
                ts(f.promoted_ms),
                ts(f.promoted_ms),
            ))?;
            let [before, after, accepted_after] = t[..] else {
                return Err("unexpected psql output".into());
            };
            if accepted_after == 0 {
                return Err(format!(
                    "after kill {}: no lock holder wrote to the resource again",
                    k + 1
                ));
            }
            let before = before.max(f.frozen_token);
            if after <= before {
                return Err(format!(
                    "after kill {}: a token written after the promotion ({after}) is not above \
                     the highest handed out before the kill ({before})",
                    k + 1
                ));
            }
            tokens.push((before, after));
        }
        // A stale write must be refused when another holder's write was
        // accepted while its client was frozen (otherwise accepting it is
        // right, but then nobody took the lock for seconds: an error too).
        let unrefused = db.query(
            "SELECT s.token, (SELECT count(*) FROM writes w WHERE w.ord IS NOT NULL \
               AND w.client <> s.client AND w.at < s.at AND w.token > s.token) \
             FROM writes s WHERE s.kind = 'stale' AND s.ord IS NOT NULL",
        );
        if !unrefused.is_empty() {
            return Err(format!(
                "stale writes were accepted (token|later tokens accepted before it): {unrefused}"
            ));
        }
        Ok(LockFigures {
            writes,
            accepted,
            refused: writes - accepted,
            random_pauses: counts.random_pauses,
            lost_before_write: counts.lost_before_write,
            stale_holders,
            stale_refused,
            tokens,
        })
    }
}

impl LockFigures {
    /// `lock_writes`, `lock_accepted`, `lock_refused`, `lock_random_pauses`,
    /// `stale_holders`, `stale_refused`, `token_before_kill`,
    /// `token_after_promotion`.
    pub fn report(&self, report: &mut crate::harness::Report) {
        let list = |f: &dyn Fn(&(u64, u64)) -> u64| {
            self.tokens
                .iter()
                .map(|t| f(t).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        report.figure("lock_writes", self.writes);
        report.figure("lock_accepted", self.accepted);
        report.figure("lock_refused", self.refused);
        report.figure("lock_random_pauses", self.random_pauses);
        report.figure("lock_lost_before_write", self.lost_before_write);
        report.figure("stale_holders", self.stale_holders);
        report.figure("stale_refused", self.stale_refused);
        report.figure("token_before_kill", list(&|t| t.0));
        report.figure("token_after_promotion", list(&|t| t.1));
    }
}

/// The monitor thread: resumes random pauses after [`PAUSE`], answers
/// freezes, fails when a client process exits by itself; stops the
/// clients when the scenario drops its end of the channel.
fn monitor(mut children: Vec<ChildProc>, rx: mpsc::Receiver<Cmd>) -> Result<Counts, String> {
    let mut counts = Counts::default();
    let mut resume_at: Vec<(usize, Instant)> = Vec::new();
    let mut frozen: Vec<usize> = Vec::new();
    let mut pending: Option<(usize, Answer, Instant)> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(Cmd::Freeze(i, reply)) => {
                let Some(child) = children.get(i) else {
                    let _ = reply.send(Err(format!("no lock process {i}")));
                    continue;
                };
                procs::signal(child.pid(), nix::sys::signal::Signal::SIGUSR1);
                pending = Some((i, reply, Instant::now() + Duration::from_secs(5)));
            }
            Ok(Cmd::Thaw) => {
                for i in frozen.drain(..) {
                    children[i].resume();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        for (i, child) in children.iter_mut().enumerate() {
            for line in child.new_lines() {
                let mut words = line.split_whitespace();
                match words.next() {
                    Some("pause") => {
                        counts.random_pauses += 1;
                        resume_at.push((i, now + PAUSE));
                    }
                    Some("lost") => counts.lost_before_write += 1,
                    Some("stale-pause") => {
                        let token = words.next().and_then(|t| t.parse::<u64>().ok());
                        frozen.push(i);
                        if let Some((_, reply, _)) = pending.take_if(|p| p.0 == i) {
                            let _ = reply.send(token.ok_or_else(|| line.clone()));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(status) = child.try_exit() {
                return Err(format!("lock client process {} {status}", child.label));
            }
        }
        if let Some((i, reply, _)) = pending.take_if(|p| p.2 <= now) {
            let _ = reply.send(Err(format!(
                "lock process {i} did not freeze with the lock within 5 s"
            )));
        }
        resume_at.retain(|(i, at)| {
            let due = *at <= now && !frozen.contains(i);
            if due {
                children[*i].resume();
            }
            *at > now
        });
    }
    for i in frozen.drain(..) {
        children[i].resume();
    }
    for child in &mut children {
        child.resume();
        child.ask_to_stop();
    }
    for child in &mut children {
        match child.wait_exit(Duration::from_secs(30)) {
            Some(status) if status.success() => {}
            Some(status) => return Err(format!("lock client process {} {status}", child.label)),
            None => {
                return Err(format!(
                    "lock client process {} did not stop within 30 s",
                    child.label
                ));
            }
        }
    }
    Ok(counts)
}
