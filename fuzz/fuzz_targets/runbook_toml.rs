//! The runbook configuration: any text is a validated configuration or one
//! error naming the file -- never a panic.
#![no_main]

use clusterops::runbook::config::RunbookConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = RunbookConfig::parse(text, "fuzz.toml") {
        assert!(!e.to_string().is_empty());
    }
});
