//! Locating the workspace and building the firmware for the emulator.
//!
//! Each firmware board crate (`firmware/boards/<board>`) is its own cargo workspace
//! with its own default target, so the firmware is built by running
//! `cargo build --release [--target T] [--features F]` in the board's folder; cargo decides
//! whether anything is stale (the firmware's build script reruns when
//! `TINYVAE_MODEL` or the model file changes). The ELF's path comes from cargo's JSON
//! messages, so it is right whatever target directory or binary name is in use.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::error::EmulateError;

/// The board crate the emulator runs (QEMU's `lm3s6965evb`), relative to the
/// workspace root.
pub const EMULATED_BOARD: &str = "firmware/boards/lm3s6965evb";

/// The folder holding [`EMULATED_BOARD`]: searched upwards from `start`, then from
/// this crate's own source location (so an installed `tinyvae` run elsewhere still
/// finds the checkout it was built from).
pub fn workspace_root(start: &Path) -> Result<PathBuf, EmulateError> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR"));
    start
        .ancestors()
        .chain(built_from.ancestors())
        .find(|dir| dir.join(EMULATED_BOARD).join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| EmulateError::NoWorkspace(start.to_owned()))
}

/// How to build the firmware.
#[derive(Debug, Clone, Default)]
pub struct FirmwareBuild {
    /// The board crate's folder (`<root>/`[`EMULATED_BOARD`]).
    pub dir: PathBuf,
    /// The target triple (`--target`); the board's default (its
    /// `.cargo/config.toml`) when `None`.
    pub target: Option<String>,
    /// Cargo features of the board crate (`--features`).
    pub features: Vec<String>,
    /// Model file to embed (`TINYVAE_MODEL`); the firmware's default when `None`.
    pub model: Option<PathBuf>,
    /// Target directory; cargo's default (`firmware/target`, or an inherited
    /// `CARGO_TARGET_DIR`) when `None`.
    pub target_dir: Option<PathBuf>,
    /// Show cargo's progress on stderr (the CLI) rather than capturing it (tests).
    pub verbose: bool,
}

impl FirmwareBuild {
    /// Builds (or finds up to date) the release firmware and returns its ELF.
    pub fn run(&self) -> Result<PathBuf, EmulateError> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&self.dir)
            .args([
                "build",
                "--release",
                "--message-format=json-render-diagnostics",
            ])
            .args(self.target.iter().flat_map(|t| ["--target", t.as_str()]))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if self.verbose {
                Stdio::inherit()
            } else {
                Stdio::piped()
            });
        // Variables a parent cargo (`cargo test`, `cargo run`) sets for the host
        // build must not leak into the firmware's cross build.
        for var in [
            "CARGO_BUILD_TARGET",
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "CARGO_MAKEFLAGS",
        ] {
            cmd.env_remove(var);
        }
        if !self.features.is_empty() {
            cmd.arg("--features").arg(self.features.join(","));
        }
        if let Some(dir) = &self.target_dir {
            cmd.env("CARGO_TARGET_DIR", dir);
        }
        if let Some(model) = &self.model {
            let model = std::path::absolute(model)?;
            cmd.env("TINYVAE_MODEL", model);
        }
        let output = cmd.output().map_err(|source| EmulateError::Spawn {
            program: "cargo".into(),
            source,
        })?;
        if !output.status.success() {
            return Err(EmulateError::Build {
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        let executables: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .filter(|m| {
                m["target"]["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"))
            })
            .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
            .collect();
        match executables.as_slice() {
            [elf] => Ok(elf.clone()),
            [] => Err(EmulateError::NoElf("no executable".into())),
            many => Err(EmulateError::NoElf(format!(
                "several executables ({many:?}); pass --firmware ELF"
            ))),
        }
    }
}
