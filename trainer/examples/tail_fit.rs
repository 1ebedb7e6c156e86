//! Standardizing each detector term by its clean tail rather than by one quantile: the
//! measurement behind BENCHMARKS.md's "Standardizing by the tail" table (issue #12),
//! kept so that the choice can be repeated.
//!
//! Until protocol 5 each term was `(raw - median) / (q99 - median)` per side (whole raw
//! units, at least [`Term::min_scale`]), and a frame's score the largest. A term whose
//! clean values have a long tail then reaches high values on clean frames as often as
//! another term's faults do, and the largest-term score mixes them up. The fit now
//! (`tinyvae_trainer::detector::fit`) treats each side of each term as a tail (peaks
//! over threshold, Pickands 1975): its edge is the clean `q` quantile and its scale the
//! mean excess beyond it, so `z` counts e-folds of tail probability beyond `1 - q` on
//! every term alike. This prints the old rule beside the tails at several `q`, every
//! one in the device's fixed point, on the float model of a checkpoint
//! (`TermSource::Float`; the split and faults of `tinyvae detect`), each threshold at
//! 1% of the fitting frames.
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example tail_fit -- CHECKPOINT [Q ...]
//! ```

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use candle_core::Device;
use tinyvae_datasets::corrupt::{corrupt_each_at, Corruption};
use tinyvae_shared::detect::{scale_from_units, DetectorParams, RawTerms, Seen, Term, TermParams};
use tinyvae_shared::fixed::q16_to_f64;
use tinyvae_trainer::detector::{fit, fit_seen, two_class_auroc, FitOptions, TermSource};

/// The fit before protocol 5: edges at the median, scales to the 99% (and 1%) quantile
/// in whole raw units, at least the term's smallest scale.
fn fit_centred_q99(clean: &[RawTerms]) -> DetectorParams {
    let mut params = DetectorParams::default();
    for term in Term::ALL {
        let mut v: Vec<i32> = clean.iter().map(|r| r[term as usize]).collect();
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        let (centre, floor) = (at(0.5), term.min_scale());
        let high = at(0.99).saturating_sub(centre).max(floor);
        let low = if term.two_sided() {
            centre.saturating_sub(at(0.01)).max(floor)
        } else {
            0
        };
        params.terms[term as usize] =
            TermParams::centred(centre, scale_from_units(high), scale_from_units(low));
    }
    params
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let checkpoint = args
        .get(1)
        .ok_or_else(|| anyhow!("usage: tail_fit CHECKPOINT [Q ...]"))?;
    let quantiles: Vec<f64> = if args.len() > 2 {
        args[2..]
            .iter()
            .map(|s| {
                s.parse()
                    .with_context(|| format!("Q: expected a quantile in (0, 1), got {s:?}"))
            })
            .collect::<Result<_>>()?
    } else {
        vec![0.8, 0.9, 0.95]
    };
    let model = tinyvae_trainer::checkpoint::load(Path::new(checkpoint), &Device::Cpu)
        .map_err(|e| anyhow!("{checkpoint}: {e}"))?
        .model;
    let (train, test) =
        tinyvae_datasets::load_train_test(Path::new("data/mnist-10k"), (28, 28), 0)?;
    // The `unseen` term's set, fitted on the training frames as `tinyvae export` does.
    let seen = fit_seen(&train);
    let source = TermSource::Float(&model, Seen::new(&seen));
    let seed = 0;
    let (fit_set, eval_set) = test.split(0.5, seed);
    let fitting = source.terms(&fit_set)?;
    let clean = source.terms(&eval_set)?;
    let faulted: Vec<(Corruption, Vec<RawTerms>)> = Corruption::ALL
        .iter()
        .map(|&k| Ok((k, source.terms(&corrupt_each_at(&eval_set, k, 1.0, seed))?)))
        .collect::<Result<_>>()?;

    let mut scorers = vec![(
        "median and q99 (before)".to_string(),
        fit_centred_q99(&fitting),
    )];
    for tail in quantiles {
        let options = FitOptions {
            tail,
            ..FitOptions::default()
        };
        scorers.push((
            format!("tails above q{}", tail * 100.0),
            fit(&fitting, options),
        ));
    }
    let score = |p: &DetectorParams, r: &RawTerms| q16_to_f64(p.detect(r).score);
    println!("{checkpoint}: AUROC (recall at 1% false positives on the fitting frames)\n");
    print!("| fault |");
    for (name, _) in &scorers {
        print!(" {name} |");
    }
    println!("\n|---|{}", "---|".repeat(scorers.len()));
    let mut summary = Vec::new();
    let mut rows: Vec<String> = Corruption::ALL
        .iter()
        .map(|k| format!("| {}{} |", k.name(), if k.held_out() { " *" } else { "" }))
        .collect();
    for (_, params) in &scorers {
        let mut fit_scores: Vec<f64> = fitting.iter().map(|r| score(params, r)).collect();
        fit_scores.sort_by(f64::total_cmp);
        let threshold = fit_scores[(fit_scores.len() as f64 * 0.99) as usize];
        let clean_scores: Vec<f64> = clean.iter().map(|r| score(params, r)).collect();
        let above =
            |s: &[f64]| s.iter().filter(|&&v| v > threshold).count() as f64 / s.len() as f64;
        let (mut all, mut tuned, mut held) = (vec![], vec![], vec![]);
        let mut worst = (f64::MAX, 1.0f64);
        for ((kind, terms), row) in faulted.iter().zip(rows.iter_mut()) {
            let s: Vec<f64> = terms.iter().map(|r| score(params, r)).collect();
            let a = two_class_auroc(&clean_scores, &s);
            worst = (worst.0.min(a), worst.1.min(above(&s)));
            row.push_str(&format!(" {a:.3} ({:.1}%) |", above(&s) * 100.0));
            if kind.held_out() {
                held.extend(&s);
            } else {
                tuned.extend(&s);
            }
            all.extend(s);
        }
        summary.push(format!(
            "pooled {:.4} (tuned {:.4}, held out {:.4}), lowest kind {:.3}, lowest recall {:.1}%, \
             {:.2}% false positives on the other clean frames",
            two_class_auroc(&clean_scores, &all),
            two_class_auroc(&clean_scores, &tuned),
            two_class_auroc(&clean_scores, &held),
            worst.0,
            worst.1 * 100.0,
            above(&clean_scores) * 100.0
        ));
    }
    for row in rows {
        println!("{row}");
    }
    println!();
    for ((name, _), line) in scorers.iter().zip(summary) {
        println!("{name}: {line}");
    }
    Ok(())
}
