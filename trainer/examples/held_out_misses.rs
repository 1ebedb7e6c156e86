//! The measurement behind "Which held-out frames are missed" (BENCHMARKS.md): are the
//! held-out kinds' misses frames the fault barely changed, or frames it changed as much
//! as the ones found? For each kind, the shipped detector's recall (the sixteen terms
//! and the int8 fault head at weight 1.5, threshold at 1% of the fitting frames) in
//! four bins of how much the fault changed the frame (the sum of `|faulted - clean|`
//! over the clean frame's ink, quartiles of that kind's frames), and for the kinds that
//! read a second frame (torn, overlay), recall when that frame shows the same digit and
//! when it shows another one. First, which terms set the 20 highest clean fitting
//! scores (the threshold is the 10th).
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example held_out_misses -- \
//!     models/tinyvae-mnist.checkpoint.safetensors models/fault-head.safetensors
//! ```

mod common;

use anyhow::Result;
use tinyvae_datasets::corrupt::other_index;
use tinyvae_shared::fixed::q16_to_f64;
use tinyvae_trainer::detector::{fit, FitOptions};

/// Recall of the frames `which` selects among `scores`, with their count.
fn recall(scores: &[f64], threshold: f64, which: impl Fn(usize) -> bool) -> String {
    let picked: Vec<f64> = (0..scores.len())
        .filter(|&i| which(i))
        .map(|i| scores[i])
        .collect();
    let found = picked.iter().filter(|&&v| v > threshold).count();
    format!(
        "{:.1}% ({found}/{})",
        found as f64 / picked.len().max(1) as f64 * 100.0,
        picked.len()
    )
}

/// Which term sets each of the 20 highest clean fitting scores (the threshold is the
/// 10th): the terms whose clean tails spend the false-positive budget.
fn print_threshold_setters(scored: &[common::Scored], fitting: &[f64]) {
    let params = fit(&scored[0].terms, FitOptions::default());
    let mut order: Vec<usize> = (0..fitting.len()).collect();
    order.sort_by(|&a, &b| fitting[b].total_cmp(&fitting[a]));
    let fired: Vec<String> = order
        .iter()
        .take(20)
        .map(|&i| {
            let terms = params.detect(&scored[0].terms[i]);
            // Above the sixteen terms' largest, the head's term set the score.
            let name = if fitting[i] > q16_to_f64(terms.score) {
                "head".to_string()
            } else {
                format!("{:?}", terms.fired)
            };
            format!("{name} {:.2}", fitting[i])
        })
        .collect();
    println!(
        "the 20 highest clean fitting scores: {}\n",
        fired.join(", ")
    );
}

fn main() -> Result<()> {
    let usage = "held_out_misses CHECKPOINT HEAD.safetensors";
    let (_, _, scored, layers) = common::detect_frames_and_head(usage)?;
    let scores =
        common::shipped_with_head_scores(&scored, &common::int8_head_scores(&scored, &layers)?);
    let threshold = common::one_percent_threshold(&scores[0]);
    let clean = &scored[1].frames;
    let n = clean.len();
    println!("threshold {threshold:.3}\n");
    print_threshold_setters(&scored, &scores[0]);
    println!("| kind | recall | change, quartile 1 (least) | 2 | 3 | 4 (most) | change at the quartiles' edges | second frame: same digit | another digit |\n|---|---|---|---|---|---|---|---|---|");
    for (set, s) in scored[2..].iter().zip(&scores[2..]) {
        let Some(kind) = set.kind else { continue };
        // How much the fault changed each frame, relative to the clean frame's ink.
        let change: Vec<f64> = (0..n)
            .map(|i| {
                let (c, f) = (clean.image_u8(i), set.frames.image_u8(i));
                let moved: f64 = c
                    .iter()
                    .zip(f)
                    .map(|(&a, &b)| f64::from(a.abs_diff(b)))
                    .sum();
                moved / c.iter().map(|&a| f64::from(a)).sum::<f64>().max(1.0)
            })
            .collect();
        let mut sorted = change.clone();
        sorted.sort_by(f64::total_cmp);
        let edge = |q: usize| sorted[(q * n / 4).min(n - 1)];
        let bins: Vec<String> = (0..4)
            .map(|q| {
                let (lo, hi) = (edge(q), edge(q + 1));
                recall(s, threshold, |i| {
                    change[i] >= lo && (change[i] < hi || (q == 3 && change[i] <= hi))
                })
            })
            .collect();
        let (same, other) = if kind.uses_other() {
            let same_digit = |i: usize| clean.label(i) == clean.label(other_index(i, n));
            (
                recall(s, threshold, same_digit),
                recall(s, threshold, |i| !same_digit(i)),
            )
        } else {
            (String::new(), String::new())
        };
        let mark = if kind.held_out() { "*" } else { "" };
        println!(
            "| {}{mark} | {} | {} | {:.2} / {:.2} / {:.2} | {same} | {other} |",
            kind.name(),
            recall(s, threshold, |_| true),
            bins.join(" | "),
            edge(1),
            edge(2),
            edge(3),
        );
    }
    Ok(())
}
