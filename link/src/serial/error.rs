//! Typed errors of the serial client: callers (the CLI, the end-to-end tests) decide
//! which are fatal, so the library never flattens them into strings.

use std::time::Duration;

use tinyvae_shared::protocol::{ErrorCode, FrameError};

/// Why talking to the device failed.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    /// The serial port could not be opened or configured.
    #[error("cannot open serial port {path}: {source}")]
    Open {
        /// The port's path.
        path: String,
        /// What the OS said.
        #[source]
        source: serialport::Error,
    },
    /// Reading or writing the port failed.
    #[error("serial I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// No complete response arrived in time.
    #[error("no response within {waited:?} ({received} bytes of a frame received)")]
    Timeout {
        /// How long the client waited.
        waited: Duration,
        /// Bytes of an unfinished frame that did arrive.
        received: usize,
    },
    /// A frame could not be built or the device's reply was not a valid frame.
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The device answered with [`tinyvae_shared::protocol::Response::Error`].
    #[error("device refused the request: {0:?}")]
    Device(ErrorCode),
    /// The device answered with a response of the wrong kind.
    #[error("expected a {expected} response, got {got}")]
    Unexpected {
        /// The response kind the request calls for.
        expected: &'static str,
        /// What arrived instead (Debug form).
        got: String,
    },
    /// The device never answered an `Info` request while starting up.
    #[error("device did not become ready within {0:?}")]
    NotReady(Duration),
}
