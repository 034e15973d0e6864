//! Lock clients writing to a fenced resource, shared by the scenarios that
//! test fencing tokens (`lock_safety` on one Redis, `cluster_failover` on
//! a Redis Cluster): the child role (`faults --child lock-clients`: 4
//! clients in one process taking one lock over and over, each protected
//! write going to a PostgreSQL row that refuses a token not above the last
//! one it accepted) and the resource's schema.
//!
//! A client freezes its own process (SIGSTOP, the scenario resumes it)
//! between the guard check and the write: now and then at random (`pause`
//! line, kind `after-pause`), and at its next acquisition after the process
//! gets SIGUSR1 (`stale-pause` line, kind `stale`), so a scenario can hold a
//! writer stale across a fault of its choosing.

use crate::harness::Child;
use crate::procs::{self, Args, report_line};
use clusterops::adapters::lock::{LockBackend, LockError, RedisLock};
use clusterops::config::{Namespace, SecretUrl};
use rand::Rng;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The child role, as registered in `CHILDREN`.
pub const CHILD: Child = Child {
    name: ROLE,
    run: child,
};
/// The role's name.
pub const ROLE: &str = "lock-clients";
/// Clients per process.
pub const CLIENTS: usize = 4;

/// The protected write: one statement, so the check and the write cannot
/// be separated. `ord` is the row's accepted-write counter after this
/// write (the order the row saw writes in); NULL when refused. `at` is when
/// the write reached the database.
const WRITE: &str = "WITH accepted AS (
      UPDATE resource SET last_token = $1, accepted = accepted + 1
      WHERE id = 1 AND last_token < $1
      RETURNING accepted)
    INSERT INTO writes (ord, token, client, kind)
    SELECT (SELECT accepted FROM accepted), $1, $2, $3
    RETURNING ord";

/// The resource row and the log of every write tried on it.
pub const SCHEMA: &str = "CREATE TABLE resource (id INT PRIMARY KEY, last_token BIGINT NOT NULL, \
      accepted BIGINT NOT NULL);
    INSERT INTO resource VALUES (1, 0, 0);
    CREATE TABLE writes (ord BIGINT UNIQUE, token BIGINT NOT NULL, client TEXT NOT NULL, \
      kind TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp());";

/// How one process of clients runs (the role's arguments).
pub struct ClientArgs {
    /// The Redis URL.
    pub redis: String,
    /// The lock namespace.
    pub ns: String,
    /// The lock's name.
    pub lock: String,
    /// The PostgreSQL URL of the resource.
    pub db: String,
    /// Node id of the process (`A0`, `B3`, …).
    pub label: String,
    /// Written tokens are `token - base`; the clients stop once that
    /// passes `target`.
    pub base: u64,
    pub target: u64,
    /// Lock TTL.
    pub ttl: Duration,
    /// One acquisition in this many freezes the process before the write.
    pub pause_one_in: u32,
    /// Each client sleeps this long after each release.
    pub rest: Duration,
}

impl ClientArgs {
    /// The role's `key=value` arguments.
    pub fn to_args(&self) -> Vec<String> {
        procs::args(&[
            ("redis", self.redis.clone()),
            ("ns", self.ns.clone()),
            ("lock", self.lock.clone()),
            ("db", self.db.clone()),
            ("label", self.label.clone()),
            ("base", self.base.to_string()),
            ("target", self.target.to_string()),
            ("ttl_ms", self.ttl.as_millis().to_string()),
            ("pause_one_in", self.pause_one_in.to_string()),
            ("rest_ms", self.rest.as_millis().to_string()),
        ])
    }

    fn parse(a: &Args) -> Result<Self, String> {
        Ok(Self {
            redis: a.str("redis")?.to_string(),
            ns: a.str("ns")?.to_string(),
            lock: a.str("lock")?.to_string(),
            db: a.str("db")?.to_string(),
            label: a.str("label")?.to_string(),
            base: a.num("base")?,
            target: a.num("target")?,
            ttl: Duration::from_millis(a.num("ttl_ms")?),
            pause_one_in: a.num::<u32>("pause_one_in")?.max(1),
            rest: Duration::from_millis(a.num("rest_ms")?),
        })
    }
}

