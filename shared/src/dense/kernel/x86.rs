//! The host's fixed-point path on x86-64: SSE2 (in every x86-64) and AVX2 where the
//! CPU has it.
//!
//! A block of the grouped layout holds inputs `a b c d` as `a0 a1 a2 a3 b0 .. d3`.
//! Read as i16 lanes, shifts alone sign-extend it without a shuffle (shuffles are what
//! limit this loop on x86): `(v << 8) >> 8` keeps channels 0 and 2 (`a0 a2 b0 b2 ..`)
//! and `v >> 8` keeps channels 1 and 3. `PMADDWD` against the activations placed in the
//! low i16 of each i32 lane (`xa 0 xb 0 ..`) gives `w0 * x` per input for the even
//! channel, and against the high i16 (`0 xa 0 xb ..`) the odd one. Each channel keeps
//! one i32 per input slot; the slots are added across at the end of the group. Every
//! product is exact: activations are within +-255 and weights within -128..=127.

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_and_si128, _mm_loadu_si128, _mm_madd_epi16, _mm_set1_epi32,
    _mm_setzero_si128, _mm_slli_epi16, _mm_slli_epi32, _mm_srai_epi16, _mm_storeu_si128,
    _mm_unpackhi_epi32, _mm_unpackhi_epi64, _mm_unpacklo_epi32, _mm_unpacklo_epi64,
};

use super::{portable, split_steps, Operands, CHANNEL_GROUP};
#[cfg(feature = "std")]
use super::{LayerParams, Word};

/// Inputs per SSE2 step: one 16-byte load of weights.
const BLOCK: usize = 4;

/// Per channel, four i32 partial sums (one per input slot of a block).
type Sums = [__m128i; CHANNEL_GROUP];

/// Adds whole blocks of four inputs to `sums` with SSE2; returns the rest.
#[inline(always)]
fn sse2_blocks<'a, 'b>(sums: &mut Sums, weights: &'a [i8], xs: &'b [i32]) -> Operands<'a, 'b> {
    let ((w_done, x_done), rest) = split_steps(weights, xs, BLOCK);
    let (w_blocks, _) = w_done.as_chunks::<{ CHANNEL_GROUP * BLOCK }>();
    let (x_blocks, _) = x_done.as_chunks::<BLOCK>();
    // SAFETY: SSE2 is in the x86-64 baseline. Each load reads one whole `[i8; 16]` or
    // `[i32; 4]` (16 bytes) through `loadu`, which has no alignment requirement.
    #[allow(unsafe_code)]
    unsafe {
        let low_half = _mm_set1_epi32(0xffff);
        for (w, x) in w_blocks.iter().zip(x_blocks) {
            let w = _mm_loadu_si128(w.as_ptr().cast::<__m128i>());
            let x = _mm_loadu_si128(x.as_ptr().cast::<__m128i>());
            let even = _mm_srai_epi16::<8>(_mm_slli_epi16::<8>(w));
            let odd = _mm_srai_epi16::<8>(w);
            let x_low = _mm_and_si128(x, low_half);
            let x_high = _mm_slli_epi32::<16>(x);
            sums[0] = _mm_add_epi32(sums[0], _mm_madd_epi16(even, x_low));
            sums[1] = _mm_add_epi32(sums[1], _mm_madd_epi16(odd, x_low));
            sums[2] = _mm_add_epi32(sums[2], _mm_madd_epi16(even, x_high));
            sums[3] = _mm_add_epi32(sums[3], _mm_madd_epi16(odd, x_high));
        }
    }
    rest
}

/// Lane `c` of the result is the sum of the four lanes of `sums[c]` (a transpose-add).
#[inline(always)]
fn reduce(sums: Sums) -> [i32; CHANNEL_GROUP] {
    let [s0, s1, s2, s3] = sums;
    let mut lanes = [0i32; CHANNEL_GROUP];
    // SAFETY: SSE2 is in the x86-64 baseline; the store writes the 16 bytes of `lanes`.
    #[allow(unsafe_code)]
    unsafe {
        let s01 = _mm_add_epi32(_mm_unpacklo_epi32(s0, s1), _mm_unpackhi_epi32(s0, s1));
        let s23 = _mm_add_epi32(_mm_unpacklo_epi32(s2, s3), _mm_unpackhi_epi32(s2, s3));
        let total = _mm_add_epi32(_mm_unpacklo_epi64(s01, s23), _mm_unpackhi_epi64(s01, s23));
        _mm_storeu_si128(lanes.as_mut_ptr().cast::<__m128i>(), total);
    }
    lanes
}

