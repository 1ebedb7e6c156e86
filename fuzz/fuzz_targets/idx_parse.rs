//! IDX parsing and data sets built from an images file and a labels file (see
//! `tinyvae_fuzz::contracts::check_idx`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tinyvae_fuzz::contracts::check_idx(data);
});
