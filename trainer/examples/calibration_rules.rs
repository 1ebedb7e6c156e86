//! How the device's own calibration (`Calibrate`, `detect::Calibrator`) sets each
//! term's scale, against rules that fit in the same fixed memory, the exported fit, and
//! the host's fit.
//!
//! The calibrator measures every term from its mean, its scale reaching to the third
//! most extreme value of the fitting half: a point that moves out with the number of
//! frames (the 97th percentile of 100, the 99.4th of 500) and rests on three frames.
//! Beside it: the same with the frames tied on the threshold's score flagged too, the
//! scale to the most extreme value, to the mean of the two or three most
//! extreme, `k` standard deviations (a sum and a sum of squares per term), scales at
//! least the exported fit's; the exported fit itself (with its threshold, with the
//! calibrator's from the second half, and with the one `CalibrateThreshold` sets from
//! all the frames); the host's tail fit (`detector::fit`, which needs every value) on the
//! first half, and on all the frames with its own threshold (what `tinyvae detect
//! --calibrate` prints). Every other rule's threshold is the calibrator's: of the `m`
//! scores of the second half, the `m / 100`-th largest. Judged on the other half of the
//! clean frames of `tinyvae detect`'s split and faulted copies of them (every kind).
//! The exported fit was fitted on split 0's fitting half, so only split 0 judges it on
//! frames it did not see. `TINYVAE_WHO_FIRES=1` also prints the terms behind the
//! second half's largest scores under the calibrator, and its parameters.
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example calibration_rules -- models/tinyvae-mnist.safetensors
//! ```

use std::path::Path;

use anyhow::{anyhow, Result};
use tinyvae_datasets::corrupt::{corrupt_each, Corruption};
use tinyvae_shared::detect::{
    scale_from_units, Calibrator, DetectorParams, RawTerms, Term, TermParams, TERMS,
    THRESHOLD_RANKS,
};
use tinyvae_shared::fixed::Q16_ONE;
use tinyvae_shared::model_file;
use tinyvae_trainer::detector::{fit, FitOptions, TermSource};

/// Parameters with every term centred on its mean and scaled by `k` standard
/// deviations (at least the term's floor), as a device could keep them.
fn sigma_rule(fitting: &[RawTerms], k: f64) -> DetectorParams {
    let n = fitting.len() as f64;
    let mut terms = [TermParams::default(); TERMS];
    for (t, term) in Term::ALL.into_iter().enumerate() {
        let mean = fitting.iter().map(|r| f64::from(r[t])).sum::<f64>() / n;
        let var = fitting
            .iter()
            .map(|r| (f64::from(r[t]) - mean).powi(2))
            .sum::<f64>()
            / n;
        let scale = ((k * var.sqrt()).round() as i32).max(term.min_scale());
        let low = if term.two_sided() { scale } else { 0 };
        terms[t] = TermParams::centred(
            mean.round() as i32,
            scale_from_units(scale),
            scale_from_units(low),
        );
    }
    DetectorParams {
        terms,
        threshold: 0,
    }
}

/// The calibrator's rule with the scale reaching from the mean to `reach` of the
/// fitting half's most extreme values (largest first; the smallest, negated, below).
fn extreme_rule(fitting: &[RawTerms], reach: &dyn Fn(&[i64]) -> i64) -> DetectorParams {
    extreme_rule_floored(fitting, reach, None)
}

/// [`extreme_rule`] with each scale at least `floors`' (the exported fit's).
fn extreme_rule_floored(
    fitting: &[RawTerms],
    reach: &dyn Fn(&[i64]) -> i64,
    floors: Option<&DetectorParams>,
) -> DetectorParams {
    let n = fitting.len() as i64;
    let mut terms = [TermParams::default(); TERMS];
    for (t, term) in Term::ALL.into_iter().enumerate() {
        let sum: i64 = fitting.iter().map(|r| i64::from(r[t])).sum();
        let centre = (sum as f64 / n as f64).round() as i64;
        let mut high: Vec<i64> = fitting.iter().map(|r| i64::from(r[t])).collect();
        high.sort_unstable_by(|a, b| b.cmp(a));
        let mut low: Vec<i64> = fitting.iter().map(|r| -i64::from(r[t])).collect();
        low.sort_unstable_by(|a, b| b.cmp(a));
        let floor = i64::from(term.min_scale());
        let up = (reach(&high) - centre).max(floor);
        let down = if term.two_sided() {
            (reach(&low) + centre).max(floor)
        } else {
            0
        };
        let (mut up, mut down) = (scale_from_units(up as i32), scale_from_units(down as i32));
        if let Some(f) = floors {
            up = up.max(f.terms[t].scale_high);
            if term.two_sided() {
                down = down.max(f.terms[t].scale_low);
            }
        }
        terms[t] = TermParams::centred(centre as i32, up, down);
    }
    DetectorParams {
        terms,
        threshold: 0,
    }
}

/// `params` with the calibrator's threshold from `scoring` (the second half).
fn with_device_threshold(params: DetectorParams, scoring: &[RawTerms]) -> DetectorParams {
    with_threshold_rule(params, scoring, 0)
}

