//! The latent code: a posterior mean `mu` packed into a few bits per dimension, so a
//! board can send 16 bytes instead of a 784-byte image over a thin link (the
//! `Compress` request), and the host can turn the bytes back into a latent vector.
//!
//! Each dimension is quantized with `bits` bits (1 to 8) by the quantiles of the VAE's
//! prior N(0, 1): level `k` holds the values between `Phi^-1(k / 2^bits)` and
//! `Phi^-1((k + 1) / 2^bits)`. The KL term pulls the posterior means towards the
//! prior, so every level is used about equally often, which a uniform grid would not
//! do. The boundaries for every bit depth are every `2^(8 - bits)`-th entry of one
//! table of the 255 quantiles `Phi^-1(k / 256)` in Q16. The device keeps only the
//! low 16 bits of the lower half of it (the quantiles are symmetric about 0, exactly
//! so in Q16, and sorted): 254 bytes of flash and no floating point.
//!
//! Packing: levels are written most significant bit first, dimension 0 first, into
//! `ceil(latent * bits / 8)` bytes; the bits after the last level are zero.
//!
//! The host decodes a level to the mean of N(0, 1) inside its bin (the centroid), the
//! value that minimises the squared error under the prior ([`level_value`]).

use heapless::Vec;

use crate::fixed::Q16;
use crate::protocol::MAX_LATENT;

/// The fewest bits per dimension a code may use.
pub const MIN_CODE_BITS: u8 = 1;
/// The most bits per dimension a code may use.
pub const MAX_CODE_BITS: u8 = 8;
/// The longest code in bytes: every latent dimension at [`MAX_CODE_BITS`].
pub const MAX_CODE_BYTES: usize = MAX_LATENT;

/// A packed latent code.
pub type Code = Vec<u8, MAX_CODE_BYTES>;

/// `Phi^-1(k / 256)` for `k = 1..=255` in Q16, rounded to nearest: the level
/// boundaries of every bit depth (see the module docs).
pub const QUANTILES_Q16: [Q16; 255] = [
    -174330, -158437, -148519, -141156, -135235, -130248, -125918, -122076, -118613, -115453,
    -112540, -109834, -107304, -104924, -102675, -100540, -98507, -96565, -94704, -92917, -91196,
    -89536, -87931, -86377, -84871, -83408, -81985, -80600, -79250, -77933, -76647, -75389, -74159,
    -72954, -71774, -70616, -69480, -68364, -67268, -66191, -65131, -64087, -63060, -62048, -61051,
    -60067, -59097, -58140, -57195, -56262, -55340, -54428, -53528, -52637, -51756, -50884, -50021,
    -49166, -48320, -47482, -46651, -45828, -45012, -44203, -43401, -42605, -41816, -41032, -40254,
    -39482, -38715, -37954, -37198, -36446, -35700, -34958, -34220, -33487, -32758, -32032, -31311,
    -30594, -29880, -29170, -28463, -27759, -27059, -26362, -25668, -24976, -24287, -23601, -22918,
    -22237, -21559, -20882, -20208, -19536, -18867, -18199, -17533, -16869, -16206, -15545, -14886,
    -14228, -13572, -12917, -12263, -11611, -10960, -10310, -9660, -9012, -8365, -7718, -7072,
    -6427, -5783, -5139, -4495, -3852, -3210, -2567, -1925, -1283, -642, 0, 642, 1283, 1925, 2567,
    3210, 3852, 4495, 5139, 5783, 6427, 7072, 7718, 8365, 9012, 9660, 10310, 10960, 11611, 12263,
    12917, 13572, 14228, 14886, 15545, 16206, 16869, 17533, 18199, 18867, 19536, 20208, 20882,
    21559, 22237, 22918, 23601, 24287, 24976, 25668, 26362, 27059, 27759, 28463, 29170, 29880,
    30594, 31311, 32032, 32758, 33487, 34220, 34958, 35700, 36446, 37198, 37954, 38715, 39482,
    40254, 41032, 41816, 42605, 43401, 44203, 45012, 45828, 46651, 47482, 48320, 49166, 50021,
    50884, 51756, 52637, 53528, 54428, 55340, 56262, 57195, 58140, 59097, 60067, 61051, 62048,
    63060, 64087, 65131, 66191, 67268, 68364, 69480, 70616, 71774, 72954, 74159, 75389, 76647,
    77933, 79250, 80600, 81985, 83408, 84871, 86377, 87931, 89536, 91196, 92917, 94704, 96565,
    98507, 100540, 102675, 104924, 107304, 109834, 112540, 115453, 118613, 122076, 125918, 130248,
    135235, 141156, 148519, 158437, 174330,
];

