//! Fixed-point `exp`, `ln` and `sqrt` in pure integer arithmetic.
//!
//! The host and the device must compute the same latent `z`, KL term and anomaly
//! score bit for bit, so none of these functions touches a float: every step is an
//! `i32`/`i64`/`u64` add, shift or multiply (`SMULL`/`UMULL` on the Cortex-M3), and the
//! result depends only on the input. Constant tables are integer literals.
//!
//! # Algorithms
//!
//! * **exp** — Cody-Waite range reduction `x = n ln2 + r` with `r` in `[0, ln 2)`
//!   carried to Q62, then `e^r` by an unsigned Horner scheme of its degree-16 Taylor
//!   polynomial in Q62 (truncation error `0.693^17/17! < 2^-57`; each step is a
//!   64x64->high-64 multiply built from four `UMULL`s), then one rounding shift by
//!   `n`. The mantissa is good to ~2^-56, so the Q16 result is correctly rounded
//!   except at near-ties, even at the top of the range where one ulp is `2^-31`
//!   relative.
//! * **ln** — normalise to `x = M 2^e` with `M` in `[1, 2)` (64 significant bits
//!   kept), multiply `M` by a tabulated `R_i ~ 1/M` picked by the top five fraction
//!   bits so that `d = M R_i - 1` lies within `+-2^-6`, sum `ln(1 + d)` to the `d^6`
//!   term (error `< 2^-44`) and add the tabulated `-ln R_i` and `e ln 2`, all in Q56.
//! * **sqrt** — the exact digit-by-digit integer square root [`isqrt_u64`], then one
//!   rounding step; [`sqrt_q16`] is correctly rounded.
//!
//! # Measured accuracy
//!
//! Against `f64` (`shared/tests/math_accuracy.rs`, which sweeps every representable
//! input of `exp` and a dense grid plus random inputs of `ln` and `sqrt`):
//!
//! | function         | inputs checked                                | max error measured      |
//! |------------------|-----------------------------------------------|-------------------------|
//! | [`exp_q16`]      | every raw Q16 in [-16, 11]                    | 0.4999996 ulp           |
//! | [`exp_half_q16`] | every raw Q16 in [-32, 21]                    | 0.4999997 ulp           |
//! | [`ln_q16`]       | all in [2^-16, 16], stride 997 above, 2e6 rnd | 0.5000002 ulp           |
//! | [`ln_u64_q32`]   | 3e6 random `u64`, any magnitude, frac 0..=64  | 0.556 Q32 ulp (1.3e-10) |
//! | [`sqrt_q16`]     | as `ln_q16`, plus an exact rounding check     | 0.4999999 ulp           |
//! | [`isqrt_u64`]    | 2e6 random, squares +-1, edges, exact check   | exact floor             |
//!
//! So `exp` and `sqrt` are correctly rounded on every input checked, and `ln_q16`
//! is correctly rounded except where the exact value lies within `2e-7` ulp of a
//! rounding tie; the relative error of `exp` for results above 1024 is therefore
//! just the final rounding, at most `0.5 / 2^26 = 7.5e-9`. The bounds the tests
//! assert: `exp` `<= 0.5 + 1e-6` ulp, `ln_q16` `<= 0.5 + 1e-4` ulp, `ln_u64_q32`
//! `<= 0.6` Q32 ulp, `sqrt_q16` `<= 0.5 + 1e-6` ulp.
//!
//! (1 ulp of Q16 is `2^-16 = 1.53e-5`.)
//!
//! # Constant tables
//!
//! Generated offline with exact rational / 60-digit `decimal` arithmetic by this
//! Python 3 script (re-run it to check the literals below):
//!
//! ```text
//! from decimal import Decimal, getcontext
//! from fractions import Fraction
//! from math import factorial
//! getcontext().prec = 60
//! def rnd(x):
//!     return int(Decimal(x).to_integral_value()) if isinstance(x, Decimal) else round(x)
//! ln2 = Decimal(2).ln()
//! print("LN2_Q48 =", rnd(ln2 * 2**48))
//! print("LN2_Q56 =", rnd(ln2 * 2**56))
//! print("LOG2E_Q16 =", rnd(Decimal(1) / ln2 * 2**16))
//! print("LN2_Q62 =", rnd(ln2 * 2**62))
//! print("LN2_Q48_ERR_Q62 =", rnd((ln2 * 2**48 - rnd(ln2 * 2**48)) * 2**14))
//! print("EXP_TAYLOR_Q62 =", [rnd(Fraction(2**62, factorial(k))) for k in range(17)])
//! print("LN_SERIES_Q30 =", [rnd(Fraction((-1)**k * 2**30, k + 1)) for k in range(6)])
//! recip = [rnd(Fraction(2**38, 65 + 2 * i)) for i in range(32)]
//! print("LN_RECIP_Q32 =", recip)
//! print("LN_RECIP_LN_Q56 =", [rnd(-(Decimal(r) / Decimal(2**32)).ln() * 2**56) for r in recip])
//! ```

