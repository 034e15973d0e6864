//! Acknowledging a Redis consumer's handled messages in batches. A handler
//! that succeeded puts its entry id in the consumer's [`AckQueue`]; the
//! reader sends every id waiting there in front of its next read, in the
//! same request (`MULTI` / `XACK` / `XDEL` / `EXEC`, then `XREADGROUP`), so
//! a busy consumer pays no round trip of its own for acknowledgements. What
//! the reader does not pick up within [`ACK_LINGER`] (it is blocked on an
//! idle stream) the acker task sends alone. An entry leaves the consumer's
//! held set once its acknowledgement is sent (or given up, and then it is
//! redelivered).

use super::redis_consumer::{ConsumerCtx, Held};
use super::redis_entries::GROUP;
use super::redis_settle::run_settle;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a handled entry waits for the reader's next read before the
/// acker acknowledges it alone.
pub(crate) const ACK_LINGER: Duration = Duration::from_millis(2);
/// Most ids in one `XACK` (and `XDEL`).
const MAX_BATCH: usize = 1000;

/// Entry ids whose handler succeeded, not acknowledged yet.
#[derive(Default)]
pub(crate) struct AckQueue {
    ids: Mutex<Vec<String>>,
    added: Notify,
    closed: AtomicBool,
}

impl AckQueue {
    /// A handled entry, to acknowledge.
    pub(crate) fn push(&self, id: String) {
        self.ids.lock().push(id);
        self.added.notify_one();
    }

    /// Everything waiting (at most [`MAX_BATCH`]), for one request.
    pub(crate) fn take(&self) -> Vec<String> {
        let mut ids = self.ids.lock();
        if ids.len() <= MAX_BATCH {
            return std::mem::take(&mut *ids);
        }
        let rest = ids.split_off(MAX_BATCH);
        std::mem::replace(&mut *ids, rest)
    }

    /// Ids whose request failed: the acker sends them again.
    pub(crate) fn put_back(&self, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        self.ids.lock().extend(ids);
        self.added.notify_one();
    }

    /// No handler runs any more: the acker sends what is left and ends.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.added.notify_one();
    }
}

/// Append the acknowledgement of `ids` (one `MULTI`: `XACK` and `XDEL`, so
/// an acknowledged entry never stays in the stream) to `pipe`, replies
/// ignored.
pub(crate) fn add_acks(pipe: &mut redis::Pipeline, key: &str, ids: &[String]) {
    pipe.cmd("MULTI").ignore();
    pipe.cmd("XACK").arg(key).arg(GROUP).arg(ids).ignore();
    pipe.cmd("XDEL").arg(key).arg(ids).ignore();
    pipe.cmd("EXEC").ignore();
}

/// Forget acknowledged (or given-up) entries.
pub(crate) fn release(held: &Held, ids: &[String]) {
    let mut h = held.lock();
    for id in ids {
        h.remove(id);
    }
}

/// The acker task: sends what the reader left for [`ACK_LINGER`], until the
/// queue is closed and empty.
pub(crate) async fn acker(ctx: Arc<ConsumerCtx>, held: Held, queue: Arc<AckQueue>) {
    let key = &ctx.keys.stream;
    loop {
        queue.added.notified().await;
        if !queue.closed.load(Ordering::Acquire) {
            tokio::time::sleep(ACK_LINGER).await;
        }
        loop {
            let batch = queue.take();
            if batch.is_empty() {
                break;
            }
            let mut pipe = redis::pipe();
            pipe.atomic();
            pipe.cmd("XACK").arg(key).arg(GROUP).arg(&batch).ignore();
            pipe.cmd("XDEL").arg(key).arg(&batch).ignore();
            run_settle(&ctx, &pipe, &batch[0]).await;
            release(&held, &batch);
        }
        if queue.closed.load(Ordering::Acquire) && queue.ids.lock().is_empty() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_bounded_and_failed_ones_come_back() {
        let q = AckQueue::default();
        for i in 0..(MAX_BATCH + 5) {
            q.push(format!("{i}-0"));
        }
        let first = q.take();
        assert_eq!(first.len(), MAX_BATCH);
        assert_eq!(first[0], "0-0");
        assert_eq!(q.take().len(), 5);
        assert!(q.take().is_empty());
        q.put_back(vec!["7-0".into()]);
        assert_eq!(q.take(), vec!["7-0".to_string()]);
    }

    #[test]
    fn the_acknowledgement_is_one_transaction_in_front_of_the_read() {
        let mut pipe = redis::pipe();
        add_acks(&mut pipe, "ns:queue:{q}", &["1-0".into(), "2-0".into()]);
        pipe.cmd("XREADGROUP");
        let text = String::from_utf8_lossy(&pipe.get_packed_pipeline()).into_owned();
        let order: Vec<usize> = ["MULTI", "XACK", "XDEL", "EXEC", "XREADGROUP"]
            .iter()
            .map(|c| text.find(c).unwrap_or(usize::MAX))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text:?}");
    }
}
