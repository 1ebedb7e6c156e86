//! What the detector measurement examples share: the frames of `tinyvae detect` (the
//! test digits split in two, seed 0 or `TINYVAE_SPLIT_SEED`: fitting frames, evaluation
//! frames, and the evaluation frames with each fault kind at its default severity),
//! scored by a float checkpoint.

use std::path::Path;

use anyhow::{anyhow, Result};
use candle_core::Device;
use tinyvae_datasets::corrupt::{corrupt_each_at, Corruption};
use tinyvae_datasets::Dataset;
use tinyvae_shared::detect::{RawTerms, Seen};
use tinyvae_shared::fixed::q16_to_f64;
use tinyvae_trainer::detector::{
    fit, fit_seen, terms_from_reconstructions, two_class_auroc, FitOptions,
};
use tinyvae_trainer::eval::{anomaly_scores, decode_means, encode_means};
use tinyvae_trainer::quantize::threshold_rank;
use tinyvae_trainer::tensor::ToTensor;

/// The frames' side.
pub const SIDE: i32 = 28;

/// Pixel (x, y) of a 28x28 frame; 0 outside it.
pub fn px(img: &[u8], x: i32, y: i32) -> i32 {
    if x < 0 || y < 0 || x >= SIDE || y >= SIDE {
        0
    } else {
        i32::from(img[(y * SIDE + x) as usize])
    }
}

/// The first and last line (rows, or columns) holding a pixel above half scale.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn extent(img: &[u8], rows: bool) -> Option<(i32, i32)> {
    let inked = |l: i32| (0..SIDE).any(|k| if rows { px(img, k, l) } else { px(img, l, k) } > 128);
    let first = (0..SIDE).find(|&l| inked(l))?;
    let last = (0..SIDE).rev().find(|&l| inked(l))?;
    Some((first, last))
}

/// Frames of one kind (`None`: clean) with their reconstructions at `z = mu` (pixels)
/// and the shipped raw terms.
#[allow(dead_code)] // each example is its own crate, and not every one reads `recon`
pub struct Scored {
    pub kind: Option<Corruption>,
    pub frames: Dataset,
    pub recon: Vec<u8>,
    pub terms: Vec<RawTerms>,
}

/// The checkpoint named by the first argument (`usage` otherwise) scored on the fitting
/// frames, the clean evaluation frames and each of [`Corruption::ALL`], in that order;
/// with the training frames the `unseen` term's set was fitted on.
pub fn score_detect_frames(usage: &str) -> Result<(String, Dataset, Vec<Scored>)> {
    let checkpoint = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow!("usage: {usage} CHECKPOINT"))?;
    let model = tinyvae_trainer::checkpoint::load(Path::new(&checkpoint), &Device::Cpu)
        .map_err(|e| anyhow!("{checkpoint}: {e}"))?
        .model;
    let (train, test) =
        tinyvae_datasets::load_train_test(Path::new("data/mnist-10k"), (28, 28), 0)?;
    // The `unseen` term's set, fitted on the training frames as `tinyvae export` fits it.
    let seen = fit_seen(&train);
    // `tinyvae detect --seed`'s split and faults; another seed checks that a row is not
    // one split's luck.
    let seed = match std::env::var("TINYVAE_SPLIT_SEED") {
        Ok(s) => s
            .parse()
            .map_err(|e| anyhow!("TINYVAE_SPLIT_SEED={s}: expected a whole number ({e})"))?,
        Err(_) => 0,
    };
    let (fit_set, eval_set) = test.split(0.5, seed);
    let mut sets = vec![(None, fit_set), (None, eval_set.clone())];
    for &kind in Corruption::ALL.iter() {
        sets.push((Some(kind), corrupt_each_at(&eval_set, kind, 1.0, seed)));
    }
    let scored = sets
        .into_iter()
        .map(|(kind, frames)| score_frames(&model, kind, frames, &seen))
        .collect::<Result<_>>()?;
    Ok((checkpoint, train, scored))
}

