//! The reference app's data: records, record events (what the queue
//! handler writes) and counters (what the lock protects), in PostgreSQL, or
//! in memory when no `DB_URL` is set (single node, demo).

use super::pg::PgConn;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Snowflake id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
    /// Incremented on every update.
    pub revision: i32,
    /// Node that created it.
    pub created_by: String,
}

/// A store error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// The connection could not be opened again.
    #[error("{0}")]
    Connect(#[from] super::pg::PgConnectError),
    /// A counter write carried an older fencing token than the last one.
    #[error("stale fencing token {token} for counter {name} (last seen {last})")]
    StaleToken {
        /// Counter.
        name: String,
        /// Offered token.
        token: i64,
        /// Last accepted token.
        last: i64,
    },
}

/// Where the app keeps its data.
pub enum Store {
    /// PostgreSQL (`DB_URL`), reconnected when its connection closes.
    Postgres(PgConn),
    /// In memory: one node only.
    Memory(Mutex<MemoryData>),
}

/// The memory store's tables, and the schema version when in-process
/// nodes share the store (the demo): written whole to a file and read back
/// by the demo's backup and restore.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryData {
    records: HashMap<i64, Record>,
    events: HashMap<String, i32>,
    counters: HashMap<String, (i64, i64)>,
    #[serde(default)]
    schema_version: Option<String>,
}

impl MemoryData {
    /// The schema version the nodes sharing this store migrated it to.
    pub fn schema_version(&self) -> Option<&str> {
        self.schema_version.as_deref()
    }

    /// How many records it holds.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Remove every record (what the demo's broken release does to it).
    pub fn drop_records(&mut self) -> usize {
        let n = self.records.len();
        self.records.clear();
        n
    }

    /// `3 records, 0 record events, 1 counter, schema 1.4.0`.
    pub fn summary(&self) -> String {
        format!(
            "{} records, {} record events, {} counters, schema {}",
            self.records.len(),
            self.events.len(),
            self.counters.len(),
            self.schema_version.as_deref().unwrap_or("none")
        )
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Postgres(_) => f.write_str("Store::Postgres"),
            Store::Memory(_) => f.write_str("Store::Memory"),
        }
    }
}

impl Store {
    /// A memory store shared by in-process nodes, with its schema version
    /// (`None`: none yet, the first node records its own).
    pub fn shared_memory() -> Self {
        Store::Memory(Mutex::new(MemoryData::default()))
    }

    /// A copy of the memory store's tables (`None` for PostgreSQL).
    pub fn memory_data(&self) -> Option<MemoryData> {
        match self {
            Store::Memory(m) => Some(m.lock().clone()),
            Store::Postgres(_) => None,
        }
    }

    /// Change the memory store's tables in place (`None` for PostgreSQL).
    pub fn with_memory<T>(&self, f: impl FnOnce(&mut MemoryData) -> T) -> Option<T> {
        match self {
            Store::Memory(m) => Some(f(&mut m.lock())),
            Store::Postgres(_) => None,
        }
    }

    /// A shared memory store's schema check at a node's start, as the
    /// database's: a store recorded by a newer version is refused
    /// ([`MigrationError::SchemaNewer`]); an older one (or none) is
    /// migrated to `app`. Returns the schema version now recorded
    /// (`None` for PostgreSQL, whose migrations are in `migrations`).
    ///
    /// [`MigrationError::SchemaNewer`]: super::migrations::MigrationError::SchemaNewer
    pub fn migrate_memory(
        &self,
        app: &super::version::AppVersion,
    ) -> Result<Option<String>, super::migrations::MigrationError> {
        let Store::Memory(m) = self else {
            return Ok(None);
        };
        let mut data = m.lock();
        let recorded = data
            .schema_version
            .as_deref()
            .and_then(|s| super::version::AppVersion::parse(s).ok());
        match recorded {
            Some(schema) if schema > *app => Err(super::migrations::MigrationError::SchemaNewer {
                schema: schema.to_string(),
                app: app.to_string(),
            }),
            Some(schema) if schema == *app => Ok(Some(schema.to_string())),
            _ => {
                data.schema_version = Some(app.to_string());
                Ok(Some(app.to_string()))
            }
        }
    }

