//! `pipeline::detector_terms`, the device's entry point to the fault detector, equals
//! its parts: the score's ELBO and `detect::raw_terms` of the image against the
//! decoder's pixels at z = mu. A device that computes it gets the host's bits.

use core::num::NonZeroU32;

use tinyvae_shared::detect::{
    elbo_term, neighbourhood, raw_terms, unseen_candidates, RawTerms, Seen, Term, BLOCK_SIDE,
    DIMMEST_MIN_INK, ENDS_ROWS, NEIGHBOURHOODS, NEIGHBOURHOOD_COLUMNS, SEEN_LEN, TERMS,
};
use tinyvae_shared::fixed::{saturate_i64, Q16};
use tinyvae_shared::math::div_rem_u64;
use tinyvae_shared::model::Model;
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::rng::Rng;
use tinyvae_shared::testing::{synthetic_model, SyntheticShape};

#[test]
fn detector_terms_are_the_score_and_the_raw_terms_of_the_reconstruction() {
    let shape = SyntheticShape::default();
    let bytes = synthetic_model(7, shape).to_bytes().expect("builds");
    let model = Model::parse(&bytes).expect("parses");
    let mut ws = Workspace::new();
    let mut rng = Rng::new(3);
    let pixels = shape.width * shape.height;
    for _ in 0..20 {
        let image: Vec<u8> = (0..pixels).map(|_| rng.next_u32() as u8).collect();
        let terms = pipeline::detector_terms(&model, &mut ws, &image).expect("terms");
        let scored = pipeline::score_image(&model, &mut ws, &image, 0).expect("score");
        let expected = raw_terms(
            &image,
            &scored.reconstruction,
            shape.width,
            shape.height,
            scored.score.score,
            model.seen(),
        );
        assert_eq!(terms, expected);
        assert_eq!(terms[Term::Elbo as usize], elbo_term(scored.score.score));
    }
    // A wrong-sized image is refused, as by every request.
    assert!(pipeline::detector_terms(&model, &mut ws, &[0; 10]).is_err());
}

#[test]
fn the_single_pass_equals_the_definition() {
    let mut rng = Rng::new(0x7e57);
    let mut checked = 0;
    // A set holding about half of the neighbourhoods, and one holding those with few
    // inked pixels (as clean frames' sets do: most of a noisy frame's are unseen).
    let half: Vec<u8> = (0..SEEN_LEN).map(|_| rng.next_u32() as u8).collect();
    let mut sparse = vec![0u8; SEEN_LEN];
    for n in 0..NEIGHBOURHOODS {
        let mut digits = n;
        let inked = (0..9).filter(|_| {
            let d = digits % 3;
            digits /= 3;
            d != 0
        });
        if inked.count() <= 4 {
            sparse[n / 8] |= 1 << (n % 8);
        }
    }
    let sets = [None, Seen::new(&half), Seen::new(&sparse)];
    for round in 0..3_000u32 {
        let (width, height) = match round % 6 {
            0 => (28, 28),
            1 => (32, 32),
            2 => (3, 3),
            3 => (
                1 + rng.next_u32() as usize % 40,
                1 + rng.next_u32() as usize % 25,
            ),
            4 => (
                1 + rng.next_u32() as usize % 3,
                1 + rng.next_u32() as usize % 9,
            ),
            _ => (5 + rng.next_u32() as usize % 20, 2),
        };
        let n = width * height;
        // Mostly background with strokes, like a digit; sometimes pure noise; pixels
        // at the thresholds' edges (0, 31-33, 63-64, 127-129, 159-160, 191-193, 223-224).
        let edges = [
            0u8, 31, 32, 33, 63, 64, 127, 128, 129, 159, 160, 191, 192, 193, 223, 224, 255,
        ];
        // Style 3 is mostly bright, with solid blocks (glare) and dim ends.
        let style = rng.next_u32() % 4;
        let pixel = |rng: &mut Rng| -> u8 {
            let v = rng.next_u32();
            match style {
                0 if !v.is_multiple_of(4) => 0,
                1 => edges[(v >> 8) as usize % edges.len()],
                3 if !v.is_multiple_of(16) => 223 + (v >> 8) as u8 % 33,
                _ => (v >> 8) as u8,
            }
        };
        let image: Vec<u8> = (0..n).map(|_| pixel(&mut rng)).collect();
        // Sometimes a shorter reconstruction: the frame's last row is then cut short.
        let short = if round % 7 == 0 {
            rng.next_u32() as usize % width
        } else {
            0
        };
        let recon: Vec<u8> = (0..n - short).map(|_| pixel(&mut rng)).collect();
        let elbo = rng.next_u32() as Q16;
        let seen = sets[round as usize % 3];
        assert_eq!(
            raw_terms(&image, &recon, width, height, elbo, seen),
            raw_terms_by_definition(&image, &recon, width, height, elbo, seen),
            "{width}x{height}, round {round}"
        );
        checked += 1;
    }
    assert_eq!(checked, 3_000);
    // No columns: a blank frame, whatever the buffers hold.
    let blank = raw_terms(&[255; 9], &[0; 9], 0, 3, 7, sets[2]);
    assert_eq!(blank[Term::Ink as usize], 0);
    assert_eq!(blank[Term::MissingInk as usize], 0);
    assert_eq!(blank[Term::Elbo as usize], elbo_term(7));
}

