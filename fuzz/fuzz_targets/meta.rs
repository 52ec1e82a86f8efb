//! cargo fuzz target: see `slotgate_fuzz::meta` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| slotgate_fuzz::meta::check(data));