/// `frames` (of `kind`) scored by `model`, with the `unseen` term's set `seen`.
pub fn score_frames(
    model: &tinyvae_trainer::model::Model,
    kind: Option<Corruption>,
    frames: Dataset,
    seen: &[u8],
) -> Result<Scored> {
    let x = frames.to_tensor(model.device())?;
    let elbo = anomaly_scores(model, &x)?;
    let mean = decode_means(model, &encode_means(model, &frames)?)?;
    let recon = mean
        .iter()
        .map(|&p| (p * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    let terms = terms_from_reconstructions(&frames, &mean, &elbo, Seen::new(seen));
    Ok(Scored {
        kind,
        frames,
        recon,
        terms,
    })
}

/// One table row: fits the detector on `sets[0]` as `tinyvae detect` does, judges
/// `sets[1]` (clean) and the faulted sets (`kinds[i]` is `sets[i]`'s): pooled AUROC,
/// false positives, mean recall over the kinds, then AUROC / recall of each of `watched`.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn table_row(
    watched: &[Corruption],
    kinds: &[Option<Corruption>],
    sets: &[Vec<RawTerms>],
) -> String {
    let params = fit(&sets[0], FitOptions::default());
    let score = |r: &RawTerms| q16_to_f64(params.detect(r).score);
    let threshold = q16_to_f64(params.threshold);
    let above = |s: &[f64]| s.iter().filter(|&&v| v > threshold).count() as f64 / s.len() as f64;
    let clean: Vec<f64> = sets[1].iter().map(score).collect();
    let (mut all, mut recall_sum) = (Vec::new(), 0.0);
    let mut cells = vec![String::new(); watched.len()];
    for (kind, set) in kinds[2..].iter().zip(&sets[2..]) {
        let s: Vec<f64> = set.iter().map(score).collect();
        recall_sum += above(&s);
        if let Some(i) = watched.iter().position(|&k| Some(k) == *kind) {
            cells[i] = format!(
                " {:.3} / {:.1}% |",
                two_class_auroc(&clean, &s),
                above(&s) * 100.0
            );
        }
        all.extend(s);
    }
    format!(
        "{:.4} | {:.2}% | {:.1}% |{}",
        two_class_auroc(&clean, &all),
        above(&clean) * 100.0,
        recall_sum / (sets.len() - 2) as f64 * 100.0,
        cells.concat()
    )
}

/// Every frame's score from the shipped detector fitted on the fitting frames
/// (`scored[0]`), as `tinyvae detect` fits it: one list per set of `scored`.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn shipped_scores(scored: &[Scored]) -> Vec<Vec<f64>> {
    scores_with(scored, &fit(&scored[0].terms, FitOptions::default()))
}

/// Every frame's score from the detector `params`: one list per set of `scored`.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn scores_with(
    scored: &[Scored],
    params: &tinyvae_shared::detect::DetectorParams,
) -> Vec<Vec<f64>> {
    scored
        .iter()
        .map(|s| {
            s.terms
                .iter()
                .map(|r| q16_to_f64(params.detect(r).score))
                .collect()
        })
        .collect()
}

/// The upper tail of `values` as the detector fits a term's: its edge at their 90%
/// quantile and their mean excess beyond it.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn upper_tail(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let edge = sorted[((sorted.len() - 1) as f64 * 0.9).round() as usize];
    let beyond: Vec<f64> = sorted
        .iter()
        .filter(|&&v| v > edge)
        .map(|v| v - edge)
        .collect();
    (
        edge,
        beyond.iter().sum::<f64>() / beyond.len().max(1) as f64,
    )
}

/// `scores` with one more term: `extra` (per set, per frame; larger is more anomalous)
/// standardized as the detector's terms are ([`upper_tail`] of the fitting frames: the
/// edge, and the mean excess as the scale) and the larger of the two kept.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn with_extra_term(scores: &[Vec<f64>], extra: &[Vec<f64>]) -> Vec<Vec<f64>> {
    with_weighted_extra_term(scores, extra, 1.0)
}

/// [`with_extra_term`] with the extra term's standardized value multiplied by
/// `weight`: above 1 the term takes a larger share of the threshold's false positives
/// (a weight is a scale `weight` times smaller, so a board would need nothing new).
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn with_weighted_extra_term(
    scores: &[Vec<f64>],
    extra: &[Vec<f64>],
    weight: f64,
) -> Vec<Vec<f64>> {
    let (edge, excess) = upper_tail(&extra[0]);
    let scale = excess.max(f64::MIN_POSITIVE) / weight;
    scores
        .iter()
        .zip(extra)
        .map(|(s, e)| {
            s.iter()
                .zip(e)
                .map(|(a, b)| a.max((b - edge) / scale))
                .collect()
        })
        .collect()
}

/// `term` (a value of a frame's pixels; larger is more anomalous) for every frame of
/// each of `scored`'s sets, as [`with_extra_term`] takes it.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn frame_values(scored: &[Scored], term: impl Fn(&[u8]) -> f64) -> Vec<Vec<f64>> {
    scored
        .iter()
        .map(|s| {
            (0..s.frames.len())
                .map(|i| term(s.frames.image_u8(i)))
                .collect()
        })
        .collect()
}

/// The header of a table of 17th terms and its first row, the shipped sixteen's
/// `shipped` scores (`columns`: cells of the caller's between the name and the summary).
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn print_extra_term_header(scored: &[Scored], shipped: &[Vec<f64>], columns: &[&str]) {
    let names: String = columns.iter().map(|c| format!(" {c} |")).collect();
    println!(
        "| 17th term |{names} pooled AUROC | false positives | mean recall | kinds below 90% | which |\n|---|{}---|---|---|---|---|",
        "---|".repeat(columns.len())
    );
    println!(
        "| none (the shipped 16) |{} {}",
        " |".repeat(columns.len()),
        summary_row(scored, shipped)
    );
}

