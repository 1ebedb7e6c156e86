//! The measurement behind protocol 6's four terms (BENCHMARKS.md, "Exact zeros"),
//! kept so that the choice can be repeated: each candidate definition of `holes`,
//! `missing`, `cuts` and `extent` replaces the shipped one in every frame's raw terms, the
//! detector is fitted as `tinyvae detect` fits it (`detector::fit`, tails at 90%,
//! threshold at 1% of the fitting frames), and the pooled and lowest-kind AUROC, the
//! lowest recall and the false positives on the other clean frames are printed. The
//! last table combines the shipped terms other ways than by the largest.
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example exact_zeros -- CHECKPOINT
//! ```
//!
//! Variants are written plainly over the whole frame (every pixel and its four
//! neighbours); the device's single pass must equal the shipped ones
//! (`shared/tests/detector_terms.rs`).

mod common;

use anyhow::Result;
use common::{extent, px, Scored, SIDE};
use tinyvae_datasets::corrupt::Corruption;
use tinyvae_shared::detect::{DetectorParams, RawTerms, Term};
use tinyvae_shared::fixed::q16_to_f64;
use tinyvae_trainer::detector::{fit, two_class_auroc, FitOptions};

/// The kinds the four terms are for, printed beside the summary (AUROC / recall).
const WATCHED: [Corruption; 5] = [
    Corruption::DeadPixels,
    Corruption::Occlusion,
    Corruption::LineDropout,
    Corruption::Saturation,
    Corruption::Scale,
];
/// The table's header.
const HEADER: &str = "| pooled AUROC | lowest kind | lowest recall | false positives | \
                      dead pixels | occlusion | line dropout | saturation | scale |\n\
                      |---|---|---|---|---|---|---|---|---|---|";

/// Interior pixels `(here, west, east, north, south)` for which `f` holds.
fn count_interior(img: &[u8], f: impl Fn(i32, i32, i32, i32, i32) -> bool) -> i32 {
    let mut n = 0;
    for y in 1..SIDE - 1 {
        for x in 1..SIDE - 1 {
            let (h, w, e) = (px(img, x, y), px(img, x - 1, y), px(img, x + 1, y));
            let (no, s) = (px(img, x, y - 1), px(img, x, y + 1));
            n += i32::from(f(h, w, e, no, s));
        }
    }
    n
}

/// Hard edges at `bright` (one pixel at 0, the other at least `bright`), counted for
/// the pairs of a 2x2 block's top and left sides, each on `run` consecutive rows
/// (columns) the same way round (outside the frame reads 0, which is no edge).
fn hard_edges(img: &[u8], bright: i32, run: i32) -> i32 {
    let hard = |a: i32, b: i32| a.min(b) == 0 && a.max(b) >= bright;
    let mut n = 0;
    for y in 0..SIDE - 1 {
        for x in 0..SIDE - 1 {
            let along = |pair: &dyn Fn(i32) -> (i32, i32)| {
                let zero_first = pair(0).0 == 0;
                (0..run).all(|k| {
                    let (a, b) = pair(k);
                    hard(a, b) && (a == 0) == zero_first
                })
            };
            n += i32::from(along(&|k| (px(img, x, y + k), px(img, x + 1, y + k))));
            n += i32::from(along(&|k| (px(img, x + k, y), px(img, x + k, y + 1))));
        }
    }
    n
}

/// A frame's detector score from its raw terms.
type Score<'a> = dyn Fn(&RawTerms) -> f64 + 'a;

/// A definition of one term from the frame and its reconstruction.
struct Variant {
    name: &'static str,
    term: Term,
    value: fn(&[u8], &[u8]) -> i32,
}

fn count_pixels(img: &[u8], rec: &[u8], f: impl Fn(i32, i32) -> bool) -> i32 {
    img.iter()
        .zip(rec)
        .filter(|&(&x, &r)| f(i32::from(x), i32::from(r)))
        .count() as i32
}