use core::num::NonZeroU32;

use crate::fixed::Q16;

/// `ln 2` in Q48 (error `< 2^-49`).
const LN2_Q48: i64 = 195_103_586_505_167;

/// `ln 2` in Q56.
const LN2_Q56: i64 = 49_946_518_145_322_874;

/// `log2 e` in Q16; only used to guess the exponent `n`, which is then corrected
/// exactly, so its precision does not matter.
const LOG2E_Q16: i64 = 94_548;

/// `ln 2` in Q62.
const LN2_Q62: i64 = 3_196_577_161_300_663_915;

/// `(ln 2 * 2^48 - LN2_Q48) * 2^14`: what [`LN2_Q48`] lacks, in Q62 (Cody-Waite).
const LN2_Q48_ERR_Q62: i64 = 7_787;

/// `2^62 / k!` for `k = 0..=16`: the Taylor coefficients of `e^r` in Q62.
const EXP_TAYLOR_Q62: [u64; 17] = [
    4_611_686_018_427_387_904,
    4_611_686_018_427_387_904,
    2_305_843_009_213_693_952,
    768_614_336_404_564_651,
    192_153_584_101_141_163,
    38_430_716_820_228_233,
    6_405_119_470_038_039,
    915_017_067_148_291,
    114_377_133_393_536,
    12_708_570_377_060,
    1_270_857_037_706,
    115_532_457_973,
    9_627_704_831,
    740_592_679,
    52_899_477,
    3_526_632,
    220_414,
];

/// `(-1)^k 2^30 / (k + 1)` for `k = 0..=5`: `ln(1 + d) / d` as a power series in Q30.
const LN_SERIES_Q30: [i32; 6] = [
    1_073_741_824,
    -536_870_912,
    357_913_941,
    -268_435_456,
    214_748_365,
    -178_956_971,
];

/// `R_i = round(2^32 / (1 + (i + 1/2) / 32))`: reciprocals of the midpoints of the 32
/// sub-intervals of `[1, 2)`, in Q32.
const LN_RECIP_Q32: [u32; 32] = [
    4_228_890_876,
    4_102_655_328,
    3_983_737_782,
    3_871_519_816,
    3_765_450_780,
    3_665_038_759,
    3_569_842_947,
    3_479_467_177,
    3_393_554_407,
    3_311_782_011,
    3_233_857_729,
    3_159_516_172,
    3_088_515_808,
    3_020_636_340,
    2_955_676_419,
    2_893_451_652,
    2_833_792_855,
    2_776_544_515,
    2_721_563_435,
    2_668_717_543,
    2_617_884_828,
    2_568_952_401,
    2_521_815_660,
    2_476_377_540,
    2_432_547_849,
    2_390_242_669,
    2_349_383_820,
    2_309_898_378,
    2_271_718_239,
    2_234_779_731,
    2_199_023_256,
    2_164_392_968,
];

/// `-ln(R_i / 2^32)` in Q56, for the exact integer `R_i` of [`LN_RECIP_Q32`].
const LN_RECIP_LN_Q56: [i64; 32] = [
    1_117_194_380_345_468,
    3_300_924_942_020_222,
    5_420_418_746_012_113,
    7_479_347_223_647_587,
    9_481_075_775_577_267,
    11_428_696_881_822_269,
    13_325_058_802_299_410,
    15_172_790_640_803_814,
    16_974_324_329_735_628,
    18_731_913_771_107_213,
    20_447_651_814_827_415,
    22_123_485_347_518_375,
    23_761_228_450_488_500,
    25_362_574_211_830_459,
    26_929_105_336_188_686,
    28_462_303_482_764_267,
    29_963_557_660_270_886,
    31_434_171_833_937_392,
    32_875_371_769_081_686,
    34_288_311_041_662_496,
    35_674_076_709_375_099,
    37_033_694_300_142_082,
    38_368_132_317_471_928,
    39_678_306_484_636_534,
    40_965_083_430_517_268,
    42_229_284_173_542_494,
    43_471_687_260_769_945,
    44_693_031_641_855_957,
    45_894_019_360_159_252,
    47_075_317_851_282_821,
    48_237_562_283_662_538,
    49_381_357_649_965_996,
];

