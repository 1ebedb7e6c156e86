//! `tinyvae interpolate`: walks in latent space between pairs of test images,
//! one row per (pair, model), so a VAE and an AE can be compared side by side.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::args::{DataArgs, DeviceArgs};
use tinyvae_datasets::rng::SeededRng;
use tinyvae_trainer::{checkpoint, pictures};

/// Arguments of `tinyvae interpolate`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Checkpoints; repeat to compare models (e.g. --model vae --model ae).
    #[arg(long, required = true)]
    pub model: Vec<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Number of image pairs (drawn at random, different labels when labelled).
    #[arg(long, default_value_t = 4)]
    pub pairs: usize,
    /// Images per walk, ends included.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Seed choosing the pairs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Pixel scale factor.
    #[arg(long, default_value_t = 3)]
    pub scale: usize,
    /// Output PNG.
    #[arg(long, default_value = "interpolation.png")]
    pub out: PathBuf,
}

/// Runs `tinyvae interpolate`.
pub fn run(args: Args) -> Result<()> {
    let device = args.device.device()?;
    let models = args
        .model
        .iter()
        .map(|p| Ok(checkpoint::load(p, &device)?.model))
        .collect::<Result<Vec<_>>>()?;
    let (w, h) = (models[0].config.width, models[0].config.height);
    if models
        .iter()
        .any(|m| (m.config.width, m.config.height) != (w, h))
    {
        bail!("the models have different input sizes");
    }
    let test = args.data.load_test((w, h), args.seed)?;
    if test.len() < 2 {
        bail!("need at least two test images");
    }
    let mut rng = SeededRng::stream(args.seed, "interpolate", 0);
    let mut tiles = Vec::new();
    for _ in 0..args.pairs {
        let a = rng.below(test.len());
        let mut b = rng.below(test.len());
        for _ in 0..100 {
            if b != a && (test.labels.is_none() || test.label(a) != test.label(b)) {
                break;
            }
            b = rng.below(test.len());
        }
        for m in &models {
            tiles.extend(pictures::interpolate(
                m,
                &test.image_f32(a),
                &test.image_f32(b),
                args.steps,
            )?);
        }
    }
    crate::output::save_unit_grid(&args.out, &tiles, args.steps.max(2), (w, h), args.scale)?;
    eprintln!(
        "wrote {} (rows: for each pair, one row per model in order: {})",
        args.out.display(),
        args.model
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