/// How many of the lower half's entries have a magnitude of at least `floor`.
const fn count_at_least(floor: i32) -> usize {
    let mut n = 0;
    while n < 127 && -QUANTILES_Q16[n] >= floor {
        n += 1;
    }
    n
}

/// Entries `0..ABOVE_ONE` of the lower half are at most -1.0 (magnitude 65,536 or
/// more), entries `0..ABOVE_TWO` at most -2.0; none reaches -3.0 (checked below).
const ABOVE_ONE: usize = count_at_least(1 << 16);
const ABOVE_TWO: usize = count_at_least(2 << 16);
const _: () = assert!(-QUANTILES_Q16[0] < 3 << 16);

/// The lower half of the table (`Phi^-1(k / 256)` for `k = 1..=127`), each magnitude's
/// low 16 bits: what [`level`] reads on the device (254 bytes of flash). The upper half
/// mirrors the lower, the middle is 0, and a magnitude's bits above 16 follow from its
/// index ([`ABOVE_ONE`], [`ABOVE_TWO`]), as the entries are sorted.
static LOWER_LOW16: [u16; 127] = {
    let mut lower = [0; 127];
    let mut i = 0;
    while i < lower.len() {
        lower[i] = (-QUANTILES_Q16[i]) as u16;
        i += 1;
    }
    lower
};

/// The magnitude of `QUANTILES_Q16[i]` for `i < 127`, from [`LOWER_LOW16`].
fn magnitude(i: usize) -> u32 {
    let high = if i < ABOVE_TWO {
        2 << 16
    } else if i < ABOVE_ONE {
        1 << 16
    } else {
        0
    };
    high + u32::from(LOWER_LOW16[i])
}