/// Smallest argument (Q48) that [`exp_parts`] accepts: `-40`.
pub(crate) const EXP_PARTS_MIN_Q48: i64 = -40 << 48;

/// Largest argument (Q48) that [`exp_parts`] accepts: `23`.
pub(crate) const EXP_PARTS_MAX_Q48: i64 = 23 << 48;

/// Above this argument (10.5, Q48) `e^x` exceeds the Q16 range: saturate without
/// computing. (The exact threshold, `ln(32768) = 10.397`, is handled by the final
/// clamp; stopping at 10.5 keeps the exponent `n <= 15`.)
const EXP_Q16_MAX_Q48: i64 = (21 << 48) / 2;

/// Below this argument (-12, Q48) `e^x * 2^16 < 0.4`, which rounds to 0.
const EXP_Q16_MIN_Q48: i64 = -12 << 48;

/// The high 64 bits of the 128-bit product `a * b`, exactly, from four 32x32->64
/// multiplies (`UMULL`), so no 128-bit arithmetic reaches the device.
#[inline]
pub(crate) fn mul_hi_u64(a: u64, b: u64) -> u64 {
    const LO: u64 = 0xFFFF_FFFF;
    let (a1, a0) = (a >> 32, a & LO);
    let (b1, b0) = (b >> 32, b & LO);
    let a0b1 = a0 * b1;
    let a1b0 = a1 * b0;
    // At most 3 (2^32 - 1): no wrap.
    let mid = ((a0 * b0) >> 32) + (a0b1 & LO) + (a1b0 & LO);
    a1 * b1 + (a0b1 >> 32) + (a1b0 >> 32) + (mid >> 32)
}

/// `(n / d, n % d)`, exact, from 32-bit divisions only.
///
/// A `u64` `/` or `%` is a compiler-builtins call on 32-bit Arm (`__aeabi_uldivmod`,
/// about 1 KiB of flash with its helpers). This takes the high word's quotient with
/// one 32-bit division and the low word's with [`div_rem_narrow`]: three `UDIV`s on
/// the M3 (`__aeabi_uidivmod` on the M0) and a few multiplies, the same bits as `n / d`
/// everywhere. Never inlined: one copy serves every caller (a call costs a few
/// instructions; the divisions it replaces took about a hundred).
#[inline(never)]
pub fn div_rem_u64(n: u64, d: NonZeroU32) -> (u64, u32) {
    let (hi, lo) = ((n >> 32) as u32, n as u32);
    let (q_hi, r_hi) = (hi / d, hi % d);
    let (q_lo, r) = div_rem_narrow(r_hi, lo, d);
    ((u64::from(q_hi) << 32) | u64::from(q_lo), r)
}

/// `(n / d, n % d)` for `n = hi 2^32 + lo` with `hi < d`, so that the quotient fits in
/// 32 bits: Knuth's algorithm D with two 16-bit quotient digits (Hacker's Delight,
/// 2nd ed., figure 9-3, `divlu`).
///
/// `d` is shifted left until its top bit is set (and `n` with it); each digit is then
/// estimated from the top 32 bits of the partial remainder over the divisor's top 16
/// bits, which overshoots by at most 2, and corrected by comparing the next digit's
/// product. Every intermediate fits in 32 bits (the two remainders `un21` and the
/// final one wrap, but their true values are below `d 2^s`).
fn div_rem_narrow(hi: u32, lo: u32, d: NonZeroU32) -> (u32, u32) {
    const B: u32 = 1 << 16;
    let s = d.leading_zeros();
    let v = d.get() << s;
    // The divisor's top half has its top bit set, so it is at least 2^15: the `|`
    // changes nothing but lets the compiler see the divisions cannot trap.
    let vn1 = NonZeroU32::new(v >> 16).unwrap_or(NonZeroU32::MIN) | 1 << 15;
    let vn0 = v & 0xFFFF;
    // hi < d, so hi << s loses nothing; `(lo >> 1) >> (31 - s)` is `lo >> (32 - s)`,
    // and 0 for s = 0.
    let un32 = (hi << s) | ((lo >> 1) >> (31 - s));
    let un10 = lo << s;
    let (un1, un0) = (un10 >> 16, un10 & 0xFFFF);
    let digit = |un: u32, next: u32| {
        let (mut q, mut rhat) = (un / vn1, un % vn1);
        // `q < B` is checked first, so `q * vn0 < 2^32`; rhat < B, so
        // `rhat * B + next < 2^32`.
        while q >= B || q * vn0 > (rhat << 16) + next {
            q -= 1;
            rhat += vn1.get();
            if rhat >= B {
                break;
            }
        }
        q
    };
    let q1 = digit(un32, un1);
    let un21 = (un32 << 16)
        .wrapping_add(un1)
        .wrapping_sub(q1.wrapping_mul(v));
    let q0 = digit(un21, un0);
    let r = (un21 << 16)
        .wrapping_add(un0)
        .wrapping_sub(q0.wrapping_mul(v));
    ((q1 << 16) | q0, r >> s)
}

