//! The in-process queue backend (single node): the same semantics as the
//! shared backends (at-least-once, retries with backoff, dead letters,
//! bounded concurrency), with everything kept in this process's memory.

use super::backend::{Backend, Consumers, Started};
use super::subscription::{Stop, drain, reap, run_handler};
use super::{
    DeadLetter, Message, PauseFlag, PauseState, QueueError, QueueOptions, QueueStats, Requeue,
    new_message_id,
};
use crate::clock::now_ms;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

#[derive(Default)]
struct QueueState {
    ready: VecDeque<Message>,
    notify: Arc<Notify>,
    in_flight: u64,
    retrying: u64,
    dead: Vec<DeadLetter>,
    consumers: u64,
    /// Set by `pause`: no message is taken while it is.
    paused: Option<PauseFlag>,
}

type State = Arc<Mutex<HashMap<String, QueueState>>>;

/// The in-process queue.
#[derive(Clone)]
pub struct MemoryQueue {
    state: State,
    options: QueueOptions,
}

impl MemoryQueue {
    /// An empty queue set.
    pub fn new(options: QueueOptions) -> Self {
        Self {
            state: Arc::new(Mutex::new(HashMap::new())),
            options,
        }
    }
}

fn push_ready(state: &State, msg: Message) {
    let mut s = state.lock();
    let q = s.entry(msg.queue.clone()).or_default();
    q.ready.push_back(msg);
    q.notify.notify_one();
}

/// A delivered message; if the task holding it is cancelled before it is
/// settled, the message goes back to the front of its queue.
struct InFlight {
    state: State,
    msg: Option<Message>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(msg) = self.msg.take() {
            let mut s = self.state.lock();
            let q = s.entry(msg.queue.clone()).or_default();
            q.in_flight = q.in_flight.saturating_sub(1);
            q.ready.push_front(msg);
            q.notify.notify_one();
        }
    }
}

impl InFlight {
    /// Settle the message: acknowledged, retried later, or dead-lettered.
    fn settle(mut self, result: Result<(), String>, options: &QueueOptions) {
        let Some(mut msg) = self.msg.take() else {
            return;
        };
        let mut s = self.state.lock();
        let q = s.entry(msg.queue.clone()).or_default();
        q.in_flight = q.in_flight.saturating_sub(1);
        let Err(error) = result else {
            return;
        };
        if options.retry.retries_after(msg.attempt) {
            q.retrying += 1;
            let delay = options.retry.delay_after(msg.attempt);
            msg.attempt += 1;
            let state = self.state.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut s = state.lock();
                let q = s.entry(msg.queue.clone()).or_default();
                q.retrying = q.retrying.saturating_sub(1);
                q.ready.push_back(msg);
                q.notify.notify_one();
            });
        } else {
            q.dead.push(DeadLetter {
                id: msg.id,
                queue: msg.queue,
                payload: msg.payload,
                error,
                attempts: msg.attempt,
                failed_at_ms: now_ms(),
            });
        }
    }
}

/// Take the next message, waiting for one; `None` when stopping.
async fn next_message(
    state: &State,
    queue: &str,
    stop: &mut Stop,
    pause: &PauseState,
) -> Option<Message> {
    loop {
        let notify = {
            let mut s = state.lock();
            let q = s.entry(queue.to_string()).or_default();
            pause.set(q.paused.is_some());
            if q.paused.is_some() {
                // Paused: take nothing; `resume` notifies.
            } else if let Some(msg) = q.ready.pop_front() {
                q.in_flight += 1;
                if !q.ready.is_empty() {
                    q.notify.notify_one();
                }
                return Some(msg);
            }
            q.notify.clone()
        };
        tokio::select! {
            _ = tokio::time::timeout(Duration::from_millis(200), notify.notified()) => {}
            _ = stop.wait() => return None,
        }
    }
}

async fn run_consumers(state: State, queue: String, c: Consumers, options: QueueOptions) {
    let Consumers {
        concurrency,
        handler,
        mut stop,
        pause,
    } = c;
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    loop {
        reap(&mut tasks);
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.wait() => break,
        };
        let Some(msg) = next_message(&state, &queue, &mut stop, &pause).await else {
            break;
        };
        let guard = InFlight {
            state: state.clone(),
            msg: Some(msg.clone()),
        };
        let handler = handler.clone();
        tasks.spawn(async move {
            let result = run_handler(&handler, msg).await;
            drop(permit);
            guard.settle(result, &options);
        });
    }
    drain(&mut tasks, options.shutdown_timeout).await;
    let mut s = state.lock();
    if let Some(q) = s.get_mut(&queue) {
        q.consumers = q.consumers.saturating_sub(1);
    }
}

