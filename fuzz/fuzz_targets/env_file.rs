//! The `.env` reader, then the validation of what it read: any text gives a
//! map or a line-numbered error, and any map a config or one line per wrong
//! variable -- never a panic, never the password in an error.
#![no_main]

use clusterops::config::{Config, parse_env_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(vars) = parse_env_text(text)
        && let Err(e) = Config::from_vars(&vars)
    {
        for problem in e.problems() {
            assert!(!problem.variable.is_empty());
        }
    }
});
