//! `tinyvae flash`: build a board's firmware (with a chosen model) and put it on the
//! board: through a debug probe with probe-rs, as a UF2 file on a Pico's boot drive, or,
//! for the emulated board, by booting it in QEMU exactly as `tinyvae emulate` does.
//!
//! The boards, their probe-rs chips and what to connect are
//! [`tinyvae_link::boards::BOARDS`]; running the tools is [`tinyvae_link::flash`]. The
//! probe (or the UF2 tool) is checked before the firmware is built: a build takes
//! minutes, a missing cable is found in a second.

use std::path::PathBuf;

use anyhow::{ensure, Context};
use clap::builder::PossibleValuesParser;

use tinyvae_link::boards::{self, Board, Flashing};
use tinyvae_link::emulate::{workspace_root, Core, FirmwareBuild};
use tinyvae_link::flash::{
    copy_to_drive, find_uf2_drive, uf2_mount_roots, Elf2Uf2, ProbeRs, BOOTSEL_HINT,
};

use crate::emulate::{self, EmulateArgs};

/// `tinyvae flash`: build the firmware and put it on a board.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The board (its firmware is firmware/boards/<board>).
    #[arg(long, value_parser = PossibleValuesParser::new(boards::names()))]
    pub board: String,
    /// Model to build into the firmware (sets TINYVAE_MODEL for the build).
    #[arg(long, conflicts_with = "firmware")]
    pub model: Option<PathBuf>,
    /// Flash this ELF instead of building the board's firmware.
    #[arg(long)]
    pub firmware: Option<PathBuf>,
    /// The core QEMU puts on the emulated board (lm3s6965evb only): m0, m3 or m4.
    #[arg(long)]
    pub core: Option<Core>,
    /// Stay attached after flashing and show the firmware's log (`probe-rs run`) until
    /// Ctrl-C.
    #[arg(long, conflicts_with = "uf2")]
    pub attach: bool,
    /// Pico only: write a UF2 file (with elf2uf2-rs) and copy it to the Pico's RPI-RP2
    /// boot drive instead of using a debug probe.
    #[arg(long)]
    pub uf2: bool,
    /// Where the RPI-RP2 drive is mounted, if not under /media, /run/media or /Volumes.
    #[arg(long, requires = "uf2")]
    pub drive: Option<PathBuf>,
    /// probe-rs's `--probe VID:PID[:SERIAL]`, to choose among several probes.
    #[arg(long, conflicts_with = "uf2")]
    pub probe: Option<String>,
}

/// Runs `tinyvae flash`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let board =
        boards::board(&args.board).with_context(|| format!("unknown board {:?}", args.board))?;
    match board.flashing {
        Flashing::Emulated => emulated(board, args),
        Flashing::Probe { .. } if args.uf2 => uf2(board, args),
        Flashing::Probe { .. } => probe(board, args),
    }
}

/// The emulated board is not flashed: it boots in QEMU, through `tinyvae emulate`'s
/// own code.
fn emulated(board: &Board, args: &Args) -> anyhow::Result<()> {
    ensure!(
        !args.uf2 && !args.attach && args.probe.is_none(),
        "--uf2, --attach and --probe are for real boards; the {} runs in QEMU",
        board.title
    );
    let mut emulate = EmulateArgs::defaults()?;
    emulate.firmware = args.firmware.clone();
    emulate.model = args.model.clone();
    if let Some(core) = args.core {
        emulate.core = core;
    }
    eprintln!(
        "the {} is emulated: booting it in QEMU as `tinyvae emulate` does",
        board.title
    );
    emulate::run(&emulate)
}

/// Checks what only the emulated board may take.
fn real_board_only(board: &Board, args: &Args) -> anyhow::Result<()> {
    ensure!(
        args.core.is_none(),
        "--core picks the emulated board's core; the {} has its own ({})",
        board.title,
        board.target
    );
    Ok(())
}

fn probe(board: &Board, args: &Args) -> anyhow::Result<()> {
    real_board_only(board, args)?;
    let probe_rs = ProbeRs {
        probe: args.probe.clone(),
        verbose: true,
        ..ProbeRs::default()
    };
    let probes = probe_rs.require_probe(board)?;
    eprintln!("debug probes:\n  {}", probes.join("\n  "));
    let elf = firmware(board, args)?;
    if args.attach {
        eprintln!("flashing {} and attaching (Ctrl-C detaches)", elf.display());
        probe_rs.run(board, &elf)?;
        return Ok(());
    }
    eprintln!("flashing {}", elf.display());
    probe_rs.download(board, &elf)?;
    probe_rs.reset(board)?;
    println!("flashed {} onto the {}", elf.display(), board.title);
    eprintln!("try: tinyvae serial --port auto info");
    Ok(())
}

fn uf2(board: &Board, args: &Args) -> anyhow::Result<()> {
    real_board_only(board, args)?;
    ensure!(
        board.uf2,
        "--uf2 is for the Pico; the {} is flashed through its debug probe",
        board.title
    );
    let tool = Elf2Uf2::default();
    tool.check()?;
    let elf = firmware(board, args)?;
    let uf2 = elf.with_extension("uf2");
    tool.convert(&elf, &uf2)?;
    let drive = match &args.drive {
        Some(drive) => {
            ensure!(
                drive.is_dir(),
                "--drive {} is not a folder",
                drive.display()
            );
            Some(drive.clone())
        }
        None => find_uf2_drive(&uf2_mount_roots()),
    };
    match drive {
        Some(drive) => {
            let copy = copy_to_drive(&uf2, &drive)?;
            println!(
                "copied {} to {}: the Pico restarts into the new firmware",
                uf2.display(),
                copy.display()
            );
        }
        None => {
            println!("wrote {}", uf2.display());
            eprintln!("no RPI-RP2 drive is mounted: {BOOTSEL_HINT}");
        }
    }
    Ok(())
}

/// `--firmware`, or the board's firmware built with `--model`.
fn firmware(board: &Board, args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(elf) = &args.firmware {
        ensure!(elf.is_file(), "--firmware {} is not a file", elf.display());
        return Ok(elf.clone());
    }
    let root = workspace_root(&std::env::current_dir()?)?;
    let build = FirmwareBuild {
        model: args.model.clone(),
        verbose: true,
        ..FirmwareBuild::for_board(&root, board)?
    };
    eprintln!("building the firmware in {}", build.dir.display());
    Ok(build.run()?)
}
