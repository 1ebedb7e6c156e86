//! `exp`, `ln(1 + t)` and the sigmoid in forms the compiler vectorizes.
//!
//! The loss runs them on every pixel of every batch (100,000 values per batch of 128
//! MNIST images), and libm's scalar `expf` and `log1pf` took a tenth of an epoch. These
//! are within 2 float ulps of them on the ranges the loss uses (tested below).

/// `e^x` for `x <= 0`. Values below -87 count as -87 (`e^-87` is 1.6e-38, nothing
/// next to the 1 it is added to in the loss), which keeps `2^n` a normal float.
///
/// `x = n ln 2 + r` with `|r| <= ln2 / 2` (ln 2 split in two parts so `r` is exact),
/// `e^r` by its Taylor series to degree 7, and `2^n` put into the exponent bits.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// `ln(1 + t)` for `t` in `[0, 1]`: `2 atanh(s)` with `s = t / (2 + t)` in `[0, 1/3]`,
/// by its odd series to `s^15` (the first term left out is below 5e-10).
#[inline(always)]
pub fn ln_1p_unit(t: f32) -> f32 {
    let s = t / (2.0 + t);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0
                    + s2 * (1.0 / 9.0
                        + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0 + s2 * (1.0 / 15.0)))))));
    2.0 * s * series
}

/// `(softplus(-|l|), sigmoid(l))`: the two things the Bernoulli loss needs of a logit,
/// from one exponential `t = e^-|l|`.
#[inline(always)]
pub fn softplus_neg_abs_and_sigmoid(l: f32) -> (f32, f32) {
    let t = exp_nonpositive(-l.abs());
    let inv = 1.0 / (1.0 + t);
    let sigmoid = if l >= 0.0 { inv } else { t * inv };
    (ln_1p_unit(t), sigmoid)
}

/// Binary cross-entropy with logits of one pixel, and its derivative with respect to
/// the logit: `(max(l, 0) - x l + ln(1 + e^-|l|), sigmoid(l) - x)`.
#[inline(always)]
pub fn bce_with_logits(l: f32, x: f32) -> (f32, f32) {
    let (softplus, sigmoid) = softplus_neg_abs_and_sigmoid(l);
    (l.max(0.0) - x * l + softplus, sigmoid - x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> f32 {
        (a - b).abs() / (b.abs() * f32::EPSILON).max(f32::MIN_POSITIVE)
    }

    #[test]
    fn exp_is_within_two_ulps_of_libm() {
        let mut worst = 0.0f32;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            worst = worst.max(ulps(exp_nonpositive(x), x.exp()));
        }
        assert!(worst <= 2.0, "worst {worst} ulps");
        let floor = exp_nonpositive(-1000.0);
        assert!(floor > 0.0 && floor < 1e-37, "e^-1000 gave {floor}");
    }

    #[test]
    fn ln_1p_is_within_two_ulps_of_libm() {
        let mut worst = 0.0f32;
        for i in 0..=1_000_000 {
            let t = i as f32 * 1e-6;
            worst = worst.max(ulps(ln_1p_unit(t), t.ln_1p()));
        }
        assert!(worst <= 2.0, "worst {worst} ulps");
    }

    #[test]
    fn sigmoid_and_softplus_match_their_definitions() {
        for i in -4000..=4000 {
            let l = i as f32 * 0.01;
            let (softplus, sigmoid) = softplus_neg_abs_and_sigmoid(l);
            let want_sigmoid = 1.0 / (1.0 + (-l as f64).exp());
            let want_softplus = (-(l.abs() as f64)).exp().ln_1p();
            assert!((sigmoid as f64 - want_sigmoid).abs() < 2e-7, "sigmoid({l})");
            assert!(
                (softplus as f64 - want_softplus).abs() < 2e-7,
                "softplus({l})"
            );
        }
    }
}
