//! Putting the firmware on a real board: through a debug probe with the `probe-rs`
//! program, or, on the RP2040, as a UF2 file copied to the boot ROM's USB drive.
//!
//! Both tools are run as programs rather than linked: probe-rs's library pulls in a
//! USB stack and hundreds of crates that the host's other commands never need, and
//! users who flash boards have the tools installed anyway. Their names can be replaced
//! through [`PROBE_RS_ENV`] and [`ELF2UF2_ENV`] (a tool installed elsewhere, or a test's
//! stand-in).
//!
//! Every error that a missing cable or tool can cause says what to install or what to
//! connect, from the board table ([`crate::boards`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::boards::Board;
use crate::emulate::EmulateError;

/// Environment variable naming the probe-rs program (default `probe-rs` on `PATH`).
pub const PROBE_RS_ENV: &str = "TINYVAE_PROBE_RS";

/// Environment variable naming the elf2uf2-rs program (default `elf2uf2-rs` on `PATH`).
pub const ELF2UF2_ENV: &str = "TINYVAE_ELF2UF2";

/// What the user must do to get a Pico's UF2 drive, when none is mounted.
pub const BOOTSEL_HINT: &str =
    "hold BOOTSEL while plugging the Pico in, then copy it to the RPI-RP2 drive";

