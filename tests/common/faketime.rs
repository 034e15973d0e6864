//! Skewed clocks for child processes with libfaketime (Debian package
//! `faketime`, installed by `.ci/run`): `LD_PRELOAD` its library and set
//! `FAKETIME` to an offset such as `+3` or `-2` seconds. The wall clock
//! (`CLOCK_REALTIME`) of that process is moved; its monotonic clock is not
//! (`FAKETIME_DONT_FAKE_MONOTONIC=1`), so its timers and lease deadlines
//! run as usual. Nothing in the product reads these variables.

use std::path::{Path, PathBuf};

/// Where Debian and Ubuntu put the library.
const PLACES: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];

/// The libfaketime library; panics with how to install it when missing.
pub fn library() -> PathBuf {
    PLACES
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| {
            panic!(
                "libfaketime not found in {PLACES:?}: apt-get install -y faketime \
                 (.ci/run installs it)"
            )
        })
}

/// The variables that start a process `offset` away from the real clock
/// (libfaketime's syntax: `+3`, `-2`, `+1.5` seconds).
pub fn env(offset: &str) -> Vec<(&'static str, String)> {
    vec![
        ("LD_PRELOAD", library().display().to_string()),
        ("FAKETIME", offset.to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ]
}

/// The variables that read the offset from `file` at every clock read
/// (write `+0`, then `-1`, … into it to step the clock while the process
/// runs). The file must exist before the process starts.
pub fn env_from_file(file: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("LD_PRELOAD", library().display().to_string()),
        ("FAKETIME_TIMESTAMP_FILE", file.display().to_string()),
        ("FAKETIME_NO_CACHE", "1".to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ]
}