/// The threshold at 1% false positives on `fitting` scores, as `tinyvae detect` sets
/// it ([`threshold_rank`]: on 1,002 frames their 10th largest). (Tables in
/// BENCHMARKS.md measured before that rule took the 11th largest.)
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn one_percent_threshold(fitting: &[f64]) -> f64 {
    let mut sorted = fitting.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    sorted[threshold_rank(sorted.len(), 0.01) - 1]
}

/// One summary row for per-frame `scores` of `scored`'s sets: the threshold at 1% on the
/// fitting frames ([`one_percent_threshold`]); pooled AUROC (clean evaluation frames
/// against every faulted one), false positives on the clean evaluation frames, the
/// mean recall over the kinds and the kinds below 90% recall (`*`: held out).
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn summary_row(scored: &[Scored], scores: &[Vec<f64>]) -> String {
    let threshold = one_percent_threshold(&scores[0]);
    let above = |s: &[f64]| s.iter().filter(|&&v| v > threshold).count() as f64 / s.len() as f64;
    let (mut all, mut mean, mut below) = (Vec::new(), 0.0, Vec::new());
    for (set, s) in scored[2..].iter().zip(&scores[2..]) {
        let recall = above(s);
        mean += recall / (scores.len() - 2) as f64;
        if let Some(kind) = set.kind.filter(|_| recall < 0.9) {
            let mark = if kind.held_out() { "*" } else { "" };
            below.push(format!("{}{mark} {:.1}%", kind.name(), recall * 100.0));
        }
        all.extend(s.iter().copied());
    }
    format!(
        "{:.4} | {:.2}% | {:.1}% | {} | {} |",
        two_class_auroc(&scores[1], &all),
        above(&scores[1]) * 100.0,
        mean * 100.0,
        below.len(),
        below.join(", ")
    )
}

/// The detector table's header and the shipped sixteen terms' row; their scores.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn print_shipped_row(scored: &[Scored]) -> Vec<Vec<f64>> {
    let shipped = shipped_scores(scored);
    println!(
        "| detector | pooled AUROC | false positives | mean recall | kinds below 90% | which |\n|---|---|---|---|---|---|"
    );
    println!("| the shipped 16 terms | {}", summary_row(scored, &shipped));
    shipped
}

/// The int8 fault head's layers as `tinyvae export` quantizes them: activation ranges
/// from 2,000 training frames and one faulted copy of them.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn int8_head(
    head: &tinyvae_trainer::fault_head::FaultHead,
    train: &Dataset,
) -> Result<[tinyvae_shared::model::LayerSpec; 4]> {
    use tinyvae_trainer::fault_head::{faulted_copies, quantize, FaultHeadParams};
    let calibration = train.subset(&(0..2000).collect::<Vec<_>>());
    let faulted = faulted_copies(
        &calibration,
        &FaultHeadParams {
            copies: 1,
            ..FaultHeadParams::default()
        },
    )?;
    Ok(quantize(head, &[&calibration, &faulted[0].0])?)
}

/// The int8 head's margin on every frame of each of `scored`'s sets.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn int8_head_scores(
    scored: &[Scored],
    layers: &[tinyvae_shared::model::LayerSpec; 4],
) -> Result<Vec<Vec<f64>>> {
    scored
        .iter()
        .map(|s| Ok(tinyvae_trainer::fault_head::int8_scores(layers, &s.frames)?))
        .collect()
}

/// `scores` (sixteen-term scores of each set) with the int8 head's margin `head`
/// ([`int8_head_scores`]) as the 17th term at the shipped weight
/// (`FitOptions::default().head_weight`, 1.5).
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn with_shipped_head(scores: &[Vec<f64>], head: &[Vec<f64>]) -> Vec<Vec<f64>> {
    with_weighted_extra_term(scores, head, FitOptions::default().head_weight)
}

/// The shipped detector's scores (protocol 9): the sixteen terms fitted on the fitting
/// frames and the int8 head's margin `head` as the 17th term ([`with_shipped_head`]).
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn shipped_with_head_scores(scored: &[Scored], head: &[Vec<f64>]) -> Vec<Vec<f64>> {
    with_shipped_head(&shipped_scores(scored), head)
}

/// The header of a table of candidates beside the shipped detector (`first`: the
/// first column's name), with the tuned kinds' columns, and the shipped row.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn print_shipped_with_head_row(first: &str, scored: &[Scored], shipped: &[Vec<f64>]) {
    println!("| {first} | tuned below 90% | tuned mean recall | pooled AUROC | false positives | mean recall | kinds below 90% | which |\n|---|---|---|---|---|---|---|---|");
    println!(
        "| none (the shipped 16 + head) | {} | {}",
        tuned_recall(scored, shipped),
        summary_row(scored, shipped)
    );
}

