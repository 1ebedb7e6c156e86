//! The device's whole request handler: the firmware app on an in-memory line fed
//! the input, polled until idle, every reply checked against a reference (see
//! `tinyvae_fuzz::device`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tinyvae_fuzz::device::check_request_handler(data);
});
