//! Locating the workspace and building the firmware of any board: the emulated one
//! (`tinyvae emulate`, the end-to-end tests) and the real ones (`tinyvae flash`; see
//! [`FirmwareBuild::for_board`] and [`crate::boards`]).
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
use crate::boards::Board;

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
    /// The board crate's folder (`<root>/firmware/boards/<board>`, e.g.
    /// `<root>/`[`EMULATED_BOARD`]).
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
    /// The release build of `board`'s crate in the workspace at `root`, for the board's
    /// target, with the firmware's default model. Fails with the boards that are
    /// present when the board's folder is not: board crates arrive one at a time, and
    /// a checkout may predate the one asked for.
    pub fn for_board(root: &Path, board: &Board) -> Result<Self, EmulateError> {
        let dir = root.join(board.dir);
        if !dir.join("Cargo.toml").is_file() {
            let boards = root.join("firmware/boards");
            let mut present: Vec<String> = std::fs::read_dir(&boards)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|e| e.path().join("Cargo.toml").is_file())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            present.sort();
            return Err(EmulateError::MissingBoard {
                board: board.title,
                dir,
                present: if present.is_empty() {
                    "none".into()
                } else {
                    present.join(", ")
                },
            });
        }
        Ok(Self {
            dir,
            target: Some(board.target.into()),
            ..Self::default()
        })
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::board;

    #[test]
    fn a_missing_board_folder_names_the_boards_present() {
        let root = tempfile::tempdir().expect("temp dir");
        let here = root.path().join(EMULATED_BOARD);
        std::fs::create_dir_all(&here).expect("folders");
        std::fs::write(here.join("Cargo.toml"), "").expect("write");
        let pico = board("pico").expect("pico");
        let err = FirmwareBuild::for_board(root.path(), pico).expect_err("no pico folder");
        let text = err.to_string();
        assert!(text.contains("firmware/boards/pico"), "{text}");
        assert!(text.contains("Raspberry Pi Pico"), "{text}");
        assert!(text.contains("boards here: lm3s6965evb"), "{text}");

        let qemu = board("lm3s6965evb").expect("emulated board");
        let build = FirmwareBuild::for_board(root.path(), qemu).expect("folder present");
        assert_eq!(build.dir, here);
        assert_eq!(build.target.as_deref(), Some("thumbv7m-none-eabi"));
        assert_eq!(build.model, None);
    }
}
