//! Is saturation a frame clipped at full scale? A sensor driven past its range reads
//! its largest code, so the upper half of its range empties into that one code, where
//! a clean frame's strokes peak just below it (the default data's brightest pixels
//! read 252-254 far more often than 255). Each row adds one count of the pixels at or
//! near full scale as a 17th term beside the shipped sixteen (float, the frames and
//! fit of `tinyvae detect`; `TINYVAE_SPLIT_SEED` picks another split), with the
//! saturated frames' recall.
//!
//! What it shows (BENCHMARKS.md, "What the last six kinds need"): no count moves
//! saturation on every split. A few clean digits are drawn at full scale throughout, so
//! each count's clean tail is long: a share stays under the threshold, a ratio
//! raises it. The one count that separates saturated frames almost perfectly on the raw
//! data (the ink's share from half scale to just below full, 128 included) owes it to
//! the many clean pixels at exactly 128, a value a gain of 3 cannot produce: from 129
//! on it separates nothing, so it reads the fault model's arithmetic, not clipping.
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example clipped -- CHECKPOINT
//! ```

mod common;

use anyhow::{anyhow, Result};
use tinyvae_datasets::corrupt::Corruption;

/// Pixels with a value in `range`.
fn count(img: &[u8], range: impl std::ops::RangeBounds<u8>) -> f64 {
    img.iter().filter(|p| range.contains(p)).count() as f64
}

fn main() -> Result<()> {
    let (_, _, scored) = common::score_detect_frames("clipped")?;
    let saturation = scored
        .iter()
        .position(|s| s.kind == Some(Corruption::Saturation))
        .ok_or_else(|| anyhow!("no saturated frames"))?;
    let shipped = common::shipped_scores(&scored);
    let recall = |scores: &[Vec<f64>]| {
        let t = common::one_percent_threshold(&scores[0]);
        let s = &scores[saturation];
        format!(
            "{:.1}%",
            100.0 * s.iter().filter(|&&v| v > t).count() as f64 / s.len() as f64
        )
    };
    common::print_extra_term_header(&scored, &shipped, &["saturation"]);
    type Term = Box<dyn Fn(&[u8]) -> f64>;
    let terms: [(&str, Term); 6] = [
        ("pixels at full scale", Box::new(|img| count(img, 255..))),
        (
            "pixels at full scale, share of those above half scale (1/256)",
            Box::new(|img| 256.0 * count(img, 255..) / count(img, 129..).max(1.0)),
        ),
        (
            "256 - share of the ink above half scale and below full (1/256)",
            Box::new(|img| 256.0 - 256.0 * count(img, 129..255) / count(img, 1..).max(1.0)),
        ),
        (
            "pixels of ink per pixel above half scale and below full (1/256)",
            Box::new(|img| 256.0 * count(img, 1..) / (count(img, 129..255) + 1.0)),
        ),
        (
            "log2 of the same",
            Box::new(|img| (count(img, 1..) / (count(img, 129..255) + 1.0)).log2()),
        ),
        (
            "pixels of ink per pixel from 128 (included) to below full (1/256)",
            Box::new(|img| 256.0 * count(img, 1..) / (count(img, 128..255) + 1.0)),
        ),
    ];
    for (name, term) in &terms {
        let extra = common::frame_values(&scored, term);
        let scores = common::with_extra_term(&shipped, &extra);
        println!(
            "| {name} | {} | {}",
            recall(&scores),
            common::summary_row(&scored, &scores)
        );
    }
    Ok(())
}
