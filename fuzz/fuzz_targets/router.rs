//! cargo fuzz target: see `slotgate_fuzz::router` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slotgate_fuzz::router::check(data));
