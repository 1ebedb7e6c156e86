//! The anomaly score: the negative ELBO evaluated at the posterior mean.
//!
//! `score = reconstruction(x, decoder(mu)) + KL(q(z|x) || N(0, I))`, all in Q16 nats.
//! For a Bernoulli decoder the reconstruction term is the binary cross-entropy summed
//! over pixels, `sum softplus(l) - x * l` for logit `l` and target `x = pixel / 255`,
//! which the device reads from the model's tables; for a Gaussian decoder it is the sum
//! of squared errors in [0, 1] units. An input unlike the training data reconstructs
//! badly or sits far from the prior, so its score is high; the threshold turns the score
//! into a verdict.

use core::num::NonZeroU32;

use crate::detect::Residual;
use crate::fixed::{saturate_i64, Q16};
use crate::math::div_rem_u64;
use crate::model::{Likelihood, OutputTables};
use crate::protocol::ScoreReport;

/// 255, the brightest pixel: the Bernoulli target is `pixel / 255`.
const PIXEL_MAX: NonZeroU32 = NonZeroU32::new(255).unwrap();
/// 255^2: the Gaussian term's squared error is in [0, 1] units.
const PIXEL_MAX_SQUARED: NonZeroU32 = NonZeroU32::new(255 * 255).unwrap();

/// What one pass over the decoder's logits gives: the reconstruction term and the
/// residual counts of the fault detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconstruction {
    /// The reconstruction term for the pixels against the logits, Q16: accumulated
    /// exactly in i64 and rounded once at the end, so it does not depend on the order
    /// of the pixels; saturates at `i32::MAX`.
    pub term: Q16,
    /// Missing and excess ink.
    pub residual: Residual,
}

/// The reconstruction term of `pixels` against the decoder's int8 `logits`, the
/// reconstruction's pixels (into `out`) and the residual counts, in one pass over the
/// pixels (on the device one loop instead of three). Reads as many pixels as the
/// shortest of `pixels`, `logits` and `out`.
pub fn reconstruct(
    likelihood: Likelihood,
    tables: &OutputTables<'_>,
    pixels: &[u8],
    logits: &[i8],
    out: &mut [u8],
) -> Reconstruction {
    let (sum, residual) = match likelihood {
        // 255 * sum(softplus(l) - (p / 255) * l), in Q16, then one rounded division.
        // Each pixel's part fits in 32 bits: the model validator keeps both tables within
        // +-64.0 (2^22 in Q16), so each product is below 2^30 in magnitude.
        Likelihood::Bernoulli => one_pass(tables, pixels, logits, out, |p, q, _| {
            i64::from(255 * tables.softplus(q) - i32::from(p) * tables.logit(q))
        }),
        Likelihood::Gaussian => one_pass(tables, pixels, logits, out, |_, _, d| (d * d) as i64),
    };
    let term = match likelihood {
        Likelihood::Bernoulli => saturate_i64(div_round(sum, PIXEL_MAX)),
        Likelihood::Gaussian => saturate_i64(div_round(sum << 16, PIXEL_MAX_SQUARED)),
    };
    Reconstruction { term, residual }
}

/// [`reconstruct`]'s loop for one likelihood's per-pixel term (of the pixel, the logit
/// and the drawn pixel minus the input): the sum, and missing and excess ink.
#[inline(always)]
fn one_pass(
    tables: &OutputTables<'_>,
    pixels: &[u8],
    logits: &[i8],
    out: &mut [u8],
    term: impl Fn(u8, i8, i32) -> i64,
) -> (i64, Residual) {
    let (mut sum, mut residual) = (0i64, Residual::default());
    for ((&p, &q), o) in pixels.iter().zip(logits).zip(out) {
        let drawn = tables.pixel(q);
        *o = drawn;
        let d = i32::from(drawn) - i32::from(p);
        residual.add(p, drawn);
        sum += term(p, q, d);
    }
    (sum, residual)
}

/// `round(n / d)`, halves away from zero: `(|n| + d / 2) / d` with the sign of `n`,
/// by [`div_rem_u64`] (no 64-bit division call on the device).
pub(crate) fn div_round(n: i64, d: NonZeroU32) -> i64 {
    // The same as `(n + d / 2) / d` (`n - d / 2` for a negative `n`) in i64 wherever
    // that does not overflow; the callers' sums stay far below 2^62.
    let q = div_rem_u64(n.unsigned_abs() + u64::from(d.get() / 2), d).0 as i64;
    if n >= 0 {
        q
    } else {
        -q
    }
}

/// Combines the two terms and applies the threshold.
pub fn report(reconstruction: Q16, kl: Q16, threshold: Q16) -> ScoreReport {
    let score = reconstruction.saturating_add(kl);
    ScoreReport {
        reconstruction,
        kl,
        score,
        threshold,
        anomalous: score > threshold,
        detector: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(d: u32) -> NonZeroU32 {
        NonZeroU32::new(d).unwrap()
    }

    /// The `i64` formula `div_round` had before it avoided 64-bit division.
    fn div_round_i64(n: i64, d: i64) -> i64 {
        if n >= 0 {
            (n + d / 2) / d
        } else {
            (n - d / 2) / d
        }
    }

    #[test]
    fn division_rounds_half_away_from_zero() {
        assert_eq!(div_round(7, nz(2)), 4);
        assert_eq!(div_round(-7, nz(2)), -4);
        assert_eq!(div_round(5, nz(3)), 2);
        assert_eq!(div_round(-5, nz(3)), -2);
    }

    #[test]
    fn division_equals_the_i64_formula() {
        let mut x: u64 = 0x853C_49E6_748F_EA9B;
        for d in [1i64, 2, 3, 255, 255 * 255, 65_536, (1 << 31) - 1, 1 << 31] {
            let edges = [
                0,
                1,
                -1,
                d / 2,
                -d / 2,
                d / 2 - 1,
                -(d / 2) + 1,
                d,
                -d,
                i64::MAX - d,
                i64::MIN + d,
            ];
            for n in edges {
                assert_eq!(div_round(n, nz(d as u32)), div_round_i64(n, d), "{n} / {d}");
            }
            for i in 0..200_000u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Every magnitude, both signs, within the i64 formula's range.
                let n = (x as i64) >> (i % 63 + 1);
                assert_eq!(div_round(n, nz(d as u32)), div_round_i64(n, d), "{n} / {d}");
            }
        }
    }

    #[test]
    fn verdict_is_strictly_above_threshold() {
        assert!(!report(10, 5, 15).anomalous);
        assert!(report(10, 6, 15).anomalous);
        assert_eq!(report(i32::MAX, 1, 0).score, i32::MAX);
    }
}
