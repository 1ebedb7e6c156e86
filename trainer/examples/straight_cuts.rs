//! Do occluders leave straight edges? A dark patch cuts the strokes it covers along
//! its sides: bright pixels beside pixels at exactly 0, lined up along one row or one
//! column, where a clean stroke ends in a rounded, anti-aliased cap. The shipped
//! `cuts` term counts every bright pixel beside a 0; each row here counts only the cut
//! pairs that continue the same straight edge (the next pair along the edge is a cut
//! too, the bright pixel on the same side) as a 17th term beside the shipped sixteen
//! (float, the frames and fit of `tinyvae detect`; `TINYVAE_SPLIT_SEED` picks another
//! split).
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example straight_cuts -- CHECKPOINT
//! ```

mod common;

use anyhow::Result;
use common::{px, SIDE};
use tinyvae_datasets::corrupt::Corruption;

/// A cut between pixel `a` and `b` (neighbours): which side is the bright one (at least
/// `bright`) with the other at 0: `1` for `a`, `2` for `b`, `0` no cut.
fn cut(a: i32, b: i32, bright: i32) -> u8 {
    if a >= bright && b == 0 {
        1
    } else if b >= bright && a == 0 {
        2
    } else {
        0
    }
}

/// The straight edges of a frame: for each cut pair, the length of the run of cuts
/// (bright on the same side) it belongs to along its edge, horizontal edges (a pixel
/// above another) along the row, vertical ones along the column.
fn runs(img: &[u8], bright: i32) -> Vec<usize> {
    let mut out = Vec::new();
    for vertical in [false, true] {
        for line in 0..SIDE {
            // Along the edge between line and line + 1 (rows for horizontal edges,
            // columns for vertical ones).
            let mut run = (0u8, 0usize);
            for k in 0..=SIDE {
                let c = if k == SIDE {
                    0
                } else if vertical {
                    cut(px(img, line, k), px(img, line + 1, k), bright)
                } else {
                    cut(px(img, k, line), px(img, k, line + 1), bright)
                };
                if c != 0 && c == run.0 {
                    run.1 += 1;
                } else {
                    if run.0 != 0 {
                        out.push(run.1);
                    }
                    run = (c, 1);
                }
            }
        }
    }
    out
}

fn main() -> Result<()> {
    let (_, _, scored) = common::score_detect_frames("straight_cuts")?;
    let shipped = common::shipped_scores(&scored);
    let watched = [
        Corruption::Occlusion,
        Corruption::Saturation,
        Corruption::Overlay,
        Corruption::LineDropout,
        Corruption::Torn,
    ];
    let index: Vec<usize> = watched
        .iter()
        .filter_map(|k| scored.iter().position(|s| s.kind == Some(*k)))
        .collect();
    let recalls = |scores: &[Vec<f64>]| -> String {
        let t = common::one_percent_threshold(&scores[0]);
        index
            .iter()
            .map(|&i| {
                let s = &scores[i];
                let r = s.iter().filter(|&&v| v > t).count() as f64 / s.len() as f64;
                format!(" {:.1}% |", 100.0 * r)
            })
            .collect()
    };
    let names: Vec<String> = watched
        .iter()
        .map(|k| format!("{}{}", k.name(), if k.held_out() { "*" } else { "" }))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    common::print_extra_term_header(&scored, &shipped, &names);
    type Term = Box<dyn Fn(&[u8]) -> f64>;
    let in_runs = |bright: i32, min: usize| -> Term {
        Box::new(move |img| {
            runs(img, bright)
                .into_iter()
                .filter(|&r| r >= min)
                .map(|r| (r - min + 1) as f64)
                .sum()
        })
    };
    let terms: Vec<(String, Term)> = vec![
        (
            "cut pairs in straight edges of 2 or more (bright 224)".into(),
            in_runs(224, 2),
        ),
        (
            "cut pairs in straight edges of 3 or more (bright 224)".into(),
            in_runs(224, 3),
        ),
        (
            "cut pairs in straight edges of 2 or more (above half scale)".into(),
            in_runs(129, 2),
        ),
        (
            "cut pairs in straight edges of 3 or more (above half scale)".into(),
            in_runs(129, 3),
        ),
        (
            "the longest straight edge (bright 224)".into(),
            Box::new(|img| runs(img, 224).into_iter().max().unwrap_or(0) as f64),
        ),
        (
            "the longest straight edge (above half scale)".into(),
            Box::new(|img| runs(img, 129).into_iter().max().unwrap_or(0) as f64),
        ),
    ];
    for (name, term) in &terms {
        let extra = common::frame_values(&scored, term);
        let scores = common::with_extra_term(&shipped, &extra);
        println!(
            "| {name} |{} {}",
            recalls(&scores),
            common::summary_row(&scored, &scores)
        );
    }
    Ok(())
}
