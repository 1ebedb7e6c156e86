//! The latent-space math of the VAE: the reparameterization trick and the KL term.
//!
//! Both run on the device per request and on the host to predict the device, so
//! they are integer-only and round once per value. Neither can panic or overflow for
//! any `i32` input: extreme `logvar` values saturate instead.

use crate::fixed::{saturate_i64, Q16};
use crate::math::{exp_parts, EXP_PARTS_MAX_Q48, EXP_PARTS_MIN_Q48};

/// `z = mu + exp(logvar / 2) * eps`, element-wise, in Q16, rounded once and
/// saturated to the `i32` range.
///
/// The standard deviation is not rounded to Q16 first: `exp(logvar / 2)` is taken
/// as a 62-bit mantissa and exponent and multiplied by `eps` exactly, so a tiny
/// standard deviation (say `logvar = -20`, std = 4.5e-5, 3 raw Q16 units) still
/// scales the noise accurately. Measured error: at most 0.4999995 ulp, i.e.
/// correctly rounded, against `f64` (`shared/tests/latent_accuracy.rs`).
///
/// Extremes: `logvar / 2 < -40` contributes nothing (`|std * eps| < 2^-40`);
/// `logvar / 2 > 23` makes any nonzero `eps` saturate `z` towards the sign of `eps`;
/// `eps == 0` always gives `z = mu`.
///
/// The slices should have equal length; if they differ, only the first
/// `min(len)` elements of `z` are written and the rest of `z` is left untouched, so
/// a length mismatch cannot panic on the device.
pub fn reparameterize(mu: &[Q16], logvar: &[Q16], eps: &[Q16], z: &mut [Q16]) {
    for (((z, &mu), &logvar), &eps) in z.iter_mut().zip(mu).zip(logvar).zip(eps) {
        *z = saturate_i64(mu as i64 + scaled_noise(logvar, eps));
    }
}

/// `round(exp(logvar / 2) * eps)` in Q16 as an `i64`, clamped to `+-2^33` (which
/// already saturates any `mu + noise`). Symmetric in the sign of `eps`.
fn scaled_noise(logvar: Q16, eps: Q16) -> i64 {
    const CLAMP: u64 = 1 << 33;
    if eps == 0 {
        return 0;
    }
    // logvar / 2 exactly, in Q48.
    let x = (logvar as i64) << 31;
    let mag = if x < EXP_PARTS_MIN_Q48 {
        // std < e^-40 = 4.2e-18 and |eps| < 2^15: the product is far below half an ulp.
        0
    } else if x > EXP_PARTS_MAX_Q48 {
        // std > e^23 = 9.7e9 and |eps| >= 2^-16: |noise| > 1.4e5 > 2^16.
        CLAMP
    } else {
        // std |eps| = p |eps| 2^(n - 62) in Q16, n in [-58, 34].
        let (p, n) = exp_parts(x);
        mul_shift_round(p, eps.unsigned_abs(), (62 - n) as u32, CLAMP)
    };
    if eps < 0 {
        -(mag as i64)
    } else {
        mag as i64
    }
}

/// `min(round(p * e / 2^s), cap)` for `p <= 2^63 + 2^32`, any `e: u32`, any `s` and
/// `cap <= 2^62`, exactly, with 32x32->64 multiplies only.
fn mul_shift_round(p: u64, e: u32, s: u32, cap: u64) -> u64 {
    const LO: u64 = 0xFFFF_FFFF;
    let e = e as u64;
    // p e = t_hi 2^32 + t_lo exactly: (p >> 32) e < 2^63 and the carry is < 2^32.
    let lo = (p & LO) * e;
    let t_hi = (p >> 32) * e + (lo >> 32);
    let t_lo = lo & LO;
    let v = if s >= 32 {
        // round(T / 2^s) = floor((t_hi + 2^(k-1)) / 2^k) for k = s - 32 >= 1: the low
        // word cannot carry into it. For k = 0, round on bit 31 of t_lo.
        let k = s - 32;
        if k >= 64 {
            0
        } else if k == 0 {
            t_hi + (t_lo >> 31)
        } else {
            (t_hi + (1 << (k - 1))) >> k
        }
    } else {
        let up = 32 - s;
        if t_hi >= cap >> up {
            return cap;
        }
        let half = (1u64 << s) >> 1;
        (t_hi << up) + ((t_lo + half) >> s)
    };
    v.min(cap)
}

