//! Schema migrations of the reference app, versioned with the app version.
//! A node of a newer version migrates under the cluster's distributed lock;
//! the schema version it records fences older binaries out, and the lock's
//! fencing token, stored with it, fences out a stale migrator.
//!
//! Tables: `clusterops_migrations` (one row per applied migration) and
//! `clusterops_schema` (one row: version, fencing token, who, when).

use super::version::AppVersion;
use tokio_postgres::Client;

/// One migration: applied by every binary whose app version is at least
/// `app_version`.
#[derive(Debug)]
pub struct Migration {
    /// Unique, ordered id.
    pub id: &'static str,
    /// The app version that introduced it.
    pub app_version: &'static str,
    /// SQL, run in one transaction with the bookkeeping.
    pub sql: &'static str,
}

/// The reference app's migrations, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        id: "0001_records",
        app_version: "1",
        sql: "CREATE TABLE IF NOT EXISTS records (
                id BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                value TEXT NOT NULL,
                revision INT NOT NULL DEFAULT 1,
                created_by TEXT NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
              );
              CREATE TABLE IF NOT EXISTS record_events (
                message_id TEXT PRIMARY KEY,
                record_id BIGINT NOT NULL,
                revision INT NOT NULL,
                handled_by TEXT NOT NULL,
                deliveries INT NOT NULL DEFAULT 1,
                handled_at TIMESTAMPTZ NOT NULL DEFAULT now()
              );
              CREATE TABLE IF NOT EXISTS counters (
                name TEXT PRIMARY KEY,
                value BIGINT NOT NULL,
                fencing_token BIGINT NOT NULL
              );",
    },
    Migration {
        id: "0002_record_tags",
        app_version: "2",
        sql: "ALTER TABLE records ADD COLUMN IF NOT EXISTS tags TEXT[] NOT NULL DEFAULT '{}';
              CREATE INDEX IF NOT EXISTS records_name_idx ON records (name);",
    },
];

/// Why migrating failed or is refused.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The database's schema is newer than this binary.
    #[error(
        "schema version {schema} is newer than this binary ({app}): upgrade this node to {schema} or later, or restore the pre-upgrade backup"
    )]
    SchemaNewer {
        /// Recorded schema version.
        schema: String,
        /// This binary's app version.
        app: String,
    },
    /// Another migrator with a newer fencing token already wrote the schema.
    #[error(
        "migration lock lost: fencing token {ours} is older than {recorded}; another node migrated meanwhile"
    )]
    Fenced {
        /// Our token.
        ours: u64,
        /// The token recorded in the schema table.
        recorded: i64,
    },
    /// The migration lock could not be taken.
    #[error("cannot take the schema-migration lock: {0}")]
    Lock(String),
    /// The recorded schema version does not parse.
    #[error("clusterops_schema.version holds {0:?}, which is not a version; fix the row by hand")]
    BadRecordedVersion(String),
    /// A database error.
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
}

/// What `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateOutcome {
    /// Migration ids applied by this call (empty when already done).
    pub applied: Vec<String>,
    /// The schema version now recorded.
    pub schema_version: String,
}

const BOOKKEEPING: &str = "
    CREATE TABLE IF NOT EXISTS clusterops_migrations (
        id TEXT PRIMARY KEY,
        app_version TEXT NOT NULL,
        applied_by TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE IF NOT EXISTS clusterops_schema (
        singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
        version TEXT NOT NULL,
        fencing_token BIGINT NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );";

/// The recorded schema version; `None` on a fresh database.
pub async fn schema_version(client: &Client) -> Result<Option<AppVersion>, MigrationError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('clusterops_schema') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt("SELECT version FROM clusterops_schema", &[])
        .await?;
    match row {
        None => Ok(None),
        Some(row) => {
            let text: String = row.get(0);
            AppVersion::parse(&text)
                .map(Some)
                .map_err(|_| MigrationError::BadRecordedVersion(text))
        }
    }
}

/// Whether `app` must migrate: the schema is absent or older. Errors when
/// the schema is newer than `app`.
pub async fn needs_migration(client: &Client, app: &AppVersion) -> Result<bool, MigrationError> {
    match schema_version(client).await? {
        None => Ok(true),
        Some(schema) if schema > *app => Err(MigrationError::SchemaNewer {
            schema: schema.to_string(),
            app: app.to_string(),
        }),
        Some(schema) => Ok(schema < *app),
    }
}

/// Apply every pending migration up to `app` and record the schema version.
/// Call it while holding the cluster's migration lock, with that lock's
/// fencing token: a write with an older token than the recorded one fails.
pub async fn migrate(
    client: &mut Client,
    app: &AppVersion,
    node_id: &str,
    fencing_token: u64,
) -> Result<MigrateOutcome, MigrationError> {
    client.batch_execute(BOOKKEEPING).await?;
    if !needs_migration(client, app).await? {
        let schema = schema_version(client)
            .await?
            .map(|v| v.to_string())
            .unwrap_or_default();
        return Ok(MigrateOutcome {
            applied: Vec::new(),
            schema_version: schema,
        });
    }
    let token = i64::try_from(fencing_token).unwrap_or(i64::MAX);
    let mut applied = Vec::new();
    for m in MIGRATIONS {
        let introduced =
            AppVersion::parse(m.app_version).map_err(MigrationError::BadRecordedVersion)?;
        if introduced > *app {
            continue;
        }
        let tx = client.transaction().await?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM clusterops_migrations WHERE id = $1",
                &[&m.id],
            )
            .await?
            .is_some();
        if !done {
            check_fence(&tx, token).await?;
            tx.batch_execute(m.sql).await?;
            tx.execute(
                "INSERT INTO clusterops_migrations (id, app_version, applied_by) VALUES ($1, $2, $3)",
                &[&m.id, &m.app_version, &node_id],
            )
            .await?;
            applied.push(m.id.to_string());
        }
        tx.commit().await?;
    }
    let tx = client.transaction().await?;
    check_fence(&tx, token).await?;
    tx.execute(
        "INSERT INTO clusterops_schema (singleton, version, fencing_token, updated_by)
         VALUES (TRUE, $1, $2, $3)
         ON CONFLICT (singleton) DO UPDATE
           SET version = EXCLUDED.version, fencing_token = EXCLUDED.fencing_token,
               updated_by = EXCLUDED.updated_by, updated_at = now()",
        &[&app.as_str(), &token, &node_id],
    )
    .await?;
    tx.commit().await?;
    Ok(MigrateOutcome {
        applied,
        schema_version: app.to_string(),
    })
}

/// Refuse when the schema row carries a newer fencing token than ours and
/// was written recently (by a migrator that took the lock after us). A newer
/// token written long ago cannot come from a concurrent run: it means the
/// lock's Redis lost its counter (a restart without persistence), and
/// refusing then would block every upgrade forever.
async fn check_fence(
    tx: &tokio_postgres::Transaction<'_>,
    token: i64,
) -> Result<(), MigrationError> {
    let row = tx
        .query_opt(
            "SELECT fencing_token FROM clusterops_schema
              WHERE updated_at > now() - interval '15 minutes' FOR UPDATE",
            &[],
        )
        .await?;
    if let Some(row) = row {
        let recorded: i64 = row.get(0);
        if recorded > token {
            return Err(MigrationError::Fenced {
                ours: token as u64,
                recorded,
            });
        }
    }
    Ok(())
}