/// Squared Euclidean distance.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn distance2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The index of `v`'s nearest prototype (0 when there are none).
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn nearest_prototype(prototypes: &[Vec<f32>], v: &[f32]) -> usize {
    (0..prototypes.len())
        .min_by(|&a, &b| distance2(&prototypes[a], v).total_cmp(&distance2(&prototypes[b], v)))
        .unwrap_or(0)
}

/// `k` prototypes of `data` by Lloyd's k-means (`iterations` rounds), started from
/// every `len / k`-th point so that the result is deterministic.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn kmeans(data: &[Vec<f32>], k: usize, iterations: usize) -> Vec<Vec<f32>> {
    let mut centres: Vec<Vec<f32>> = (0..k).map(|i| data[i * data.len() / k].clone()).collect();
    for _ in 0..iterations {
        let mut sums = vec![vec![0f32; data[0].len()]; k];
        let mut counts = vec![0usize; k];
        for v in data {
            let j = nearest_prototype(&centres, v);
            counts[j] += 1;
            sums[j].iter_mut().zip(v).for_each(|(s, x)| *s += x);
        }
        for (centre, (sum, &n)) in centres.iter_mut().zip(sums.iter().zip(&counts)) {
            if n > 0 {
                *centre = sum.iter().map(|s| s / n as f32).collect();
            }
        }
    }
    centres
}

/// The tuned kinds' mean recall at the 1% threshold of the fitting frames' `scores`:
/// what the variant kept is chosen by (with the count of tuned kinds below 90%).
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn tuned_recall(scored: &[Scored], scores: &[Vec<f64>]) -> String {
    let threshold = one_percent_threshold(&scores[0]);
    let recalls: Vec<f64> = scored[2..]
        .iter()
        .zip(&scores[2..])
        .filter(|(set, _)| set.kind.is_some_and(|k| !k.held_out()))
        .map(|(_, s)| s.iter().filter(|&&v| v > threshold).count() as f64 / s.len() as f64)
        .collect();
    format!(
        "{} | {:.2}%",
        recalls.iter().filter(|&&r| r < 0.9).count(),
        recalls.iter().sum::<f64>() / recalls.len() as f64 * 100.0
    )
}

/// Splits to judge on (`TINYVAE_BOUND_SPLITS`, at least 1; 1 when unset): seeds 0 to
/// N - 1 of `tinyvae detect`'s split.
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn bound_splits() -> Result<u64> {
    match std::env::var("TINYVAE_BOUND_SPLITS") {
        Err(_) => Ok(1),
        Ok(n) => match n.parse() {
            Ok(0) | Err(_) => Err(anyhow!(
                "TINYVAE_BOUND_SPLITS={n}: expected a whole number, at least 1"
            )),
            Ok(v) => Ok(v),
        },
    }
}

/// The float checkpoint and fault head named by the first two arguments (`usage`
/// otherwise).
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn model_and_head(
    usage: &str,
) -> Result<(
    tinyvae_trainer::model::Model,
    tinyvae_trainer::fault_head::FaultHead,
)> {
    let arg = |i: usize| {
        std::env::args()
            .nth(i)
            .ok_or_else(|| anyhow!("usage: {usage}"))
    };
    let checkpoint = arg(1)?;
    let model = tinyvae_trainer::checkpoint::load(Path::new(&checkpoint), &Device::Cpu)
        .map_err(|e| anyhow!("{checkpoint}: {e}"))?
        .model;
    let head_path = arg(2)?;
    let head = tinyvae_trainer::fault_head::FaultHead::load(Path::new(&head_path))
        .map_err(|e| anyhow!("{head_path}: {e}"))?;
    Ok((model, head))
}

/// [`score_detect_frames`] (the checkpoint the first argument names), and the int8
/// layers ([`int8_head`]) of the fault head the second argument names (`usage`
/// otherwise).
#[allow(dead_code)] // each example is its own crate, and not every one reads it
pub fn detect_frames_and_head(
    usage: &str,
) -> Result<(
    String,
    Dataset,
    Vec<Scored>,
    [tinyvae_shared::model::LayerSpec; 4],
)> {
    let head_path = std::env::args()
        .nth(2)
        .ok_or_else(|| anyhow!("usage: {usage}"))?;
    let head = tinyvae_trainer::fault_head::FaultHead::load(Path::new(&head_path))
        .map_err(|e| anyhow!("{head_path}: {e}"))?;
    let (checkpoint, train, scored) = score_detect_frames(usage)?;
    let layers = int8_head(&head, &train)?;
    Ok((checkpoint, train, scored, layers))
}
