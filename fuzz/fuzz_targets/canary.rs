//! A target that must crash, proving the fuzzing harness finds and reports failures.
//!
//! It panics on any input starting with `CANARY`. `scripts/fuzz-smoke.sh` gives libFuzzer
//! that word as a dictionary entry, so even an uninstrumented build finds it in moments; a
//! smoke run in which this target survives means the harness is broken, not the code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"CANARY") {
        panic!("canary found: the fuzzing harness works");
    }
});
