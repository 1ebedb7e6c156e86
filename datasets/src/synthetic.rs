//! Synthetic anomalies: generic damage to a frame that is none of the fault kinds of
//! [`crate::corrupt`], for training a classifier that must also flag faults it was
//! never told (the fault head's held-out kinds).
//!
//! Why: a classifier trained only on the tuned kinds learns those kinds; a fault of a
//! new shape falls between them (the head alone finds a few percent of vignetting and a
//! quarter of torn frames). Outlier exposure with synthetic anomalies is the usual
//! remedy; the recipe here is DRAEM's (Zavrtanik et al., ICCV 2021): a region drawn from
//! smooth random noise, thresholded, inside which the frame is blended with a foreign
//! source. The sources are what a frame can meet: another frame's content, a flat
//! level, or the frame itself at another gain. The parameters are fixed here, not
//! chosen by measuring on any fault kind.

use crate::rng::SeededRng;

/// Least number of pixels an anomaly must move by at least [`VISIBLE_STEP`] counts; a
/// draw that moves fewer (a region over blank background, a gain near 1) is drawn
/// again, so that no frame indistinguishable from the clean one is labelled damaged.
pub const MIN_VISIBLE_PIXELS: usize = 8;
/// A pixel counts as moved from this many counts on.
pub const VISIBLE_STEP: i32 = 32;
/// Draws before the last one is kept whatever it moved.
const TRIES: usize = 10;

/// What fills the damaged region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The partner frame's pixels (foreign content).
    Partner,
    /// One flat level.
    Level(u8),
    /// The frame's own pixels times a gain in 16ths (0 to 2).
    Gain(u32),
}

/// `frame` (row-major `width x height`, 8-bit) damaged in a smooth random region,
/// `partner` the frame foreign content comes from (same size). Every draw comes from
/// `rng`: the same generator state gives the same bytes.
///
/// The region: a grid of 2 to 5 cells a side of uniform values, interpolated
/// bilinearly to the frame, and its pixels above the quantile that leaves 10% to 60% of
/// the frame inside. The source, one of three with equal odds: the partner frame, a
/// flat level (0 to 255), or the frame at a gain from 0 to 2. The region takes
/// `(1 - a) x + a s` for an opacity `a` from 0.5 to 1.
pub fn anomaly(
    frame: &[u8],
    partner: &[u8],
    width: usize,
    height: usize,
    rng: &mut SeededRng,
) -> Vec<u8> {
    let mut out = frame.to_vec();
    for _ in 0..TRIES {
        out = draw_once(frame, partner, width, height, rng);
        if visibly_moved(&out, frame) >= MIN_VISIBLE_PIXELS {
            break;
        }
    }
    out
}

/// Pixels of `damaged` at least [`VISIBLE_STEP`] counts from `frame`'s.
pub fn visibly_moved(damaged: &[u8], frame: &[u8]) -> usize {
    damaged
        .iter()
        .zip(frame)
        .filter(|(&a, &b)| (i32::from(a) - i32::from(b)).abs() >= VISIBLE_STEP)
        .count()
}

/// One draw of [`anomaly`]'s region, source and opacity.
fn draw_once(
    frame: &[u8],
    partner: &[u8],
    width: usize,
    height: usize,
    rng: &mut SeededRng,
) -> Vec<u8> {
    let field = smooth_field(width, height, rng);
    let coverage = rng.uniform_range(0.1, 0.6);
    let mut sorted = field.clone();
    sorted.sort_by(f64::total_cmp);
    let cut = ((1.0 - coverage) * sorted.len() as f64) as usize;
    let threshold = sorted.get(cut).copied().unwrap_or(f64::INFINITY);
    let source = match rng.below(3) {
        0 => Source::Partner,
        1 => Source::Level(rng.below(256) as u8),
        _ => Source::Gain(rng.below(33) as u32),
    };
    let opacity = rng.uniform_range(0.5, 1.0);
    frame
        .iter()
        .zip(&field)
        .enumerate()
        .map(|(i, (&x, &f))| {
            if f < threshold {
                return x;
            }
            let s = match source {
                Source::Partner => f64::from(partner.get(i).copied().unwrap_or(0)),
                Source::Level(l) => f64::from(l),
                Source::Gain(g) => (f64::from(x) * f64::from(g) / 16.0).min(255.0),
            };
            ((1.0 - opacity) * f64::from(x) + opacity * s)
                .round()
                .clamp(0.0, 255.0) as u8
        })
        .collect()
}

/// Smooth noise over the frame: uniform values on a grid of 2 to 5 cells a side,
/// interpolated bilinearly at the pixel centres.
fn smooth_field(width: usize, height: usize, rng: &mut SeededRng) -> Vec<f64> {
    let cells = 2 + rng.below(4);
    let nodes: Vec<f64> = (0..(cells + 1) * (cells + 1))
        .map(|_| rng.uniform())
        .collect();
    let node = |gx: usize, gy: usize| nodes[gy.min(cells) * (cells + 1) + gx.min(cells)];
    let mut field = Vec::with_capacity(width * height);
    for y in 0..height {
        let fy = (y as f64 + 0.5) / height as f64 * cells as f64;
        let (gy, ty) = (fy.floor() as usize, fy.fract());
        for x in 0..width {
            let fx = (x as f64 + 0.5) / width as f64 * cells as f64;
            let (gx, tx) = (fx.floor() as usize, fx.fract());
            let top = node(gx, gy) * (1.0 - tx) + node(gx + 1, gy) * tx;
            let bottom = node(gx, gy + 1) * (1.0 - tx) + node(gx + 1, gy + 1) * tx;
            field.push(top * (1.0 - ty) + bottom * ty);
        }
    }
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digit() -> Vec<u8> {
        // A filled 12x16 block in a 28x28 frame: enough ink for any region to touch.
        (0..28 * 28)
            .map(|i| {
                let (x, y) = (i % 28, i / 28);
                if (8..20).contains(&x) && (6..22).contains(&y) {
                    200
                } else {
                    0
                }
            })
            .collect()
    }

    #[test]
    fn the_same_generator_gives_the_same_bytes() {
        let (a, b) = (digit(), vec![90u8; 784]);
        let x = anomaly(&a, &b, 28, 28, &mut SeededRng::new(5));
        let y = anomaly(&a, &b, 28, 28, &mut SeededRng::new(5));
        assert_eq!(x, y);
        let z = anomaly(&a, &b, 28, 28, &mut SeededRng::new(6));
        assert_ne!(x, z);
    }

    #[test]
    fn every_anomaly_visibly_moves_pixels_inside_a_region_only() {
        let (a, b) = (digit(), vec![90u8; 784]);
        for seed in 0..200 {
            let out = anomaly(&a, &b, 28, 28, &mut SeededRng::new(seed));
            let moved = visibly_moved(&out, &a);
            assert!(moved >= MIN_VISIBLE_PIXELS, "seed {seed}: {moved} moved");
            // The region covers at most 60% of the frame (ties at the cut aside).
            let touched = out.iter().zip(&a).filter(|(p, q)| p != q).count();
            assert!(touched <= 784 * 61 / 100, "seed {seed}: {touched} touched");
        }
    }

    #[test]
    fn the_field_is_smooth() {
        let field = smooth_field(28, 28, &mut SeededRng::new(1));
        for y in 0..28 {
            for x in 1..28 {
                let step = (field[y * 28 + x] - field[y * 28 + x - 1]).abs();
                // At most 5 cells a side: neighbours differ by at most 5/28 of a node's range.
                assert!(step <= 5.0 / 28.0 + 1e-9, "({x}, {y}): {step}");
            }
        }
    }
}
