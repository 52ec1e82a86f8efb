//! The fuzz checks of slotgate: each `check(data)` feeds arbitrary bytes to one decoder or
//! planner and panics only when a property is violated (a panic inside the code under test
//! is a finding too).
//!
//! Contract: checks are deterministic functions of their input, so a crash file replays
//! exactly. The cargo fuzz targets in `fuzz_targets/` call them; `tests/corpus.rs` replays
//! the committed seed corpus and every fixed crash (`regressions/`) in the normal test run.

pub mod bytes;
pub mod frontend;
pub mod merge;
pub mod meta;
pub mod router;

/// The names of the checks, as the fuzz targets and the corpus directories are named.
pub const TARGETS: [&str; 4] = ["frontend", "router", "merge", "meta"];

/// Runs the check called `name` (one of [`TARGETS`]).
pub fn run(name: &str, data: &[u8]) {
    match name {
        "frontend" => frontend::check(data),
        "router" => router::check(data),
        "merge" => merge::check(data),
        "meta" => meta::check(data),
        other => panic!("no fuzz check named {other}"),
    }
}
