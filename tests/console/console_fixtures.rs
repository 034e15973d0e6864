//! The saved snapshots under tests/fixtures/ are what `clusterops console
//! --snapshot` reads in the end-to-end test and what an operator can try it
//! with; they must stay equal to the library's samples. Rewrite them with
//! `UPDATE_FIXTURES=1 cargo test --test console console_fixtures::`.

use clusterops::console::sample;
use clusterops::console::source::parse_snapshot;
use std::path::PathBuf;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.json"))
}

#[test]
fn the_saved_fixtures_are_the_samples() {
    for (name, snap) in sample::all() {
        let p = path(name);
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            std::fs::write(&p, serde_json::to_string_pretty(&snap).unwrap() + "\n").unwrap();
        }
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(
            parse_snapshot(&text).unwrap(),
            snap,
            "{} differs: rerun with UPDATE_FIXTURES=1",
            p.display()
        );
        assert!(
            !text.contains("s3cret")
                && text.matches("://").count() == text.matches(":***@").count(),
            "{name}: every URL is masked"
        );
    }
}
