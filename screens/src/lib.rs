//! # tinyvae-screens
//!
//! The screens the device shows on its 128x64 OLED, drawn with embedded-graphics into a
//! 4-bit frame buffer. They are their own `no_std` crate so that the firmware and the
//! host draw them from the same source: the host renders a screen the way QEMU's
//! `screendump` shows the panel and compares the two pixel for pixel, and nothing on the
//! host that does not draw a screen links embedded-graphics.
//!
//! Modules:
//! * [`screen`] — [`FrameBuffer`], the boot, scored, generated, decoded, walk,
//!   denoised and compressed screens, and [`screendump_pixels`] (the host-side rendering of a frame).
#![cfg_attr(not(any(test, feature = "host")), no_std)]

// `screendump_pixels` (the `host` feature) allocates.
#[cfg(feature = "host")]
extern crate std;

// `screen` names the core's types through these paths.
pub(crate) use tinyvae_shared::{fixed, math, protocol};

pub mod screen;

pub use screen::*;
