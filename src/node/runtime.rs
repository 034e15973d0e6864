//! Running one node: start-up in the order that keeps the cluster safe
//! (adapters, schema check and migration under the lock, worker ID,
//! subscriptions, registry), serving, and the clean shutdown on SIGTERM.

use super::app::{App, RECORD_EVENTS_QUEUE, RECORDS_CHANNEL};
use super::heartbeat;
use super::janitor::Janitor;
use super::migrations::{self, MigrationError};
use super::registry::Registry;
use super::shared::NodeShared;
use super::state::NodeState;
use super::store::Store;
use super::version::AppVersion;
use super::{maintenance, pg, storage, unique_id};
use crate::adapters::{cache, lock, pubsub, queue, redis_conn, snowflake, worker_id};
use crate::config::Config;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The reference app's own version: the newest migration it carries.
pub const APP_VERSION: &str = "2";
/// Name of the lock that serialises schema migrations.
pub const MIGRATION_LOCK: &str = "schema-migration";

pub use super::options::{Adapters, NodeError, NodeOptions, generated_node_id, validate_node_id};

fn adapter_err(adapter: &'static str) -> impl Fn(&dyn std::fmt::Display) -> NodeError {
    move |e| NodeError::Adapter {
        adapter,
        message: e.to_string(),
    }
}

