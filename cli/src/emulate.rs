//! `tinyvae emulate`: run the firmware on an emulated Stellaris LM3S6965 board in
//! QEMU and expose its UART as a pty that `tinyvae serial --port` (or any terminal
//! program) can open, exactly like a board's `/dev/ttyACM*`.
//!
//! The emulator itself is `tinyvae_link::emulate`; this module is the command-line
//! edge.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use tinyvae_link::emulate::{
    boot, workspace_root, Core, EmulatorConfig, FirmwareBuild, EMULATED_BOARD,
};
use tinyvae_link::info::describe;

/// `tinyvae emulate`: boot the firmware in QEMU and serve its UART on a pty.
#[derive(Debug, Clone, clap::Args)]
pub struct EmulateArgs {
    /// Firmware ELF to run; built from firmware/boards/lm3s6965evb (cargo build
    /// --release) when absent.
    #[arg(long)]
    pub firmware: Option<PathBuf>,
    /// Model to build into the firmware (sets TINYVAE_MODEL for the build).
    #[arg(long, conflicts_with = "firmware")]
    pub model: Option<PathBuf>,
    /// Save a screenshot of the OLED into this folder every --screenshot-interval.
    #[arg(long)]
    pub screenshot_dir: Option<PathBuf>,
    /// Seconds between screenshots.
    #[arg(long, default_value_t = 2.0)]
    pub screenshot_interval: f64,
    /// The core QEMU puts on the board: m0, m3 (the LM3S6965's own) or m4. The firmware
    /// is built for its target; a --firmware ELF must have been built for it.
    #[arg(long, default_value_t = Core::M3)]
    pub core: Core,
    /// The QEMU binary.
    #[arg(long, default_value = "qemu-system-arm")]
    pub qemu: PathBuf,
}

impl EmulateArgs {
    /// The arguments of a bare `tinyvae emulate`, from clap itself so that the
    /// defaults live only in the attributes above (`tinyvae flash --board lm3s6965evb`
    /// starts from them).
    pub fn defaults() -> anyhow::Result<Self> {
        use clap::{Args, FromArgMatches};
        let command = Self::augment_args(clap::Command::new("emulate"));
        Ok(Self::from_arg_matches(
            &command.try_get_matches_from(["emulate"])?,
        )?)
    }
}

/// Runs `tinyvae emulate` until Ctrl-C (or SIGTERM/SIGHUP), then stops QEMU.
pub fn run(args: &EmulateArgs) -> anyhow::Result<()> {
    let elf = match &args.firmware {
        Some(elf) => elf.clone(),
        None => {
            let cwd = std::env::current_dir()?;
            let root = workspace_root(&cwd)?;
            let dir = root.join(EMULATED_BOARD);
            eprintln!("building the firmware in {}", dir.display());
            FirmwareBuild {
                dir,
                target: Some(args.core.target().into()),
                features: Vec::new(),
                model: args.model.clone(),
                target_dir: None,
                verbose: true,
            }
            .run()?
        }
    };
    anyhow::ensure!(
        args.screenshot_interval.is_finite() && args.screenshot_interval > 0.0,
        "--screenshot-interval must be a positive number of seconds"
    );
    if let Some(dir) = &args.screenshot_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C/SIGTERM handler")?;
    }
    let mut config = EmulatorConfig::new(&elf);
    config.qemu = args.qemu.clone();
    config.cpu = Some(args.core.qemu_cpu().into());
    let (mut emulator, client, info) = boot(&config, Duration::from_secs(30))?;
    // Close the pty so that `tinyvae serial` can take it with an exclusive lock. QEMU
    // notices the next opener within about a second; the client's timeouts allow
    // for that.
    drop(client);
    eprintln!("firmware {} running in QEMU", elf.display());
    print!("{}", describe(&info));
    println!("{}", emulator.pty_path().display());
    eprintln!(
        "try: tinyvae serial --port {} info      (Ctrl-C stops the emulator)",
        emulator.pty_path().display()
    );
    let interval = Duration::from_secs_f64(args.screenshot_interval);
    let mut next_shot = Instant::now();
    let mut shot = 0u32;
    while !stop.load(Ordering::SeqCst) {
        emulator.check_alive()?;
        if let Some(dir) = &args.screenshot_dir {
            if Instant::now() >= next_shot {
                let path = dir.join(format!("screen-{shot:05}.png"));
                emulator.screendump(&path)?;
                shot += 1;
                next_shot += interval;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("stopping QEMU");
    Ok(())
}
