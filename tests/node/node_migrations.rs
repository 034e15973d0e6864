//! Schema migrations against a real PostgreSQL database of the test's own.

use crate::common;

use clusterops::node::migrations::{self, MigrationError};
use clusterops::node::version::AppVersion;
use common::TestDb;

async fn client(db: &TestDb) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

fn v(s: &str) -> AppVersion {
    AppVersion::parse(s).unwrap()
}

#[tokio::test]
async fn a_newer_binary_migrates_once_and_fences_out_older_binaries() {
    let db = TestDb::create("migrate");
    let mut c = client(&db).await;

    assert!(migrations::needs_migration(&c, &v("1")).await.unwrap());
    let out = migrations::migrate(&mut c, &v("1"), "node-a", 1)
        .await
        .unwrap();
    assert_eq!(out.applied, vec!["0001_records"]);
    assert_eq!(out.schema_version, "1");
    assert!(!migrations::needs_migration(&c, &v("1")).await.unwrap());

    let out = migrations::migrate(&mut c, &v("2"), "node-b", 2)
        .await
        .unwrap();
    assert_eq!(out.applied, vec!["0002_record_tags"]);
    assert_eq!(db.query("SELECT version FROM clusterops_schema"), "2");
    assert_eq!(db.query("SELECT count(*) FROM information_schema.columns WHERE table_name='records' AND column_name='tags'"), "1");

    // A second v2 node finds nothing to do.
    let out = migrations::migrate(&mut c, &v("2"), "node-c", 3)
        .await
        .unwrap();
    assert!(out.applied.is_empty());

    // A v1 binary now refuses, naming both versions.
    let err = migrations::needs_migration(&c, &v("1")).await.unwrap_err();
    assert!(matches!(err, MigrationError::SchemaNewer { .. }));
    let text = err.to_string();
    assert!(
        text.contains("schema version 2") && text.contains("(1)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_stale_fencing_token_cannot_write_the_schema() {
    let db = TestDb::create("fence");
    let mut c = client(&db).await;
    migrations::migrate(&mut c, &v("1"), "node-a", 10)
        .await
        .unwrap();
    let err = migrations::migrate(&mut c, &v("2"), "node-b", 9)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MigrationError::Fenced {
                ours: 9,
                recorded: 10
            }
        ),
        "{err}"
    );
    assert_eq!(db.query("SELECT version FROM clusterops_schema"), "1");
    assert_eq!(db.query("SELECT count(*) FROM clusterops_migrations"), "1");
}

#[tokio::test]
async fn a_garbage_schema_version_is_a_clear_error() {
    let db = TestDb::create("garbage");
    let mut c = client(&db).await;
    migrations::migrate(&mut c, &v("1"), "node-a", 1)
        .await
        .unwrap();
    db.query("UPDATE clusterops_schema SET version = 'banana'");
    let err = migrations::needs_migration(&c, &v("1")).await.unwrap_err();
    assert!(
        err.to_string().contains("banana") && err.to_string().contains("clusterops_schema.version"),
        "{err}"
    );
}
