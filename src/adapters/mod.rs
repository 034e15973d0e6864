//! The shared adapters every node links: one folder per adapter, each with
//! its trait and its memory/local and Redis (or RabbitMQ) backends.

pub mod cache;
pub mod hash_tag;
pub mod lock;
pub mod pubsub;
pub mod queue;
pub mod redis_conn;
pub mod snowflake;
pub mod worker_id;
