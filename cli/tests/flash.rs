//! `tinyvae flash` and `tinyvae serial --port auto` without any hardware: probe-rs and
//! elf2uf2-rs are replaced through `TINYVAE_PROBE_RS` / `TINYVAE_ELF2UF2` by missing
//! programs or small shell scripts, and `--firmware` stands in for the build, so
//! nothing here needs a board, a probe or the board crates under `firmware/boards/`.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fails_with, ok};

/// `tinyvae ARGS...` with the tools replaced by `probe_rs` and `elf2uf2`.
fn tinyvae(args: &[&str], probe_rs: &Path, elf2uf2: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinyvae"))
        .args(args)
        .env("TINYVAE_PROBE_RS", probe_rs)
        .env("TINYVAE_ELF2UF2", elf2uf2)
        .output()
        .expect("running tinyvae")
}

/// An executable shell script `name` in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("writing a script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A fake probe-rs whose `list` prints `listing` and that appends every call's
/// arguments to `log`.
fn fake_probe_rs(dir: &Path, listing: &str, log: &Path) -> PathBuf {
    script(
        dir,
        "probe-rs",
        &format!(
            "echo \"$@\" >> '{}'\nif [ \"$1\" = list ]; then printf '%s\\n' '{listing}'; fi",
            log.display()
        ),
    )
}

const NO_PROBES: &str = "No debug probes were found.";
const ST_LINK: &str = "connect the Nucleo-F411RE's ST-LINK USB port (CN1, mini-B) to this computer";
const PICO_SWD: &str = "to the Pico's SWD pins (SWCLK, GND, SWDIO), or use --uf2";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn without_probe_rs_the_error_says_what_to_install_and_connect() {
    let missing = Path::new("/nonexistent/probe-rs");
    let out = tinyvae(&["flash", "--board", "nucleo-f411re"], missing, missing);
    let text = fails_with(out, "flash without probe-rs", ST_LINK);
    assert!(
        text.contains("cargo install probe-rs-tools --locked"),
        "{text}"
    );
    assert!(text.contains("/nonexistent/probe-rs"), "{text}");
    assert!(
        !text.contains("building the firmware"),
        "checked before the build: {text}"
    );
}

#[test]
fn with_no_probe_connected_the_error_names_what_to_connect() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let log = tmp.path().join("calls");
    let probe_rs = fake_probe_rs(tmp.path(), NO_PROBES, &log);
    let missing = Path::new("/nonexistent/elf2uf2-rs");

    let out = tinyvae(&["flash", "--board", "nucleo-f411re"], &probe_rs, missing);
    let text = fails_with(out, "flash with no probe", ST_LINK);
    assert!(text.contains("found no debug probe"), "{text}");
    assert!(
        !text.contains("building the firmware"),
        "checked before the build: {text}"
    );

    let out = tinyvae(&["flash", "--board", "pico"], &probe_rs, missing);
    let text = fails_with(out, "flash a Pico with no probe", PICO_SWD);
    assert!(text.contains("a second Pico running debugprobe"), "{text}");

    // Only `list` ran: nothing was flashed.
    let calls = std::fs::read_to_string(&log).expect("probe-rs was called");
    assert_eq!(calls, "list\nlist\n");
}

#[test]
fn an_unknown_board_is_a_usage_error_listing_the_boards() {
    let missing = Path::new("/nonexistent/probe-rs");
    let out = tinyvae(&["flash", "--board", "stm32"], missing, missing);
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    let text = stderr(&out);
    for board in ["nucleo-f411re", "pico", "lm3s6965evb"] {
        assert!(text.contains(board), "{board} not listed: {text}");
    }
}

