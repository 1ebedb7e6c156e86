//! Fixed-point conventions.
//!
//! | quantity                               | type  | format                                   |
//! |----------------------------------------|-------|------------------------------------------|
//! | input and output pixels                | `u8`  | 0..=255 stands for 0.0..=1.0             |
//! | layer activations                      | `i8`  | affine: `real = scale * (q - zero_point)`|
//! | layer weights                          | `i8`  | symmetric per output channel, -127..=127 |
//! | biases and accumulators                | `i32` | `scale_in * scale_w[j]`                  |
//! | requantization multipliers             | `i32` | Q0.31 in `[2^30, 2^31)` plus a shift     |
//! | latent values: mu, logvar, eps, z      | `i32` | Q15.16 ([`Q16`])                         |
//! | KL, reconstruction error, score, threshold, temperature | `i32` | Q15.16, saturating |
//! | internal results of `exp`, `ln`, `sqrt`| `i64`/`u64` | Q30 where more precision pays      |
//!
//! Q15.16 covers +-32768 with a resolution of 1.5e-5: wide enough for any logvar the
//! encoder emits and for per-image negative ELBOs (MNIST scores sit around 100 to 500),
//! and `i32` keeps every multiply within the Cortex-M3's `SMULL`.

/// A Q15.16 fixed-point number: `real = raw / 65536`.
pub type Q16 = i32;

/// Fractional bits of [`Q16`].
pub const Q16_FRAC_BITS: u32 = 16;

/// 1.0 in [`Q16`].
pub const Q16_ONE: Q16 = 1 << Q16_FRAC_BITS;

/// Multiplies two Q16 numbers, rounding to nearest and saturating to the `i32` range.
#[inline]
pub fn mul_q16(a: Q16, b: Q16) -> Q16 {
    let wide = (a as i64) * (b as i64) + (1 << (Q16_FRAC_BITS - 1));
    saturate_i64(wide >> Q16_FRAC_BITS)
}

/// Clamps an `i64` into the `i32` range.
#[inline]
pub fn saturate_i64(v: i64) -> i32 {
    v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Converts a real number to Q16, rounding to nearest and saturating (host only).
#[cfg(feature = "host")]
pub fn q16_from_f64(x: f64) -> Q16 {
    let scaled = (x * Q16_ONE as f64).round();
    if scaled.is_nan() {
        0
    } else {
        scaled.clamp(i32::MIN as f64, i32::MAX as f64) as i32
    }
}

/// Converts a Q16 number to `f64` (host only).
#[cfg(feature = "host")]
pub fn q16_to_f64(q: Q16) -> f64 {
    q as f64 / Q16_ONE as f64
}

/// Converts a real number to Q16 (host only).
#[cfg(feature = "host")]
pub fn q16_from_f32(x: f32) -> Q16 {
    q16_from_f64(x as f64)
}

/// Converts a Q16 number to `f32` (host only).
#[cfg(feature = "host")]
pub fn q16_to_f32(q: Q16) -> f32 {
    q16_to_f64(q) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_rounds_and_saturates() {
        assert_eq!(mul_q16(Q16_ONE, Q16_ONE), Q16_ONE);
        assert_eq!(mul_q16(3 * Q16_ONE / 2, 2 * Q16_ONE), 3 * Q16_ONE);
        assert_eq!(mul_q16(-Q16_ONE, Q16_ONE / 2), -Q16_ONE / 2);
        assert_eq!(mul_q16(i32::MAX, i32::MAX), i32::MAX);
        assert_eq!(mul_q16(i32::MIN, i32::MAX), i32::MIN);
    }
}
