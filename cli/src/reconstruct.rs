//! `tinyvae reconstruct`: test images (odd rows) above their reconstructions (even rows).

use std::path::PathBuf;

use anyhow::Result;

use crate::args::{DataArgs, DeviceArgs};
use tinyvae_trainer::tensor::ToTensor;
use tinyvae_trainer::{checkpoint, pictures};

/// Arguments of `tinyvae reconstruct`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Checkpoint.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Number of images.
    #[arg(long, default_value_t = 32)]
    pub n: usize,
    /// Images per row.
    #[arg(long, default_value_t = 8)]
    pub cols: usize,
    /// Pixel scale factor.
    #[arg(long, default_value_t = 3)]
    pub scale: usize,
    /// Output PNG.
    #[arg(long, default_value = "reconstructions.png")]
    pub out: PathBuf,
}

/// Runs `tinyvae reconstruct`.
pub fn run(args: Args) -> Result<()> {
    let device = args.device.device()?;
    let m = checkpoint::load(&args.model, &device)?.model;
    let (w, h) = (m.config.width, m.config.height);
    let mut test = args.data.load_test((w, h), 0)?;
    if let Some(c) = &args.data.normal_class {
        test = test.filter_class(test.class_index(c)?)?;
    }
    let test = test.take(args.n);
    let x = test.to_tensor(&device)?;
    let rec = pictures::reconstruct(&m, &x)?;
    let inputs: Vec<Vec<f32>> = (0..test.len()).map(|i| test.image_f32(i)).collect();
    let cols = args.cols.max(1);
    let mut tiles = Vec::new();
    for start in (0..inputs.len()).step_by(cols) {
        let end = (start + cols).min(inputs.len());
        let pad = cols - (end - start);
        tiles.extend(inputs[start..end].iter().cloned());
        tiles.extend(std::iter::repeat_n(vec![0.0; w * h], pad));
        tiles.extend(rec[start..end].iter().cloned());
        tiles.extend(std::iter::repeat_n(vec![0.0; w * h], pad));
    }
    crate::output::save_unit_grid(&args.out, &tiles, cols, (w, h), args.scale)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
