//! `tinyvae latent-map`: the test set's codes as a scatter coloured by digit above the
//! decoder's output over a grid of the same plane, one column per model (a VAE beside
//! an AE shows the AE's holes).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::args::{DataArgs, DeviceArgs};
use tinyvae_trainer::checkpoint;
use tinyvae_trainer::latent_map::{draw_latent_maps, latent_map, LatentMapOptions};

/// Arguments of `tinyvae latent-map`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Checkpoints; repeat to put models side by side (e.g. --model vae --model ae).
    #[arg(long, required = true)]
    pub model: Vec<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Grid points a side of the decoded manifold (at least 2).
    #[arg(long, default_value_t = LatentMapOptions::default().grid)]
    pub grid: usize,
    /// Show latents wider than 2 in the first two principal components of their codes.
    #[arg(long)]
    pub project: bool,
    /// Output PNG.
    #[arg(long, default_value = "latent-map.png")]
    pub out: PathBuf,
}

/// Runs `tinyvae latent-map`.
pub fn run(args: Args) -> Result<()> {
    if args.grid < 2 {
        bail!("--grid must be at least 2, got {}", args.grid);
    }
    let device = args.device.device()?;
    let opts = LatentMapOptions {
        grid: args.grid,
        project: args.project,
    };
    let mut maps = Vec::new();
    let mut class_names = Vec::new();
    for path in &args.model {
        let m = checkpoint::load(path, &device)?.model;
        let mut test = args.data.load_test((m.config.width, m.config.height), 0)?;
        if let Some(n) = args.data.limit {
            test = test.take(n);
        }
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        let title = format!(
            "{} {}-{}-{} ({name})",
            m.config.kind.to_string().to_uppercase(),
            m.config.width * m.config.height,
            m.config
                .hidden
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("-"),
            m.config.latent
        );
        let map = latent_map(&m, &test, &opts, &title)
            .with_context(|| format!("--model {}", path.display()))?;
        class_names = test.class_names.clone();
        maps.push(map);
    }
    draw_latent_maps(&args.out, &maps, &class_names)?;
    eprintln!(
        "wrote {} (one column per model: {})",
        args.out.display(),
        args.model
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
