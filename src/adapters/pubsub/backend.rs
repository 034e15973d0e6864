//! The one [`SyncSignals`] implementation both backends share: the channel
//! name checked here, once; what differs per backend is its [`Backend`].

use super::{Payload, PubsubError, SubscribeOptions, Subscription, SyncSignals, validate_channel};
use std::future::Future;

/// What a sync-signal backend implements; every channel it gets is checked.
pub(crate) trait Backend: Send + Sync {
    /// [`SyncSignals::node_id`].
    fn node(&self) -> &str;

    /// [`SyncSignals::publish`].
    fn send(
        &self,
        channel: &str,
        payload: Payload,
    ) -> impl Future<Output = Result<String, PubsubError>> + Send;

    /// [`SyncSignals::subscribe`].
    fn attach(
        &self,
        channel: &str,
        options: SubscribeOptions,
    ) -> impl Future<Output = Result<Subscription, PubsubError>> + Send;

    /// [`SyncSignals::shutdown`].
    fn close(&self) -> impl Future<Output = ()> + Send;
}

#[async_trait::async_trait]
impl<B: Backend + 'static> SyncSignals for B {
    fn node_id(&self) -> &str {
        self.node()
    }

    async fn publish(&self, channel: &str, payload: Payload) -> Result<String, PubsubError> {
        validate_channel(channel)?;
        self.send(channel, payload).await
    }

    async fn subscribe(
        &self,
        channel: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription, PubsubError> {
        validate_channel(channel)?;
        self.attach(channel, options).await
    }

    async fn shutdown(&self) {
        self.close().await;
    }
}
