//! The measurement behind the topology rows of "What the last six kinds need"
//! (BENCHMARKS.md): do counts of connected pieces see what the local terms miss? An
//! occluder or a dropped line cuts a digit into more pieces of ink, two overlaid digits
//! close more loops. Each count is a 17th term beside the shipped sixteen, standardized
//! by its tail on the fitting frames (`common::with_extra_term`): pieces of ink
//! (8-connected, of pixels above 0 or above half scale, optionally only those of three
//! pixels or more) and holes (4-connected background not reaching the frame's border).
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example topology -- CHECKPOINT
//! ```

mod common;

use anyhow::Result;
use common::{px, SIDE};

/// A connected region of a frame: its pixels and whether it reaches the border.
struct Region {
    pixels: usize,
    on_border: bool,
}

/// The connected regions of the pixels of `img` for which `inside` holds, through
/// eight neighbours (`eight`) or four.
fn regions(img: &[u8], inside: impl Fn(i32) -> bool, eight: bool) -> Vec<Region> {
    let mut visited = vec![false; (SIDE * SIDE) as usize];
    let mut out = Vec::new();
    for start in 0..SIDE * SIDE {
        let (sx, sy) = (start % SIDE, start / SIDE);
        if visited[start as usize] || !inside(px(img, sx, sy)) {
            continue;
        }
        visited[start as usize] = true;
        let mut stack = vec![(sx, sy)];
        let mut region = Region {
            pixels: 0,
            on_border: false,
        };
        while let Some((x, y)) = stack.pop() {
            region.pixels += 1;
            region.on_border |= x == 0 || y == 0 || x == SIDE - 1 || y == SIDE - 1;
            for (dx, dy) in [
                (-1, -1),
                (0, -1),
                (1, -1),
                (-1, 0),
                (1, 0),
                (-1, 1),
                (0, 1),
                (1, 1),
            ] {
                let (nx, ny) = (x + dx, y + dy);
                let diagonal = dx != 0 && dy != 0;
                if (diagonal && !eight) || !(0..SIDE).contains(&nx) || !(0..SIDE).contains(&ny) {
                    continue;
                }
                let k = (ny * SIDE + nx) as usize;
                if !visited[k] && inside(px(img, nx, ny)) {
                    visited[k] = true;
                    stack.push((nx, ny));
                }
            }
        }
        out.push(region);
    }
    out
}

/// Pieces of ink above `level` with at least `min_pixels` pixels.
fn pieces(img: &[u8], level: i32, min_pixels: usize) -> f64 {
    let ink = regions(img, |p| p > level, true);
    ink.iter().filter(|r| r.pixels >= min_pixels).count() as f64
}

/// Holes in the ink above `level`.
fn holes(img: &[u8], level: i32) -> f64 {
    let background = regions(img, |p| p <= level, false);
    background.iter().filter(|r| !r.on_border).count() as f64
}

fn main() -> Result<()> {
    let (_, _, scored) = common::score_detect_frames("topology")?;
    let shipped = common::shipped_scores(&scored);
    common::print_extra_term_header(&scored, &shipped, &[]);
    type Count = Box<dyn Fn(&[u8]) -> f64>;
    let counts: [(&str, Count); 5] = [
        ("pieces of ink above 0", Box::new(|img| pieces(img, 0, 1))),
        (
            "pieces of ink above 0, of 3 pixels or more",
            Box::new(|img| pieces(img, 0, 3)),
        ),
        (
            "pieces of ink above half scale",
            Box::new(|img| pieces(img, 128, 1)),
        ),
        ("holes in the ink above 0", Box::new(|img| holes(img, 0))),
        (
            "holes in the ink above half scale",
            Box::new(|img| holes(img, 128)),
        ),
    ];
    for (name, count) in &counts {
        let extra = common::frame_values(&scored, count);
        println!(
            "| {name} | {}",
            common::summary_row(&scored, &common::with_extra_term(&shipped, &extra))
        );
    }
    Ok(())
}