#[inline(always)]
fn zero_sums() -> Sums {
    // SAFETY: SSE2 is in the x86-64 baseline.
    #[allow(unsafe_code)]
    [unsafe { _mm_setzero_si128() }; CHANNEL_GROUP]
}

/// Adds what is left of a group to `sums` (SSE2 blocks, then the portable loop for
/// fewer than four inputs) and returns the group's dot products.
#[inline(always)]
fn finish_group(mut sums: Sums, weights: &[i8], xs: &[i32]) -> [i32; CHANNEL_GROUP] {
    let (weights, xs) = sse2_blocks(&mut sums, weights, xs);
    let mut dot = reduce(sums);
    portable(&mut dot, weights, xs);
    dot
}

/// One group's dot products with SSE2 and the portable loop for leftover inputs.
#[inline]
pub(super) fn sse2_dot_group(weights: &[i8], xs: &[i32]) -> [i32; CHANNEL_GROUP] {
    finish_group(zero_sums(), weights, xs)
}

/// One group's requantization parameters, as i32 lanes (0 past the layer's outputs).
#[cfg(feature = "std")]
struct GroupParams {
    bias: [i32; CHANNEL_GROUP],
    multiplier: [i32; CHANNEL_GROUP],
    shift: [i32; CHANNEL_GROUP],
}

#[cfg(feature = "std")]
impl GroupParams {
    /// Group `g` of `params`.
    fn of<W: Word>(params: &LayerParams<'_, W>, g: usize) -> Self {
        let lanes = |words: &[W]| {
            let mut lanes = [0; CHANNEL_GROUP];
            for (lane, &word) in lanes.iter_mut().zip(words.iter().skip(CHANNEL_GROUP * g)) {
                *lane = word.value();
            }
            lanes
        };
        Self {
            bias: lanes(params.bias),
            multiplier: lanes(params.multiplier),
            shift: lanes(params.shift),
        }
    }
}

/// [`super::run`] with AVX2: two blocks (eight inputs) per step, then SSE2
/// and the portable loop for what is left of each group. The whole layer runs inside
/// this one AVX2 function so that the per-group work is inlined into it.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(feature = "std")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
pub(super) unsafe fn avx2_run<T, W: Word>(
    weights: &[i8],
    xs: &[i32],
    group_len: usize,
    params: &LayerParams<'_, W>,
    out: &mut [T],
    convert: impl Fn(i32) -> T,
) {
    use core::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_and_si256, _mm256_castsi256_si128,
        _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_set1_epi32,
        _mm256_setzero_si256, _mm256_slli_epi16, _mm256_slli_epi32, _mm256_srai_epi16,
    };
    const STEP: usize = 2 * BLOCK;

    let low_half = _mm256_set1_epi32(0xffff);
    let groups = out
        .chunks_mut(CHANNEL_GROUP)
        .zip(weights.chunks_exact(group_len));
    for (g, (out, group)) in groups.enumerate() {
        let ((w_done, x_done), (w_rest, x_rest)) = split_steps(group, xs, STEP);
        let (w_steps, _) = w_done.as_chunks::<{ CHANNEL_GROUP * STEP }>();
        let (x_steps, _) = x_done.as_chunks::<STEP>();
        let mut wide = [_mm256_setzero_si256(); CHANNEL_GROUP];
        for (w, x) in w_steps.iter().zip(x_steps) {
            // SAFETY: each load reads one whole `[i8; 32]` or `[i32; 8]` (32 bytes)
            // through `loadu`, which has no alignment requirement.
            let (w, x) = unsafe {
                (
                    _mm256_loadu_si256(w.as_ptr().cast::<__m256i>()),
                    _mm256_loadu_si256(x.as_ptr().cast::<__m256i>()),
                )
            };
            let even = _mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(w));
            let odd = _mm256_srai_epi16::<8>(w);
            let x_low = _mm256_and_si256(x, low_half);
            let x_high = _mm256_slli_epi32::<16>(x);
            wide[0] = _mm256_add_epi32(wide[0], _mm256_madd_epi16(even, x_low));
            wide[1] = _mm256_add_epi32(wide[1], _mm256_madd_epi16(odd, x_low));
            wide[2] = _mm256_add_epi32(wide[2], _mm256_madd_epi16(even, x_high));
            wide[3] = _mm256_add_epi32(wide[3], _mm256_madd_epi16(odd, x_high));
        }
        // Fold each channel's eight lanes to four: the halves hold the same input slots.
        let sums: Sums = wide.map(|wide| {
            _mm_add_epi32(
                _mm256_castsi256_si128(wide),
                _mm256_extracti128_si256::<1>(wide),
            )
        });
        let dot = finish_group(sums, w_rest, x_rest);
        // SAFETY: the caller guarantees AVX2.
        let scaled = unsafe { avx2_requantize(&GroupParams::of(params, g), dot) };
        for (slot, scaled) in out.iter_mut().zip(scaled) {
            *slot = convert(scaled.saturating_add(params.zero_point));
        }
    }
}

