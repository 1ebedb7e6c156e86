//! Frame decoding and the request decoder: the line reader, `decode_frame` as a
//! request and as a response, and the same bodies with their CRC repaired (see
//! `tinyvae_fuzz::contracts::check_line`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tinyvae_fuzz::contracts::check_line(data);
});
