//! The fault head (`tinyvae_trainer::fault_head`) trained, saved and measured.
//!
//! ```sh
//! # about 19 minutes on 2 cores: the default FaultHeadParams on the 7,996 training frames
//! cargo run --release -p tinyvae-trainer --example fault_head -- train models/fault-head.safetensors
//! # the head beside the shipped sixteen terms, float and int8 (the device's code)
//! cargo run --release -p tinyvae-trainer --example fault_head -- CHECKPOINT HEAD
//! ```
//!
//! The measurement: on the frames of `tinyvae detect` (split 0; `TINYVAE_BOUND_SPLITS=N`
//! adds splits 1 to N - 1), the shipped sixteen terms; the float head's log-odds (the
//! score `cnn_bound` measured), its largest fault logit less the clean one (what the
//! device computes) and the int8 head's (the device's code, on the host) alone and as a
//! 17th term weighted 1, 1.25, 1.5 and 2 (see `common::with_weighted_extra_term`).
//! The int8 head's activation ranges come from 2,000 training frames and a faulted copy
//! of them.

mod common;

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use candle_core::Device;
use tinyvae_datasets::corrupt::corrupt_each_at;
use tinyvae_shared::model::LayerSpec;
use tinyvae_trainer::detector::{fit, fit_seen, FitOptions};
use tinyvae_trainer::fault_head::{self, FaultHead, FaultHeadParams};

/// Rows of one head score: alone and as a 17th term at each weight.
fn print_rows(scored: &[common::Scored], shipped: &[Vec<f64>], head: &[Vec<f64>], what: &str) {
    println!("| {what} alone | {}", common::summary_row(scored, head));
    for weight in [1.0, 1.25, 1.5, 2.0] {
        println!(
            "| 16 terms + {what}, weight {weight} | {}",
            common::summary_row(
                scored,
                &common::with_weighted_extra_term(shipped, head, weight)
            )
        );
    }
}

/// The table on `scored`'s frames.
fn print_table(scored: &[common::Scored], head: &FaultHead, layers: &[LayerSpec; 4]) -> Result<()> {
    let shipped = common::print_shipped_row(scored);
    let per_set = |f: &dyn Fn(&tinyvae_datasets::Dataset) -> Result<Vec<f64>>| {
        scored
            .iter()
            .map(|s| f(&s.frames))
            .collect::<Result<Vec<_>>>()
    };
    let log_odds = per_set(&|d| Ok(head.log_odds(d)?))?;
    let margin = per_set(&|d| Ok(head.scores(d)?))?;
    let int8 = per_set(&|d| Ok(fault_head::int8_scores(layers, d)?))?;
    print_rows(scored, &shipped, &log_odds, "float head, log-odds");
    print_rows(scored, &shipped, &margin, "float head, top margin");
    print_rows(scored, &shipped, &int8, "int8 head, top margin");
    let (mut worst, mut sum, mut n) = (0f64, 0f64, 0usize);
    for (f, q) in margin.iter().flatten().zip(int8.iter().flatten()) {
        worst = worst.max((f - q).abs());
        sum += (f - q).abs();
        n += 1;
    }
    println!(
        "\nint8 against float (top margin, {n} frames): mean |difference| {:.4}, largest {:.4}",
        sum / n as f64,
        worst
    );
    Ok(())
}

/// The head's weight chosen without the judged frames: on the fitting frames (which
/// set the threshold) and faulted copies of them (seed 100), the weight of 1, 1.25,
/// 1.5 and 2 under which the most tuned kinds reach 90% recall at the 1% threshold,
/// then the highest mean recall over the tuned kinds.
fn choose_weight(scored: &[common::Scored], layers: &[LayerSpec; 4]) -> Result<f64> {
    let checkpoint = std::env::args().nth(1).unwrap_or_default();
    let model = tinyvae_trainer::checkpoint::load(Path::new(&checkpoint), &Device::Cpu)
        .map_err(|e| anyhow!("{checkpoint}: {e}"))?
        .model;
    let (train, _) = tinyvae_datasets::load_train_test(Path::new("data/mnist-10k"), (28, 28), 0)?;
    let seen = fit_seen(&train);
    let fitting = &scored[0];
    let mut sets = vec![common::score_frames(
        &model,
        None,
        fitting.frames.clone(),
        &seen,
    )?];
    for kind in fault_head::fault_classes() {
        let frames = corrupt_each_at(&fitting.frames, kind, 1.0, 100);
        sets.push(common::score_frames(&model, Some(kind), frames, &seen)?);
    }
    let shipped = common::scores_with(&sets, &fit(&fitting.terms, FitOptions::default()));
    let head = sets
        .iter()
        .map(|s| Ok(fault_head::int8_scores(layers, &s.frames)?))
        .collect::<Result<Vec<_>>>()?;
    println!("\nweight chosen on the fitting frames and faulted copies of them (tuned kinds):\n| weight | kinds at 90% | mean recall |\n|---|---|---|");
    let mut best = (0usize, 0f64, 1.0);
    for weight in [1.0, 1.25, 1.5, 2.0] {
        let combined = common::with_weighted_extra_term(&shipped, &head, weight);
        let threshold = common::one_percent_threshold(&combined[0]);
        let recalls: Vec<f64> = combined[1..]
            .iter()
            .map(|s| s.iter().filter(|&&v| v > threshold).count() as f64 / s.len() as f64)
            .collect();
        let passing = recalls.iter().filter(|&&r| r >= 0.9).count();
        let mean = recalls.iter().sum::<f64>() / recalls.len() as f64;
        println!(
            "| {weight} | {passing} of {} | {:.1}% |",
            recalls.len(),
            mean * 100.0
        );
        if (passing, mean) > (best.0, best.1) {
            best = (passing, mean, weight);
        }
    }
    println!("chosen: {}", best.2);
    Ok(best.2)
}

