//! Talking to the tinyvae firmware over a serial port — a board's `/dev/ttyACM*` or the
//! emulator's pty — with the postcard + CRC + COBS protocol of
//! [`tinyvae_shared::protocol`].
//!
//! * [`client`] — [`DeviceClient`], one typed call per request, with framing, timeouts
//!   and resynchronization after garbage.
//! * [`error`] — [`SerialError`], what went wrong on the line or on the device.

pub mod client;
pub mod error;

pub use client::{DeviceClient, DEFAULT_TIMEOUT};
pub use error::SerialError;
