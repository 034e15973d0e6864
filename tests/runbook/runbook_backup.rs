//! Database backups for the runbook: a real `pg_dump -Fc` verified with
//! `pg_restore --list` and restored with `pg_restore --clean --if-exists`,
//! a real mysqldump of MariaDB restored with `mysql`, and a changed dump
//! refused before restoring.

use crate::runbook_support;

use clusterops::runbook::backup::{self, BackupError, Database, DbKind};
use parking_lot::Mutex;
use runbook_support::TestDb;
use std::process::Command;

#[test]
fn database_urls_are_parsed_and_never_shown_with_their_password() {
    let db = Database::from_url("postgres://app:s3cr%40t@db1:6543/shop").unwrap();
    assert_eq!(
        (
            db.kind,
            db.host.as_str(),
            db.port,
            db.user.as_str(),
            db.name.as_str()
        ),
        (DbKind::Postgres, "db1", 6543, "app", "shop")
    );
    assert!(!format!("{db:?} {}", db.describe()).contains("s3cr"));
    assert_eq!(
        Database::from_url("postgres://h/db?sslmode=require")
            .unwrap()
            .sslmode
            .as_deref(),
        Some("require")
    );
    let my = Database::from_url("mariadb://root@127.0.0.1/test").unwrap();
    assert_eq!((my.kind, my.port), (DbKind::Mysql, 3306));
    let err = Database::from_url("postgres://u:topsecret@h:5432")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no database name") && !err.contains("topsecret"),
        "{err}"
    );
    assert!(Database::from_url("redis://h/0").is_err());
}

#[tokio::test]
async fn a_postgres_backup_is_verified_checksummed_and_restores_the_data() {
    let db = TestDb::create("bk");
    db.exec("CREATE TABLE items (id int primary key, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g");
    let dir = tempfile::tempdir().unwrap();
    let target = Database::from_url(&db.url()).unwrap();
    let seen = Mutex::new(Vec::new());
    let progress = |n: u64| seen.lock().push(n);
    let rec = backup::backup(&target, dir.path(), "shop-r1", &progress)
        .await
        .unwrap();

    assert_eq!(rec.file, dir.path().join("shop-r1.dump"));
    assert!(!dir.path().join("shop-r1.dump.part").exists());
    let meta = std::fs::metadata(&rec.file).unwrap();
    assert_eq!(meta.len(), rec.bytes);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "the dump is readable by its owner only"
    );
    assert_eq!(
        *seen.lock().last().unwrap(),
        rec.bytes,
        "progress ends with the total"
    );
    let sha = Command::new("sha256sum").arg(&rec.file).output().unwrap();
    assert!(String::from_utf8_lossy(&sha.stdout).starts_with(&rec.sha256));
    assert!(
        rec.verified.starts_with("pg_restore --list: ") && !rec.verified.ends_with(" 0 entries"),
        "{}",
        rec.verified
    );

    // The upgrade changes data and schema; the restore brings back the backup.
    db.exec("DELETE FROM items WHERE id > 10; ALTER TABLE items ADD COLUMN extra int; CREATE TABLE added (x int)");
    let lines = Mutex::new(Vec::<String>::new());
    let out = |l: &str| lines.lock().push(l.to_string());
    backup::restore(&target, &rec, &out).await.unwrap();
    assert_eq!(db.exec("SELECT count(*), sum(id) FROM items"), "500|125250");
    assert_eq!(
        db.exec("SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'extra'"),
        "0"
    );
}

#[tokio::test]
async fn a_changed_or_cut_dump_is_refused_before_restoring() {
    let db = TestDb::create("bkcut");
    db.exec("CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
    let dir = tempfile::tempdir().unwrap();
    let target = Database::from_url(&db.url()).unwrap();
    let rec = backup::backup(&target, dir.path(), "cut", &|_| {})
        .await
        .unwrap();
    backup::check_record(&rec).await.unwrap();
    let bytes = std::fs::read(&rec.file).unwrap();
    std::fs::write(&rec.file, &bytes[..bytes.len() / 2]).unwrap();
    db.exec("INSERT INTO t VALUES (2)");
    let err = backup::restore(&target, &rec, &|_| {}).await.unwrap_err();
    assert!(matches!(err, BackupError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("make a new backup"), "{err}");
    assert_eq!(
        db.exec("SELECT count(*) FROM t"),
        "2",
        "nothing was restored"
    );
}

#[tokio::test]
async fn a_backup_of_a_missing_database_fails_with_pg_dumps_message() {
    let target =
        Database::from_url("postgres://postgres@127.0.0.1:5432/rb_does_not_exist").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = backup::backup(&target, dir.path(), "x", &|_| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("pg_dump failed") && err.to_string().contains("rb_does_not_exist"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no partial file left"
    );
}

fn mysql(sql: &str) -> String {
    let out = Command::new("mysql")
        .args([
            "--protocol=TCP",
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            "root",
            "-N",
            "-B",
            "test",
            "-e",
            sql,
        ])
        .output()
        .expect("mysql client");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn a_mariadb_dump_restores_the_table() {
    let table = format!("rb_{:08x}", rand::random::<u32>());
    mysql(&format!(
        "CREATE TABLE {table} (id int primary key, name varchar(20)); INSERT INTO {table} VALUES (1,'a'),(2,'b'),(3,'c')"
    ));
    let dir = tempfile::tempdir().unwrap();
    let target = Database::from_url("mysql://root@127.0.0.1:3306/test").unwrap();
    let result = async {
        let rec = backup::backup(&target, dir.path(), "maria", &|_| {}).await?;
        assert!(
            rec.file.ends_with("maria.sql") && rec.verified.contains("Dump completed"),
            "{rec:?}"
        );
        mysql(&format!(
            "DELETE FROM {table} WHERE id > 1; UPDATE {table} SET name = 'changed'"
        ));
        backup::restore(&target, &rec, &|_| {}).await?;
        Ok::<_, BackupError>(mysql(&format!(
            "SELECT GROUP_CONCAT(name ORDER BY id) FROM {table}"
        )))
    }
    .await;
    mysql(&format!("DROP TABLE IF EXISTS {table}"));
    assert_eq!(result.unwrap(), "a,b,c");
}
