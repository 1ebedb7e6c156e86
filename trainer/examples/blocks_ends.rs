//! The measurement behind protocol 7's two terms (BENCHMARKS.md, "Blocks and ends"),
//! kept so that the choice can be repeated: candidate definitions of term 11 (`block`,
//! was `solid`) and term 13 (`ends`, was `width`) replace the shipped one in every
//! frame's raw terms, the detector is fitted as `tinyvae detect` fits it
//! (`detector::fit`, tails at 90%, threshold at 1% of the fitting frames), and the
//! pooled AUROC, the false positives on the other clean frames, the mean recall over
//! the 22 kinds and AUROC / recall on the kinds below 90% recall before protocol 7 are
//! printed. The last table drops one shipped term at a time (its value set to 0).
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example blocks_ends -- CHECKPOINT
//! ```
//!
//! Candidates are written plainly over the whole frame; the device's pass must equal
//! the shipped ones (`shared/tests/detector_terms.rs`).

mod common;

use anyhow::Result;
use common::{extent, px, SIDE};
use tinyvae_datasets::corrupt::Corruption;
use tinyvae_shared::detect::{RawTerms, Term};

/// The kinds below 90% recall with protocol 6's terms.
const WATCHED: [Corruption; 8] = [
    Corruption::Vignetting,
    Corruption::BrightOcclusion,
    Corruption::Occlusion,
    Corruption::Overlay,
    Corruption::Saturation,
    Corruption::LineDropout,
    Corruption::DeadPixels,
    Corruption::Torn,
];

/// Protocol 6's `solid`: interior pixels at 224 or more with their four neighbours.
fn solid_cross(img: &[u8]) -> i32 {
    let mut n = 0;
    for y in 1..SIDE - 1 {
        for x in 1..SIDE - 1 {
            let all = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
                .iter()
                .all(|&(dx, dy)| px(img, x + dx, y + dy) >= 224);
            n += i32::from(all);
        }
    }
    n
}

/// `k` x `k` squares of pixels at `level` or more, by their top-left pixel.
fn squares(img: &[u8], k: i32, level: i32) -> i32 {
    let mut n = 0;
    for y in 0..=SIDE - k {
        for x in 0..=SIDE - k {
            let all = (0..k).all(|dy| (0..k).all(|dx| px(img, x + dx, y + dy) >= level));
            n += i32::from(all);
        }
    }
    n
}

/// Protocol 6's `width`: the columns spanned above half scale.
fn width(img: &[u8]) -> i32 {
    extent(img, false).map_or(0, |(f, l)| l + 1 - f)
}

/// Full scale minus the dimmer of the brightest pixels of the first `k` and the last
/// `k` lines (rows, and columns too when `columns`) of the extent; a pixel below
/// `floor` counts 0.
fn ends(img: &[u8], k: i32, columns: bool, floor: i32) -> i32 {
    let mut worst = 0;
    for rows in [true, false] {
        if !rows && !columns {
            continue;
        }
        let Some((f, l)) = extent(img, rows) else {
            continue;
        };
        let peak = |line: i32| {
            (0..SIDE)
                .map(|m| {
                    if rows {
                        px(img, m, line)
                    } else {
                        px(img, line, m)
                    }
                })
                .filter(|&p| p >= floor)
                .max()
                .unwrap_or(0)
        };
        let first = (f..(f + k).min(l + 1)).map(peak).max().unwrap_or(0);
        let last = ((l + 1 - k).max(f)..=l).map(peak).max().unwrap_or(0);
        worst = worst.max(255 - first.min(last));
    }
    worst
}

/// A candidate: its name, the term it replaces and its value of a frame.
type Candidate = (&'static str, Term, fn(&[u8]) -> i32);

fn candidates() -> Vec<Candidate> {
    vec![
        (
            "block: protocol 6's solid (a bright pixel and its four neighbours)",
            Term::Block,
            solid_cross,
        ),
        ("block: 4x4 squares at 224", Term::Block, |i| {
            squares(i, 4, 224)
        }),
        ("block: 5x5 squares at 224", Term::Block, |i| {
            squares(i, 5, 224)
        }),
        ("block: 5x5 squares at 192", Term::Block, |i| {
            squares(i, 5, 192)
        }),
        ("block: 6x6 squares at 224 (shipped)", Term::Block, |i| {
            squares(i, 6, 224)
        }),
        (
            "ends: protocol 6's width (the columns spanned)",
            Term::Ends,
            width,
        ),
        ("ends: nothing (0)", Term::Ends, |_| 0),
        ("ends: 2 rows", Term::Ends, |i| ends(i, 2, false, 0)),
        ("ends: 3 rows", Term::Ends, |i| ends(i, 3, false, 0)),
        ("ends: 3 rows and 3 columns", Term::Ends, |i| {
            ends(i, 3, true, 0)
        }),
        ("ends: 4 rows", Term::Ends, |i| ends(i, 4, false, 0)),
        ("ends: 5 rows", Term::Ends, |i| ends(i, 5, false, 0)),
        ("ends: 6 rows (shipped)", Term::Ends, |i| {
            ends(i, 6, false, 0)
        }),
        ("ends: 6 rows, bright pixels only", Term::Ends, |i| {
            ends(i, 6, false, 224)
        }),
        ("ends: 7 rows", Term::Ends, |i| ends(i, 7, false, 0)),
        ("ends: 8 rows", Term::Ends, |i| ends(i, 8, false, 0)),
    ]
}

fn main() -> Result<()> {
    let (checkpoint, _, scored) = common::score_detect_frames("blocks_ends")?;
    let kinds: Vec<Option<Corruption>> = scored.iter().map(|s| s.kind).collect();
    let header = format!(
        "| pooled AUROC | false positives | mean recall |{}\n|---|---|---|---|{}",
        WATCHED.map(|k| format!(" {} |", k.name())).concat(),
        "---|".repeat(WATCHED.len())
    );

    println!("{checkpoint}: one term's definition replaced, the others as shipped\n");
    println!("| definition {header}");
    for (name, term, value) in candidates() {
        let replaced: Vec<Vec<RawTerms>> = scored
            .iter()
            .map(|s| {
                (0..s.frames.len())
                    .map(|i| {
                        let mut raw = s.terms[i];
                        raw[term as usize] = value(s.frames.image_u8(i));
                        raw
                    })
                    .collect()
            })
            .collect();
        println!(
            "| {name} | {}",
            common::table_row(&WATCHED, &kinds, &replaced)
        );
    }

    println!("\nOne shipped term dropped (its value 0 on every frame)\n");
    println!("| dropped {header}");
    for term in Term::ALL {
        let dropped: Vec<Vec<RawTerms>> = scored
            .iter()
            .map(|s| {
                s.terms
                    .iter()
                    .map(|raw| {
                        let mut raw = *raw;
                        raw[term as usize] = 0;
                        raw
                    })
                    .collect()
            })
            .collect();
        println!(
            "| {} | {}",
            term.name(),
            common::table_row(&WATCHED, &kinds, &dropped)
        );
    }
    Ok(())
}
