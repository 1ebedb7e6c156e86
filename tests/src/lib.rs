//! # tinyvae-e2e
//!
//! End-to-end test support for tinyvae: boots the real firmware in QEMU and compares
//! what it answers over the serial line with the host's run of the same shared code.
//! It depends on what it exercises only (the core, the screens, the device link and the
//! image loaders), so its tests build without the trainer.
//!
//! Modules:
//! * [`harness`] — which model and firmware, booting them, the bundled test digits (see
//!   there for the environment variables).

pub use tinyvae_link::{emulate, serial};

pub mod harness;