/// How many lower-half entries have a magnitude of at least `t` (they decrease).
fn count_at_least_magnitude(t: u32) -> usize {
    let (mut lo, mut hi) = (0usize, LOWER_LOW16.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if magnitude(mid) >= t {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Why a code cannot be made or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// The bit depth is outside [`MIN_CODE_BITS`]`..=`[`MAX_CODE_BITS`].
    #[error("bits per dimension must be 1 to 8, got {0}")]
    Bits(u8),
    /// The latent vector is longer than [`MAX_LATENT`].
    #[error("latent width {0} is over the limit of 32")]
    Latent(usize),
    /// The code's length is not `ceil(latent * bits / 8)`.
    #[error("a code of {latent} dimensions at {bits} bits is {expected} bytes, got {got}")]
    Length {
        /// Latent dimensions.
        latent: usize,
        /// Bits per dimension.
        bits: u8,
        /// The length such a code has.
        expected: usize,
        /// The length given.
        got: usize,
    },
}

/// Bytes in a code of `latent` dimensions at `bits` bits each.
pub fn code_len(latent: usize, bits: u8) -> usize {
    (latent * bits as usize).div_ceil(8)
}

fn check(latent: usize, bits: u8) -> Result<(), CodeError> {
    if !(MIN_CODE_BITS..=MAX_CODE_BITS).contains(&bits) {
        return Err(CodeError::Bits(bits));
    }
    if latent > MAX_LATENT {
        return Err(CodeError::Latent(latent));
    }
    Ok(())
}

/// The level of `value` at `bits` bits: how many of the depth's boundaries are at or
/// below it (`0..2^bits`). `bits` must be valid (1 to 8).
pub fn level(value: Q16, bits: u8) -> u8 {
    // The level at 8 bits, L, counts the table's entries <= value; the boundaries at
    // `bits` are every `2^(8 - bits)`-th entry, so exactly `L >> (8 - bits)` of them
    // are <= value. By the table's symmetry, for value < 0 the entries <= value are the
    // lower half's with magnitude >= |value|; for value >= 0 all but the upper half's
    // with magnitude > value, which mirror the lower half's.
    let negative = value < 0;
    let u = value.unsigned_abs() + u32::from(!negative);
    let count = count_at_least_magnitude(u);
    let level8 = if negative { count } else { 255 - count };
    (level8 >> (MAX_CODE_BITS - bits).min(7)) as u8
}

/// Packs `mu` at `bits` bits per dimension.
pub fn pack(mu: &[Q16], bits: u8) -> Result<Code, CodeError> {
    check(mu.len(), bits)?;
    Ok(pack_checked(mu, bits))
}

/// [`pack`] for a `mu` of at most [`MAX_LATENT`] values and a valid `bits`, which the
/// caller has checked (`pipeline::compress`: a `Latent` and its own bits check); no
/// error path, so the device's copy is smaller. Values past the code's capacity
/// would be dropped, never written out of bounds.
pub(crate) fn pack_checked(mu: &[Q16], bits: u8) -> Code {
    let mut code = Code::new();
    let (mut acc, mut filled) = (0u16, 0u8);
    for &value in mu {
        acc = (acc << bits) | u16::from(level(value, bits));
        filled += bits;
        while filled >= 8 {
            filled -= 8;
            // Capacity: at most MAX_LATENT bytes, checked by the caller.
            let _ = code.push((acc >> filled) as u8);
        }
    }
    if filled > 0 {
        let _ = code.push((acc << (8 - filled)) as u8);
    }
    code
}

/// The levels of a code of `latent` dimensions at `bits` bits.
pub fn unpack(code: &[u8], bits: u8, latent: usize) -> Result<Vec<u8, MAX_LATENT>, CodeError> {
    check(latent, bits)?;
    let expected = code_len(latent, bits);
    if code.len() != expected {
        return Err(CodeError::Length {
            latent,
            bits,
            expected,
            got: code.len(),
        });
    }
    let mut levels = Vec::new();
    let mask = (1u16 << bits) - 1;
    let (mut acc, mut filled) = (0u16, 0u8);
    let mut bytes = code.iter();
    for _ in 0..latent {
        while filled < bits {
            acc = (acc << 8) | u16::from(bytes.next().copied().unwrap_or(0));
            filled += 8;
        }
        filled -= bits;
        let _ = levels.push(((acc >> filled) & mask) as u8);
    }
    Ok(levels)
}

/// The value the host decodes `level` to at `bits` bits: the mean of N(0, 1) within
/// the level's bin, `2^bits * (phi(a) - phi(b))` for a bin from `a` to `b` (the bin
/// holds `1 / 2^bits` of the prior's mass). Host only.
#[cfg(feature = "host")]
pub fn level_value(level: u8, bits: u8) -> f64 {
    let density = |q: Option<&Q16>| match q {
        Some(&q) => {
            let x = crate::fixed::q16_to_f64(q);
            (-0.5 * x * x).exp() / (2.0 * core::f64::consts::PI).sqrt()
        }
        None => 0.0,
    };
    let stride = 1usize << (MAX_CODE_BITS - bits);
    let k = level as usize;
    let a = k.checked_sub(1).map(|_| k * stride - 1);
    let b = (k + 1 < (1 << bits)).then(|| (k + 1) * stride - 1);
    let pa = density(a.and_then(|i| QUANTILES_Q16.get(i)));
    let pb = density(b.and_then(|i| QUANTILES_Q16.get(i)));
    f64::from(1u32 << bits) * (pa - pb)
}

/// [`decode`] in Q16: the latent vector the host feeds the device's decoder
/// (`pipeline::decode`), the twin of what a board would draw from the code. Host only.
#[cfg(feature = "host")]
pub fn decode_q16(
    code: &[u8],
    bits: u8,
    latent: usize,
) -> Result<crate::protocol::Latent, CodeError> {
    Ok(decode(code, bits, latent)?
        .into_iter()
        .map(crate::fixed::q16_from_f64)
        .collect())
}

/// Decodes a code to the latent vector the host feeds its decoder. Host only.
#[cfg(feature = "host")]
pub fn decode(code: &[u8], bits: u8, latent: usize) -> Result<std::vec::Vec<f64>, CodeError> {
    Ok(unpack(code, bits, latent)?
        .iter()
        .map(|&l| level_value(l, bits))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::{q16_from_f64, q16_to_f64};

    /// The table is the standard normal's quantiles: checked against `erf` (libm),
    /// to within the Q16 rounding.
    #[test]
    fn table_holds_the_normal_quantiles() {
        for (i, &q) in QUANTILES_Q16.iter().enumerate() {
            let x = q16_to_f64(q);
            let cdf = 0.5 * (1.0 + libm::erf(x / core::f64::consts::SQRT_2));
            let want = (i + 1) as f64 / 256.0;
            // dPhi/dx <= 0.4, and Q16 rounds x by at most 2^-17.
            assert!(
                (cdf - want).abs() < 4e-6,
                "entry {i}: Phi({x}) = {cdf}, not {want}"
            );
        }
        assert!(QUANTILES_Q16.windows(2).all(|w| w[0] < w[1]));
    }

    /// The device reads the lower half only: the table must mirror exactly, and the
    /// half table must give back every magnitude.
    #[test]
    fn table_is_symmetric_and_the_half_table_reads_it_whole() {
        for (i, &q) in QUANTILES_Q16.iter().enumerate() {
            assert_eq!(q, -QUANTILES_Q16[254 - i], "entry {i}");
        }
        assert_eq!(QUANTILES_Q16[127], 0);
        for (i, q) in QUANTILES_Q16.iter().enumerate().take(127) {
            assert_eq!(magnitude(i), q.unsigned_abs(), "entry {i}");
        }
    }

    /// The level by symmetry equals the plain count of the full table's boundaries at
    /// or below the value, on and around every boundary.
    #[test]
    fn level_counts_the_boundaries_below() {
        let mut values = std::vec![i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX];
        for &q in &QUANTILES_Q16 {
            values.extend([q - 1, q, q + 1]);
        }
        for bits in 1..=8u8 {
            let stride = 1usize << (8 - bits);
            for &v in &values {
                let want = (1..1usize << bits)
                    .filter(|&j| QUANTILES_Q16[j * stride - 1] <= v)
                    .count();
                assert_eq!(usize::from(level(v, bits)), want, "{v} at {bits} bits");
            }
        }
    }

    #[test]
    fn levels_split_the_prior_evenly() {
        // Values at the quantiles' midpoints of each bit depth fall in the expected bin.
        for bits in 1..=8u8 {
            let n = 1u32 << bits;
            for k in 0..n {
                let centre = level_value(k as u8, bits);
                assert_eq!(
                    u32::from(level(q16_from_f64(centre), bits)),
                    k,
                    "{bits} bits"
                );
            }
            assert_eq!(level(i32::MIN, bits), 0);
            assert_eq!(u32::from(level(i32::MAX, bits)), n - 1);
            // Zero is a boundary at every depth but 0: it opens the upper half.
            assert_eq!(u32::from(level(0, bits)), n / 2);
            assert_eq!(u32::from(level(-1, bits)), n / 2 - 1);
        }
    }

    #[test]
    fn centroids_are_symmetric_and_inside_their_bins() {
        assert!((level_value(1, 1) - (2.0 / core::f64::consts::PI).sqrt()).abs() < 1e-4);
        for bits in 1..=8u8 {
            let n = 1u16 << bits;
            for k in 0..n {
                let v = level_value(k as u8, bits);
                let mirror = level_value((n - 1 - k) as u8, bits);
                assert!(
                    (v + mirror).abs() < 1e-3,
                    "{bits} bits level {k}: {v} vs {mirror}"
                );
            }
        }
    }

    #[test]
    fn pack_and_unpack_round_trip() {
        let mu: std::vec::Vec<Q16> = (0..16).map(|i| (i - 8) * 20_000).collect();
        for bits in 1..=8u8 {
            let code = pack(&mu, bits).expect("code");
            assert_eq!(code.len(), code_len(16, bits));
            let levels = unpack(&code, bits, 16).expect("levels");
            let want: std::vec::Vec<u8> = mu.iter().map(|&m| level(m, bits)).collect();
            assert_eq!(levels.as_slice(), want.as_slice(), "{bits} bits");
        }
        // 3 dimensions at 3 bits: 9 bits in 2 bytes, MSB first, zero padded.
        let code = pack(&[i32::MAX, i32::MIN, 0], 3).expect("code");
        assert_eq!(code.as_slice(), &[0b1110_0010, 0b0000_0000]);
    }

    #[test]
    fn bad_codes_are_errors() {
        assert_eq!(pack(&[0; 4], 0), Err(CodeError::Bits(0)));
        assert_eq!(pack(&[0; 4], 9), Err(CodeError::Bits(9)));
        assert_eq!(pack(&[0; 33], 4), Err(CodeError::Latent(33)));
        assert_eq!(
            unpack(&[0; 3], 4, 16),
            Err(CodeError::Length {
                latent: 16,
                bits: 4,
                expected: 8,
                got: 3
            })
        );
        assert!(decode(&[0; 16], 8, 16).is_ok());
        // The Q16 decode is the float one rounded, what the device's decoder takes.
        let code = [0x8f, 0x3c];
        let floats = decode(&code, 4, 4).expect("decodes");
        let q16 = decode_q16(&code, 4, 4).expect("decodes");
        let rounded: std::vec::Vec<Q16> = floats.iter().map(|&v| q16_from_f64(v)).collect();
        assert_eq!(q16.as_slice(), rounded.as_slice());
        assert_eq!(decode_q16(&code, 0, 4), Err(CodeError::Bits(0)));
    }
}
