//! # tinyvae-link
//!
//! The host's side of the device: the serial client, the emulated board, the real
//! boards (their table, flashing, finding their serial port), the demo that puts them
//! together, and the checks of a device's answers against the host's
//! fixed-point twin. No training code: the end-to-end tests and `tinyvae serial` /
//! `emulate` / `demo` use it without compiling candle.
//!
//! Modules:
//! * [`serial`] — [`serial::DeviceClient`] and [`serial::SerialError`].
//! * [`emulate`] — the firmware in QEMU ([`emulate::Emulator`], [`emulate::boot`],
//!   [`emulate::FirmwareBuild`]).
//! * [`boards`] — the board table (probe-rs chip, target, USB ids, what to connect)
//!   and the matching of serial ports against it (`--port auto`).
//! * [`flash`] — putting the firmware on a real board: probe-rs, UF2.
//! * [`monitor`] — the running tally behind `tinyvae serial monitor`.
//! * [`confusion`] — the confusion table of a device's verdicts.
//! * [`info`] — a device's self-description, as text, and its comparison with a model.
//! * [`demo`] — the whole system on the emulated board ([`demo::run`] with
//!   [`demo::DemoOptions`]).

pub mod boards;
pub mod confusion;
pub mod demo;
pub mod emulate;
pub mod flash;
pub mod info;
pub mod monitor;
pub mod serial;
