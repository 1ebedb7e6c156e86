//! `tinyvae eval`: likelihood bounds, reconstruction error and anomaly AUROCs on the test split.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;

use crate::args::{DataArgs, DeviceArgs};
use tinyvae_shared::detect::Seen;
use tinyvae_shared::model_file;
use tinyvae_trainer::checkpoint;
use tinyvae_trainer::detector::{fault_report, fit_seen, side_by_side, ReportOptions, TermSource};
use tinyvae_trainer::eval::{anomaly_report, bounds, recon_error};
use tinyvae_trainer::model::ModelKind;
use tinyvae_trainer::tensor::ToTensor;
use tinyvae_trainer::train::evaluate;

/// Arguments of `tinyvae eval`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Checkpoint to evaluate.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Importance samples per image for the NLL estimate (e.g. 5000).
    #[arg(long, default_value_t = 1000)]
    pub k: usize,
    /// Seed of the sampling noise and the corruptions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Noise draws per image for the Monte Carlo ELBO estimate `neg_elbo_mc` (L; at
    /// least 1), beside the single-draw `neg_elbo_single_sample`.
    #[arg(long, default_value_t = 1, value_name = "L", value_parser = crate::args::at_least_one)]
    pub mc_samples: usize,
    /// The device model exported from this checkpoint: the fault detector's per-kind
    /// report (`faults`) then has its device twin beside the float model.
    #[arg(long)]
    pub device_model: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `tinyvae eval`.
pub fn run(args: Args) -> Result<()> {
    let device = args.device.device()?;
    let loaded = checkpoint::load(&args.model, &device)?;
    let model = loaded.model;
    let cfg = model.config.clone();
    let mut test = args.data.load_test((cfg.width, cfg.height), args.seed)?;
    if let Some(n) = args.data.limit {
        test = test.take(n);
    }
    let x = test.to_tensor(&device)?;
    let mut report = serde_json::Map::new();
    report.insert("model".into(), json!(args.model.display().to_string()));
    report.insert("kind".into(), json!(cfg.kind));
    report.insert("test_images".into(), json!(test.len()));
    if cfg.kind == ModelKind::Vae {
        let single = evaluate(&model, &x, 1024, 1.0, args.seed, 1)?;
        report.insert("neg_elbo_single_sample".into(), json!(single.loss));
        let mc = if args.mc_samples == 1 {
            single
        } else {
            evaluate(&model, &x, 1024, 1.0, args.seed, args.mc_samples)?
        };
        report.insert("mc_samples".into(), json!(args.mc_samples));
        report.insert("neg_elbo_mc".into(), json!(mc.loss));
        let t = std::time::Instant::now();
        let b = bounds(&model, &x, args.k, args.seed)?;
        let n = b.nll.len().max(1) as f64;
        report.insert("k".into(), json!(args.k));
        report.insert("neg_elbo".into(), json!(b.neg_elbo.iter().sum::<f64>() / n));
        report.insert("nll_iwae".into(), json!(b.nll.iter().sum::<f64>() / n));
        report.insert("bound_seconds".into(), json!(t.elapsed().as_secs_f64()));
    }
    report.insert("reconstruction".into(), json!(recon_error(&model, &x)?));
    let normal_name = args
        .data
        .normal_class
        .clone()
        .or(loaded.meta.data.normal_class.clone());
    let normal = normal_name.map(|c| test.class_index(&c)).transpose()?;
    if let serde_json::Value::Object(a) = anomaly_report(&model, &test, normal, args.seed)? {
        report.extend(a);
    }
    // The fault detector per kind, on the normal test images: float, and with
    // --device-model the device twin beside it (the table goes to stderr; stdout stays
    // JSON).
    let clean = match normal {
        Some(c) => test.filter_class(c)?,
        None => test.clone(),
    };
    let options = ReportOptions::default();
    let device_file = args
        .device_model
        .as_ref()
        .map(|path| model_file::load(path).map(|file| (path, file)))
        .transpose()?;
    let device_model = device_file
        .as_ref()
        .map(|(_, file)| file.model())
        .transpose()?;
    // The float side's `unseen` term counts against the device model's set, or against
    // one fitted on the normal training images as the exporter would.
    let fitted_seen;
    let seen = match &device_model {
        Some(m) => m.seen(),
        None => {
            let (train, _) = args.data.load_train_test(args.seed)?;
            let train = match normal {
                Some(c) => train.filter_class(c)?,
                None => train,
            };
            fitted_seen = fit_seen(&train);
            Seen::new(&fitted_seen)
        }
    };
    // A head in the device model counts on the float side too (its int8 head: the float
    // head is not in the device file), so the columns differ by the VAE's quantization.
    let float_source = match &device_model {
        Some(device) => TermSource::FloatWithDeviceHead(&model, seen, device),
        None => TermSource::Float(&model, seen),
    };
    let float = fault_report(&float_source, &clean, args.seed, options)?;
    let mut faults = serde_json::Map::new();
    match (&device_file, &device_model) {
        (Some((path, _)), Some(device_model)) => {
            let device = fault_report(
                &TermSource::Device(device_model),
                &clean,
                args.seed,
                options,
            )
            .with_context(|| format!("fault report of {}", path.display()))?;
            eprint!("{}", side_by_side(&float, &device));
            faults.insert("device".into(), json!(device));
        }
        _ => eprint!("{}", float.markdown()),
    }
    faults.insert("float".into(), json!(float));
    report.insert("faults".into(), faults.into());
    let report = serde_json::Value::Object(report);
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(p) = &args.json {
        crate::output::write_file(p, text.as_bytes())?;
    }
    Ok(())
}
