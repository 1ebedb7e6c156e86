//! `tinyvae detect`: the fault detector (`tinyvae_shared::detect`) fitted on half of the
//! clean test frames and reported, on the device twin, per fault kind against the
//! other half (`tinyvae_trainer::detector::fault_report`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use tinyvae_shared::model_file;
use tinyvae_trainer::checkpoint;
use tinyvae_trainer::detector::{
    calibration_report, fault_report, side_by_side, FitOptions, ReportOptions, SplitSummary,
    TermSource,
};
use tinyvae_trainer::fault_gallery::save_gallery;

use crate::args::DataArgs;

/// Arguments of `tinyvae detect`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Device model (`STEM.safetensors` from `tinyvae export`, or a bare model image).
    #[arg(long)]
    pub model: PathBuf,
    /// The float checkpoint the device model was exported from: its report is printed
    /// beside the device's.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Seed of the clean split and of the faults.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where each term's tail starts: its edge is this quantile of the clean frames and
    /// its scale their mean excess beyond it, in (0.5, 1).
    #[arg(long, default_value_t = FitOptions::default().tail, value_parser = open_quantile)]
    pub tail: f64,
    /// False-positive rate the threshold is set at on the fitting frames, in (0, 1).
    #[arg(long, default_value_t = 0.01, value_parser = open_fraction)]
    pub fpr: f64,
    /// Severity of the faults scored: 1 is each kind's default (see `tinyvae faults`),
    /// 0.5 half as strong, 2 twice.
    #[arg(long, default_value_t = 1.0, value_parser = positive)]
    pub severity: f64,
    /// Also write the report (fitted parameters included) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also calibrate on this many clean frames the way the device's `Calibrate`
    /// request does, and compare with the host's fit on the same frames.
    #[arg(long, value_parser = clap::value_parser!(u16).range(4..))]
    pub calibrate: Option<u16>,
    /// Also draw each kind's lowest-scored faulted frames (the misses) as a PNG here.
    #[arg(long)]
    pub misses: Option<PathBuf>,
    /// Also report the device model on this many seeded splits (`--seed` and the next
    /// ones; each a new split of the clean frames into fitting and judged halves, and
    /// new faults): per kind, the recall on each, its mean and range, and the false
    /// positives likewise. One split's numbers move by several points with the split.
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=100))]
    pub splits: Option<u64>,
}

/// Parses a number strictly between `lo` and 1.
fn between(s: &str, lo: f64) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > lo && v < 1.0 => Ok(v),
        _ => Err(format!("expected a number between {lo} and 1, got {s:?}")),
    }
}

/// A finite severity above 0.
fn positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "expected a severity above 0 (1 = default), got {s:?}"
        )),
    }
}

/// A quantile in (0.5, 1).
fn open_quantile(s: &str) -> Result<f64, String> {
    between(s, 0.5)
}

/// A fraction in (0, 1).
fn open_fraction(s: &str) -> Result<f64, String> {
    between(s, 0.0)
}

/// Runs `tinyvae detect`.
pub fn run(args: Args) -> Result<()> {
    let file = model_file::load(&args.model)?;
    let model = file.model()?;
    let size = (model.input_width, model.input_height);
    let clean = args.data.load_test_selected(size, args.seed)?;
    let fit = FitOptions {
        tail: args.tail,
        fpr: args.fpr,
        ..FitOptions::default()
    };
    let options = ReportOptions {
        fit,
        severity: args.severity,
    };
    let report = fault_report(&TermSource::Device(&model), &clean, args.seed, options)
        .with_context(|| format!("fault report of {}", args.model.display()))?;
    match &args.checkpoint {
        Some(path) => {
            let float = checkpoint::load(path, &Device::Cpu)?.model;
            // The float VAE beside the device's; a head in the device model is its own
            // int8 head on both sides (the float head is not in the device file).
            let float_report = fault_report(
                &TermSource::FloatWithDeviceHead(&float, model.seen(), &model),
                &clean,
                args.seed,
                options,
            )
            .with_context(|| format!("fault report of {}", path.display()))?;
            print!("{}", side_by_side(&float_report, &report));
        }
        None => print!("{}", report.markdown()),
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(frames) = args.calibrate {
        let cal = calibration_report(&TermSource::Device(&model), &clean, args.seed, frames, fit)
            .with_context(|| format!("calibration report of {}", args.model.display()))?;
        print!("\n{}", cal.markdown());
    }
    if let Some(n) = args.splits {
        let seeds: Vec<u64> = (0..n).map(|i| args.seed.wrapping_add(i)).collect();
        let mut reports = vec![report.clone()];
        for &seed in &seeds[1..] {
            reports.push(
                fault_report(&TermSource::Device(&model), &clean, seed, options).with_context(
                    || format!("fault report of {}, seed {seed}", args.model.display()),
                )?,
            );
        }
        print!("\n{}", SplitSummary::new(&seeds, &reports).markdown());
    }
    if let Some(path) = &args.misses {
        save_gallery(path, &report.misses(), 3)
            .with_context(|| format!("drawing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
