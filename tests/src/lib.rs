//! End-to-end test support for tinyvae: boots the real firmware in QEMU and compares
//! what it answers over the serial line with the host's run of the same shared code.
//! See [`harness`] for the environment variables.

pub use tinyvae_trainer::{device_model, emulate, serial};

pub mod harness;
