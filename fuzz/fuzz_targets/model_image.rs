//! The model image parser and validator, then an inference on every model it
//! accepts (see `tinyvae_fuzz::contracts::check_model_image`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tinyvae_fuzz::contracts::check_model_image(data);
});