fn main() -> Result<()> {
    let usage = "fault_head (train OUT.safetensors | CHECKPOINT HEAD.safetensors)";
    let arg = |i: usize| {
        std::env::args()
            .nth(i)
            .ok_or_else(|| anyhow!("usage: {usage}"))
    };
    if arg(1)? == "train" {
        let out = arg(2)?;
        let (train, _) =
            tinyvae_datasets::load_train_test(Path::new("data/mnist-10k"), (28, 28), 0)?;
        let head = fault_head::train(&train, &FaultHeadParams::default())?;
        head.save(Path::new(&out))?;
        println!("saved {out}");
        return Ok(());
    }
    if arg(1)? == "clip" {
        // Agreement of the int8 head with the float one on training frames (never
        // judged) for each activation range clipped to a fraction of its largest value.
        let head = FaultHead::load(Path::new(&arg(2)?))?;
        let (train, _) =
            tinyvae_datasets::load_train_test(Path::new("data/mnist-10k"), (28, 28), 0)?;
        let calibration = train.subset(&(0..2000).collect::<Vec<_>>());
        let check = train.subset(&(2000..4000).collect::<Vec<_>>());
        let one = FaultHeadParams {
            copies: 1,
            ..FaultHeadParams::default()
        };
        let faulted = fault_head::faulted_copies(&calibration, &one)?;
        let faulted_check = fault_head::faulted_copies(&check, &one)?;
        println!(
            "maxima {:?}",
            fault_head::activation_maxima(&head, &[&calibration, &faulted[0].0])?
        );
        for clip in [
            [1.0, 1.0, 1.0],
            [0.75, 0.75, 0.75],
            [0.5, 0.5, 0.5],
            [0.35, 0.35, 0.35],
            [0.5, 0.5, 1.0],
            [1.0, 0.5, 0.5],
            [0.5, 1.0, 0.5],
        ] {
            let layers = fault_head::quantize_clipped(&head, &[&calibration, &faulted[0].0], clip)?;
            let mut cells = String::new();
            for d in [&check, &faulted_check[0].0] {
                let f = head.scores(d)?;
                let q = fault_head::int8_scores(&layers, d)?;
                let mean =
                    f.iter().zip(&q).map(|(a, b)| (a - b).abs()).sum::<f64>() / f.len() as f64;
                cells += &format!(" {mean:.4} |");
            }
            println!("| {clip:?} |{cells}");
        }
        return Ok(());
    }
    let head_path = arg(2)?;
    let head = FaultHead::load(Path::new(&head_path))?;
    let (_, train, scored) = common::score_detect_frames(usage)?;
    let calibration = train.subset(&(0..2000).collect::<Vec<_>>());
    let faulted = fault_head::faulted_copies(
        &calibration,
        &FaultHeadParams {
            copies: 1,
            ..FaultHeadParams::default()
        },
    )?;
    let layers = fault_head::quantize(&head, &[&calibration, &faulted[0].0])?;
    let splits: u64 = match std::env::var("TINYVAE_BOUND_SPLITS") {
        Err(_) => 1,
        Ok(n) => n
            .parse()
            .map_err(|_| anyhow!("TINYVAE_BOUND_SPLITS={n}: expected a whole number"))?,
    };
    print_table(&scored, &head, &layers)?;
    choose_weight(&scored, &layers)?;
    for seed in 1..splits {
        std::env::set_var("TINYVAE_SPLIT_SEED", seed.to_string());
        let (_, _, scored) = common::score_detect_frames(usage)?;
        println!("\nsplit {seed}:");
        print_table(&scored, &head, &layers)?;
        choose_weight(&scored, &layers)?;
    }
    if splits == 0 {
        bail!("TINYVAE_BOUND_SPLITS=0: expected at least 1");
    }
    Ok(())
}
