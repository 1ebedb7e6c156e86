//! `tinyvae demo`: the whole system on the emulated board (`tinyvae_link::demo`).

use std::path::PathBuf;

use anyhow::Result;
use tinyvae_link::demo::{self, DemoOptions};

/// Arguments of `tinyvae demo`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Device model to build into the firmware.
    #[arg(long, default_value_os_t = DemoOptions::default().model)]
    pub model: PathBuf,
    /// The digits to stream: an IDX folder or file, or an image folder (its test split).
    #[arg(long, default_value_os_t = DemoOptions::default().data)]
    pub data: PathBuf,
    /// Test digits to stream (each also sent once with a sensor fault).
    #[arg(long, default_value_t = DemoOptions::default().images)]
    pub images: usize,
    /// Samples to generate on the device.
    #[arg(long, default_value_t = DemoOptions::default().samples)]
    pub samples: u64,
    /// Folder for the screenshots and samples.
    #[arg(long, default_value_os_t = DemoOptions::default().out)]
    pub out: PathBuf,
    /// Seed of the faults and of the device's samples.
    #[arg(long, default_value_t = DemoOptions::default().seed)]
    pub seed: u64,
}

/// Runs the demo, its table on stdout.
pub fn run(args: Args) -> Result<()> {
    let options = DemoOptions {
        model: args.model,
        data: args.data,
        images: args.images,
        samples: args.samples,
        out: args.out,
        seed: args.seed,
        verbose_build: true,
    };
    demo::run(&options, &mut std::io::stdout().lock())?;
    Ok(())
}
