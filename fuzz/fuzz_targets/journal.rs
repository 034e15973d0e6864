//! The runbook journal (JSON lines, possibly cut by a crash): entries or an
//! error naming the line, strict and lenient -- never a panic.
#![no_main]

use clusterops::runbook::journal;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    let path = Path::new("fuzz.jsonl");
    let strict = journal::parse(path, text, false);
    let lenient = journal::parse(path, text, true);
    // Whatever the strict reading accepts, the lenient one accepts too.
    if strict.is_ok() {
        assert!(lenient.is_ok());
    }
});
