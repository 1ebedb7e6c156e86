//! # tinyvae-link
//!
//! The host's side of the device: the serial client, the emulated board, the demo that
//! puts them together, and the checks of a device's answers against the host's
//! fixed-point twin. No training code: the end-to-end tests and `tinyvae serial` /
//! `emulate` / `demo` use it without compiling candle.
//!
//! Modules:
//! * [`serial`] — [`serial::DeviceClient`] and [`serial::SerialError`].
//! * [`emulate`] — the firmware in QEMU ([`emulate::Emulator`], [`emulate::boot`],
//!   [`emulate::FirmwareBuild`]).
//! * [`confusion`] — the confusion table of a device's verdicts.
//! * [`info`] — a device's self-description, as text, and its comparison with a model.
//! * [`demo`] — the whole system on the emulated board ([`demo::run`] with
//!   [`demo::DemoOptions`]).

pub mod confusion;
pub mod demo;
pub mod emulate;
pub mod info;
pub mod serial;
