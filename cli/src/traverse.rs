//! `tinyvae traverse`: one latent dimension varied at a time around a test image's code.

use std::path::PathBuf;

use anyhow::Result;

use crate::args::{DataArgs, DeviceArgs};
use tinyvae_trainer::{checkpoint, pictures};

/// Arguments of `tinyvae traverse`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Checkpoint.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Test image whose code is the starting point.
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    /// Latent dimensions to vary, comma separated (default: the first 10).
    #[arg(long, value_delimiter = ',')]
    pub dims: Vec<usize>,
    /// Values run from -range to +range.
    #[arg(long, default_value_t = 3.0)]
    pub range: f32,
    /// Values per dimension.
    #[arg(long, default_value_t = 11)]
    pub steps: usize,
    /// Pixel scale factor.
    #[arg(long, default_value_t = 3)]
    pub scale: usize,
    /// Output PNG.
    #[arg(long, default_value = "traversal.png")]
    pub out: PathBuf,
}

/// Runs `tinyvae traverse`.
pub fn run(args: Args) -> Result<()> {
    let device = args.device.device()?;
    let m = checkpoint::load(&args.model, &device)?.model;
    let (w, h) = (m.config.width, m.config.height);
    let test = args.data.load_test((w, h), 0)?;
    if args.index >= test.len() {
        anyhow::bail!(
            "--index {} but the test set has {} images",
            args.index,
            test.len()
        );
    }
    let dims = if args.dims.is_empty() {
        (0..m.config.latent.min(10)).collect()
    } else {
        args.dims.clone()
    };
    let steps = args.steps.max(2);
    let values: Vec<f32> = (0..steps)
        .map(|i| -args.range + 2.0 * args.range * i as f32 / (steps - 1) as f32)
        .collect();
    let x = test.image_f32(args.index);
    let mut tiles = Vec::new();
    for &d in &dims {
        tiles.extend(pictures::traverse(&m, &x, d, &values)?);
    }
    crate::output::save_unit_grid(&args.out, &tiles, steps, (w, h), args.scale)?;
    eprintln!(
        "wrote {} (one row per dimension: {dims:?})",
        args.out.display()
    );
    Ok(())
}
