//! The trainer's whole checkpoint loader (`checkpoint::load_bytes`: the validator, then
//! candle; feature `checkpoint`), on `checkpoint_load`'s corpus (see
//! `tinyvae_fuzz::checkpoint_candle::check_candle_checkpoint`). An input that starts
//! with a JSON header is also tried as a file with that header
//! (`tinyvae_fuzz::repair::safetensors`). Its instrumented build of candle and tract
//! takes most of an hour, so CI fuzzes `checkpoint_load` instead.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let wrapped = tinyvae_fuzz::repair::safetensors(data);
    for bytes in std::iter::once(data).chain(wrapped.as_deref()) {
        tinyvae_fuzz::checkpoint_candle::check_candle_checkpoint(bytes);
    }
});
