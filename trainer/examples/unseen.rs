//! The measurement behind protocol 8's `unseen` term (BENCHMARKS.md, "Unseen
//! neighbourhoods"), kept so that the choice can be repeated: which pixels the term
//! judges. For each rule, the set of 3x3 neighbourhoods (three levels a pixel,
//! `detect::neighbourhood`) that the judged pixels of the training frames have is
//! fitted, every frame's term 4 becomes the count of its judged pixels whose
//! neighbourhood the set lacks, the detector is fitted as `tinyvae detect` fits it
//! (`detector::fit`, tails at 90%, threshold at 1% of the fitting frames), and the
//! pooled AUROC, the false positives on the other clean frames, the mean recall over the
//! 22 kinds, the pixels judged per clean frame (what the device pays for) and AUROC /
//! recall on the kinds below 90% recall before protocol 8 are printed. Protocol 7's
//! `spikes` and a few plain rules for dead pixels are in the table for comparison.
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example unseen -- CHECKPOINT
//! ```
//!
//! Rules are written plainly over the whole frame; the device's pass must equal the
//! shipped one (`shared/tests/detector_terms.rs`).

mod common;

use anyhow::Result;
use common::{px, SIDE};
use tinyvae_datasets::corrupt::Corruption;
use tinyvae_shared::detect::{neighbourhood, raw_terms, RawTerms, Seen, Term, NEIGHBOURHOODS};
use tinyvae_trainer::detector::fit_seen_at;

/// The kinds below 90% recall with protocol 7's terms.
const WATCHED: [Corruption; 7] = [
    Corruption::DeadPixels,
    Corruption::LineDropout,
    Corruption::Occlusion,
    Corruption::Overlay,
    Corruption::Saturation,
    Corruption::Torn,
    Corruption::Vignetting,
];

/// Whether a rule judges pixel (x, y) of a frame.
type Judged = fn(&[u8], i32, i32) -> bool;

fn inked_beside(img: &[u8], x: i32, y: i32) -> bool {
    px(img, x - 1, y) != 0 || px(img, x + 1, y) != 0
}

fn rules() -> Vec<(&'static str, Judged)> {
    vec![
        ("every pixel not 0", |i, x, y| px(i, x, y) != 0),
        ("pixels above half scale", |i, x, y| px(i, x, y) > 128),
        ("pixels not 0, up to half scale", |i, x, y| {
            (1..=128).contains(&px(i, x, y))
        }),
        (
            "pixels at 0 from a row's first pixel not 0 to its last",
            |i, x, y| {
                px(i, x, y) == 0
                    && (0..x).any(|l| px(i, l, y) != 0)
                    && (x + 1..SIDE).any(|r| px(i, r, y) != 0)
            },
        ),
        (
            "pixels at 0 with a pixel not 0 above, below, left or right",
            |i, x, y| {
                px(i, x, y) == 0
                    && (inked_beside(i, x, y) || px(i, x, y - 1) != 0 || px(i, x, y + 1) != 0)
            },
        ),
        (
            "pixels at 0 beside one not 0 in their row (shipped)",
            |i, x, y| px(i, x, y) == 0 && inked_beside(i, x, y),
        ),
    ]
}

/// Protocol 7's `spikes`: pixels above 3/4 whose four neighbours are below a quarter.
fn spikes(img: &[u8]) -> i32 {
    let mut n = 0;
    for y in 1..SIDE - 1 {
        for x in 1..SIDE - 1 {
            let dark = [(-1, 0), (1, 0), (0, -1), (0, 1)]
                .iter()
                .all(|&(dx, dy)| px(img, x + dx, y + dy) < 64);
            n += i32::from(px(img, x, y) > 192 && dark);
        }
    }
    n
}