/// The `lock-clients` role: [`CLIENTS`] clients sharing the process's lock
/// backend (node id `label`), as the tasks of a node do, each with its own
/// database connection, taking the lock until a token above `target`
/// comes out or the scenario closes our stdin. Prints `ready` once it
/// takes SIGUSR1.
pub fn child(args: &[String]) -> ExitCode {
    let result = Args::parse(args)
        .and_then(|a| ClientArgs::parse(&a))
        .and_then(|a| {
            let rt = procs::runtime()?;
            rt.block_on(clients(a))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{ROLE}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn clients(a: ClientArgs) -> Result<(), String> {
    let url = SecretUrl::parse(&a.redis, &["redis"])?;
    let ns = Namespace::new(&a.ns)?;
    let stop = procs::stop_flag();
    // SIGUSR1: the next client to pass its guard check freezes.
    let stale_next = Arc::new(AtomicBool::new(false));
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .map_err(|e| format!("SIGUSR1: {e}"))?;
    let flag = stale_next.clone();
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            flag.store(true, Ordering::Release);
        }
    });
    let lock = RedisLock::connect(&url, ns, a.label.clone())
        .await
        .map_err(|e| e.to_string())?;
    // Poll faster than the default 50-200 ms: the keep-alive of a queued
    // waiter is 3 polls, at least 250 ms, so the waiters of a frozen or
    // killed process leave the lock's queue 250 ms after it stopped, well
    // within a freeze (600 ms), and the other process's clients (hence a
    // successor's write) get in (with the default 600 ms keep-alive most
    // frozen holders found no successor had written).
    lock.set_poll_interval(Duration::from_millis(20), Duration::from_millis(50));
    let a = Arc::new(a);
    let mut tasks = Vec::new();
    for n in 0..CLIENTS {
        let id = format!("{}.c{n}", a.label);
        let pg = procs::pg(&a.db).await?;
        tasks.push(tokio::spawn(client(
            lock.clone(),
            pg,
            id,
            a.clone(),
            stop.clone(),
            stale_next.clone(),
        )));
    }
    report_line("ready");
    for t in tasks {
        t.await.map_err(|e| format!("client task: {e}"))??;
    }
    Ok(())
}

async fn client(
    lock: RedisLock,
    pg: tokio_postgres::Client,
    id: String,
    a: Arc<ClientArgs>,
    stop: Arc<AtomicBool>,
    stale_next: Arc<AtomicBool>,
) -> Result<(), String> {
    // The database is not what is under test (and is never killed): skip
    // the flush per commit so the lock is the bottleneck.
    pg.batch_execute("SET synchronous_commit = off")
        .await
        .map_err(|e| e.to_string())?;
    let write = pg.prepare(WRITE).await.map_err(|e| e.to_string())?;
    loop {
        let guard = lock
            .acquire(&a.lock, a.ttl, Duration::from_secs(60))
            .await
            .map_err(|e| format!("{id}: {e}"))?;
        let token = guard.fencing_token().saturating_sub(a.base);
        if token > a.target || stop.load(Ordering::Acquire) {
            let _ = guard.release().await;
            return Ok(());
        }
        // A random hold: about half yield once, one in a hundred sleeps
        // 1 to 5 ms, the rest write at once.
        let hold: u32 = rand::rng().random_range(0..100);
        if hold < 1 {
            let ms = rand::rng().random_range(1..=5);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        } else if hold < 50 {
            tokio::task::yield_now().await;
        }
        if guard.check().is_err() {
            report_line("lost");
            continue;
        }
        let kind = if stale_next.swap(false, Ordering::AcqRel) {
            report_line(&format!("stale-pause {token}"));
            "stale"
        } else if rand::rng().random_ratio(1, a.pause_one_in) {
            report_line("pause");
            "after-pause"
        } else {
            "normal"
        };
        if kind != "normal" {
            // Freeze the whole process (watchdog included) right between
            // the check and the write; the scenario resumes it later.
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
        }
        let token_i64 = i64::try_from(token).map_err(|e| e.to_string())?;
        pg.query_one(&write, &[&token_i64, &id, &kind])
            .await
            .map_err(|e| format!("{id}: protected write: {e}"))?;
        match guard.release().await {
            Ok(()) | Err(LockError::Lost { .. }) => {}
            Err(e) => return Err(format!("{id}: release: {e}")),
        }
        if !a.rest.is_zero() {
            tokio::time::sleep(a.rest).await;
        }
    }
}
