//! The firmware on an emulated Stellaris LM3S6965 board in QEMU, its UART on a pty that
//! [`crate::serial::DeviceClient`] (or any terminal program) opens exactly like a
//! board's `/dev/ttyACM*`.
//!
//! * [`emulator`] — [`Emulator`] (spawn, pty, QMP, screendump, kill on drop) and
//!   [`boot`] (start, open the line, wait for the firmware's answer).
//! * [`firmware`] — [`FirmwareBuild`], building the firmware with a chosen model, and
//!   [`workspace_root`].
//! * [`core`] — [`Core`]: M0, M3 or M4, with its target and QEMU `-cpu`.
//! * [`qmp`] — the few QMP commands the emulator needs.
//! * [`error`] — [`EmulateError`].

pub mod core;
pub mod emulator;
pub mod error;
pub mod firmware;
pub mod qmp;

pub use self::core::Core;
pub use emulator::{boot, BootError, Emulator, EmulatorConfig};
pub use error::EmulateError;
pub use firmware::{workspace_root, FirmwareBuild, EMULATED_BOARD};