/// Start a node and serve until `shutdown` resolves; then drain, release the
/// worker ID and locks, remove the registry record and return.
pub async fn run(
    opts: NodeOptions,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), NodeError> {
    let node_id = match &opts.node_id {
        Some(id) => {
            validate_node_id(id)?;
            id.clone()
        }
        None => generated_node_id(),
    };
    let version_text = opts
        .app_version
        .clone()
        .unwrap_or_else(|| APP_VERSION.to_string());
    let app_version = AppVersion::parse(&version_text)
        .map_err(|e| NodeError::Option(format!("--app-version: {e}")))?;
    let host = crate::clock::hostname().unwrap_or_default();
    // Refuse a node id a live node holds, before anything is written.
    let mut early_conn = None;
    if let Some((_, url)) = config.coordination_redis() {
        let mut conn = redis_conn::connect(url)
            .await
            .map_err(|e| adapter_err("registry")(&e))?;
        let registry = Registry::new(config.namespace.clone(), opts.timing.interval * 3);
        unique_id::ensure_unique(&mut conn, &registry, &node_id, &host).await?;
        early_conn = Some(conn);
    }
    let listener = super::listen::bind(opts.listen).await?;
    let shared_listener = match &opts.process {
        Some(slot) => {
            let addr: SocketAddr = slot.shared_addr.parse().map_err(|e| {
                NodeError::Option(format!("--shared-listen {:?}: {e}", slot.shared_addr))
            })?;
            Some(super::listen::bind_shared(addr)?)
        }
        None => None,
    };
    let local_addr = listener.local_addr().map_err(|source| NodeError::Listen {
        addr: opts.listen,
        source,
    })?;
    let mut shared = NodeShared::new(
        node_id.clone(),
        host,
        local_addr.to_string(),
        app_version.clone(),
        config.clone(),
    );
    shared.process = opts.process.clone();
    let node = Arc::new(shared);
    for msg in super::work::mode_warnings(&config.worker_mode) {
        tracing::warn!("{msg}");
        node.warnings.write().push(msg);
    }
    if !config.is_clustered() {
        let msg = format!(
            "single-node configuration ({} on memory/local): this node cannot be clustered",
            config.local_adapters().join(", ")
        );
        tracing::warn!("{msg}");
        node.warnings.write().push(msg);
    } else if !config.local_adapters().is_empty() {
        let msg = format!("still memory/local: {}", config.local_adapters().join(", "));
        tracing::warn!("{msg}");
        node.warnings.write().push(msg);
    }
    tracing::info!(node = %node_id, version = %app_version, addr = %local_addr, fingerprint = %config.fingerprint(), "node starting");

    // Adapters.
    let local_cache: Arc<dyn cache::Cache> = Arc::new(cache::MemoryCache::with_max(
        node_id.clone(),
        config.cache_memory_max,
    ));
    let (shared_cache, locks, signals, queue) = match &opts.adapters {
        Some(a) => (
            a.cache.clone(),
            a.locks.clone(),
            a.signals.clone(),
            a.queue.clone(),
        ),
        None => (
            cache::from_config(&config, &node_id)
                .await
                .map_err(|e| adapter_err("cache")(&e))?,
            lock::from_config(&config, &node_id)
                .await
                .map_err(|e| adapter_err("lock")(&e))?,
            pubsub::from_config(&config, &node_id)
                .await
                .map_err(|e| adapter_err("sync signals")(&e))?,
            queue::from_config(&config, &node_id)
                .await
                .map_err(|e| adapter_err("queue")(&e))?,
        ),
    };

    // Database and schema.
    let shared_store = opts.adapters.as_ref().and_then(|a| a.store.clone());
    let store = match (shared_store, &config.db_url) {
        (Some(shared), _) => {
            apply_schema(&node, shared.migrate_memory(&app_version));
            shared
        }
        (None, None) => {
            let msg = "DB_URL unset: records are kept in memory on this node only".to_string();
            tracing::warn!("{msg}");
            node.warnings.write().push(msg);
            Arc::new(Store::Memory(Default::default()))
        }
        (None, Some(url)) => {
            let mut client = pg::connect(url).await.map_err(NodeError::Database)?;
            let prepared = prepare_schema(&mut client, &app_version, &node, locks.as_ref()).await;
            apply_schema(&node, prepared);
            Arc::new(Store::Postgres(pg::PgConn::new(url.clone(), client)))
        }
    };
    let in_error = node.state.get().0 == NodeState::Error;

    // Worker ID and snowflake ids (not taken by a node that refuses to serve).
    let worker_ids = if in_error {
        None
    } else {
        Some(start_worker_ids(&config, &node_id, opts.lease_ttl).await?)
    };
    let lease = match &worker_ids {
        Some(w) => w.lease(),
        None => worker_id::WorkerLease::fixed(0),
    };
    if worker_ids.is_some() {
        *node.lease.write() = Some(lease.clone());
    }
    let ids = Arc::new(snowflake::Snowflake::new(lease.clone()));

    // Shared storage marker.
    let marker = match &config.storage_path {
        Some(root) => Some(
            storage::write_marker(root, &node_id, node.started_at_ms).map_err(|source| {
                NodeError::Storage {
                    path: root.display().to_string(),
                    source,
                }
            })?,
        ),
        None => None,
    };

    let app = Arc::new(App {
        node: node.clone(),
        local: local_cache,
        cache: shared_cache,
        signals: signals.clone(),
        queue: queue.clone(),
        locks: locks.clone(),
        ids,
        store,
    });

    // Subscriptions: only a node that may serve consumes work.
    let mut queue_sub = None;
    let mut signal_task = None;
    if !in_error {
        let mut sub = signals
            .subscribe(RECORDS_CHANNEL, pubsub::SubscribeOptions::default())
            .await
            .map_err(|e| adapter_err("sync signals")(&e))?;
        let app_for_signals = app.clone();
        signal_task = Some(tokio::spawn(async move {
            while let Some(signal) = sub.recv().await {
                app_for_signals.on_record_signal(&signal.payload).await;
            }
        }));
        queue_sub =
            super::work::start_consumers(&app, &queue, &config.worker_mode, opts.queue_concurrency)
                .await
                .map_err(|e| adapter_err("queue")(&e))?;
        if let Some(sub) = &queue_sub {
            node.queue_pauses
                .write()
                .push((RECORD_EVENTS_QUEUE.to_string(), sub.pause_state()));
        }
    }

    // Registry, maintenance flag and heartbeats.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut coordination = None;
    if let Some(mut conn) = early_conn {
        // Serve only once the maintenance flag has been read, so a node
        // started during maintenance never answers 200 first.
        if !in_error {
            node.state.set(NodeState::Running, "ready");
        }
        match maintenance::read(&mut conn, &config.namespace).await {
            Ok(read) => heartbeat::apply_maintenance(&node, read),
            Err(e) => tracing::warn!("cannot read the maintenance flag: {e}"),
        }
        // The queue catalogue lets the inspector find queues that AMQP
        // cannot list (RabbitMQ).
        let catalogue: redis::RedisResult<i64> = redis::cmd("SADD")
            .arg(config.namespace.key(super::registry::QUEUE_CATALOGUE))
            .arg(RECORD_EVENTS_QUEUE)
            .query_async(&mut conn)
            .await;
        if let Err(e) = catalogue {
            tracing::warn!("cannot record the queue catalogue: {e}");
        }
        let registry = Registry::new(config.namespace.clone(), opts.timing.interval * 3);
        // The first record is written before the node reports healthy, so
        // a reader that sees 200 also sees the node in the registry.
        heartbeat::measure_clock(&node, &mut conn).await;
        let (record, redis_now) = (node.registry_record(), node.redis_now_ms());
        if let Err(e) = registry.heartbeat_at(&mut conn, &record, redis_now).await {
            tracing::warn!("first heartbeat failed: {e}");
        }
        coordination = Some((conn.clone(), registry.clone()));
        // The janitor (a node that refuses to serve does not sweep;
        // prebuilt adapters are in-process).
        if !in_error && opts.adapters.is_none() {
            Janitor::start(&node, conn.clone(), opts.janitor, stop_rx.clone());
        }
        tokio::spawn(heartbeat::run(
            node.clone(),
            conn,
            registry,
            opts.timing,
            stop_rx.clone(),
        ));
    }
    if !in_error && coordination.is_none() {
        node.state.set(NodeState::Running, "ready");
    }
    if let Some(flag) = opts.adapters.as_ref().and_then(|a| a.maintenance.clone()) {
        heartbeat::follow_maintenance(&node, flag, stop_rx.clone());
    }

    // HTTP.
    let router = super::routes::router(node.clone(), app.clone());
    let (drain_tx, drain_rx) = watch::channel(false);
    let server_task = super::listen::serve(
        std::iter::once(listener).chain(shared_listener).collect(),
        router,
        drain_rx,
    );
    tracing::info!(node = %node_id, addr = %local_addr, state = %node.state.get().0, "node serving");

    shutdown.await;

    // Drain: 503 on health so the load balancer stops sending, finish
    // in-flight requests (bounded), then release what this node holds.
    tracing::info!(node = %node_id, "shutting down: draining");
    node.state.force_set(NodeState::Draining, "shutting down");
    let _ = drain_tx.send(true);
    match tokio::time::timeout(opts.drain_timeout, server_task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!("HTTP server: {e}"),
        Ok(Err(e)) => tracing::warn!("HTTP server task: {e}"),
        Err(_) => tracing::warn!(
            in_flight = node.in_flight.load(std::sync::atomic::Ordering::Relaxed),
            "drain timeout: requests still in flight are cut"
        ),
    }
    if let Some(sub) = queue_sub
        && let Err(e) = sub.shutdown().await
    {
        tracing::warn!("queue consumers did not stop cleanly: {e}");
    }
    signals.shutdown().await;
    if let Some(task) = signal_task {
        task.abort();
    }
    let _ = stop_tx.send(true);
    if let Some(w) = &worker_ids
        && let Err(e) = w.release().await
    {
        tracing::warn!("worker-ID release failed (the lease expires by itself): {e}");
    }
    if let Some((mut conn, registry)) = coordination
        && let Err(e) = registry.remove(&mut conn, &node_id).await
    {
        tracing::warn!("registry record not removed (it expires by itself): {e}");
    }
    if let Some(marker) = &marker
        && marker.remove() == storage::MarkerRemoval::NotOurs
    {
        tracing::warn!(path = %marker.path.display(), "storage marker left in place: another process rewrote it");
    }
    tracing::info!(node = %node_id, "node stopped");
    Ok(())
}