/// The KL divergence of `N(mu, exp(logvar))` from `N(0, 1)`, summed over the latent
/// dimensions: `0.5 * sum(exp(logvar) + mu^2 - 1 - logvar)`, in Q16, rounded once and
/// saturated to `i32::MAX`.
///
/// Each term is formed in Q32 (`mu^2` exactly, `exp(logvar)` rounded once from its
/// 62-bit mantissa) and summed in an `i64`, so the only rounding that matters is
/// the final one: measured error at most 0.5000056 ulp against `f64`, asserted
/// `<= 0.501` (`shared/tests/latent_accuracy.rs`).
///
/// Never overflows or panics for any `i32` inputs. Every exact term is `>= 0`
/// (`e^x >= 1 + x`), so the sum only grows and the function returns `i32::MAX` as
/// soon as the running sum proves the result saturates: on `logvar > 12` (one term
/// alone exceeds `2 * 32768`), `|mu| >= 256`, or a partial sum `>= 2^48` (Q32).
/// A term that rounding pushed a hair below zero is clamped to zero.
///
/// Uses the first `min(mu.len(), logvar.len())` dimensions if the lengths differ.
pub fn kl_q16(mu: &[Q16], logvar: &[Q16]) -> Q16 {
    /// 2 * 32768 in Q32: the sum at which `0.5 * sum` leaves the Q16 range.
    const SATURATE: i64 = 1 << 48;
    /// 12 in Q16: `e^12 - 13 > 2^16`.
    const LOGVAR_SATURATE: Q16 = 12 << 16;
    /// 256 in Q16: `256^2 = 2^16`.
    const MU_SATURATE: u32 = 256 << 16;
    /// -40 in Q16: `e^-40 * 2^32 < 2^-25`, which rounds to 0 in Q32.
    const LOGVAR_ZERO: Q16 = -40 << 16;

    let mut sum: i64 = 0;
    for (&mu, &logvar) in mu.iter().zip(logvar) {
        if logvar > LOGVAR_SATURATE || mu.unsigned_abs() >= MU_SATURATE {
            return i32::MAX;
        }
        // e^logvar in Q32 = p 2^(n - 30), rounded; n is in [-58, 17] here, so the shift
        // is in [13, 88] and the result at most 2^50.
        let exp_q32 = if logvar < LOGVAR_ZERO {
            0
        } else {
            let (p, n) = exp_parts((logvar as i64) << 32);
            let s = (30 - n) as u32;
            if s >= 64 {
                0
            } else {
                // p + 2^62 < 2^64.
                ((p + (1 << (s - 1))) >> s) as i64
            }
        };
        // |mu| < 2^24, so mu^2 < 2^48 is exact in Q32.
        let mu_sq = mu as i64 * mu as i64;
        // -1 - logvar in Q32: at most 2^31 2^16 = 2^47 in magnitude.
        let rest = (-(1i64 << 16) - logvar as i64) << 16;
        sum += (exp_q32 + mu_sq + rest).max(0);
        if sum >= SATURATE {
            return i32::MAX;
        }
    }
    // 0.5 * sum, Q32 -> Q16, rounded; sum < 2^48 so this is below 2^31.
    saturate_i64((sum + (1 << 16)) >> 17)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::Q16_ONE;

    #[test]
    fn reparameterize_basics() {
        let mu = [Q16_ONE, -Q16_ONE, 0, i32::MAX];
        let logvar = [0, 2 * Q16_ONE, i32::MIN, i32::MAX];
        let eps = [Q16_ONE, -Q16_ONE, i32::MAX, 1];
        let mut z = [0; 4];
        reparameterize(&mu, &logvar, &eps, &mut z);
        // 1 + 1 * 1 = 2; -1 + e * -1 = -3.71828 -> -243681.1; tiny std; saturation.
        assert_eq!(z, [2 * Q16_ONE, -243_681, 0, i32::MAX]);
    }

    #[test]
    fn reparameterize_length_mismatch_is_safe() {
        let mut z = [7; 3];
        reparameterize(&[Q16_ONE; 3], &[0; 2], &[0; 3], &mut z);
        assert_eq!(z, [Q16_ONE, Q16_ONE, 7]);
        reparameterize(&[], &[], &[], &mut z);
    }

    #[test]
    fn kl_basics() {
        assert_eq!(kl_q16(&[], &[]), 0);
        assert_eq!(kl_q16(&[0; 8], &[0; 8]), 0);
        // mu = 1, logvar = 0: 0.5.
        assert_eq!(kl_q16(&[Q16_ONE], &[0]), Q16_ONE / 2);
        assert_eq!(kl_q16(&[i32::MIN], &[i32::MIN]), i32::MAX);
        assert_eq!(kl_q16(&[0], &[i32::MAX]), i32::MAX);
        assert_eq!(kl_q16(&[i32::MAX, 0], &[i32::MIN, 0]), i32::MAX);
        assert_eq!(kl_q16(&[0; 64], &[i32::MIN; 64]), i32::MAX);
    }
}