/// Half of full scale: excess ink counts differences above it.
const HALF: i32 = 128;
/// Missing ink counts reconstruction pixels above 3/8 of full scale where the input is 0.
const MISSING_DRAWN: i32 = 96;
/// Bright: at least 7/8 of full scale.
const BRIGHT: i32 = 224;
/// Mid-tones start above 1/8 of full scale.
const DARK: i32 = 32;

/// The terms as first written (a loop per statistic, an index per neighbour): the
/// definition the single-pass `raw_terms` must equal.
///
/// Computes every term of `image` (`width` x `height`, row major) against its
/// reconstruction `recon` (pixels) and its negative ELBO `elbo` (Q16).
fn raw_terms_by_definition(
    image: &[u8],
    recon: &[u8],
    width: usize,
    height: usize,
    elbo: Q16,
    seen: Option<Seen<'_>>,
) -> RawTerms {
    // The frame is the pixels that have a reconstruction.
    let image = &image[..image.len().min(recon.len())];
    let mut missing = 0;
    let mut excess = 0;
    let mut ink: i64 = 0;
    let (mut bright, mut midtones) = (0, 0);
    let mut sum_x: i64 = 0;
    let mut sum_y: i64 = 0;
    // First and last row and column with a pixel above half scale.
    let (mut top, mut bottom, mut left, mut right) = (usize::MAX, 0, usize::MAX, 0);
    // Column and row counters instead of `i % width` and `i / width`: no division per
    // pixel (the M0 has no divide instruction).
    let (mut col, mut row) = (0usize, 0usize);
    // Per quarter of the frame: the brightest bright pixel, and the pixels of each
    // row's extent above half scale (its first such pixel to its last).
    let (mut peak, mut inked) = ([0i32; 4], [0u32; 4]);
    let (mut row_first, mut row_last) = (usize::MAX, 0);
    let mut pixels_left = image.len().min(recon.len());
    for (&x, &r) in image.iter().zip(recon) {
        let (x, r) = (i32::from(x), i32::from(r));
        if x == 0 && r > MISSING_DRAWN {
            missing += 1;
        } else if x - r > HALF {
            excess += 1;
        }
        if x >= BRIGHT {
            bright += 1;
        } else if x > DARK {
            midtones += 1;
        }
        ink += i64::from(x);
        if x > HALF {
            top = top.min(row);
            bottom = bottom.max(row);
            left = left.min(col);
            right = right.max(col);
        }
        sum_x += i64::from(x) * col as i64;
        sum_y += i64::from(x) * row as i64;
        let quarter = 2 * usize::from(row >= height / 2) + usize::from(col >= width / 2);
        if x >= BRIGHT {
            peak[quarter] = peak[quarter].max(x);
        }
        if x > HALF {
            row_first = row_first.min(col);
            row_last = col;
        }
        col += 1;
        if col == width || pixels_left == 1 {
            // The row's extent above half scale, counted in the quarters it crosses.
            for c in row_first..=row_last {
                inked[2 * usize::from(row >= height / 2) + usize::from(c >= width / 2)] += 1;
            }
            (row_first, row_last) = (usize::MAX, 0);
        }
        pixels_left -= 1;
        if col == width {
            col = 0;
            row += 1;
        }
    }
    let (holes, cuts) = if width == 0 {
        (0, 0)
    } else {
        local_counts(image, width)
    };
    let centroid = |sum: i64, span: usize| -> i32 {
        match NonZeroU32::new(u32::try_from(ink).unwrap_or(u32::MAX)) {
            // (sum * 256 + ink / 2) / ink: 1/256 pixel, rounded.
            Some(d) => div_rem_u64((sum as u64) * 256 + u64::from(d.get() / 2), d).0 as i32,
            // A blank frame's centroid is the middle.
            None => (span as i32) * 128,
        }
    };
    let mut raw = [0; TERMS];
    raw[Term::Elbo as usize] = elbo >> 8;
    raw[Term::MissingInk as usize] = missing;
    raw[Term::ExcessInk as usize] = excess;
    raw[Term::Holes as usize] = holes;
    raw[Term::Unseen as usize] = match seen {
        Some(seen) if top != usize::MAX => unseen(image, width, top..=bottom, seen),
        _ => 0,
    };
    raw[Term::Cuts as usize] = cuts;
    raw[Term::CentroidX as usize] = centroid(sum_x, width.saturating_sub(1));
    raw[Term::CentroidY as usize] = centroid(sum_y, height.saturating_sub(1));
    raw[Term::Ink as usize] = saturate_i64(ink);
    raw[Term::Bright as usize] = bright;
    raw[Term::Midtones as usize] = midtones;
    raw[Term::Block as usize] = blocks(image, width);
    // An empty frame spans nothing.
    let rows = (bottom + 1).saturating_sub(top) as i32;
    raw[Term::Extent as usize] = rows.max((right + 1).saturating_sub(left) as i32);
    raw[Term::Ends as usize] = if top == usize::MAX {
        0
    } else {
        ends(image, width, top, bottom)
    };
    // midtones * 256 / (bright + midtones + 1): both counts are at most the pixel count.
    raw[Term::Softness as usize] =
        (midtones as u32 * 256 / (bright as u32 + midtones as u32 + 1)) as i32;
    let mut dimmest = 0;
    for q in 0..4 {
        if inked[q] >= DIMMEST_MIN_INK {
            dimmest = dimmest.max(255 - peak[q]);
        }
    }
    raw[Term::Dimmest as usize] = dimmest;
    raw
}

