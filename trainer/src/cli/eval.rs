//! `tinyvae eval`: likelihood bounds, reconstruction error and anomaly AUROCs on the test split.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use super::{DataArgs, DeviceArgs};
use crate::checkpoint;
use crate::data::corrupt::{corrupt_dataset, Corruption};
use crate::data::Dataset;
use crate::eval::{anomaly_scores, auroc, bounds, recon_error};
use crate::model::{Model, ModelKind};
use crate::train::evaluate;

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
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One-class and corruption AUROCs of `model` on `test` (labels needed for the
/// one-class part; `normal` = the normal class index).
pub fn anomaly_report(
    model: &Model,
    test: &Dataset,
    normal: Option<u32>,
    seed: u64,
) -> Result<serde_json::Value> {
    let device = model.device();
    let mut report = serde_json::Map::new();
    let scores = anomaly_scores(model, &test.to_tensor(device)?)?;
    let clean = match (normal, &test.labels) {
        (Some(c), Some(labels)) => {
            let positive: Vec<bool> = labels.iter().map(|&l| l != c).collect();
            report.insert("one_class_auroc".into(), json!(auroc(&scores, &positive)));
            report.insert(
                "normal_class".into(),
                json!(test.class_names.get(c as usize)),
            );
            test.filter_class(c)?
        }
        _ => test.clone(),
    };
    let clean_scores = if clean.len() == test.len() {
        scores
    } else {
        anomaly_scores(model, &clean.to_tensor(device)?)?
    };
    let (bad, kinds) = corrupt_dataset(&clean, seed);
    let bad_scores = anomaly_scores(model, &bad.to_tensor(device)?)?;
    let mut all = clean_scores.clone();
    all.extend(&bad_scores);
    let mut pos = vec![false; clean_scores.len()];
    pos.extend(vec![true; bad_scores.len()]);
    report.insert("corruption_auroc".into(), json!(auroc(&all, &pos)));
    let mut per = serde_json::Map::new();
    for kind in Corruption::ALL {
        let mut s = clean_scores.clone();
        let mut p = vec![false; s.len()];
        for (i, k) in kinds.iter().enumerate() {
            if *k == kind {
                s.push(bad_scores[i]);
                p.push(true);
            }
        }
        per.insert(kind.name().into(), json!(auroc(&s, &p)));
    }
    report.insert("corruption_auroc_by_kind".into(), per.into());
    Ok(report.into())
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
        let single = evaluate(&model, &x, 1024, 1.0, args.seed)?;
        report.insert("neg_elbo_single_sample".into(), json!(single.loss));
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
    let report = serde_json::Value::Object(report);
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(p) = &args.json {
        checkpoint::write_atomic(p, text.as_bytes())?;
    }
    Ok(())
}
