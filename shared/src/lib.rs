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
//!
//! Modules:
//! * [`fixed`] — the Q15.16 and int8 conventions, conversions, saturation.
//! * [`math`] — fixed-point `exp`, `ln`, `sqrt` and friends.
//! * [`rng`] — the seeded generator and the fixed-point Gaussian sampler.
//! * [`latent`] — the reparameterization trick and the KL term.
//! * [`dense`] — the int8 dense layer, its requantization and its per-target kernels.
//! * [`score`] — the anomaly score (reconstruction + KL at `z = mu`).
//! * [`detect`] — the fault detector: integer terms of a frame and its reconstruction,
//!   standardized against clean frames, and its fixed-memory calibrator.
//! * [`fault_head`] — the fault head: a small int8 convolutional classifier of the
//!   frame, the detector's 17th term.
//! * [`model`] — the model image (layout, validator, [`model::Likelihood`]).
//! * [`pipeline`] — encode, score, decode and generate on a parsed model.
//! * [`protocol`] — the serial protocol (postcard messages, CRC-32, COBS frames).
//! * [`code`] — the latent code: `mu` in a few bits per dimension (the `Compress` request).
//! * [`demo_frames`] — the file of captioned images a board scores on its own.
//! * `host` feature only: `quantize` (float layers into a model image), `model_file`
//!   (device model files and the atomic write), `testing` (synthetic models).
#![cfg_attr(not(feature = "std"), no_std)]
// `unsafe` lives only in `dense`: the Cortex-M loops and requantization (assembly) and
// the x86 SIMD kernel, each block with its own `allow` and SAFETY comment (the
// workspace lints deny it everywhere else).

pub mod ascii;
pub mod code;
pub mod demo_frames;
pub mod dense;
pub mod detect;
pub mod fault_head;
pub mod fixed;
pub mod latent;
pub mod math;
pub mod model;
#[cfg(feature = "host")]
pub mod model_file;
pub mod pipeline;
pub mod protocol;
#[cfg(feature = "host")]
pub mod quantize;
pub mod rng;
pub mod score;
#[cfg(feature = "host")]
pub mod testing;
