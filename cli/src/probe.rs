//! `tinyvae probe`: how well a frozen encoder's codes classify digits with few labels,
//! beside raw pixels and PCA of the same width, with Kingma et al.'s semi-supervised
//! MNIST figure printed alongside.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::json;

use crate::args::{DataArgs, DeviceArgs};
use tinyvae_trainer::checkpoint;
use tinyvae_trainer::probe::{probe_model, LogisticOptions, ProbeOptions, ProbeReport};

/// M1+TSVM test error (%) with 100 labels on MNIST (50,000 training images), and its
/// standard deviation: Kingma, Rezende, Mohamed and Welling, "Semi-supervised learning
/// with deep generative models", NeurIPS 2014, Table 1.
pub const KINGMA_M1_TSVM_100: (f64, f64) = (11.82, 0.25);

/// Arguments of `tinyvae probe`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Checkpoint whose encoder gives the features (VAE: mu; AE: the code).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Label budgets, comma separated: numbers of labelled training images (class
    /// balanced, seeded) or "all".
    #[arg(long, value_delimiter = ',', default_value = "100,1000,all", value_parser = label_budget)]
    pub labels: Vec<usize>,
    /// Neighbours of the kNN classifier.
    #[arg(long, default_value_t = 5, value_parser = crate::args::at_least_one)]
    pub k: usize,
    /// L2 weight of the logistic regression.
    #[arg(long, default_value_t = LogisticOptions::default().l2)]
    pub l2: f64,
    /// Gradient steps of the logistic regression.
    #[arg(long, default_value_t = LogisticOptions::default().iterations, value_parser = crate::args::at_least_one)]
    pub iterations: usize,
    /// Seed of the labelled subsets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the table as Markdown here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Parses one `--labels` entry: a count of at least 1, or "all".
fn label_budget(s: &str) -> Result<usize, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(usize::MAX);
    }
    crate::args::at_least_one(s).map_err(|e| format!("{e}, or \"all\""))
}

/// Runs `tinyvae probe`.
pub fn run(args: Args) -> Result<()> {
    if !(args.l2.is_finite() && args.l2 >= 0.0) {
        bail!("--l2 must be a finite number >= 0, got {}", args.l2);
    }
    let device = args.device.device()?;
    let loaded = checkpoint::load(&args.model, &device)?;
    let (mut train, test) = args.data.load_train_test(0)?;
    if let Some(n) = args.data.limit {
        train = train.take(n);
    }
    let opts = ProbeOptions {
        labels: args.labels.clone(),
        k: args.k,
        logistic: LogisticOptions {
            l2: args.l2,
            iterations: args.iterations,
        },
        seed: args.seed,
    };
    let report = probe_model(&loaded.model, &train, &test, &opts)?;
    let md = markdown(&report, &args.model.display().to_string());
    println!("{md}");
    if let Some(p) = &args.markdown {
        crate::output::write_file(p, md.as_bytes())?;
    }
    if let Some(p) = &args.json {
        let j = json!({
            "model": args.model.display().to_string(),
            "report": report,
            "kingma_2014_m1_tsvm_100_labels": {"test_error_percent": KINGMA_M1_TSVM_100.0,
                "std": KINGMA_M1_TSVM_100.1, "train_images": 50000},
        });
        crate::output::write_file(p, serde_json::to_string_pretty(&j)?.as_bytes())?;
    }
    Ok(())
}

/// The test-error table: one row per feature set and classifier, one column per label
/// budget, Kingma et al.'s figure as a last row.
fn markdown(r: &ProbeReport, model: &str) -> String {
    let mut budgets: Vec<usize> = r.results.iter().map(|x| x.labels).collect();
    budgets.dedup();
    let head = |n: &usize| {
        if *n == r.train_images {
            format!("all {n} labels")
        } else {
            format!("{n} labels")
        }
    };
    let mut md = format!(
        "Test error (%) on {} test images; labels drawn class-balanced from {} training images ({model}).\n\n| features | width | classifier | {} |\n|---|---|---|{}\n",
        r.test_images,
        r.train_images,
        budgets.iter().map(head).collect::<Vec<_>>().join(" | "),
        "---|".repeat(budgets.len())
    );
    let mut rows: Vec<(String, usize, String)> = Vec::new();
    for x in &r.results {
        let key = (x.features.clone(), x.width, x.classifier.clone());
        if !rows.contains(&key) {
            rows.push(key);
        }
    }
    for (f, w, c) in &rows {
        let cells: Vec<String> = budgets
            .iter()
            .map(|b| {
                r.results
                    .iter()
                    .find(|x| &x.features == f && &x.classifier == c && x.labels == *b)
                    .map_or("-".into(), |x| format!("{:.2}", 100.0 * x.test_error))
            })
            .collect();
        let c = if c == "knn" {
            format!("kNN (k = {})", r.options.k)
        } else {
            "logistic (L2)".into()
        };
        md += &format!("| {f} | {w} | {c} | {} |\n", cells.join(" | "));
    }
    let (e, sd) = KINGMA_M1_TSVM_100;
    let cells: Vec<String> = budgets
        .iter()
        .map(|&b| {
            if b == 100 {
                format!("{e:.2} (± {sd:.2})")
            } else {
                "-".into()
            }
        })
        .collect();
    md += &format!(
        "| Kingma et al. 2014, M1 + TSVM (50,000 training images, Table 1) | 50 | TSVM | {} |\n",
        cells.join(" | ")
    );
    md
}
