//! `DB_URL`'s `sslmode`, `sslrootcert`, `sslcert` and `sslkey` as libpq
//! reads them, against real servers: the shared PostgreSQL (Debian's
//! self-signed snakeoil certificate) and a private one started here with a
//! certificate of the test's own CA, which accepts TLS logins only.

use crate::common;
use crate::tls_support;

use clusterops::config::SecretUrl;
use clusterops::node::pg::{PgConnectError, connect};
use common::TestDb;
use tls_support::TestCa;
use tls_support::postgres::PrivatePostgres;

fn secret(url: &str) -> SecretUrl {
    SecretUrl::parse(url, &["postgres", "postgresql"]).expect("test URL")
}

/// Whether the connection of `url` is encrypted (`pg_stat_ssl`).
async fn ssl_of(url: &str) -> Result<bool, PgConnectError> {
    let client = connect(&secret(url)).await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    Ok(row.get(0))
}

/// The shared server, with a password in the URL that must never show
/// (trust authentication ignores it).
fn shared(db: &TestDb, query: &str) -> String {
    format!(
        "postgres://postgres:Pw-n0t-shown@127.0.0.1:5432/{}{query}",
        db.name
    )
}

#[tokio::test]
async fn disable_prefer_and_require_choose_plaintext_or_tls_on_the_shared_server() {
    let db = TestDb::create("sslmodes");
    assert!(ssl_of(&shared(&db, "?sslmode=require")).await.unwrap());
    assert!(!ssl_of(&shared(&db, "?sslmode=disable")).await.unwrap());
    assert!(ssl_of(&shared(&db, "?sslmode=prefer")).await.unwrap());
    // libpq's default is prefer; other query parameters still reach the server.
    assert!(ssl_of(&shared(&db, "")).await.unwrap());
    assert!(
        ssl_of(&shared(&db, "?application_name=x&sslmode=allow"))
            .await
            .map(|ssl| !ssl)
            .unwrap(),
        "allow starts in plaintext"
    );
}

