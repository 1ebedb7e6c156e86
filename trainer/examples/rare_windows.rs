//! The measurement behind the "rare windows" rows of "What the last six kinds need"
//! (BENCHMARKS.md): does a wider local pattern than `unseen`'s 3x3 neighbourhood see
//! what a CNN told the fault sees (the straight edge an occluder cuts, a stroke clipped
//! flat, a seam)? For each window shape, the windows of the training frames that hold a
//! nonzero pixel are counted (each pixel read at two levels, above half scale or not, or
//! at three as `detect::level` reads it), and a frame's 17th term is the number of its
//! windows seen fewer than `k` times there, standardized by its tail on the fitting
//! frames beside the shipped sixteen (`common::with_extra_term`). An exact table of
//! counts stands in for what a board would carry (a bit set or a Bloom filter), so the
//! rows are an upper bound for such a term.
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example rare_windows -- CHECKPOINT
//! ```

mod common;

use std::collections::HashMap;

use anyhow::Result;
use common::{px, SIDE};

/// A window's shape: columns, rows and the levels a pixel is read at (2 or 3).
#[derive(Clone, Copy)]
struct Shape {
    width: i32,
    height: i32,
    levels: u64,
}

/// The shapes measured: `unseen`'s own 3x3 (over every window, not only its candidate
/// pixels), strips across and along a row, and squares up to 6x6 at two levels.
const SHAPES: [Shape; 6] = [
    Shape {
        width: 3,
        height: 3,
        levels: 3,
    },
    Shape {
        width: 5,
        height: 3,
        levels: 3,
    },
    Shape {
        width: 3,
        height: 5,
        levels: 3,
    },
    Shape {
        width: 4,
        height: 4,
        levels: 3,
    },
    Shape {
        width: 5,
        height: 5,
        levels: 2,
    },
    Shape {
        width: 6,
        height: 6,
        levels: 2,
    },
];

/// Pixel `p`'s level: above half scale or not, or (three levels) 0, up to half, above.
fn level(p: i32, levels: u64) -> u64 {
    let above = u64::from(p > 128);
    if levels == 2 {
        above
    } else {
        u64::from(p != 0) + above
    }
}

/// Every window of `shape` overlapping `img` (pixels outside read 0) that holds a
/// nonzero pixel, as its levels in base `shape.levels`.
fn windows(img: &[u8], shape: Shape) -> Vec<u64> {
    let mut keys = Vec::new();
    for y in 1 - shape.height..SIDE {
        for x in 1 - shape.width..SIDE {
            let (mut key, mut inked) = (0, false);
            for dy in 0..shape.height {
                for dx in 0..shape.width {
                    let p = px(img, x + dx, y + dy);
                    inked |= p != 0;
                    key = key * shape.levels + level(p, shape.levels);
                }
            }
            if inked {
                keys.push(key);
            }
        }
    }
    keys
}

fn main() -> Result<()> {
    let (_, train, scored) = common::score_detect_frames("rare_windows")?;
    let shipped = common::shipped_scores(&scored);
    common::print_extra_term_header(&scored, &shipped, &["windows in the set"]);
    for shape in SHAPES {
        let mut counts: HashMap<u64, u32> = HashMap::new();
        for i in 0..train.len() {
            for key in windows(train.image_u8(i), shape) {
                *counts.entry(key).or_default() += 1;
            }
        }
        for min_count in [1, 2] {
            let rare = |img: &[u8]| {
                windows(img, shape)
                    .iter()
                    .filter(|key| counts.get(key).copied().unwrap_or(0) < min_count)
                    .count() as f64
            };
            let extra = common::frame_values(&scored, rare);
            println!(
                "| {}x{} windows at {} levels, {} | {} | {}",
                shape.width,
                shape.height,
                shape.levels,
                if min_count == 1 {
                    "never seen"
                } else {
                    "seen at most once"
                },
                counts.values().filter(|&&c| c >= min_count).count(),
                common::summary_row(&scored, &common::with_extra_term(&shipped, &extra))
            );
        }
    }
    Ok(())
}
