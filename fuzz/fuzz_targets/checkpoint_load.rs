//! Loading from bytes: device model files (`model_file::from_bytes`) and trainer
//! checkpoints as the validator sees them (`tinyvae_checkpoint::check`, no candle) (see
//! `tinyvae_fuzz::contracts::check_model_file` and
//! `tinyvae_fuzz::checkpoint::check_checkpoint`). An input that starts with a JSON
//! header is also tried as a file with that header (`tinyvae_fuzz::repair::safetensors`),
//! so the fuzzer reaches the metadata. `checkpoint_candle` fuzzes the trainer's whole
//! loader on the same corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let wrapped = tinyvae_fuzz::repair::safetensors(data);
    for bytes in std::iter::once(data).chain(wrapped.as_deref()) {
        tinyvae_fuzz::contracts::check_model_file(bytes);
        tinyvae_fuzz::checkpoint::check_checkpoint(bytes);
    }
});
