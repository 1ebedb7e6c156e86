//! `tinyvae sample`: a grid of images decoded from the prior.

use std::path::PathBuf;

use anyhow::Result;

use crate::args::DeviceArgs;
use tinyvae_trainer::{checkpoint, pictures};

/// Arguments of `tinyvae sample`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Checkpoint (a VAE; an AE decodes prior samples too, usually badly).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Number of samples.
    #[arg(long, default_value_t = 64)]
    pub n: usize,
    /// Grid columns.
    #[arg(long, default_value_t = 8)]
    pub cols: usize,
    /// Pixel scale factor.
    #[arg(long, default_value_t = 3)]
    pub scale: usize,
    /// Seed of the latent draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output PNG.
    #[arg(long, default_value = "samples.png")]
    pub out: PathBuf,
}

/// Runs `tinyvae sample`.
pub fn run(args: Args) -> Result<()> {
    let device = args.device.device()?;
    let m = checkpoint::load(&args.model, &device)?.model;
    let tiles = pictures::sample(&m, args.n, args.seed)?;
    crate::output::save_unit_grid(
        &args.out,
        &tiles,
        args.cols,
        (m.config.width, m.config.height),
        args.scale,
    )?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
