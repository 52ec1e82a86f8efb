//! cargo fuzz target: see `slotgate_fuzz::merge` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slotgate_fuzz::merge::check(data));