/// `e^x` as a mantissa and a binary exponent: returns `(p, n)` with
/// `e^x ~= p / 2^62 * 2^n`, `p` in `[2^62, 2^63)` (Q62 for a value in `[1, 2)`).
///
/// `x` is Q48 and must lie in [`EXP_PARTS_MIN_Q48`]`..=`[`EXP_PARTS_MAX_Q48`] (callers
/// check; out-of-range inputs are clamped here too, so this never overflows). The
/// relative error of `p` is below `2^-56`, so callers that scale `e^x` (rounding
/// to Q16, multiplying by `eps`, summing the KL terms) round once, at the end, and
/// are correctly rounded except at near-ties.
pub(crate) fn exp_parts(x_q48: i64) -> (u64, i32) {
    let x = x_q48.clamp(EXP_PARTS_MIN_Q48, EXP_PARTS_MAX_Q48);
    // Guess n = floor(x log2 e) from a 16-bit log2 e; |x >> 16| < 2^38, so the product
    // stays below 2^55.
    let mut n = (((x >> 16) * LOG2E_Q16) >> 48) as i32;
    // Cody-Waite reduction r = x - n ln 2: the part with the Q48 constant is exact
    // integer arithmetic, the constant's own rounding error is subtracted in Q62.
    // |r| < 2 ln 2 before the correction, so r 2^62 fits an i64.
    let r48 = x - n as i64 * LN2_Q48;
    let mut r = (r48 << 14) - n as i64 * LN2_Q48_ERR_Q62;
    // |x| < 40 and log2 e is off by 7e-6 in LOG2E_Q16, so the guess errs by less than
    // 3e-4 before the floor: n is right or one too small/large, and one step fixes
    // it. (Plain `if`s: LLVM turns a `while` here into a 64-bit division.)
    if r < 0 {
        n -= 1;
        r += LN2_Q62;
    }
    if r >= LN2_Q62 {
        n += 1;
        r -= LN2_Q62;
    }
    debug_assert!((0..LN2_Q62).contains(&r));
    // r in [0, ln 2) as Q64 still fits a u64 (ln 2 2^64 < 2^63.5).
    let r64 = (r as u64) << 2;
    // Horner in Q62: every partial sum sum_{j>=k} c_j r^(j-k) is below
    // e^r < 2 (and below (e^r - 1) / r < 1.45 for k >= 1), so it fits a u64;
    // Q62 * Q64 >> 64 = Q62. Truncation: r^17 / 17! < 2^-57.
    let mut acc = EXP_TAYLOR_Q62[16];
    for &c in EXP_TAYLOR_Q62[..16].iter().rev() {
        acc = c + mul_hi_u64(acc, r64);
    }
    (acc, n)
}

/// `e^x` for a Q48 argument, rounded to Q16 and saturated to `i32::MAX`.
fn exp_q48_to_q16(x_q48: i64) -> Q16 {
    if x_q48 > EXP_Q16_MAX_Q48 {
        return i32::MAX;
    }
    if x_q48 < EXP_Q16_MIN_Q48 {
        return 0;
    }
    let (p, n) = exp_parts(x_q48);
    // Q16 raw = p 2^(n - 46); n is in [-18, 15] here, so the shift is in [31, 64].
    let shift = (46 - n) as u32;
    let raw = if shift >= 64 {
        // p < 2^63: below half a unit.
        0
    } else {
        (p + (1 << (shift - 1))) >> shift
    };
    raw.min(i32::MAX as u64) as i32
}