#[test]
fn a_probe_board_is_flashed_with_download_then_reset() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let log = tmp.path().join("calls");
    let probe_rs = fake_probe_rs(
        tmp.path(),
        "[0]: STLink V2-1 -- 0483:374b:066DFF (ST-LINK)",
        &log,
    );
    let elf = tmp.path().join("fw.elf");
    std::fs::write(&elf, b"\x7fELF").expect("write");
    let elf_arg = elf.to_str().expect("UTF-8 path");
    let missing = Path::new("/nonexistent/elf2uf2-rs");

    let out = tinyvae(
        &["flash", "--board", "nucleo-f411re", "--firmware", elf_arg],
        &probe_rs,
        missing,
    );
    ok(out, "flash --firmware with a probe");
    let calls = std::fs::read_to_string(&log).expect("probe-rs was called");
    assert_eq!(
        calls,
        format!("list\ndownload --chip STM32F411RETx {elf_arg}\nreset --chip STM32F411RETx\n")
    );

    std::fs::remove_file(&log).expect("clear the log");
    let out = tinyvae(
        &[
            "flash",
            "--board",
            "pico",
            "--firmware",
            elf_arg,
            "--attach",
            "--probe",
            "2e8a:000c",
        ],
        &probe_rs,
        missing,
    );
    ok(out, "flash --attach a Pico");
    let calls = std::fs::read_to_string(&log).expect("probe-rs was called");
    assert_eq!(
        calls,
        format!("list\nrun --chip RP2040 --probe 2e8a:000c {elf_arg}\n")
    );

    // A failing probe-rs fails the command.
    let broken = script(
        tmp.path(),
        "broken-probe-rs",
        "[ \"$1\" = list ] && echo '[0]: x' && exit 0\necho 'Error: flash timeout' >&2\nexit 1",
    );
    let out = tinyvae(
        &["flash", "--board", "nucleo-f411re", "--firmware", elf_arg],
        &broken,
        missing,
    );
    fails_with(
        out,
        "flash with a failing probe-rs",
        "download --chip STM32F411RETx",
    );
}

#[test]
fn core_is_only_for_the_emulated_board() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let probe_rs = fake_probe_rs(tmp.path(), "[0]: x", &tmp.path().join("calls"));
    let out = tinyvae(
        &["flash", "--board", "nucleo-f411re", "--core", "m0"],
        &probe_rs,
        &probe_rs,
    );
    fails_with(
        out,
        "flash --core on a real board",
        "--core picks the emulated board's core",
    );
    let out = tinyvae(
        &["flash", "--board", "nucleo-f411re", "--uf2"],
        &probe_rs,
        &probe_rs,
    );
    fails_with(out, "flash --uf2 on a Nucleo", "--uf2 is for the Pico");
}

#[test]
fn pico_uf2_is_converted_and_copied_to_the_boot_drive() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let missing = Path::new("/nonexistent/probe-rs");
    let elf = tmp.path().join("fw.elf");
    std::fs::write(&elf, b"\x7fELF").expect("write");
    let elf_arg = elf.to_str().expect("UTF-8 path");

    // Without elf2uf2-rs: how to install it, before any build.
    let out = tinyvae(
        &["flash", "--board", "pico", "--uf2"],
        missing,
        Path::new("/nonexistent/elf2uf2-rs"),
    );
    let text = fails_with(
        out,
        "flash --uf2 without elf2uf2-rs",
        "cargo install elf2uf2-rs",
    );
    assert!(!text.contains("building the firmware"), "{text}");

    // A fake elf2uf2-rs that writes "UF2 <input>" into its output file.
    let elf2uf2 = script(tmp.path(), "elf2uf2-rs", "echo \"UF2 $1\" > \"$2\"");
    let drive = tmp.path().join("RPI-RP2");
    std::fs::create_dir(&drive).expect("drive folder");
    std::fs::write(drive.join("INFO_UF2.TXT"), "Board-ID: RPI-RP2\n").expect("write");
    let out = tinyvae(
        &[
            "flash",
            "--board",
            "pico",
            "--uf2",
            "--firmware",
            elf_arg,
            "--drive",
            drive.to_str().expect("UTF-8 path"),
        ],
        missing,
        &elf2uf2,
    );
    ok(out, "flash --uf2 --drive");
    let copied = std::fs::read_to_string(drive.join("fw.uf2")).expect("UF2 on the drive");
    assert_eq!(copied, format!("UF2 {elf_arg}\n"));
    assert!(tmp.path().join("fw.uf2").is_file(), "UF2 beside the ELF");
}

#[test]
fn serial_port_auto_explains_its_choice_or_lists_what_it_saw() {
    let out = Command::new(env!("CARGO_BIN_EXE_tinyvae"))
        .args(["serial", "--port", "auto", "--timeout", "1", "stats"])
        .output()
        .expect("running tinyvae");
    let text = stderr(&out);
    if text.contains("no tinyvae board found") {
        // No board on this machine (CI): the error names the ids it looked for.
        assert!(!out.status.success());
        assert!(
            text.contains("0483:374B (ST-LINK/V2-1, Nucleo-F411RE)"),
            "{text}"
        );
        assert!(text.contains("2E8A:000A"), "{text}");
    } else {
        // A board is plugged in: the first line says which port and why.
        assert!(text.starts_with("using /"), "{text}");
    }
}