    /// Insert a new record.
    pub async fn insert(&self, r: &Record) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pg) => {
                let c = pg.client().await?;
                c.execute(
                    "INSERT INTO records (id, name, value, revision, created_by) VALUES ($1, $2, $3, $4, $5)",
                    &[&r.id, &r.name, &r.value, &r.revision, &r.created_by],
                )
                .await?;
            }
            Store::Memory(m) => {
                m.lock().records.insert(r.id, r.clone());
            }
        }
        Ok(())
    }

    /// Read a record.
    pub async fn get(&self, id: i64) -> Result<Option<Record>, StoreError> {
        match self {
            Store::Postgres(pg) => {
                let c = pg.client().await?;
                let row = c
                    .query_opt(
                        "SELECT id, name, value, revision, created_by FROM records WHERE id = $1",
                        &[&id],
                    )
                    .await?;
                Ok(row.map(|row| Record {
                    id: row.get(0),
                    name: row.get(1),
                    value: row.get(2),
                    revision: row.get(3),
                    created_by: row.get(4),
                }))
            }
            Store::Memory(m) => Ok(m.lock().records.get(&id).cloned()),
        }
    }

    /// Set a record's value; returns the new revision, `None` if absent.
    pub async fn update(&self, id: i64, value: &str) -> Result<Option<i32>, StoreError> {
        match self {
            Store::Postgres(pg) => {
                let c = pg.client().await?;
                let row = c
                    .query_opt(
                        "UPDATE records SET value = $2, revision = revision + 1, updated_at = now()
                         WHERE id = $1 RETURNING revision",
                        &[&id, &value],
                    )
                    .await?;
                Ok(row.map(|r| r.get(0)))
            }
            Store::Memory(m) => Ok(m.lock().records.get_mut(&id).map(|r| {
                r.value = value.to_string();
                r.revision += 1;
                r.revision
            })),
        }
    }

    /// Record that a queue message was handled; returns how many times it
    /// has been delivered (1 unless redelivered).
    pub async fn record_event(
        &self,
        message_id: &str,
        record_id: i64,
        revision: i32,
        node: &str,
    ) -> Result<i32, StoreError> {
        match self {
            Store::Postgres(pg) => {
                let c = pg.client().await?;
                let row = c
                    .query_one(
                        "INSERT INTO record_events (message_id, record_id, revision, handled_by) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (message_id) DO UPDATE SET deliveries = record_events.deliveries + 1
                         RETURNING deliveries",
                        &[&message_id, &record_id, &revision, &node],
                    )
                    .await?;
                Ok(row.get(0))
            }
            Store::Memory(m) => {
                let mut data = m.lock();
                let n = data.events.entry(message_id.to_string()).or_insert(0);
                *n += 1;
                Ok(*n)
            }
        }
    }

    /// Write a counter's new value, guarded by the lock's fencing token: a
    /// write with a token older than the last accepted one is refused.
    pub async fn write_counter(
        &self,
        name: &str,
        value: i64,
        token: i64,
    ) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pg) => {
                let c = pg.client().await?;
                let row = c
                    .query_opt(
                        "INSERT INTO counters (name, value, fencing_token) VALUES ($1, $2, $3)
                         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, fencing_token = EXCLUDED.fencing_token
                         WHERE counters.fencing_token <= EXCLUDED.fencing_token
                         RETURNING value",
                        &[&name, &value, &token],
                    )
                    .await?;
                if row.is_none() {
                    let last: i64 = c
                        .query_one(
                            "SELECT fencing_token FROM counters WHERE name = $1",
                            &[&name],
                        )
                        .await?
                        .get(0);
                    return Err(StoreError::StaleToken {
                        name: name.to_string(),
                        token,
                        last,
                    });
                }
                Ok(())
            }
            Store::Memory(m) => {
                let mut data = m.lock();
                let entry = data.counters.entry(name.to_string()).or_insert((0, 0));
                if entry.1 > token {
                    return Err(StoreError::StaleToken {
                        name: name.to_string(),
                        token,
                        last: entry.1,
                    });
                }
                *entry = (value, token);
                Ok(())
            }
        }
    }

    /// A counter's value (0 when absent).
    pub async fn read_counter(&self, name: &str) -> Result<i64, StoreError> {
        match self {
            Store::Postgres(pg) => Ok(pg
                .client()
                .await?
                .query_opt("SELECT value FROM counters WHERE name = $1", &[&name])
                .await?
                .map(|r| r.get(0))
                .unwrap_or(0)),
            Store::Memory(m) => Ok(m.lock().counters.get(name).map(|c| c.0).unwrap_or(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::migrations::MigrationError;
    use crate::node::version::AppVersion;

    #[test]
    fn a_shared_memory_store_is_migrated_by_newer_nodes_and_refused_by_older_ones() {
        let v = |s| AppVersion::parse(s).unwrap();
        let store = Store::shared_memory();
        assert_eq!(
            store.migrate_memory(&v("1.4.0")).unwrap().as_deref(),
            Some("1.4.0")
        );
        assert_eq!(
            store.migrate_memory(&v("1.4")).unwrap().as_deref(),
            Some("1.4.0")
        );
        assert_eq!(
            store.migrate_memory(&v("1.5.0-broken")).unwrap().as_deref(),
            Some("1.5.0-broken")
        );
        match store.migrate_memory(&v("1.4.0")) {
            Err(MigrationError::SchemaNewer { schema, app }) => {
                assert_eq!((schema.as_str(), app.as_str()), ("1.5.0-broken", "1.4.0"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            store.migrate_memory(&v("1.5.0")).unwrap().as_deref(),
            Some("1.5.0")
        );
    }

    #[tokio::test]
    async fn the_memory_tables_go_to_json_and_back_whole() {
        let store = Store::shared_memory();
        store
            .insert(&Record {
                id: 1001,
                name: "invoice-1001".into(),
                value: "40.00".into(),
                revision: 1,
                created_by: "demo".into(),
            })
            .await
            .unwrap();
        store.write_counter("c", 1, 7).await.unwrap();
        let data = store.memory_data().unwrap();
        let json = serde_json::to_vec(&data).unwrap();
        let back: MemoryData = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, data);
        assert_eq!(back.record_count(), 1);
        let copy = Store::shared_memory();
        copy.with_memory(|d| *d = back).unwrap();
        assert_eq!(copy.get(1001).await.unwrap().unwrap().name, "invoice-1001");
        assert_eq!(copy.read_counter("c").await.unwrap(), 1);
    }
}
