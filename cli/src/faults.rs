//! `tinyvae faults`: every simulated sensor fault (`tinyvae_datasets::corrupt`) on a
//! few test digits, as a picture (see `tinyvae_trainer::fault_gallery`), and the kinds
//! as a markdown table.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::args::DataArgs;
use tinyvae_trainer::fault_gallery::{gallery, kinds_markdown, save_gallery, GalleryOptions};

/// Arguments of `tinyvae faults`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    /// Seed of the faults (the same draws at every severity).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Severities of the faulted rows, comma separated: 1 is each kind's default (what
    /// the table describes), 0 no fault, 2 twice as strong (see `Corruption::apply_at`
    /// for how each kind scales).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1",
        value_parser = severity
    )]
    pub severities: Vec<f64>,
    /// Test digits shown (the first of the test split), one clean row and one row per
    /// severity each.
    #[arg(long, default_value_t = 4, value_parser = crate::args::at_least_one)]
    pub digits: usize,
    /// Pixel scale factor of the images.
    #[arg(long, default_value_t = 3, value_parser = crate::args::at_least_one)]
    pub scale: usize,
    /// Output PNG: one column per fault kind, grouped by family (held-out kinds
    /// marked *); per digit, the clean digit then its faulted copies.
    #[arg(long, default_value = "faults.png")]
    pub out: PathBuf,
}

/// Parses a severity: a finite number, 0 or more.
fn severity(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "expected a severity of 0 or more (1 = default), got {s:?}"
        )),
    }
}

/// Runs `tinyvae faults`.
pub fn run(args: Args) -> Result<()> {
    let size = (args.data.width, args.data.height);
    let test = args.data.load_test_selected(size, args.seed)?;
    let opts = GalleryOptions {
        seed: args.seed,
        digits: args.digits,
        severities: args.severities.clone(),
    };
    let g = gallery(&test, &opts)?;
    save_gallery(&args.out, &g, args.scale)
        .with_context(|| format!("drawing {}", args.out.display()))?;
    print!("{}", kinds_markdown());
    eprintln!(
        "wrote {} ({} kinds; {} digits, each clean then at severity {})",
        args.out.display(),
        g.kinds.len(),
        g.rows.len() / g.rows_per_digit,
        args.severities
            .iter()
            .map(|s| format!("x{s}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