impl Backend for MemoryQueue {
    const KIND: &'static str = "memory";

    fn options(&self) -> &QueueOptions {
        &self.options
    }

    async fn put(&self, queue: &str, payload: &[u8]) -> Result<String, QueueError> {
        let id = new_message_id();
        push_ready(
            &self.state,
            Message {
                id: id.clone(),
                queue: queue.to_string(),
                payload: payload.to_vec(),
                attempt: 1,
            },
        );
        Ok(id)
    }

    async fn consume(&self, queue: &str, c: Consumers) -> Result<Started, QueueError> {
        let consumer = {
            let mut s = self.state.lock();
            let q = s.entry(queue.to_string()).or_default();
            q.consumers += 1;
            format!("memory-{}", q.consumers)
        };
        let task = tokio::spawn(run_consumers(
            self.state.clone(),
            queue.to_string(),
            c,
            self.options,
        ));
        Ok((consumer, task))
    }

    async fn counts(&self, queue: &str) -> Result<QueueStats, QueueError> {
        let s = self.state.lock();
        let mut stats = QueueStats {
            queue: queue.to_string(),
            key: format!("memory:{queue}"),
            in_flight: Some(0),
            retrying: Some(0),
            ..QueueStats::default()
        };
        if let Some(q) = s.get(queue) {
            stats.waiting = q.ready.len() as u64;
            stats.in_flight = Some(q.in_flight);
            stats.retrying = Some(q.retrying);
            stats.dead = q.dead.len() as u64;
            stats.consumers = q.consumers;
            stats.paused = q.paused.clone();
            // A message id starts with its publish time in ms, in hex.
            stats.oldest_age_ms = q
                .ready
                .front()
                .and_then(|m| m.id.split('-').next())
                .and_then(|ms| u64::from_str_radix(ms, 16).ok())
                .map(|at| now_ms().saturating_sub(at));
        }
        Ok(stats)
    }

    async fn dead_count(&self, queue: &str) -> Result<u64, QueueError> {
        Ok(self
            .state
            .lock()
            .get(queue)
            .map_or(0, |q| q.dead.len() as u64))
    }

    async fn dead_list(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(self
            .state
            .lock()
            .get(queue)
            .map(|q| q.dead.iter().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn dead_requeue(&self, queue: &str, which: Requeue) -> Result<u64, QueueError> {
        let mut s = self.state.lock();
        let Some(q) = s.get_mut(queue) else {
            return Ok(0);
        };
        let (back, keep): (Vec<_>, Vec<_>) =
            std::mem::take(&mut q.dead)
                .into_iter()
                .partition(|d| match &which {
                    Requeue::All => true,
                    Requeue::Ids(ids) => ids.contains(&d.id),
                });
        q.dead = keep;
        let n = back.len() as u64;
        for d in back {
            q.ready.push_back(Message {
                id: d.id,
                queue: d.queue,
                payload: d.payload,
                attempt: 1,
            });
            q.notify.notify_one();
        }
        Ok(n)
    }

    async fn dead_purge(&self, queue: &str) -> Result<u64, QueueError> {
        let mut s = self.state.lock();
        Ok(s.get_mut(queue)
            .map_or(0, |q| std::mem::take(&mut q.dead).len() as u64))
    }

    async fn remove(&self, queue: &str) -> Result<(), QueueError> {
        let mut s = self.state.lock();
        if let Some(q) = s.get_mut(queue) {
            q.ready.clear();
            q.dead.clear();
            q.paused = None;
        }
        Ok(())
    }

    async fn set_pause(&self, queue: &str, flag: &PauseFlag) -> Result<(), QueueError> {
        let mut s = self.state.lock();
        s.entry(queue.to_string()).or_default().paused = Some(flag.clone());
        Ok(())
    }

    async fn clear_pause(&self, queue: &str) -> Result<bool, QueueError> {
        let mut s = self.state.lock();
        let q = s.entry(queue.to_string()).or_default();
        let was = q.paused.take().is_some();
        q.notify.notify_waiters();
        q.notify.notify_one();
        Ok(was)
    }

    async fn read_pause(&self, queue: &str) -> Result<Option<PauseFlag>, QueueError> {
        Ok(self.state.lock().get(queue).and_then(|q| q.paused.clone()))
    }
}
