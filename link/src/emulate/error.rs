//! Typed errors of the emulator launcher.

use std::path::PathBuf;

/// Why building, starting or driving the emulated board failed.
#[derive(Debug, thiserror::Error)]
pub enum EmulateError {
    /// An OS-level I/O error (spawning, sockets, files).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// QEMU could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// QEMU exited while it was needed.
    #[error("QEMU exited ({status}); its output:\n{output}")]
    Exited {
        /// Exit status.
        status: String,
        /// What it printed on stderr/stdout.
        output: String,
    },
    /// The QMP conversation failed.
    #[error("QMP: {0}")]
    Qmp(String),
    /// QEMU refused a QMP command.
    #[error("QMP command {command} failed: {class}: {desc}")]
    QmpCommand {
        /// The command.
        command: String,
        /// QEMU's error class.
        class: String,
        /// QEMU's description.
        desc: String,
    },
    /// QEMU did not report a pty for the serial port.
    #[error("QEMU reported no pty for serial0: {0}")]
    NoPty(String),
    /// The screendump file never appeared.
    #[error("screendump {0} was not written")]
    NoScreendump(PathBuf),
    /// The workspace (a folder with the emulated board's crate) could not be found.
    #[error("cannot find the tinyvae workspace (a folder holding firmware/boards/lm3s6965evb/Cargo.toml) above {0}")]
    NoWorkspace(PathBuf),
    /// The board's firmware crate is not in this checkout.
    #[error("{dir} has no Cargo.toml: this checkout holds no firmware for the {board} (boards here: {present})")]
    MissingBoard {
        /// The board's title.
        board: &'static str,
        /// The folder that was looked for.
        dir: PathBuf,
        /// The board folders that do exist, comma separated.
        present: String,
    },
    /// `cargo build` of the firmware failed.
    #[error("firmware build failed ({status}):\n{stderr}")]
    Build {
        /// Exit status.
        status: String,
        /// Cargo's diagnostics.
        stderr: String,
    },
    /// The firmware build produced no (or more than one) executable.
    #[error("firmware build produced {0}")]
    NoElf(String),
}
