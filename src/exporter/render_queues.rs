//! The moving parts of a scrape's metrics: sync-signal streams and their
//! readers' lag, queue depths and dead letters, and the Redis and RabbitMQ
//! servers (reachable, version, warnings). Pure, like [`super::render`].

use super::text::{Exposition, Kind};
use crate::inspect::instances;
use crate::inspect::server_warnings::server_warnings;
use crate::inspect::{Snapshot, Source};

pub(super) fn streams(e: &mut Exposition, snap: &Snapshot) {
    let Source::Ok(streams) = &snap.streams else {
        return;
    };
    let mut f = e.family(
        "clusterops_stream_length",
        Kind::Gauge,
        "Entries in each sync-signal stream.",
    );
    for s in streams {
        f.count(&[("channel", &s.channel)], s.length);
    }
    let mut f = e.family(
        "clusterops_stream_reader_lag",
        Kind::Gauge,
        "Entries published on a channel after the last one each reader handled.",
    );
    for s in streams {
        for r in &s.readers {
            f.count(&[("channel", &s.channel), ("node", &r.node_id)], r.lag);
        }
    }
    let mut f = e.family(
        "clusterops_stream_reader_last_handled_age_seconds",
        Kind::Gauge,
        "Time since each reader last recorded handling an entry; absent when never recorded.",
    );
    for s in streams {
        for r in &s.readers {
            if let Some(age) = r.last_handled_age_ms {
                f.millis(&[("channel", &s.channel), ("node", &r.node_id)], age);
            }
        }
    }
    let mut f = e.family(
        "clusterops_stream_reader_oldest_unhandled_age_seconds",
        Kind::Gauge,
        "Age of the oldest entry a lagging reader has not handled (its lag as time); absent when caught up.",
    );
    for s in streams {
        for r in &s.readers {
            if let Some(age) = r.oldest_unhandled_age_ms {
                f.millis(&[("channel", &s.channel), ("node", &r.node_id)], age);
            }
        }
    }
}

pub(super) fn queues(e: &mut Exposition, snap: &Snapshot) {
    let Source::Ok(queues) = &snap.queues else {
        return;
    };
    type Get = fn(&crate::inspect::QueueView) -> u64;
    let counts: [(&str, &str, Get); 4] = [
        (
            "clusterops_queue_waiting",
            "Messages waiting in each queue (not yet delivered).",
            |q| q.waiting,
        ),
        (
            "clusterops_queue_in_flight",
            "Messages delivered and not yet acknowledged.",
            |q| q.in_flight,
        ),
        (
            "clusterops_queue_dead_letters",
            "Messages in each queue's dead letters.",
            |q| q.dead_letters,
        ),
        (
            "clusterops_queue_consumers",
            "Consumers attached to each queue.",
            |q| q.consumers,
        ),
    ];
    for (name, help, get) in counts {
        let mut f = e.family(name, Kind::Gauge, help);
        for q in queues {
            f.count(&[("queue", &q.name), ("backend", &q.backend)], get(q));
        }
    }
    let mut f = e.family(
        "clusterops_queue_oldest_in_flight_age_seconds",
        Kind::Gauge,
        "Age of the oldest delivered, unacknowledged message; absent when none or unknown.",
    );
    for q in queues {
        if let Some(age) = q.oldest_in_flight_age_ms {
            f.millis(&[("queue", &q.name), ("backend", &q.backend)], age);
        }
    }
    let mut f = e.family(
        "clusterops_queue_oldest_unhandled_age_seconds",
        Kind::Gauge,
        "Age of the oldest message not yet acknowledged, waiting or in flight (the backlog as time); absent when empty or unknown.",
    );
    for q in queues {
        if let Some(age) = q.oldest_age_ms {
            f.millis(&[("queue", &q.name), ("backend", &q.backend)], age);
        }
    }
    let mut f = e.family(
        "clusterops_queue_paused",
        Kind::Gauge,
        "1 while the queue's consumers are paused on every node (clusterops queue pause), else 0.",
    );
    for q in queues {
        f.count(
            &[("queue", &q.name), ("backend", &q.backend)],
            u64::from(q.paused.is_some()),
        );
    }
    let mut f = e.family(
        "clusterops_queue_acks_per_second",
        Kind::Gauge,
        "Messages acknowledged per second, when known (RabbitMQ management API).",
    );
    for q in queues {
        if let Some(rate) = q.ack_rate.filter(|r| r.is_finite()) {
            f.sample(&[("queue", &q.name), ("backend", &q.backend)], rate);
        }
    }
}

pub(super) fn servers(e: &mut Exposition, snap: &Snapshot) {
    // The URL's password is masked in the snapshot already.
    let mut f = e.family(
        "clusterops_server_up",
        Kind::Gauge,
        "1 when the Redis or RabbitMQ server answered, else 0 (server: its URL, password masked).",
    );
    for s in &snap.servers {
        f.flag(&[("kind", &s.kind), ("server", &s.url)], s.error.is_none());
    }
    let mut f = e.family(
        "clusterops_server_info",
        Kind::Gauge,
        "Each server's version and Redis role; always 1.",
    );
    for s in &snap.servers {
        f.sample(
            &[
                ("kind", &s.kind),
                ("server", &s.url),
                ("version", s.version.as_deref().unwrap_or("")),
                ("role", s.role.as_deref().unwrap_or("")),
            ],
            1.0,
        );
    }
    // Per server process, not per URL: one Redis used through five
    // databases has its warnings once.
    let mut f = e.family(
        "clusterops_server_warnings",
        Kind::Gauge,
        "What to fix on each server instance (eviction policy, no bloom filters, Sentinel or Redis Cluster not whole), as the console's Servers view lists it.",
    );
    for i in instances::group(&snap.servers) {
        f.count(
            &[("kind", i.kind), ("instance", &i.address)],
            server_warnings(i.facts()).len() as u64,
        );
    }
    type Get = fn(&crate::inspect::ServerView) -> Option<u64>;
    let gauges: [(&str, &str, Get); 3] = [
        (
            "clusterops_server_used_memory_bytes",
            "Redis used_memory.",
            |s| s.used_memory,
        ),
        (
            "clusterops_server_maxmemory_bytes",
            "Redis maxmemory (0: no limit).",
            |s| s.maxmemory,
        ),
        (
            "clusterops_server_connected_clients",
            "Clients connected to each server.",
            |s| s.connected_clients,
        ),
    ];
    for (name, help, get) in gauges {
        let mut f = e.family(name, Kind::Gauge, help);
        for s in &snap.servers {
            if let Some(v) = get(s) {
                f.count(&[("kind", &s.kind), ("server", &s.url)], v);
            }
        }
    }
}