/// The worker-ID allocator: Redis leases with the configured TTL when
/// `REDIS_URL` is set, else a random worker ID (single node).
async fn start_worker_ids(
    config: &Config,
    node_id: &str,
    ttl: Duration,
) -> Result<Arc<dyn worker_id::WorkerIdAllocator>, NodeError> {
    let err = adapter_err("worker ID");
    match &config.worker_id_redis {
        None => worker_id::from_config(config, node_id)
            .await
            .map_err(|e| err(&e)),
        Some(url) => {
            let conn = redis_conn::connect(url).await.map_err(|e| err(&e))?;
            let ids = worker_id::RedisWorkerIds::builder(conn, config.namespace.clone(), node_id)
                .ttl(ttl)
                .start()
                .await
                .map_err(|e| err(&e))?;
            Ok(Arc::new(ids))
        }
    }
}

/// Record the schema version a node found (or migrated to); a schema newer
/// than the node, or a failed migration, puts it in the error state.
fn apply_schema(node: &NodeShared, prepared: Result<Option<String>, MigrationError>) {
    match prepared {
        Ok(version) => *node.schema_version.write() = version,
        Err(MigrationError::SchemaNewer { schema, app }) => {
            *node.schema_version.write() = Some(schema.clone());
            let err = MigrationError::SchemaNewer { schema, app };
            tracing::error!("refusing to serve: {err}");
            node.state.force_set(NodeState::Error, err.to_string());
        }
        Err(e) => {
            tracing::error!("schema migration failed: {e}");
            node.state
                .force_set(NodeState::Error, format!("schema migration failed: {e}"));
        }
    }
}

/// Check the schema; migrate under the cluster lock when this binary is
/// newer. Returns the schema version now recorded.
async fn prepare_schema(
    client: &mut tokio_postgres::Client,
    app_version: &AppVersion,
    node: &NodeShared,
    locks: &dyn lock::LockBackend,
) -> Result<Option<String>, MigrationError> {
    if migrations::needs_migration(client, app_version).await? {
        node.state
            .set(NodeState::Starting, "waiting for the schema-migration lock");
        let guard = locks
            .acquire(
                MIGRATION_LOCK,
                Duration::from_secs(60),
                Duration::from_secs(600),
            )
            .await
            .map_err(|e| MigrationError::Lock(e.to_string()))?;
        node.state.set(
            NodeState::Starting,
            format!("migrating the schema to {app_version}"),
        );
        let outcome =
            migrations::migrate(client, app_version, &node.node_id, guard.fencing_token()).await;
        if let Err(e) = guard.release().await {
            tracing::warn!("migration lock release failed: {e}");
        }
        let outcome = outcome?;
        if outcome.applied.is_empty() {
            tracing::info!(schema = %outcome.schema_version, "schema already migrated by another node");
        } else {
            tracing::info!(applied = ?outcome.applied, schema = %outcome.schema_version, "schema migrated");
        }
    }
    Ok(migrations::schema_version(client)
        .await?
        .map(|v| v.to_string()))
}
