//! A whole store, damaged byte by byte: builds a small real store once, then for each input
//! damages a fresh copy (input layout in `modelfs_fuzz::store`) and reads it every way a reader
//! can — open, list, read every file, scrub, import. Oracle: no panic, hang or runaway memory,
//! an undamaged store reads back whole, and a read that succeeds returns exactly the true bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use modelfs_fuzz::store::Fixture;

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fuzz_target!(
    init: {
        FIXTURE.get_or_init(Fixture::build);
    },
    |data: &[u8]| {
        FIXTURE.get_or_init(Fixture::build).run(data);
    }
);