/// Pixels at 0 with at least `k` of their eight neighbours not 0 (a rule in place of
/// the set, for comparison).
fn zeros_among_ink(img: &[u8], k: usize) -> i32 {
    let mut n = 0;
    for y in 0..SIDE {
        for x in 0..SIDE {
            let around = (-1..=1)
                .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
                .filter(|&(dx, dy)| (dx, dy) != (0, 0) && px(img, x + dx, y + dy) != 0)
                .count();
            n += i32::from(px(img, x, y) == 0 && around >= k);
        }
    }
    n
}

fn main() -> Result<()> {
    let (checkpoint, train, scored) = common::score_detect_frames("unseen")?;
    let kinds: Vec<Option<Corruption>> = scored.iter().map(|s| s.kind).collect();
    let with_term4 = |value: &dyn Fn(&[u8]) -> i32| -> Vec<Vec<RawTerms>> {
        scored
            .iter()
            .map(|s| {
                (0..s.frames.len())
                    .map(|i| {
                        let mut raw = s.terms[i];
                        raw[Term::Unseen as usize] = value(s.frames.image_u8(i));
                        raw
                    })
                    .collect()
            })
            .collect()
    };
    println!("{checkpoint}: term 4 in turn each rule, the other terms as shipped\n");
    println!(
        "| term 4 | judged per clean frame | pooled AUROC | false positives | mean recall |{}\n|---|---|---|---|---|{}",
        WATCHED.map(|k| format!(" {} |", k.name())).concat(),
        "---|".repeat(WATCHED.len())
    );
    let clean = &scored[1].frames;
    println!(
        "| protocol 7's spikes | - | {}",
        common::table_row(&WATCHED, &kinds, &with_term4(&spikes))
    );
    println!(
        "| nothing (0) | - | {}",
        common::table_row(&WATCHED, &kinds, &with_term4(&|_| 0))
    );
    for k in [4, 5, 6] {
        println!(
            "| pixels at 0 with {k} or more of 8 neighbours not 0 (no set) | - | {}",
            common::table_row(&WATCHED, &kinds, &with_term4(&|i| zeros_among_ink(i, k)))
        );
    }
    for (name, judged) in rules() {
        let pixels = |img: &[u8]| {
            (0..SIDE)
                .flat_map(|y| (0..SIDE).map(move |x| (x, y)))
                .filter(move |&(x, y)| judged(img, x, y))
                .map(move |(x, y)| neighbourhood(img, SIDE as usize, x as usize, y as usize))
                .collect::<Vec<_>>()
        };
        let mut seen = vec![false; NEIGHBOURHOODS];
        for i in 0..train.len() {
            for n in pixels(train.image_u8(i)) {
                seen[n] = true;
            }
        }
        let judged_per_frame = (0..clean.len())
            .map(|i| pixels(clean.image_u8(i)).len())
            .sum::<usize>() as f64
            / clean.len() as f64;
        let unseen = |img: &[u8]| pixels(img).into_iter().filter(|&n| !seen[n]).count() as i32;
        println!(
            "| unseen, judging {name}: {} neighbourhoods seen | {judged_per_frame:.1} | {}",
            seen.iter().filter(|&&s| s).count(),
            common::table_row(&WATCHED, &kinds, &with_term4(&unseen))
        );
    }
    // The shipped pixels, against sets of the neighbourhoods seen at least k times.
    println!(
        "\nthe shipped judged pixels, the set holding the neighbourhoods the training frames have at least k times\n"
    );
    println!(
        "| k | neighbourhoods in the set | pooled AUROC | false positives | mean recall |{}\n|---|---|---|---|---|{}",
        WATCHED.map(|k| format!(" {} |", k.name())).concat(),
        "---|".repeat(WATCHED.len())
    );
    for k in [1, 2, 4, 8] {
        let set = fit_seen_at(&train, k);
        let count = set.iter().map(|b| b.count_ones()).sum::<u32>();
        let seen = Seen::new(&set);
        let unseen = |img: &[u8]| raw_terms(img, img, 28, 28, 0, seen)[Term::Unseen as usize];
        println!(
            "| {k} | {count} | {}",
            common::table_row(&WATCHED, &kinds, &with_term4(&unseen))
        );
    }
    Ok(())
}
