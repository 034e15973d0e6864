//! The one [`MessageQueue`] implementation every backend shares: the queue
//! name (and a subscription's concurrency) checked here, once, and each
//! subscription's stop signal, pause state and handle made here; what
//! differs per backend is its [`Backend`].

use super::subscription::Stop;
use super::{
    DeadLetter, Handler, MessageQueue, PauseFlag, PauseState, QueueError, QueueOptions, QueueStats,
    Requeue, Subscription, validate_concurrency, validate_queue_name,
};
use std::future::Future;
use tokio::task::JoinHandle;

/// What [`Backend::consume`] starts: up to `concurrency` handlers at once
/// (checked), stopping when `stop` is set, keeping `pause` up to date
/// (where the backend has pausing).
pub(crate) struct Consumers {
    pub concurrency: usize,
    pub handler: Handler,
    pub stop: Stop,
    pub pause: PauseState,
}

/// What [`Backend::consume`] returns: the consumer name and the task that
/// runs the consumers.
pub(crate) type Started = (String, JoinHandle<()>);

/// What a queue backend implements; every queue name it gets is checked.
pub(crate) trait Backend: Send + Sync {
    /// [`MessageQueue::backend`]: `memory`, `redis` or `rabbitmq`.
    const KIND: &'static str;

    /// The tuning it was made with.
    fn options(&self) -> &QueueOptions;

    /// [`MessageQueue::publish`].
    fn put(
        &self,
        queue: &str,
        payload: &[u8],
    ) -> impl Future<Output = Result<String, QueueError>> + Send;

    /// Start `consumers` on `queue` ([`MessageQueue::subscribe`]).
    fn consume(
        &self,
        queue: &str,
        consumers: Consumers,
    ) -> impl Future<Output = Result<Started, QueueError>> + Send;

    /// [`MessageQueue::stats`].
    fn counts(&self, queue: &str) -> impl Future<Output = Result<QueueStats, QueueError>> + Send;

    /// [`MessageQueue::dead_letter_count`].
    fn dead_count(&self, queue: &str) -> impl Future<Output = Result<u64, QueueError>> + Send;

    /// [`MessageQueue::dead_letters`].
    fn dead_list(
        &self,
        queue: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, QueueError>> + Send;

    /// [`MessageQueue::requeue_dead_letters`].
    fn dead_requeue(
        &self,
        queue: &str,
        which: Requeue,
    ) -> impl Future<Output = Result<u64, QueueError>> + Send;

    /// [`MessageQueue::purge_dead_letters`].
    fn dead_purge(&self, queue: &str) -> impl Future<Output = Result<u64, QueueError>> + Send;

    /// [`MessageQueue::delete_queue`].
    fn remove(&self, queue: &str) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// [`MessageQueue::pause`]; by default the backend has no pausing.
    fn set_pause(
        &self,
        queue: &str,
        flag: &PauseFlag,
    ) -> impl Future<Output = Result<(), QueueError>> + Send {
        let _ = (queue, flag);
        async { Err(unsupported::<Self>()) }
    }

    /// [`MessageQueue::resume`]; by default the backend has no pausing.
    fn clear_pause(&self, queue: &str) -> impl Future<Output = Result<bool, QueueError>> + Send {
        let _ = queue;
        async { Err(unsupported::<Self>()) }
    }

    /// [`MessageQueue::paused`]; by default the backend has no pausing.
    fn read_pause(
        &self,
        queue: &str,
    ) -> impl Future<Output = Result<Option<PauseFlag>, QueueError>> + Send {
        let _ = queue;
        async { Err(unsupported::<Self>()) }
    }
}

fn unsupported<B: Backend + ?Sized>() -> QueueError {
    QueueError::PauseUnsupported { backend: B::KIND }
}

#[async_trait::async_trait]
impl<B: Backend + 'static> MessageQueue for B {
    fn backend(&self) -> &'static str {
        B::KIND
    }

    async fn publish(&self, queue: &str, payload: &[u8]) -> Result<String, QueueError> {
        validate_queue_name(queue)?;
        self.put(queue, payload).await
    }

    async fn subscribe(
        &self,
        queue: &str,
        concurrency: usize,
        handler: Handler,
    ) -> Result<Subscription, QueueError> {
        validate_queue_name(queue)?;
        validate_concurrency(concurrency)?;
        let (tx, stop) = Stop::new();
        let pause = PauseState::default();
        let consumers = Consumers {
            concurrency,
            handler,
            stop,
            pause: pause.clone(),
        };
        let (consumer, task) = self.consume(queue, consumers).await?;
        let timeout = self.options().shutdown_timeout;
        Ok(Subscription::new(queue, consumer, tx, task, timeout).with_pause_state(pause))
    }

    async fn stats(&self, queue: &str) -> Result<QueueStats, QueueError> {
        validate_queue_name(queue)?;
        self.counts(queue).await
    }

    async fn dead_letter_count(&self, queue: &str) -> Result<u64, QueueError> {
        validate_queue_name(queue)?;
        self.dead_count(queue).await
    }

    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        validate_queue_name(queue)?;
        self.dead_list(queue, limit).await
    }

    async fn requeue_dead_letters(&self, queue: &str, which: Requeue) -> Result<u64, QueueError> {
        validate_queue_name(queue)?;
        self.dead_requeue(queue, which).await
    }

    async fn purge_dead_letters(&self, queue: &str) -> Result<u64, QueueError> {
        validate_queue_name(queue)?;
        self.dead_purge(queue).await
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), QueueError> {
        validate_queue_name(queue)?;
        self.remove(queue).await
    }

    async fn pause(&self, queue: &str, flag: &PauseFlag) -> Result<(), QueueError> {
        validate_queue_name(queue)?;
        self.set_pause(queue, flag).await
    }

    async fn resume(&self, queue: &str) -> Result<bool, QueueError> {
        validate_queue_name(queue)?;
        self.clear_pause(queue).await
    }

    async fn paused(&self, queue: &str) -> Result<Option<PauseFlag>, QueueError> {
        validate_queue_name(queue)?;
        self.read_pause(queue).await
    }
}