/// The rows and the columns from the first to the last that hold a pixel above half
/// scale.
fn spans(img: &[u8]) -> (i32, i32) {
    let span = |rows| extent(img, rows).map_or(0, |(f, l)| l + 1 - f);
    (span(true), span(false))
}

fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "holes: below 64, both neighbours on one axis above 128 (protocol 5)",
            term: Term::Holes,
            value: |i, _| {
                count_interior(i, |h, w, e, n, s| {
                    h < 64 && (w.min(e) > 128 || n.min(s) > 128)
                })
            },
        },
        Variant {
            name: "holes: exactly 0, both neighbours on one axis above 128 (shipped)",
            term: Term::Holes,
            value: |i, _| {
                count_interior(i, |h, w, e, n, s| {
                    h == 0 && (w.min(e) > 128 || n.min(s) > 128)
                })
            },
        },
        Variant {
            name: "holes: exactly 0, both neighbours on one axis at least 64",
            term: Term::Holes,
            value: |i, _| {
                count_interior(i, |h, w, e, n, s| {
                    h == 0 && (w.min(e) >= 64 || n.min(s) >= 64)
                })
            },
        },
        Variant {
            name: "holes: below 64, three of four neighbours above 128",
            term: Term::Holes,
            value: |i, _| {
                count_interior(i, |h, w, e, n, s| {
                    h < 64 && [w, e, n, s].iter().filter(|&&v| v > 128).count() >= 3
                })
            },
        },
        Variant {
            name: "holes: exactly 0, both neighbours on one axis above 0",
            term: Term::Holes,
            value: |i, _| {
                count_interior(i, |h, w, e, n, s| h == 0 && (w.min(e) > 0 || n.min(s) > 0))
            },
        },
        Variant {
            name: "missing: reconstruction more than 128 above the input (protocol 5)",
            term: Term::MissingInk,
            value: |i, r| count_pixels(i, r, |x, r| r - x > 128),
        },
        Variant {
            name: "missing: reconstruction more than 64 above the input",
            term: Term::MissingInk,
            value: |i, r| count_pixels(i, r, |x, r| r - x > 64),
        },
        Variant {
            name: "missing: input 0, reconstruction above 96 (shipped)",
            term: Term::MissingInk,
            value: |i, r| count_pixels(i, r, |x, r| x == 0 && r > 96),
        },
        Variant {
            name: "missing: input 0, reconstruction above 64",
            term: Term::MissingInk,
            value: |i, r| count_pixels(i, r, |x, r| x == 0 && r > 64),
        },
        Variant {
            name: "cuts: edges at 160 on two rows (protocol 5)",
            term: Term::Cuts,
            value: |i, _| hard_edges(i, 160, 2),
        },
        Variant {
            name: "cuts: edges at 128 on two rows",
            term: Term::Cuts,
            value: |i, _| hard_edges(i, 128, 2),
        },
        Variant {
            name: "cuts: edges at 128 on three rows",
            term: Term::Cuts,
            value: |i, _| hard_edges(i, 128, 3),
        },
        Variant {
            name: "cuts: single edges at 224 (shipped)",
            term: Term::Cuts,
            value: |i, _| hard_edges(i, 224, 1),
        },
        Variant {
            name: "extent: the rows spanned (protocol 5's `height`)",
            term: Term::Extent,
            value: |i, _| spans(i).0,
        },
        Variant {
            name: "extent: the rows plus the columns spanned",
            term: Term::Extent,
            value: |i, _| {
                let (rows, columns) = spans(i);
                rows + columns
            },
        },
        Variant {
            name: "extent: the larger of the rows and the columns spanned (shipped)",
            term: Term::Extent,
            value: |i, _| {
                let (rows, columns) = spans(i);
                rows.max(columns)
            },
        },
    ]
}