/// `e^x` in Q16, rounded to nearest, for any `x`.
///
/// Saturates to `i32::MAX` once `e^x` exceeds the Q16 range (`x > ln 32768 ~ 10.397`)
/// and returns 0 once `e^x < 2^-17` (`x < -11.78`). Never panics.
///
/// Measured error against `f64` over every Q16 input in [-16, 11]: at most
/// 0.4999996 ulp, i.e. correctly rounded (the internal mantissa is good to ~2^-56).
/// Monotone non-decreasing.
pub fn exp_q16(x: Q16) -> Q16 {
    exp_q48_to_q16((x as i64) << 32)
}

/// `e^(x/2)` in Q16 without first rounding `x/2` to Q16.
///
/// This is the standard deviation `exp(logvar / 2)` of the reparameterization trick;
/// halving an odd raw `logvar` first would cost up to half an ulp of the argument.
/// Saturates at `x > 20.79`, returns 0 below `x < -23.56`. Measured error over every
/// Q16 input in [-32, 21]: at most 0.4999997 ulp (correctly rounded).
pub fn exp_half_q16(x: Q16) -> Q16 {
    exp_q48_to_q16((x as i64) << 31)
}

/// `ln(x / 2^frac_bits)` in Q56 for `x != 0`; `frac_bits` is clamped to 64.
///
/// The result magnitude is below `64 ln 2 + ln 2 = 45.1 < 2^5.5`, so Q56 never
/// overflows. Absolute error below `2^-35.5` (the Q36 rounding of `d` and the Q30
/// series).
pub(crate) fn ln_q56(x: u64, frac_bits: u32) -> i64 {
    let lz = x.leading_zeros();
    // m / 2^63 = M in [1, 2); for x == 0 this would be 0, which callers exclude.
    let m = x << lz;
    let idx = ((m >> 58) & 31) as usize;
    let r = LN_RECIP_Q32[idx] as u64;
    // M * R_i in Q63 from the full 64-bit mantissa, as two 32x32 multiplies:
    // both pieces are < 2^64 and their sum is (1 +- 2^-6) 2^63, which cannot wrap.
    let prod = (m >> 32) * r + (((m & 0xFFFF_FFFF) * r) >> 32);
    // d = M R_i - 1, |d| < 2^-6: Q63 -> Q36 fits an i32 (|d| * 2^36 < 2^30).
    let d63 = prod.wrapping_sub(1 << 63) as i64;
    let d = ((d63 + (1 << 26)) >> 27) as i32;
    // q = ln(1 + d) / d = 1 - d/2 + d^2/3 - ... - d^5/6 in Q30, q in (0.99, 1.01).
    let mut q = LN_SERIES_Q30[5];
    for &c in LN_SERIES_Q30[..5].iter().rev() {
        q = c + ((d as i64 * q as i64 + (1 << 35)) >> 36) as i32;
    }
    // ln(M R_i) = d q: Q36 * Q30 = Q66 -> Q56.
    let ln_mr = (d as i64 * q as i64 + (1 << 9)) >> 10;
    let e = (63 - lz as i64) - frac_bits.min(64) as i64;
    ln_mr + LN_RECIP_LN_Q56[idx] + e * LN2_Q56
}

/// Natural logarithm of the unsigned fixed-point number `x / 2^frac_bits`, in Q32.
///
/// The high-precision variant: all 64 bits of `x` are used, so it serves both Q16
/// values and the Q62 radius of the Gaussian sampler. Returns `i64::MIN` for
/// `x == 0` (minus infinity). `frac_bits` above 64 is treated as 64.
///
/// Error at most 0.6 Q32 ulp (`1.4e-10`); measured 0.556 Q32 ulp on 3e6 random
/// inputs. (The internal Q56 value is good to about `2^-35.6`.)
pub fn ln_u64_q32(x: u64, frac_bits: u32) -> i64 {
    if x == 0 {
        return i64::MIN;
    }
    (ln_q56(x, frac_bits) + (1 << 23)) >> 24
}

