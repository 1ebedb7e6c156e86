//! `tinyvae export`: quantize a trained VAE for the device, write the ONNX float
//! models, and report what quantization cost (`tinyvae_trainer::export`).
//!
//! Writes, next to `--out STEM`:
//! * `STEM.safetensors`: the device model (see `tinyvae_shared::model_file`);
//! * `STEM.encoder.onnx`, `STEM.decoder.onnx`: the float networks, checked in tract;
//! * `STEM.quant.json`: the quantization report.
//!
//! Data roles: calibration ranges come from training images; the threshold from half of
//! the normal test images (seeded split); the report from the other half and its
//! corrupted copies (plus the other classes for a one-class model), so no image both
//! sets the threshold and is scored against it.

use std::path::PathBuf;

use anyhow::Result;
use tinyvae_trainer::detector::side_by_side;
use tinyvae_trainer::export::{export, ExportOptions};

use crate::args::DataArgs;

/// Arguments of `tinyvae export`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Trained VAE checkpoint (from `tinyvae train`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Output stem: writes STEM.safetensors, STEM.encoder.onnx, STEM.decoder.onnx, STEM.quant.json.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Model name stored in the device model (at most 24 bytes; default: the stem).
    #[arg(long)]
    pub name: Option<String>,
    /// False-positive rate the anomaly threshold is set at, on held-out normal images.
    #[arg(long, default_value_t = ExportOptions::default().fpr)]
    pub fpr: f64,
    /// Training images used to calibrate activation ranges.
    #[arg(long, default_value_t = ExportOptions::default().calibration_images)]
    pub calibration_images: usize,
    /// Prior samples added to the decoder's calibration (the device also generates).
    #[arg(long, default_value_t = ExportOptions::default().prior_samples)]
    pub prior_samples: usize,
    /// Seed of the data splits, prior samples and corruptions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A fault head to put in the image (the detector's 17th term; train one with the
    /// trainer's `fault_head` example, e.g. models/fault-head.safetensors)
    #[arg(long)]
    pub fault_head: Option<PathBuf>,
    /// The fault head's weight: a larger one gives its term a larger share of the 1%
    /// false positives (the tuned kinds gain, faults the head was not shown lose), or
    /// `auto`: the weight that does best on the detector's fitting frames and faulted
    /// copies of them (the export prints every candidate's outcome either way)
    #[arg(long, default_value = "1.5", value_parser = head_weight, requires = "fault_head")]
    pub head_weight: HeadWeight,
}

/// `--head-weight`: a number, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeadWeight {
    /// This weight.
    Fixed(f64),
    /// The one the fitting frames choose.
    Auto,
}

/// Parses `--head-weight`.
fn head_weight(s: &str) -> Result<HeadWeight, String> {
    if s.trim() == "auto" {
        return Ok(HeadWeight::Auto);
    }
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(HeadWeight::Fixed(v)),
        _ => Err(format!("expected a weight above 0 or `auto`, got {s:?}")),
    }
}

impl Args {
    /// As the library's options.
    pub fn options(&self) -> ExportOptions {
        ExportOptions {
            checkpoint: self.checkpoint.clone(),
            out: self.out.clone(),
            data: self.data.data.clone(),
            normal_class: self.data.normal_class.clone(),
            name: self.name.clone(),
            fpr: self.fpr,
            calibration_images: self.calibration_images,
            prior_samples: self.prior_samples,
            seed: self.seed,
            fault_head: self.fault_head.clone(),
            head_weight: match self.head_weight {
                HeadWeight::Fixed(w) => Some(w),
                HeadWeight::Auto => None,
            },
        }
    }
}

/// Runs the export.
pub fn run(args: Args) -> Result<()> {
    let exported = export(&args.options())?;
    let r = &exported.report;
    println!(
        "quantization report ({} normal, {} anomalous images)",
        r.normal_images, r.anomalous_images
    );
    println!(
        "  AUROC            float {:.4}  fixed {:.4}  drop {:+.4}",
        r.auroc_float, r.auroc_fixed, r.auroc_drop
    );
    println!(
        "  reconstruction   float {:.3}  fixed {:.3} nats",
        r.reconstruction_float, r.reconstruction_fixed
    );
    println!(
        "  KL               float {:.3}  fixed {:.3} nats",
        r.kl_float, r.kl_fixed
    );
    println!("  max |score diff| {:.3} nats", r.max_score_error);
    println!(
        "  threshold        float {:.3}  fixed {:.3} nats",
        r.threshold_float, r.threshold_fixed
    );
    println!(
        "  verdicts flipped {} ({:.2}% agree)",
        r.decisions_flipped,
        100.0 * r.decision_agreement
    );
    for l in &r.layers {
        println!(
            "  {:<10} {:<12} max error {:.5} ({:.2} steps)",
            l.layer, l.shape, l.max_abs_error, l.max_error_steps
        );
    }
    if let Some(choice) = &exported.head_weight {
        println!(
            "fault head weight on the detector's fitting frames and faulted copies of them (tuned kinds; the image's: {}):",
            match args.head_weight {
                HeadWeight::Fixed(w) => format!("{w}, given"),
                HeadWeight::Auto => format!("{}, chosen", choice.weight),
            }
        );
        print!("{}", choice.markdown());
    }
    if let Some((float, device)) = &exported.faults {
        println!("fault detector per fault kind (tinyvae detect), float beside device:");
        print!("{}", side_by_side(float, device));
    }
    for f in &exported.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