/// `params` with the calibrator's threshold from `scoring`, less `step` (in 1/65536:
/// 1 flags the frames tied on the rank's score too).
fn with_threshold_rule(
    mut params: DetectorParams,
    scoring: &[RawTerms],
    step: i32,
) -> DetectorParams {
    let mut scores: Vec<i32> = scoring.iter().map(|r| params.detect(r).score).collect();
    scores.sort_unstable_by(|a, b| b.cmp(a));
    let rank = (scoring.len() / 100).clamp(1, THRESHOLD_RANKS);
    params.threshold = (scores[rank - 1] - step).max(Q16_ONE);
    params
}

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow!("usage: calibration_rules MODEL.safetensors"))?;
    let file = model_file::load(Path::new(&path))?;
    let model = file.model()?;
    let source = TermSource::Device(&model);
    println!("| frames | split | rule | threshold | false positives | pooled recall | mean recall, tuned | kinds below 90% |\n|---|---|---|---|---|---|---|---|");
    for seed in 0..5u64 {
        let (_, clean) =
            tinyvae_datasets::load_train_test(Path::new("data/mnist-10k"), (28, 28), seed)?;
        let (fit_set, eval_set) = clean.split(0.5, seed);
        let clean_terms = source.terms(&eval_set)?;
        let faulted: Vec<(Corruption, Vec<RawTerms>)> = Corruption::ALL
            .into_iter()
            .map(|kind| Ok((kind, source.terms(&corrupt_each(&eval_set, kind, seed))?)))
            .collect::<Result<_>>()?;
        for frames in [200usize, 1000] {
            let calibration = source.terms(&fit_set.take(frames))?;
            let (first, second) = calibration.split_at(frames / 2);
            let mut calibrator = Calibrator::new(frames as u16);
            let device = calibration
                .iter()
                .find_map(|r| calibrator.add(r))
                .ok_or_else(|| anyhow!("the calibration did not finish"))?;
            let mut rules = vec![("the calibrator (mean, third extreme)".to_string(), device)];
            rules.push((
                "the calibrator, threshold just below the rank's score".into(),
                with_threshold_rule(extreme_rule(first, &|v| v[2]), second, 1),
            ));
            rules.push((
                "mean, third extreme (this example's copy of the calibrator)".into(),
                with_device_threshold(extreme_rule(first, &|v| v[2]), second),
            ));
            rules.push((
                "mean, the most extreme".into(),
                with_device_threshold(extreme_rule(first, &|v| v[0]), second),
            ));
            rules.push((
                "mean, the mean of the three most extreme".into(),
                with_device_threshold(extreme_rule(first, &|v| (v[0] + v[1] + v[2]) / 3), second),
            ));
            rules.push((
                "mean, the mean of the two most extreme".into(),
                with_device_threshold(extreme_rule(first, &|v| (v[0] + v[1]) / 2), second),
            ));
            if let Some(exported) = model.detector() {
                rules.push((
                    "mean, third extreme, scales at least the exported fit's".into(),
                    with_device_threshold(
                        extreme_rule_floored(first, &|v| v[2], Some(&exported)),
                        second,
                    ),
                ));
                rules.push(("the exported fit, its threshold".into(), exported));
                rules.push((
                    "the exported fit, the calibrator's threshold".into(),
                    with_device_threshold(exported, second),
                ));
                // `CalibrateThreshold`: the exported terms, the threshold from all N.
                let mut threshold_only = Calibrator::idle();
                threshold_only.start_threshold(frames as u16, Some(exported));
                let thresholded = calibration
                    .iter()
                    .find_map(|r| threshold_only.add(r))
                    .ok_or_else(|| anyhow!("the threshold calibration did not finish"))?;
                rules.push((
                    "the exported fit, threshold from all N (CalibrateThreshold)".into(),
                    thresholded,
                ));
            }
            for k in [2.0, 3.0, 4.0] {
                rules.push((
                    format!("mean, {k} standard deviations"),
                    with_device_threshold(sigma_rule(first, k), second),
                ));
            }
            rules.push((
                "the host's fit, first half; the calibrator's threshold".into(),
                with_device_threshold(fit(first, FitOptions::default()), second),
            ));
            rules.push((
                "the host's fit on all the frames (tinyvae detect --calibrate)".into(),
                fit(&calibration, FitOptions::default()),
            ));
            if std::env::var("TINYVAE_WHO_FIRES").is_ok() {
                // Which term gives the second half's largest scores under the calibrator.
                let params = rules[0].1;
                let mut top: Vec<(i32, &str)> = second
                    .iter()
                    .map(|r| {
                        let d = params.detect(r);
                        (d.score, d.fired.name())
                    })
                    .collect();
                top.sort_by_key(|t| std::cmp::Reverse(t.0));
                println!("{frames} {seed}: {:?}", &top[..8]);
                println!(
                    "{:?}",
                    params
                        .terms
                        .iter()
                        .map(|t| (t.high, t.scale_high >> 8, t.scale_low >> 8))
                        .collect::<Vec<_>>()
                );
            }
            for (name, params) in rules {
                let rate = |frames: &[RawTerms]| {
                    frames.iter().filter(|r| params.detect(r).anomalous).count() as f64
                        / frames.len() as f64
                };
                let recalls: Vec<(Corruption, f64)> =
                    faulted.iter().map(|(k, f)| (*k, rate(f))).collect();
                let pooled = recalls.iter().map(|r| r.1).sum::<f64>() / recalls.len() as f64;
                let tuned: Vec<f64> = recalls
                    .iter()
                    .filter(|r| !r.0.held_out())
                    .map(|r| r.1)
                    .collect();
                let below = recalls.iter().filter(|r| r.1 < 0.9).count();
                println!(
                    "| {frames} | {seed} | {name} | {:.3} | {:.2}% | {:.1}% | {:.1}% | {below} |",
                    f64::from(params.threshold) / f64::from(Q16_ONE),
                    100.0 * rate(&clean_terms),
                    100.0 * pooled,
                    100.0 * tuned.iter().sum::<f64>() / tuned.len() as f64,
                );
            }
        }
    }
    Ok(())
}
