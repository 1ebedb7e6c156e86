//! # tinyvae-shared
//!
//! Everything the tinyvae host and device must agree on bit for bit: the fixed-point
//! number formats, the fixed-point transcendental functions, the seeded Gaussian
//! generator, the reparameterization trick, the KL term, the int8 layer kernel, the
//! anomaly score, the model layout and the serial protocol.
//!
//! The crate is `#![no_std]` and never allocates, so the firmware links it as is; the
//! trainer links the very same code, which is why a host run predicts the device's
//! every bit. Floating point appears only in the `host` feature (conversions and the
//! export-time builders), never on a path the device runs.
#![cfg_attr(not(feature = "std"), no_std)]
// `unsafe` lives only in `dense`: the Cortex-M loops and requantization (assembly) and
// the x86 SIMD kernel, each block with its SAFETY comment.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod dense;
pub mod fixed;
pub mod latent;
pub mod math;
pub mod model;
pub mod pipeline;
pub mod protocol;
#[cfg(feature = "host")]
pub mod quantize;
pub mod rng;
pub mod score;
pub mod screen;
#[cfg(feature = "host")]
pub mod testing;