#[tokio::test]
async fn verify_full_without_a_root_certificate_is_one_clear_error() {
    let db = TestDb::create("sslnoroot");
    let default = clusterops::config::pg_tls::default_root_cert().expect("HOME is set");
    assert!(
        !default.exists(),
        "{} exists: this test needs it absent",
        default.display()
    );
    for mode in ["verify-full", "verify-ca"] {
        let err = ssl_of(&shared(&db, &format!("?sslmode={mode}")))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("DB_URL postgres://postgres:***@127.0.0.1:5432/")
                && err.contains(&format!("sslmode={mode} verifies the server's certificate, but there is no root certificate"))
                && err.contains("add sslrootcert=/path/to/ca.pem")
                && !err.contains("Pw-n0t-shown"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_not_trusted() {
    let db = TestDb::create("sslother");
    let other = TestCa::new("clusterops other CA");
    let ca = other.cert.display().to_string();
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = shared(&db, &format!("?sslmode={mode}&sslrootcert={ca}"));
        let err = ssl_of(&url).await.unwrap_err();
        assert!(matches!(err, PgConnectError::Untrusted { .. }), "{err}");
        let err = err.to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("DB_URL postgres://postgres:***@127.0.0.1:5432/")
                && err.contains("certificate not trusted")
                && err.contains(&format!("the CA in sslrootcert={ca} did not sign it"))
                && err.contains("sslmode=require to encrypt without verifying")
                && !err.contains("Pw-n0t-shown"),
            "{mode}: {err}"
        );
    }
}

#[tokio::test]
async fn verify_full_and_verify_ca_against_a_server_signed_by_the_tests_ca() {
    let ca = TestCa::new("clusterops test CA");
    let server = PrivatePostgres::start(&ca, &ca.server());
    let root = format!("sslrootcert={}", ca.cert.display());

    // The names in the certificate: localhost and 127.0.0.1.
    let full = |host: &str| server.url(host, "postgres", &format!("?sslmode=verify-full&{root}"));
    assert!(ssl_of(&full("localhost")).await.unwrap());
    assert!(ssl_of(&full("127.0.0.1")).await.unwrap());

    // A name the certificate does not have (reached at 127.0.0.1 through
    // libpq's hostaddr): verify-full refuses, verify-ca accepts the chain.
    let other = |mode: &str| {
        server.url(
            "db.example.test",
            "postgres",
            &format!("?hostaddr=127.0.0.1&sslmode={mode}&{root}"),
        )
    };
    let err = ssl_of(&other("verify-full")).await.unwrap_err().to_string();
    assert!(
        err.contains("certificate not trusted")
            && err.contains("NotValidForName")
            && err.contains("sslmode=verify-ca"),
        "{err}"
    );
    assert!(ssl_of(&other("verify-ca")).await.unwrap());
    // require with a root certificate verifies like verify-ca.
    assert!(ssl_of(&other("require")).await.unwrap());

    // The server takes TLS logins only: plaintext is refused, prefer uses TLS.
    let plain = ssl_of(&server.url("127.0.0.1", "postgres", "?sslmode=disable"))
        .await
        .unwrap_err()
        .to_string();
    assert!(plain.contains("no encryption"), "{plain}");
    assert!(
        ssl_of(&server.url("127.0.0.1", "postgres", "?sslmode=prefer"))
            .await
            .unwrap()
    );

    // certdb demands a client certificate whose CN is the user.
    let client = ca.client("postgres");
    let mtls = format!(
        "?sslmode=verify-full&{root}&sslcert={}&sslkey={}",
        client.cert.display(),
        client.key.display()
    );
    assert!(
        ssl_of(&server.url("localhost", "certdb", &mtls))
            .await
            .unwrap()
    );
    let without = ssl_of(&server.url(
        "localhost",
        "certdb",
        &format!("?sslmode=verify-full&{root}"),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(without.contains("certificate"), "{without}");
}

#[tokio::test]
async fn the_runbooks_backup_and_restore_pass_sslmode_and_sslrootcert_to_libpq() {
    use clusterops::runbook::backup::{self, Database};
    // The shared server with sslmode=require.
    let db = TestDb::create("sslbackup");
    db.query("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 50)");
    let dir = tempfile::tempdir().unwrap();
    let target = Database::from_url(&format!("{}?sslmode=require", db.url())).unwrap();
    let rec = backup::backup(&target, dir.path(), "tls", &|_| {})
        .await
        .unwrap();
    db.query("DELETE FROM t");
    backup::restore(&target, &rec, &|_| {}).await.unwrap();
    assert_eq!(db.query("SELECT count(*) FROM t"), "50");

    // The private server takes TLS logins only, so a dump that works went
    // over TLS; verify-full with the test's CA works, another CA does not.
    let ca = TestCa::new("clusterops backup CA");
    let server = PrivatePostgres::start(&ca, &ca.server());
    server.psql("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)");
    let verified = server.url(
        "localhost",
        "postgres",
        &format!("?sslmode=verify-full&sslrootcert={}", ca.cert.display()),
    );
    let target = Database::from_url(&verified).unwrap();
    let rec = backup::backup(&target, dir.path(), "verified", &|_| {})
        .await
        .unwrap();
    server.psql("DROP TABLE kept");
    backup::restore(&target, &rec, &|_| {}).await.unwrap();
    assert_eq!(server.psql("SELECT x FROM kept"), "7");
    let required = Database::from_url(&server.url("127.0.0.1", "postgres", "?sslmode=require"));
    backup::backup(&required.unwrap(), dir.path(), "required", &|_| {})
        .await
        .unwrap();

    let other = TestCa::new("clusterops other CA");
    let wrong = server.url(
        "localhost",
        "postgres",
        &format!("?sslmode=verify-full&sslrootcert={}", other.cert.display()),
    );
    let err = backup::backup(
        &Database::from_url(&wrong).unwrap(),
        dir.path(),
        "x",
        &|_| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("pg_dump failed") && err.contains("certificate verify failed"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_sslmode_require_migrates_over_tls() {
    use common::nodes::TestCluster;
    use std::time::Duration;
    let c = TestCluster::new("pgtls");
    let url = format!("{}?sslmode=require", c.db.url());
    let env = c.env_variant("tls.env", &[("DB_URL", &url)]);
    let n = c.spawn_with_env("tls-1", "2", &env);
    n.wait_for_status(Duration::from_secs(30)).await;
    n.wait_for_health(200, Duration::from_secs(15)).await;
    assert_eq!(c.db.query("SELECT version FROM clusterops_schema"), "2");
    let ssl = c.db.query(&format!(
        "SELECT string_agg(DISTINCT s.ssl::text, ',') FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = '{}' AND a.application_name <> 'psql'",
        c.db.name
    ));
    assert_eq!(ssl, "true", "the node's connections: {ssl}");
}