/// Why flashing failed.
#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    /// probe-rs is not installed (or the program named by [`PROBE_RS_ENV`] cannot run).
    #[error(
        "cannot run {program} ({source}): install probe-rs with \
         `cargo install probe-rs-tools --locked` (or set {PROBE_RS_ENV} to its path), \
         then {connect}"
    )]
    NoProbeRs {
        /// The program that was tried.
        program: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
        /// The board's [`Board::connect`].
        connect: &'static str,
    },
    /// probe-rs runs but sees no debug probe.
    #[error("probe-rs found no debug probe for the {board}: {connect}")]
    NoProbe {
        /// The board's title.
        board: &'static str,
        /// The board's [`Board::connect`].
        connect: &'static str,
    },
    /// The board is not flashed through a probe.
    #[error("the {0} is not flashed with a debug probe")]
    NotAProbeBoard(&'static str),
    /// elf2uf2-rs is not installed.
    #[error(
        "cannot run {program} ({reason}): install it with `cargo install elf2uf2-rs` \
         (or set {ELF2UF2_ENV} to its path)"
    )]
    NoElf2Uf2 {
        /// The program that was tried.
        program: String,
        /// Why it cannot run.
        reason: String,
    },
    /// A tool ran and failed.
    #[error("`{command}` failed ({status}):\n{output}")]
    Tool {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed (when captured).
        output: String,
    },
    /// Building the firmware failed (or its folder is missing).
    #[error(transparent)]
    Build(#[from] EmulateError),
    /// Copying or writing a file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The program named by `var`, or `default`.
fn program_from_env(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// The command line, for messages.
fn command_line(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where `program` is: itself when it names a path, else the first match on `PATH`.
pub fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| {
            let plain = dir.join(program);
            let exe = dir
                .join(program)
                .with_extension(std::env::consts::EXE_EXTENSION);
            [plain, exe]
        })
        .find(|p| p.is_file())
}

/// The probes listed in `probe-rs list`'s output: its lines `[0]: STLink V2-1 -- ...`.
/// "No debug probes were found." (or anything else) lists none.
pub fn parse_probe_list(output: &str) -> Vec<String> {
    output
        .lines()
        .map(str::trim)
        .filter(|line| {
            line.strip_prefix('[')
                .and_then(|rest| rest.split_once("]:"))
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
        .collect()
}

/// The probe-rs program and how to call it.
#[derive(Debug, Clone)]
pub struct ProbeRs {
    /// The program ([`PROBE_RS_ENV`], else `probe-rs`).
    pub program: PathBuf,
    /// probe-rs's `--probe VID:PID[:SERIAL]`, to pick one of several probes.
    pub probe: Option<String>,
    /// Let probe-rs print its progress on the terminal (the CLI) rather than capturing
    /// it (tests).
    pub verbose: bool,
}

impl Default for ProbeRs {
    fn default() -> Self {
        Self {
            program: program_from_env(PROBE_RS_ENV, "probe-rs"),
            probe: None,
            verbose: false,
        }
    }
}

impl ProbeRs {
    /// `probe-rs list`: the probes connected. Fails with what to install or connect
    /// for `board` when probe-rs is missing or sees no probe, so that nothing slow
    /// (the firmware build) runs before the user can do anything useful.
    pub fn require_probe(&self, board: &Board) -> Result<Vec<String>, FlashError> {
        let output = Command::new(&self.program)
            .arg("list")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| FlashError::NoProbeRs {
                program: self.program.display().to_string(),
                source,
                connect: board.connect,
            })?;
        if !output.status.success() {
            return Err(FlashError::Tool {
                command: format!("{} list", self.program.display()),
                status: output.status.to_string(),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        let probes = parse_probe_list(&String::from_utf8_lossy(&output.stdout));
        if probes.is_empty() {
            return Err(FlashError::NoProbe {
                board: board.title,
                connect: board.connect,
            });
        }
        Ok(probes)
    }

    /// `probe-rs download --chip CHIP ELF`: writes the firmware to flash.
    pub fn download(&self, board: &Board, elf: &Path) -> Result<(), FlashError> {
        self.call("download", board, Some(elf))
    }

    /// `probe-rs reset --chip CHIP`: starts the new firmware.
    pub fn reset(&self, board: &Board) -> Result<(), FlashError> {
        self.call("reset", board, None)
    }

    /// `probe-rs run --chip CHIP ELF`: flashes, starts and stays attached, printing
    /// the firmware's RTT/defmt log until the user stops it (always on the terminal).
    pub fn run(&self, board: &Board, elf: &Path) -> Result<(), FlashError> {
        Self {
            verbose: true,
            ..self.clone()
        }
        .call("run", board, Some(elf))
    }

    /// The argument list of `probe-rs <command>` for `board` (public so that the
    /// CLI's dry run and the tests see exactly what is run).
    pub fn args(
        &self,
        command: &str,
        board: &Board,
        elf: Option<&Path>,
    ) -> Result<Vec<OsString>, FlashError> {
        let crate::boards::Flashing::Probe { chip } = board.flashing else {
            return Err(FlashError::NotAProbeBoard(board.title));
        };
        let mut args: Vec<OsString> = vec![command.into(), "--chip".into(), chip.into()];
        if let Some(probe) = &self.probe {
            args.extend(["--probe".into(), probe.into()]);
        }
        args.extend(elf.map(|e| e.as_os_str().to_owned()));
        Ok(args)
    }

    fn call(&self, command: &str, board: &Board, elf: Option<&Path>) -> Result<(), FlashError> {
        let args = self.args(command, board, elf)?;
        run_tool(&self.program, &args, self.verbose, |source| {
            FlashError::NoProbeRs {
                program: self.program.display().to_string(),
                source,
                connect: board.connect,
            }
        })
    }
}

/// Runs `program args`, output on the terminal (`verbose`) or captured into the error.
fn run_tool(
    program: &Path,
    args: &[OsString],
    verbose: bool,
    not_found: impl FnOnce(std::io::Error) -> FlashError,
) -> Result<(), FlashError> {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    let (status, output) = if verbose {
        (cmd.status().map_err(not_found)?, String::new())
    } else {
        let out = cmd.output().map_err(not_found)?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status, text)
    };
    if status.success() {
        Ok(())
    } else {
        Err(FlashError::Tool {
            command: command_line(program, args),
            status: status.to_string(),
            output,
        })
    }
}

/// The elf2uf2-rs program.
#[derive(Debug, Clone)]
pub struct Elf2Uf2 {
    /// The program ([`ELF2UF2_ENV`], else `elf2uf2-rs`).
    pub program: PathBuf,
}

impl Default for Elf2Uf2 {
    fn default() -> Self {
        Self {
            program: program_from_env(ELF2UF2_ENV, "elf2uf2-rs"),
        }
    }
}

impl Elf2Uf2 {
    /// Fails with how to install elf2uf2-rs when it is not there; checked before the
    /// firmware build so that a missing tool costs no build time.
    pub fn check(&self) -> Result<PathBuf, FlashError> {
        find_program(&self.program).ok_or_else(|| FlashError::NoElf2Uf2 {
            program: self.program.display().to_string(),
            reason: "not found".into(),
        })
    }

    /// `elf2uf2-rs ELF UF2`.
    pub fn convert(&self, elf: &Path, uf2: &Path) -> Result<(), FlashError> {
        let args = [elf.as_os_str().to_owned(), uf2.as_os_str().to_owned()];
        run_tool(&self.program, &args, false, |source| {
            FlashError::NoElf2Uf2 {
                program: self.program.display().to_string(),
                reason: source.to_string(),
            }
        })
    }
}

/// Where desktops mount USB drives: `/media/<user>/<drive>` (and `/media/<drive>`),
/// `/run/media/<user>/<drive>`, `/Volumes/<drive>`.
pub fn uf2_mount_roots() -> Vec<PathBuf> {
    ["/media", "/run/media", "/Volumes"]
        .into_iter()
        .map(PathBuf::from)
        .collect()
}

/// Whether `dir` is a mounted RP2040 boot drive: it holds `INFO_UF2.TXT` saying
/// `RPI-RP2`. Other UF2 bootloaders (an RP2350, an nRF or SAMD board) have the file too
/// but would reject, or worse half-take, an RP2040 image.
fn is_rp2040_drive(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("INFO_UF2.TXT")).is_ok_and(|info| info.contains("RPI-RP2"))
}

/// The first RP2040 boot drive one or two levels below one of `roots`.
pub fn find_uf2_drive(roots: &[PathBuf]) -> Option<PathBuf> {
    let subdirs = |dir: &Path| -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs
    };
    roots.iter().find_map(|root| {
        subdirs(root).into_iter().find_map(|level1| {
            if is_rp2040_drive(&level1) {
                return Some(level1);
            }
            subdirs(&level1).into_iter().find(|d| is_rp2040_drive(d))
        })
    })
}

/// Copies `uf2` onto the boot drive `drive`; the RP2040 flashes it and reboots into
/// it as soon as the copy completes. Returns the copy's path.
pub fn copy_to_drive(uf2: &Path, drive: &Path) -> Result<PathBuf, FlashError> {
    let name = uf2
        .file_name()
        .map_or_else(|| "firmware.uf2".into(), ToOwned::to_owned);
    let dest = drive.join(name);
    std::fs::copy(uf2, &dest).map_err(|source| FlashError::Io {
        what: format!("copying {} to {}", uf2.display(), dest.display()),
        source,
    })?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::board;

    fn pico() -> &'static Board {
        board("pico").expect("pico in the table")
    }

    #[test]
    fn probe_list_lines() {
        assert!(parse_probe_list("No debug probes were found.\n").is_empty());
        assert!(parse_probe_list("").is_empty());
        let out = "The following debug probes were found:\n\
                   [0]: STLink V2-1 -- 0483:374b:066DFF (ST-LINK)\n\
                   [1]: Debugprobe on Pico (CMSIS-DAP) -- 2e8a:000c:E6614 (CMSIS-DAP)\n\
                   [x]: not a probe\n\
                   []: not one either\n";
        assert_eq!(
            parse_probe_list(out),
            [
                "[0]: STLink V2-1 -- 0483:374b:066DFF (ST-LINK)",
                "[1]: Debugprobe on Pico (CMSIS-DAP) -- 2e8a:000c:E6614 (CMSIS-DAP)"
            ]
        );
    }

    #[test]
    fn probe_rs_arguments_name_the_chip() {
        let p = ProbeRs {
            program: "probe-rs".into(),
            probe: None,
            verbose: false,
        };
        let nucleo = board("nucleo-f411re").expect("nucleo");
        let args = p
            .args("download", nucleo, Some(Path::new("/tmp/fw.elf")))
            .expect("a probe board");
        assert_eq!(args, ["download", "--chip", "STM32F411RETx", "/tmp/fw.elf"]);
        let p = ProbeRs {
            probe: Some("2e8a:000c".into()),
            ..p
        };
        let args = p.args("reset", pico(), None).expect("a probe board");
        assert_eq!(args, ["reset", "--chip", "RP2040", "--probe", "2e8a:000c"]);
        let qemu = board("lm3s6965evb").expect("emulated");
        assert!(matches!(
            p.args("run", qemu, None),
            Err(FlashError::NotAProbeBoard(_))
        ));
    }

    #[test]
    fn missing_probe_rs_says_what_to_install_and_connect() {
        let p = ProbeRs {
            program: "/nonexistent/probe-rs".into(),
            probe: None,
            verbose: false,
        };
        let err = p.require_probe(pico()).expect_err("no such program");
        let text = err.to_string();
        assert!(
            text.contains("cargo install probe-rs-tools --locked"),
            "{text}"
        );
        assert!(text.contains("SWCLK, GND, SWDIO"), "{text}");
    }

    #[test]
    fn missing_elf2uf2_says_how_to_install_it() {
        let tool = Elf2Uf2 {
            program: "/nonexistent/elf2uf2-rs".into(),
        };
        let err = tool.check().expect_err("no such program");
        assert!(
            err.to_string().contains("cargo install elf2uf2-rs"),
            "{err}"
        );
        let err = tool
            .convert(Path::new("a.elf"), Path::new("a.uf2"))
            .expect_err("no such program");
        assert!(
            err.to_string().contains("cargo install elf2uf2-rs"),
            "{err}"
        );
    }

    #[test]
    fn finds_only_an_rp2040_boot_drive() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let media = tmp.path().join("media");
        let volumes = tmp.path().join("Volumes");
        let other = media.join("alice/CIRCUITPY");
        let rp2 = media.join("alice/RPI-RP2");
        for dir in [&other, &rp2, &volumes] {
            std::fs::create_dir_all(dir).expect("folders");
        }
        let roots = [volumes.clone(), media.clone()];
        assert_eq!(find_uf2_drive(&roots), None, "no INFO_UF2.TXT yet");
        std::fs::write(
            other.join("INFO_UF2.TXT"),
            "Board-ID: SAMD21G18A-Feather-v0\n",
        )
        .expect("write");
        assert_eq!(find_uf2_drive(&roots), None, "not an RP2040's drive");
        std::fs::write(
            rp2.join("INFO_UF2.TXT"),
            "UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n",
        )
        .expect("write");
        assert_eq!(find_uf2_drive(&roots), Some(rp2.clone()));
        // One level down (/Volumes/RPI-RP2) is found too.
        let mac = volumes.join("RPI-RP2");
        std::fs::create_dir_all(&mac).expect("folder");
        std::fs::write(mac.join("INFO_UF2.TXT"), "Board-ID: RPI-RP2\n").expect("write");
        assert_eq!(find_uf2_drive(&roots), Some(mac.clone()));

        let uf2 = tmp.path().join("fw.uf2");
        std::fs::write(&uf2, b"UF2\n").expect("write");
        let copied = copy_to_drive(&uf2, &mac).expect("copy");
        assert_eq!(copied, mac.join("fw.uf2"));
        assert_eq!(std::fs::read(copied).expect("read"), b"UF2\n");
    }

    #[test]
    fn find_program_takes_paths_and_searches_path() {
        assert_eq!(find_program(Path::new("/nonexistent/x")), None);
        let tmp = tempfile::tempdir().expect("temp dir");
        let tool = tmp.path().join("tool");
        std::fs::write(&tool, "").expect("write");
        assert_eq!(find_program(&tool), Some(tool.clone()));
        assert_eq!(
            find_program(Path::new("tinyvae-no-such-tool-anywhere")),
            None
        );
    }
}
