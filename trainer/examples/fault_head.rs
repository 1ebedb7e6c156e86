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

use anyhow::{anyhow, Result};
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

/// Mahalanobis distances of `features` from a Gaussian fitted on `clean` (covariance
/// with a ridge of 1e-3 of its mean variance).
fn mahalanobis(clean: &[Vec<f32>], features: &[Vec<f32>]) -> Vec<f64> {
    let d = clean[0].len();
    let n = clean.len() as f64;
    let mut mean = vec![0f64; d];
    for f in clean {
        for (m, &v) in mean.iter_mut().zip(f) {
            *m += f64::from(v) / n;
        }
    }
    let mut cov = vec![0f64; d * d];
    for f in clean {
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] += (f64::from(f[i]) - mean[i]) * (f64::from(f[j]) - mean[j]) / n;
            }
        }
    }
    let ridge = 1e-3 * (0..d).map(|i| cov[i * d + i]).sum::<f64>() / d as f64 + 1e-9;
    for i in 0..d {
        cov[i * d + i] += ridge;
    }
    // Cholesky: cov = L L^T.
    let mut l = vec![0f64; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            l[i * d + j] = if i == j {
                (cov[i * d + i] - s).max(1e-12).sqrt()
            } else {
                (cov[i * d + j] - s) / l[j * d + j]
            };
        }
    }
    features
        .iter()
        .map(|f| {
            let mut y = vec![0f64; d];
            let mut total = 0.0;
            for i in 0..d {
                let s: f64 = (0..i).map(|k| l[i * d + k] * y[k]).sum();
                y[i] = (f64::from(f[i]) - mean[i] - s) / l[i * d + i];
                total += y[i] * y[i];
            }
            total.sqrt()
        })
        .collect()
}

/// The head's hidden units and logits as Mahalanobis distances from clean frames
/// (Lee et al. 2018), alone and beside the 16 terms and the head's margin.
fn print_feature_rows(
    scored: &[common::Scored],
    head: &FaultHead,
    train: &tinyvae_datasets::Dataset,
) -> Result<()> {
    let shipped = common::print_shipped_row(scored);
    let margin = scored
        .iter()
        .map(|s| Ok(head.scores(&s.frames)?))
        .collect::<Result<Vec<_>>>()?;
    let with_head = common::with_weighted_extra_term(&shipped, &margin, 1.5);
    println!(
        "| 16 terms + float margin, weight 1.5 | {}",
        common::summary_row(scored, &with_head)
    );
    let per_set = |f: &dyn Fn(&tinyvae_datasets::Dataset) -> Result<Vec<Vec<f32>>>| {
        scored
            .iter()
            .map(|s| f(&s.frames))
            .collect::<Result<Vec<_>>>()
    };
    let hidden = |d: &tinyvae_datasets::Dataset| Ok(head.hidden_features(d)?);
    let logits = |d: &tinyvae_datasets::Dataset| Ok(head.frame_logits(d)?);
    let hidden_sets = per_set(&hidden)?;
    for (what, clean, per_set) in [
        (
            "hidden units, fitted on the training frames",
            hidden(train)?,
            hidden_sets.clone(),
        ),
        (
            "logits, fitted on the training frames",
            logits(train)?,
            per_set(&logits)?,
        ),
        (
            "hidden units, fitted on the fitting frames",
            hidden(&scored[0].frames)?,
            hidden_sets,
        ),
    ] {
        let dist: Vec<Vec<f64>> = per_set.iter().map(|f| mahalanobis(&clean, f)).collect();
        println!(
            "| Mahalanobis, {what}, alone | {}",
            common::summary_row(scored, &dist)
        );
        for weight in [1.0, 1.5] {
            println!(
                "| 16 terms + margin 1.5 + Mahalanobis ({what}), weight {weight} | {}",
                common::summary_row(
                    scored,
                    &common::with_weighted_extra_term(&with_head, &dist, weight)
                )
            );
            println!(
                "| 16 terms + Mahalanobis ({what}) instead of the margin, weight {weight} | {}",
                common::summary_row(
                    scored,
                    &common::with_weighted_extra_term(&shipped, &dist, weight)
                )
            );
        }
    }
    Ok(())
}

