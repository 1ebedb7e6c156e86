//! `tinyvae infer`: the device's fixed-point inference, run on the host.
//!
//! The code is the `shared` crate's, the same the firmware runs, so every score, verdict
//! and generated pixel here is what the board will produce for the same model and
//! input.

use std::path::PathBuf;

use anyhow::{bail, Result};
use tinyvae_shared::fixed::{q16_from_f64, q16_to_f64};
use tinyvae_shared::pipeline::{self, Workspace};

use crate::args::DataArgs;
use tinyvae_datasets::corrupt::corrupt_dataset;
use tinyvae_datasets::metrics::auroc;
use tinyvae_shared::model_file;

/// Arguments of `tinyvae infer`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Device model (`STEM.safetensors` from `tinyvae export`, or a bare model image).
    #[arg(long)]
    pub model: PathBuf,
    #[command(subcommand)]
    pub action: Action,
}

/// What to run.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum Action {
    /// Score the test images (and corrupted copies of them) for anomaly.
    Score {
        #[command(flatten)]
        data: DataArgs,
        /// Also score a corrupted copy of every image and report the AUROC.
        #[arg(long)]
        corrupt: bool,
        /// Print every image's score.
        #[arg(long)]
        verbose: bool,
        /// Seed of the corruptions.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Decode prior samples into a PNG grid.
    Generate {
        /// Seed of the first sample; sample i uses seed + i.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Number of samples.
        #[arg(long, default_value_t = 16)]
        count: u64,
        /// Standard deviation of the prior sample.
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        /// Grid columns.
        #[arg(long, default_value_t = 8)]
        cols: usize,
        /// Output PNG.
        #[arg(long, default_value = "generated.png")]
        out: PathBuf,
    },
}

/// Runs `tinyvae infer`.
pub fn run(args: Args) -> Result<()> {
    let file = model_file::load(&args.model)?;
    let model = file.model()?;
    let mut ws = Workspace::new();
    println!(
        "model {} ({:#010x}): {}x{} -> {} latent, {} weights, threshold {:.3} nats",
        model.name(),
        model.hash,
        model.input_width,
        model.input_height,
        model.latent,
        model.parameters(),
        q16_to_f64(model.threshold)
    );
    match args.action {
        Action::Score {
            data,
            corrupt,
            verbose,
            seed,
        } => {
            let mut test = data.load_test((model.input_width, model.input_height), seed)?;
            if let Some(limit) = data.limit {
                test = test.take(limit);
            }
            if let Some(class) = &data.normal_class {
                test = test.filter_class(test.class_index(class)?)?;
            }
            let mut sets = vec![("normal", test.clone())];
            if corrupt {
                sets.push(("corrupted", corrupt_dataset(&test, seed).0));
            }
            let mut scores = Vec::new();
            let mut truth = Vec::new();
            for (kind, set) in &sets {
                let mut flagged = 0;
                for i in 0..set.len() {
                    let scored =
                        pipeline::score_image(&model, &mut ws, set.image_u8(i), model.threshold)?;
                    let s = scored.score;
                    flagged += usize::from(s.anomalous);
                    if verbose {
                        println!(
                            "{kind} {i}: score {:.3} (reconstruction {:.3} + KL {:.3}) {}",
                            q16_to_f64(s.score),
                            q16_to_f64(s.reconstruction),
                            q16_to_f64(s.kl),
                            if s.anomalous { "ANOMALY" } else { "normal" }
                        );
                    }
                    scores.push(s.score);
                    truth.push(*kind != "normal");
                }
                println!("{kind}: {} images, {flagged} flagged anomalous", set.len());
            }
            if let Some(a) = auroc(
                &scores.iter().map(|&s| s as f64).collect::<Vec<_>>(),
                &truth,
            ) {
                println!("AUROC normal vs corrupted (fixed point): {a:.4}");
            }
        }
        Action::Generate {
            seed,
            count,
            temperature,
            cols,
            out,
        } => {
            if !(temperature.is_finite() && temperature >= 0.0) {
                bail!("--temperature must be a finite number >= 0, got {temperature}");
            }
            let t = q16_from_f64(temperature);
            let mut tiles = Vec::new();
            for i in 0..count {
                let (_, image) = pipeline::generate(&model, &mut ws, seed.wrapping_add(i), t)?;
                tiles.push(image.iter().map(|&p| p as f32 / 255.0).collect());
            }
            crate::output::save_unit_grid(
                &out,
                &tiles,
                cols,
                (model.input_width, model.input_height),
                3,
            )?;
            println!("wrote {} ({count} samples, seeds {seed}..)", out.display());
        }
    }
    Ok(())
}
