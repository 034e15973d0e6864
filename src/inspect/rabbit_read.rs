//! The RabbitMQ half of a snapshot, when the queue is on RabbitMQ: the
//! queue names from the coordination Redis' catalogue (AMQP cannot list
//! them), their counts through passive declares, the broker's version, and,
//! when the management API answers, the unacknowledged messages and the ack
//! rate ([`rabbit_mgmt`]); all of it concurrently.

use super::counted::Requests;
use super::read::{Inspector, unavailable};
use super::types::*;
use super::{convert, rabbit, rabbit_mgmt, servers};
use crate::adapters::queue;
use crate::config::{QueueAdapter, SecretUrl};
use crate::node::registry::QUEUE_CATALOGUE;
use std::sync::Arc;

impl Inspector {
    /// RabbitMQ queues (names from the coordination Redis' catalogue, AMQP
    /// cannot list them) and the RabbitMQ server; `(None, None)` when the
    /// queue is not on RabbitMQ.
    pub(super) async fn read_rabbit_queues(
        &self,
        requests: &Arc<Requests>,
    ) -> (
        Option<Source<(Vec<QueueView>, Vec<Unreadable>)>>,
        Option<ServerView>,
    ) {
        let c = &self.config;
        let QueueAdapter::Rabbitmq(url) = &c.queue else {
            return (None, None);
        };
        let server = self.rabbit_server(url);
        let management = async {
            let endpoint = rabbit_mgmt::Endpoint::locate(url, c.rabbitmq.management_url.as_ref())?;
            rabbit_mgmt::read_queues(&self.http, &endpoint, c.namespace.name()).await
        };
        let names = async {
            match c.coordination_redis() {
                Some((_, coord)) => match self.conn(coord, requests).await {
                    Ok(mut conn) => redis::cmd("SMEMBERS")
                        .arg(c.namespace.key(QUEUE_CATALOGUE))
                        .query_async::<Vec<String>>(&mut conn)
                        .await
                        .unwrap_or_default(),
                    Err(_) => Vec::new(),
                },
                None => Vec::new(),
            }
        };
        let (names, mut server, management) = tokio::join!(names, server, management);
        server.management = Some(match &management {
            Ok(_) => "ok".to_string(),
            Err(e) => e.clone(),
        });
        let mq = {
            let mut slot = self.rabbit.lock().await;
            match slot.as_ref() {
                Some(mq) => mq.clone(),
                None => {
                    let opts = queue::QueueOptions::default();
                    match queue::RabbitQueue::connect(url, c.namespace.clone(), "inspector", opts)
                        .await
                    {
                        Ok(q) => {
                            let mq: Arc<dyn queue::MessageQueue> = Arc::new(q);
                            *slot = Some(mq.clone());
                            mq
                        }
                        Err(e) => {
                            return (
                                Some(unavailable("QUEUE_ADAPTER_RABBITMQ_URL", url, e)),
                                Some(server),
                            );
                        }
                    }
                }
            }
        };
        let mut stats = Vec::new();
        for name in names {
            match mq.stats(&name).await {
                Ok(s) => stats.push(s),
                Err(e) => {
                    return (
                        Some(unavailable("QUEUE_ADAPTER_RABBITMQ_URL", url, e)),
                        Some(server),
                    );
                }
            }
        }
        let (mut views, bad) = convert::queue_views("rabbitmq", stats);
        if let Ok(figures) = &management {
            rabbit_mgmt::apply(&mut views, c.namespace.name(), figures);
        }
        (Some(Source::Ok((views, bad))), Some(server))
    }

    async fn rabbit_server(&self, url: &SecretUrl) -> ServerView {
        let used_by = vec!["QUEUE_ADAPTER_RABBITMQ_URL".to_string()];
        // The first broker of a URL naming several.
        let hp = url::Url::parse(url.first_host().expose())
            .map(|u| {
                format!(
                    "{}:{}",
                    u.host_str().unwrap_or("localhost"),
                    u.port().unwrap_or(5672)
                )
            })
            .unwrap_or_default();
        match rabbit::server_version(&hp).await {
            Ok(version) => {
                let mut v =
                    servers::unreachable_view("rabbitmq", url.to_string(), used_by, String::new());
                v.error = None;
                v.version = Some(version);
                v
            }
            Err(e) => servers::unreachable_view("rabbitmq", url.to_string(), used_by, e),
        }
    }
}