/// Rules that combine the terms' standardized values (the 16 terms and the head's
/// margin at weight 1.5), each thresholded at 1% of the fitting frames: the largest
/// (the shipped rule), the log of the sum of their exponentials (the terms are in
/// e-folds of their clean tails, so this is the harmonic mean of their tail
/// probabilities, Wilson 2019), and the sum of the two largest.
fn print_combination_rows(scored: &[common::Scored], head: &FaultHead) -> Result<()> {
    let params = fit(&scored[0].terms, FitOptions::default());
    let margin = scored
        .iter()
        .map(|s| Ok(head.scores(&s.frames)?))
        .collect::<Result<Vec<_>>>()?;
    let (edge, excess) = common::upper_tail(&margin[0]);
    let scale = excess.max(f64::MIN_POSITIVE) / 1.5;
    // Per set, per frame: every term's z (the head's last).
    let zs: Vec<Vec<Vec<f64>>> = scored
        .iter()
        .zip(&margin)
        .map(|(s, m)| {
            s.terms
                .iter()
                .zip(m)
                .map(|(raw, &h)| {
                    let mut z: Vec<f64> = params
                        .terms
                        .iter()
                        .zip(raw)
                        .map(|(t, &r)| tinyvae_shared::fixed::q16_to_f64(t.z(r)))
                        .collect();
                    z.push(((h - edge) / scale).max(0.0));
                    z
                })
                .collect()
        })
        .collect();
    let rule = |f: &dyn Fn(&[f64]) -> f64| -> Vec<Vec<f64>> {
        zs.iter()
            .map(|set| set.iter().map(|z| f(z)).collect())
            .collect()
    };
    println!("| rule | pooled AUROC | false positives | mean recall | kinds below 90% | which |\n|---|---|---|---|---|---|");
    let largest = |z: &[f64]| z.iter().copied().fold(0.0, f64::max);
    println!(
        "| largest | {}",
        common::summary_row(scored, &rule(&largest))
    );
    for t in [4.0, 2.0, 1.0, 0.5] {
        let lse = move |z: &[f64]| t * z.iter().map(|v| (v / t).exp()).sum::<f64>().ln();
        println!(
            "| log-sum-exp, temperature {t} | {}",
            common::summary_row(scored, &rule(&lse))
        );
    }
    let two = |z: &[f64]| {
        let mut v = z.to_vec();
        v.sort_by(|a, b| b.total_cmp(a));
        v[0] + v[1]
    };
    println!(
        "| the two largest | {}",
        common::summary_row(scored, &rule(&two))
    );
    let sum = |z: &[f64]| z.iter().sum::<f64>();
    println!("| the sum | {}", common::summary_row(scored, &rule(&sum)));
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
    let usage =
        "fault_head (train OUT.safetensors [SYNTHETIC COPIES [jitter|plain [EPOCHS]]] | clip HEAD | CHECKPOINT HEAD.safetensors)";
    let arg = |i: usize| {
        std::env::args()
            .nth(i)
            .ok_or_else(|| anyhow!("usage: {usage}"))
    };
    if arg(1)? == "train" {
        let out = arg(2)?;
        let (train, _) =
            tinyvae_datasets::load_train_test(Path::new("data/mnist-10k"), (28, 28), 0)?;
        // Optional: synthetic anomaly slots per turn, faulted copies, `jitter` and
        // epochs (the defaults' otherwise), for measuring heads other than the shipped
        // one.
        let mut params = FaultHeadParams::default();
        if let Some(n) = std::env::args().nth(3) {
            params.synthetic = n.parse().map_err(|_| anyhow!("synthetic slots: {n}"))?;
        }
        if let Some(n) = std::env::args().nth(4) {
            params.copies = n.parse().map_err(|_| anyhow!("copies: {n}"))?;
        }
        if let Some(n) = std::env::args().nth(5) {
            params.jitter = match n.as_str() {
                "jitter" => true,
                "plain" => false,
                _ => return Err(anyhow!("fifth argument {n}: expected jitter or plain")),
            };
        }
        if let Some(n) = std::env::args().nth(6) {
            params.epochs = n.parse().map_err(|_| anyhow!("epochs: {n}"))?;
        }
        println!("{params:?}");
        let head = fault_head::train(&train, &params)?;
        head.save(Path::new(&out))?;
        println!("saved {out}");
        return Ok(());
    }
    if arg(1)? == "synthetic" {
        // A picture of what the synthetic slots show the head: clean frames (odd rows)
        // above the same frames damaged (even rows), drawn as `faulted_copies` draws them.
        let out = arg(2)?;
        let (train, _) =
            tinyvae_datasets::load_train_test(Path::new("data/mnist-10k"), (28, 28), 0)?;
        let frames = train.subset(&(0..64).collect::<Vec<_>>());
        let n = frames.len();
        let mut tiles = Vec::new();
        for row in 0..4 {
            let picked: Vec<usize> = (row * 8..row * 8 + 8).collect();
            for &i in &picked {
                tiles.push(frames.image_u8(i).to_vec());
            }
            for &i in &picked {
                let mut rng =
                    tinyvae_datasets::rng::SeededRng::stream(3, "synthetic-anomaly", i as u64);
                tiles.push(tinyvae_datasets::synthetic::anomaly(
                    frames.image_u8(i),
                    frames.image_u8(tinyvae_datasets::corrupt::other_index(i, n)),
                    28,
                    28,
                    &mut rng,
                ));
            }
        }
        tinyvae_datasets::grid::save_grid(
            Path::new(&out),
            &tiles,
            28,
            28,
            tinyvae_datasets::grid::GridLayout::default(),
        )?;
        println!("wrote {out}");
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
    let layers = common::int8_head(&head, &train)?;
    let splits = common::bound_splits()?;
    if std::env::var("TINYVAE_COMBINE").is_ok() {
        print_combination_rows(&scored, &head)?;
        for seed in 1..splits {
            std::env::set_var("TINYVAE_SPLIT_SEED", seed.to_string());
            let (_, _, scored) = common::score_detect_frames(usage)?;
            println!("\nsplit {seed}:");
            print_combination_rows(&scored, &head)?;
        }
        return Ok(());
    }
    if std::env::var("TINYVAE_HEAD_FEATURES").is_ok() {
        return print_feature_rows(&scored, &head, &train);
    }
    print_table(&scored, &head, &layers)?;
    choose_weight(&scored, &layers)?;
    for seed in 1..splits {
        std::env::set_var("TINYVAE_SPLIT_SEED", seed.to_string());
        let (_, _, scored) = common::score_detect_frames(usage)?;
        println!("\nsplit {seed}:");
        print_table(&scored, &head, &layers)?;
        choose_weight(&scored, &layers)?;
    }
    Ok(())
}
