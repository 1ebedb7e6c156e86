//! The anomaly score: the negative ELBO evaluated at the posterior mean.
//!
//! `score = reconstruction(x, decoder(mu)) + KL(q(z|x) || N(0, I))`, all in Q16 nats.
//! For a Bernoulli decoder the reconstruction term is the binary cross-entropy summed
//! over pixels, `sum softplus(l) - x * l` for logit `l` and target `x = pixel / 255`,
//! which the device reads from the model's tables; for a Gaussian decoder it is the sum
//! of squared errors in [0, 1] units. An input unlike the training data reconstructs
//! badly or sits far from the prior, so its score is high; the threshold turns the score
//! into a verdict.

use crate::fixed::{saturate_i64, Q16};
use crate::model::{Likelihood, OutputTables};
use crate::protocol::ScoreReport;

/// The reconstruction term for `pixels` against the decoder's int8 `logits`, Q16.
///
/// Accumulates exactly in i64 and rounds once at the end, so the result does not depend
/// on the order of the pixels; saturates at `i32::MAX`.
pub fn reconstruction(
    likelihood: Likelihood,
    tables: &OutputTables<'_>,
    pixels: &[u8],
    logits: &[i8],
) -> Q16 {
    match likelihood {
        Likelihood::Bernoulli => {
            // 255 * sum(softplus(l) - (p / 255) * l), in Q16, then one rounded division.
            let mut sum: i64 = 0;
            for (&p, &q) in pixels.iter().zip(logits) {
                sum += 255 * tables.softplus(q) as i64 - p as i64 * tables.logit(q) as i64;
            }
            saturate_i64(div_round(sum, 255))
        }
        Likelihood::Gaussian => {
            let mut sum: i64 = 0;
            for (&p, &q) in pixels.iter().zip(logits) {
                let d = p as i64 - tables.pixel(q) as i64;
                sum += d * d;
            }
            saturate_i64(div_round(sum << 16, 255 * 255))
        }
    }
}

/// `round(n / d)` for `d > 0`, halves away from zero.
fn div_round(n: i64, d: i64) -> i64 {
    if n >= 0 {
        (n + d / 2) / d
    } else {
        (n - d / 2) / d
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_rounds_half_away_from_zero() {
        assert_eq!(div_round(7, 2), 4);
        assert_eq!(div_round(-7, 2), -4);
        assert_eq!(div_round(5, 3), 2);
        assert_eq!(div_round(-5, 3), -2);
    }

    #[test]
    fn verdict_is_strictly_above_threshold() {
        assert!(!report(10, 5, 15).anomalous);
        assert!(report(10, 6, 15).anomalous);
        assert_eq!(report(i32::MAX, 1, 0).score, i32::MAX);
    }
}