/// [`super::super::requantize`] on four channels at once, in 64-bit lanes.
///
/// The steps are those of [`super::super::requantize`]: the product, the rounding bias
/// `2^(total - 1) - (product < 0)`, an arithmetic shift by `total = 31 - shift`
/// (AVX2 has no 64-bit arithmetic shift, so it is a logical one on the value XORed
/// with its sign mask), and saturation to the i32 range.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(feature = "std")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
#[inline]
unsafe fn avx2_requantize(params: &GroupParams, dot: [i32; CHANNEL_GROUP]) -> [i32; CHANNEL_GROUP] {
    use core::arch::x86_64::{
        _mm256_add_epi64, _mm256_blendv_epi8, _mm256_castsi256_si128, _mm256_cmpgt_epi64,
        _mm256_cvtepi32_epi64, _mm256_mul_epi32, _mm256_permutevar8x32_epi32, _mm256_set1_epi64x,
        _mm256_setr_epi32, _mm256_setzero_si256, _mm256_sllv_epi64, _mm256_srlv_epi64,
        _mm256_sub_epi64, _mm256_xor_si256, _mm_max_epi32, _mm_min_epi32, _mm_sub_epi32,
    };
    let load = |v: &[i32; CHANNEL_GROUP]| {
        // SAFETY: reads the 16 bytes of `v` through `loadu` (no alignment needed).
        unsafe { _mm_loadu_si128(v.as_ptr().cast::<__m128i>()) }
    };
    let acc = _mm_add_epi32(load(&params.bias), load(&dot));
    let shift = _mm_min_epi32(
        _mm_max_epi32(load(&params.shift), _mm_set1_epi32(-31)),
        _mm_set1_epi32(30),
    );
    let total = _mm256_cvtepi32_epi64(_mm_sub_epi32(_mm_set1_epi32(31), shift));
    let wide = _mm256_mul_epi32(
        _mm256_cvtepi32_epi64(acc),
        _mm256_cvtepi32_epi64(load(&params.multiplier)),
    );
    let one = _mm256_set1_epi64x(1);
    let zero = _mm256_setzero_si256();
    let half = _mm256_sllv_epi64(one, _mm256_sub_epi64(total, one));
    // `cmpgt(0, x)` is -1 where x < 0, which is the `- (wide < 0)` of the rounding.
    let biased = _mm256_add_epi64(_mm256_add_epi64(wide, half), _mm256_cmpgt_epi64(zero, wide));
    let sign = _mm256_cmpgt_epi64(zero, biased);
    let shifted = _mm256_xor_si256(
        _mm256_srlv_epi64(_mm256_xor_si256(biased, sign), total),
        sign,
    );
    let high = _mm256_set1_epi64x(i32::MAX as i64);
    let low = _mm256_set1_epi64x(i32::MIN as i64);
    let clamped = _mm256_blendv_epi8(shifted, high, _mm256_cmpgt_epi64(shifted, high));
    let clamped = _mm256_blendv_epi8(clamped, low, _mm256_cmpgt_epi64(low, clamped));
    let packed = _mm256_permutevar8x32_epi32(clamped, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
    let mut out = [0i32; CHANNEL_GROUP];
    // SAFETY: writes the 16 bytes of `out`.
    unsafe {
        _mm_storeu_si128(
            out.as_mut_ptr().cast::<__m128i>(),
            _mm256_castsi256_si128(packed),
        )
    };
    out
}
