//! The measurement behind the overlay rows of "What the last six kinds need"
//! (BENCHMARKS.md): which overlaid frames does the shipped detector miss? An overlay
//! lays another clean digit over the frame (the brighter pixel of the two,
//! `Corruption::Overlay`); when the other digit is of the same class, or its ink falls
//! mostly on ink the frame already has, the result can be an ordinary digit. The
//! detector is fitted as `tinyvae detect` fits it (threshold at 1% of the fitting
//! frames) and its recall on the overlaid frames is split by the pair's classes and by
//! how much of the other digit's ink (pixels above half scale) adds new ink.
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example overlay_pairs -- CHECKPOINT
//! ```

mod common;

use anyhow::{anyhow, Result};
use tinyvae_datasets::corrupt::{other_index, Corruption};

fn main() -> Result<()> {
    let (_, _, scored) = common::score_detect_frames("overlay_pairs")?;
    let scores = common::shipped_scores(&scored);
    let threshold = common::one_percent_threshold(&scores[0]);
    let overlay = scored
        .iter()
        .position(|s| s.kind == Some(Corruption::Overlay))
        .ok_or_else(|| anyhow!("no overlay set"))?;
    let clean = &scored[1].frames;
    let n = clean.len();
    // The groups, in the order printed: (label, frames, caught).
    let labels = [
        "pairs of the same class",
        "pairs of different classes",
        "the other digit's ink new to the frame: under 25%",
        "the other digit's ink new to the frame: 25-50%",
        "the other digit's ink new to the frame: 50-75%",
        "the other digit's ink new to the frame: 75% or more",
    ];
    let mut groups: Vec<(&str, usize, usize)> = labels.iter().map(|&l| (l, 0, 0)).collect();
    for (i, &score) in scores[overlay].iter().enumerate() {
        let j = other_index(i, n);
        let caught = usize::from(score > threshold);
        let (a, b) = (clean.image_u8(i), clean.image_u8(j));
        let other_ink = b.iter().filter(|&&p| p > 128).count().max(1);
        let new_ink = a
            .iter()
            .zip(b)
            .filter(|&(&p, &q)| q > 128 && p <= 128)
            .count();
        let share = new_ink as f64 / other_ink as f64;
        let class_group = match (clean.label(i), clean.label(j)) {
            (Some(x), Some(y)) if x == y => Some(0),
            (Some(_), Some(_)) => Some(1),
            _ => None,
        };
        let ink_group =
            2 + usize::from(share >= 0.25) + usize::from(share >= 0.5) + usize::from(share >= 0.75);
        for g in class_group.into_iter().chain([ink_group]) {
            groups[g].1 += 1;
            groups[g].2 += caught;
        }
    }
    println!("| overlaid frames | frames | recall |\n|---|---|---|");
    for (label, frames, caught) in &groups {
        println!(
            "| {label} | {frames} | {:.1}% |",
            *caught as f64 / *frames as f64 * 100.0
        );
    }
    Ok(())
}
