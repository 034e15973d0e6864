//! The shared adapters every node links: one folder per adapter, each with
//! its trait and its memory/local and Redis (or RabbitMQ) backends.

pub mod queue;
pub mod redis_conn;
