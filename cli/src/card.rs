//! `tinyvae card`: the model card of an exported model (`tinyvae_trainer::card`).

use std::path::PathBuf;

use anyhow::Result;
use tinyvae_trainer::card::{write_card, CardOptions};

use crate::args::DataArgs;

/// Arguments of `tinyvae card`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// The float checkpoint the model was exported from.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The exported device model (`STEM.safetensors`).
    #[arg(long)]
    pub model: PathBuf,
    /// The training run's output folder (for `loss.png`), if kept.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Output: writes OUT.md and the pictures in OUT/.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the pictures' samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `tinyvae card`.
pub fn run(args: Args) -> Result<()> {
    let card = write_card(&CardOptions {
        checkpoint: args.checkpoint,
        model: args.model,
        run_dir: args.run_dir,
        data: args.data.data,
        out: args.out,
        seed: args.seed,
    })?;
    println!("wrote {}", card.display());
    Ok(())
}
