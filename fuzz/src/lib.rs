//! What the fuzz targets share: the contracts each input is checked against, the
//! repairs that carry a mutated input past its CRC (so the fuzzer reaches the parsers
//! behind it), and the seed corpus ([`seeds`]).
//!
//! The targets (`fuzz_targets/*.rs`) are thin: each calls one `check_*` function here,
//! which panics when a documented contract does not hold.

pub mod checkpoint;
#[cfg(feature = "checkpoint")]
pub mod checkpoint_candle;
pub mod contracts;
pub mod device;
pub mod reference;
pub mod repair;
pub mod seeds;