/// AUROC summary of a detector's scores: pooled, lowest kind, lowest recall, false
/// positives on the evaluation's clean frames.
fn summarize(scored: &[Scored], score: &Score<'_>) -> String {
    let (fitting, clean, faulted) = (&scored[0], &scored[1], &scored[2..]);
    let mut fit_scores: Vec<f64> = fitting.terms.iter().map(score).collect();
    fit_scores.sort_by(f64::total_cmp);
    let threshold = fit_scores[(fit_scores.len() as f64 * 0.99) as usize];
    let above = |s: &[f64]| s.iter().filter(|&&v| v > threshold).count() as f64 / s.len() as f64;
    let clean_scores: Vec<f64> = clean.terms.iter().map(score).collect();
    let (mut all, mut lowest, mut lowest_recall) = (Vec::new(), (f64::MAX, ""), f64::MAX);
    let mut watched = String::new();
    for set in faulted {
        let s: Vec<f64> = set.terms.iter().map(score).collect();
        let a = two_class_auroc(&clean_scores, &s);
        if set.kind.is_some_and(|k| WATCHED.contains(&k)) {
            watched.push_str(&format!(" {a:.3} / {:.0}% |", above(&s) * 100.0));
        }
        if a < lowest.0 {
            lowest = (a, set.kind.map_or("", |k| k.name()));
        }
        lowest_recall = lowest_recall.min(above(&s));
        all.extend(s);
    }
    format!(
        "{:.4} | {:.3} ({}) | {:.1}% | {:.2}% |{watched}",
        two_class_auroc(&clean_scores, &all),
        lowest.0,
        lowest.1,
        lowest_recall * 100.0,
        above(&clean_scores) * 100.0
    )
}

fn main() -> Result<()> {
    let (checkpoint, _, scored) = common::score_detect_frames("exact_zeros")?;

    println!("{checkpoint}: one term's definition replaced, the others as shipped\n");
    println!("| definition {HEADER}");
    for variant in variants() {
        let replaced: Vec<Scored> = scored
            .iter()
            .map(|s| Scored {
                kind: s.kind,
                frames: s.frames.clone(),
                recon: Vec::new(),
                terms: s
                    .terms
                    .iter()
                    .enumerate()
                    .map(|(i, raw)| {
                        let d = s.frames.image_len();
                        let mut raw = *raw;
                        raw[variant.term as usize] =
                            (variant.value)(s.frames.image_u8(i), &s.recon[i * d..(i + 1) * d]);
                        raw
                    })
                    .collect(),
            })
            .collect();
        let params = fit(&replaced[0].terms, FitOptions::default());
        let score = |r: &RawTerms| q16_to_f64(params.detect(r).score);
        println!("| {} | {}", variant.name, summarize(&replaced, &score));
    }

    println!("\nThe shipped terms combined other ways (each term's z as `detect` computes it)\n");
    println!("| combination {HEADER}");
    let params: DetectorParams = fit(&scored[0].terms, FitOptions::default());
    let sorted_z = |r: &RawTerms| {
        let mut z: Vec<f64> = params
            .terms
            .iter()
            .zip(r)
            .map(|(t, &v)| q16_to_f64(t.z(v)))
            .collect();
        z.sort_by(|a, b| b.total_cmp(a));
        z
    };
    let combinations: [(&str, Box<Score<'_>>); 4] = [
        ("the largest (shipped)", Box::new(|r| sorted_z(r)[0])),
        ("the sum", Box::new(|r| sorted_z(r).iter().sum())),
        (
            "the two largest",
            Box::new(|r| sorted_z(r)[..2].iter().sum()),
        ),
        (
            "root of the sum of squares",
            Box::new(|r| sorted_z(r).iter().map(|z| z * z).sum::<f64>().sqrt()),
        ),
    ];
    for (name, score) in &combinations {
        println!("| {name} | {}", summarize(&scored, score.as_ref()));
    }
    Ok(())
}