/// The pixels of `rows` that the term judges whose neighbourhood `seen` lacks.
fn unseen(
    image: &[u8],
    width: usize,
    rows: core::ops::RangeInclusive<usize>,
    seen: Seen<'_>,
) -> i32 {
    unseen_candidates(image, width)
        .filter(|&(x, y)| rows.contains(&y) && !seen.contains(neighbourhood(image, width, x, y)))
        .count() as i32
}

/// Holes and cuts of `image` (see [`Term`]): pixels in the first
/// NEIGHBOURHOOD_COLUMNS columns, any other pixel (or one outside the frame) reading 0
/// as a neighbour.
fn local_counts(image: &[u8], width: usize) -> (i32, i32) {
    let (mut holes, mut cuts) = (0, 0);
    let columns = width.min(NEIGHBOURHOOD_COLUMNS);
    let rows = image.len().div_ceil(width);
    let px = |x: isize, y: isize| -> i32 {
        if x < 0 || y < 0 || x as usize >= columns {
            0
        } else {
            image
                .get(y as usize * width + x as usize)
                .map_or(0, |&p| i32::from(p))
        }
    };
    // A hard edge between two pixels: one at exactly 0, the other bright.
    let hard = |a: i32, b: i32| a.min(b) == 0 && a.max(b) >= BRIGHT;
    for y in 0..rows as isize {
        for x in 0..columns as isize {
            if y as usize * width + x as usize >= image.len() {
                continue;
            }
            let here = px(x, y);
            if x + 1 < columns as isize && (y as usize * width + x as usize + 1) < image.len() {
                cuts += i32::from(hard(here, px(x + 1, y)));
            }
            if ((y + 1) as usize * width + x as usize) < image.len() {
                cuts += i32::from(hard(here, px(x, y + 1)));
            }
            let (left, right, above, below) =
                (px(x - 1, y), px(x + 1, y), px(x, y - 1), px(x, y + 1));
            if here == 0 && (left.min(right) > HALF || above.min(below) > HALF) {
                holes += 1;
            }
        }
    }
    (holes, cuts)
}

/// Solid BLOCK_SIDE x BLOCK_SIDE squares of bright pixels inside the frame's first 32
/// columns, by their top-left pixel.
fn blocks(image: &[u8], width: usize) -> i32 {
    // The last row may be cut short: a block needs its pixels to be there.
    let rows = image.len().div_ceil(width.max(1));
    let columns = width.min(32);
    let mut n = 0;
    for y in 0..(rows + 1).saturating_sub(BLOCK_SIDE) {
        for x in 0..(columns + 1).saturating_sub(BLOCK_SIDE) {
            let solid = (y..y + BLOCK_SIDE).all(|yy| {
                (x..x + BLOCK_SIDE).all(|xx| {
                    image
                        .get(yy * width + xx)
                        .is_some_and(|&p| i32::from(p) >= BRIGHT)
                })
            });
            n += i32::from(solid);
        }
    }
    n
}

/// Full scale minus the dimmer of the brightest pixels of rows `top..top + ENDS_ROWS`
/// and of rows `bottom + 1 - ENDS_ROWS..=bottom` (both inside the frame).
fn ends(image: &[u8], width: usize, top: usize, bottom: usize) -> i32 {
    let peak = |rows: core::ops::Range<usize>| -> i32 {
        image
            .chunks(width)
            .enumerate()
            .filter(|(y, _)| rows.contains(y))
            .flat_map(|(_, row)| row.iter())
            .map(|&p| i32::from(p))
            .max()
            .unwrap_or(0)
    };
    let first = peak(top..top + ENDS_ROWS);
    let last = peak((bottom + 1).saturating_sub(ENDS_ROWS)..bottom + 1);
    255 - first.min(last)
}