/// Natural logarithm in Q16, rounded to nearest.
///
/// Defined for `x > 0` (results from `ln 2^-16 = -11.09` to `ln 32768 = 10.40`).
/// For `x <= 0`, where the logarithm is undefined or minus infinity, returns the
/// saturated value `i32::MIN`. Never panics.
///
/// Measured error against `f64`: at most 0.5000002 ulp, i.e. correctly rounded
/// except within 2e-7 ulp of a rounding tie.
pub fn ln_q16(x: Q16) -> Q16 {
    if x <= 0 {
        return i32::MIN;
    }
    ((ln_q56(x as u64, 16) + (1 << 39)) >> 40) as i32
}

/// `floor(sqrt(x))`, exact, for every `u64`.
///
/// The classic digit-by-digit method: at most 32 iterations of 64-bit add, compare
/// and shift, no multiply or divide, so it is exact and identical everywhere.
pub fn isqrt_u64(x: u64) -> u32 {
    if x == 0 {
        return 0;
    }
    let mut rem = x;
    let mut root: u64 = 0;
    // Highest power of four <= x.
    let mut bit: u64 = 1 << ((63 - x.leading_zeros()) & !1);
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root as u32
}

/// Square root in Q16, correctly rounded (error at most 0.5 ulp).
///
/// Returns 0 for `x <= 0` (the square root of a negative number is undefined; 0 is
/// the nearest meaningful value for a variance that rounded below zero).
pub fn sqrt_q16(x: Q16) -> Q16 {
    if x <= 0 {
        return 0;
    }
    // sqrt(x / 2^16) * 2^16 = sqrt(x * 2^16).
    let v = (x as u64) << 16;
    let r = isqrt_u64(v) as u64;
    // Round to nearest: (r + 1/2)^2 = r^2 + r + 1/4, and v is an integer, so
    // v > r^2 + r exactly when sqrt(v) > r + 1/2. No tie is possible.
    let rounded = if v - r * r > r { r + 1 } else { r };
    rounded as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::Q16_ONE;

    #[test]
    fn exp_fixed_points() {
        assert_eq!(exp_q16(0), Q16_ONE);
        assert_eq!(exp_q16(i32::MAX), i32::MAX);
        assert_eq!(exp_q16(i32::MIN), 0);
        assert_eq!(exp_q16(11 * Q16_ONE), i32::MAX);
        assert_eq!(exp_q16(-12 * Q16_ONE), 0);
        assert_eq!(exp_half_q16(0), Q16_ONE);
        assert_eq!(exp_half_q16(i32::MAX), i32::MAX);
        assert_eq!(exp_half_q16(i32::MIN), 0);
        // e = 2.718281828 -> 178145.1 raw.
        assert_eq!(exp_q16(Q16_ONE), 178_145);
        assert_eq!(exp_half_q16(2 * Q16_ONE), 178_145);
    }

    #[test]
    fn ln_fixed_points() {
        assert_eq!(ln_q16(Q16_ONE), 0);
        assert_eq!(ln_q16(0), i32::MIN);
        assert_eq!(ln_q16(-5), i32::MIN);
        assert_eq!(ln_q16(i32::MIN), i32::MIN);
        // ln 2 = 0.693147 -> 45426.09 raw.
        assert_eq!(ln_q16(2 * Q16_ONE), 45_426);
        assert_eq!(ln_u64_q32(0, 7), i64::MIN);
        assert_eq!(ln_u64_q32(1 << 40, 40), 0);
        assert_eq!(ln_u64_q32(1, 0), 0);
    }

    #[test]
    fn exp_reduction_at_every_multiple_of_ln2() {
        // The one-step correction of n is most stressed next to multiples of ln 2;
        // exp_parts debug-asserts r in [0, ln 2) and p must stay in [2^62, 2^63].
        for k in -58i64..=34 {
            let centre = k * LN2_Q48;
            for d in [-(1 << 20), -(1 << 14), -1, 0, 1, 1 << 14, 1 << 20] {
                let x = centre + d;
                if !(EXP_PARTS_MIN_Q48..=EXP_PARTS_MAX_Q48).contains(&x) {
                    continue;
                }
                let (p, n) = exp_parts(x);
                assert!((1 << 62..=(1 << 63) + 64).contains(&p), "x {x}: p {p}");
                assert!((n as i64 - k).abs() <= 1, "x {x}: n {n}");
            }
        }
    }

    #[test]
    fn mul_hi_is_exact() {
        let cases = [
            0,
            1,
            0xFFFF_FFFF,
            1 << 32,
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
            0x1234_5678_9ABC_DEF0,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for &a in &cases {
            for &b in &cases {
                assert_eq!(mul_hi_u64(a, b), ((a as u128 * b as u128) >> 64) as u64);
            }
        }
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let y = x.rotate_left(29) ^ 0xD1B5_4A32_D192_ED03;
            assert_eq!(mul_hi_u64(x, y), ((x as u128 * y as u128) >> 64) as u64);
        }
    }

    /// `div_rem_u64` against the native `u64` division.
    fn check_div(n: u64, d: u32) {
        let Some(nz) = NonZeroU32::new(d) else {
            return;
        };
        let d64 = u64::from(d);
        assert_eq!(div_rem_u64(n, nz), (n / d64, (n % d64) as u32), "{n} / {d}");
    }

    #[test]
    fn div_rem_u64_is_exact_at_the_edges() {
        let divisors = [
            1,
            2,
            3,
            10,
            255,
            65_025,
            0x7FFF,
            0x8000,
            0x8001,
            0xFFFF,
            0x1_0000,
            0x1_0001,
            (1 << 30) - 1,
            1 << 30,
            (1 << 30) + 1,
            (1 << 31) - 1,
            1 << 31,
            (1 << 31) + 1,
            u32::MAX - 1,
            u32::MAX,
        ];
        for &d in &divisors {
            let d64 = u64::from(d);
            let numerators = [
                0,
                1,
                d64 - 1,
                d64,
                d64 + 1,
                u64::from(u32::MAX),
                1 << 32,
                (1 << 32) + 1,
                1 << 62,
                (d64 << 32) - 1,
                d64 << 32,
                (d64 << 32) | 0xFFFF_FFFF,
                d64 * d64,
                d64 * d64 - 1,
                u64::MAX / d64 * d64,
                u64::MAX / d64 * d64 - 1,
                u64::MAX - 1,
                u64::MAX,
            ];
            for &n in &numerators {
                check_div(n, d);
            }
        }
        // Where the first digit's estimate overshoots: remainders just below the
        // divisor, with every low half.
        for d in [
            0x8000_0001u32,
            0x8000_FFFF,
            0xFFFF_0001,
            0x8765_4321,
            0xC000_0000,
        ] {
            for hi in [d - 1, d - 2, d / 2, 0x8000_0000 % d] {
                for lo in [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_0000, u32::MAX] {
                    check_div((u64::from(hi) << 32) | u64::from(lo), d);
                }
            }
        }
    }

    #[test]
    fn div_rem_u64_is_exact_on_random_values() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for i in 0..2_000_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let y = x.rotate_left(23) ^ 0x9E37_79B9_7F4A_7C15;
            // Divisors of every width, numerators of every width.
            let d = (y as u32) >> (i % 32);
            let n = x >> ((i / 32) % 64);
            check_div(n, d);
            // The Gaussian's 2^62 / root, root in [2^30, 2^31).
            check_div(1 << 62, (1 << 30) | (y as u32 >> 2));
        }
    }

    #[test]
    fn isqrt_edges() {
        assert_eq!(isqrt_u64(0), 0);
        assert_eq!(isqrt_u64(1), 1);
        assert_eq!(isqrt_u64(3), 1);
        assert_eq!(isqrt_u64(4), 2);
        assert_eq!(isqrt_u64(u64::MAX), u32::MAX);
        assert_eq!(isqrt_u64((1 << 62) - 1), (1 << 31) - 1);
        assert_eq!(isqrt_u64(1 << 62), 1 << 31);
        let big = u32::MAX as u64;
        assert_eq!(isqrt_u64(big * big), u32::MAX);
        assert_eq!(isqrt_u64(big * big - 1), u32::MAX - 1);
    }

    #[test]
    fn sqrt_fixed_points() {
        assert_eq!(sqrt_q16(0), 0);
        assert_eq!(sqrt_q16(-1), 0);
        assert_eq!(sqrt_q16(i32::MIN), 0);
        assert_eq!(sqrt_q16(Q16_ONE), Q16_ONE);
        assert_eq!(sqrt_q16(4 * Q16_ONE), 2 * Q16_ONE);
        // sqrt(32767.99998) * 65536 = 11863283.2
        assert_eq!(sqrt_q16(i32::MAX), 11_863_283);
    }
}
