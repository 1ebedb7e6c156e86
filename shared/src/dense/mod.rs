//! The int8 fully connected layer, in the gemmlowp / TensorFlow Lite scheme.
//!
//! * Weights: int8, symmetric per output channel (`w_real = scale_w[j] * q`, q in
//!   -127..=127).
//! * Input activations: int8 with one scale and zero point for the layer.
//! * Bias: i32 in units of `scale_in * scale_w[j]`; accumulation in i32:
//!   `acc[j] = bias[j] + sum_i w[j][i] * (x[i] - zero_point_in)`.
//! * Requantization: `acc * scale_in * scale_w[j] / scale_out` is applied as a Q0.31
//!   multiplier with a power-of-two shift ([`requantize`]), so the device never touches
//!   floating point; ReLU is fused as a clamp at the output zero point.
//!
//! ## Why the weights are stored four output channels at a time
//!
//! The Cortex-M3 has no SIMD multiply, so the inner loop is loads and `MLA`s. Storing the
//! weights of output channels `4g..4g+4` interleaved (`[input i][channel c]`) lets one
//! pass over the widened inputs feed four accumulators. Per input that is a quarter of an
//! activation load (`LDM` brings four), four byte loads of weights and four
//! multiply-accumulates. With the loop's compare and branch, it comes to 68 instructions
//! per 32 MACs (the `kernel` module), against about 4 per MAC for one channel at a time. The
//! layout has the same size as plain row-major storage (the last group is zero-padded
//! to four channels). The host reads the same layout with SIMD; the Cortex-M4 pairs two
//! inputs' words into `SMLAD` operands (1.5 instructions per MAC) and the Cortex-M0
//! runs `MULS` (4.25); see the `kernel` module.
//!
//! ## Inputs at the zero point cost nothing
//!
//! An input equal to the layer's input zero point adds `w * 0` to every sum. On the
//! Cortex-M cores a layer whose inputs are mostly there (an image's background,
//! hidden units after ReLU) runs a loop over a list of the others instead (see the
//! `kernel` module): integer sums do not depend on which zero terms were added, so
//! the bits are the same as the dense loop's and the host's.
//!
//! ## Per output
//!
//! The kernel computes the dot products of eight groups, then their outputs, so that
//! each loop keeps its pointers in registers. Per output: three parameter loads, the
//! bias add, the shift range check, [`requantize_offset`]'s fast path (5 instructions
//! on Thumb-2: `SMULL`, `ADDS`, `ADC`, `ASRS`, `ADC`, the zero point riding on the
//! rounding carry), `SSAT` (plus `CMP`/`IT`/`MOV` for ReLU), `STRB` and the loop: 19
//! instructions on the Cortex-M4 (about 70 before). With each group's setup, the
//! 64->784 decoder layer measures about 25 per output beyond its MACs on the M3 and M4
//! (QEMU, `-icount`). The Cortex-M0 builds the high word from four `MULS` and reads the
//! parameters as words where the model bytes are word aligned.

use crate::fixed::{saturate_i64, Q16};

mod kernel;

/// Channels processed together by the kernel (see the module docs).
pub const CHANNEL_GROUP: usize = 4;

/// Number of weight bytes a layer stores: output channels rounded up to a whole group.
pub const fn weight_bytes(in_dim: usize, out_dim: usize) -> usize {
    out_dim.div_ceil(CHANNEL_GROUP) * CHANNEL_GROUP * in_dim
}

/// What a layer does with its accumulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerOutput {
    /// Requantize to int8 with this zero point; clamp at the zero point when `relu`.
    Int8 {
        /// Output zero point.
        zero_point: i32,
        /// Whether ReLU is fused.
        relu: bool,
    },
    /// Requantize to Q16 (the encoder's head: mu and logvar).
    Q16,
}

/// A read-only view of one quantized dense layer, backed by the model bytes.
#[derive(Debug, Clone, Copy)]
pub struct DenseLayer<'a> {
    /// Inputs.
    pub in_dim: usize,
    /// Outputs.
    pub out_dim: usize,
    /// Zero point of the int8 input.
    pub input_zero_point: i32,
    /// Output format.
    pub output: LayerOutput,
    /// Weights, grouped four channels at a time (see the module docs).
    pub weights: &'a [i8],
    /// Little-endian i32 biases, one per output.
    pub bias: &'a [u8],
    /// Little-endian i32 Q0.31 multipliers, one per output.
    pub multiplier: &'a [u8],
    /// Little-endian i32 shifts (positive = left), one per output.
    pub shift: &'a [u8],
}

#[inline]
fn le_i32(bytes: &[u8], index: usize) -> i32 {
    match bytes.get(4 * index..4 * index + 4) {
        Some(b) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

impl DenseLayer<'_> {
    /// A layer of no inputs and no outputs (a placeholder before a read).
    pub const EMPTY: DenseLayer<'static> = DenseLayer {
        in_dim: 0,
        out_dim: 0,
        input_zero_point: 0,
        output: LayerOutput::Q16,
        weights: &[],
        bias: &[],
        multiplier: &[],
        shift: &[],
    };

    /// Bias of output `j`.
    pub fn bias(&self, j: usize) -> i32 {
        le_i32(self.bias, j)
    }

    /// Requantization multiplier of output `j`.
    pub fn multiplier(&self, j: usize) -> i32 {
        le_i32(self.multiplier, j)
    }

    /// Requantization shift of output `j`.
    pub fn shift(&self, j: usize) -> i32 {
        le_i32(self.shift, j)
    }

    /// Weight from input `i` to output `j` (0 outside the layer).
    pub fn weight(&self, j: usize, i: usize) -> i8 {
        let g = j / CHANNEL_GROUP;
        let c = j % CHANNEL_GROUP;
        let index = (g * self.in_dim + i) * CHANNEL_GROUP + c;
        self.weights.get(index).copied().unwrap_or(0)
    }

    /// Runs the layer into `out`, one group of four outputs at a time: the kernel's
    /// requantized values (zero point added) go through `convert` into the slots.
    ///
    /// `widened` is scratch space of at least `in_dim` values. Short buffers (input,
    /// scratch, output, weights or requantization parameters) shrink the computation
    /// rather than panic; the model validator guarantees the sizes. Returns the
    /// outputs written.
    #[inline]
    fn run<T>(
        &self,
        input: &[i8],
        widened: &mut [i32],
        zero_point: i32,
        out: &mut [T],
        convert: impl Fn(i32) -> T,
    ) -> usize {
        let group_len = self.in_dim * CHANNEL_GROUP;
        if group_len == 0 {
            return 0;
        }
        let input = &input[..self.in_dim.min(input.len())];
        let inputs = kernel::prepare(input, self.input_zero_point, widened);
        let (bias, _) = self.bias.as_chunks::<4>();
        let (multiplier, _) = self.multiplier.as_chunks::<4>();
        let (shift, _) = self.shift.as_chunks::<4>();
        let n = self
            .out_dim
            .min(out.len())
            .min(self.weights.len() / group_len * CHANNEL_GROUP)
            .min(bias.len())
            .min(multiplier.len())
            .min(shift.len());
        let weights = &self.weights[..n.div_ceil(CHANNEL_GROUP) * group_len];
        let out = &mut out[..n];
        let (bias, multiplier, shift) = (&bias[..n], &multiplier[..n], &shift[..n]);
        // The Cortex-M0 cannot load an unaligned word: read the parameters as words
        // where the model bytes are aligned (one `LDR` each instead of four `LDRB`s,
        // three shifts and three adds).
        #[cfg(tinyvae_kernel = "thumb1")]
        if let (Ok(bias), Ok(multiplier), Ok(shift)) = (
            bytemuck::try_cast_slice::<[u8; 4], i32>(bias),
            bytemuck::try_cast_slice::<[u8; 4], i32>(multiplier),
            bytemuck::try_cast_slice::<[u8; 4], i32>(shift),
        ) {
            let params = kernel::LayerParams {
                bias,
                multiplier,
                shift,
                zero_point,
            };
            kernel::run(weights, &inputs, group_len, &params, out, &convert);
            return n;
        }
        let params = kernel::LayerParams {
            bias,
            multiplier,
            shift,
            zero_point,
        };
        kernel::run(weights, &inputs, group_len, &params, out, convert);
        n
    }

    /// The int8 output's zero point (clamped within `MAX_FOLDED_ZERO_POINT`), whether
    /// ReLU is fused, and the least output (the zero point under ReLU, else -128).
    pub(crate) fn int8_output(&self) -> (i32, bool, i32) {
        let (zero_point, relu) = match self.output {
            LayerOutput::Int8 { zero_point, relu } => (zero_point, relu),
            LayerOutput::Q16 => (0, false),
        };
        let folded = MAX_FOLDED_ZERO_POINT as i32;
        let zero_point = zero_point.clamp(-folded, folded);
        let low = if relu { zero_point.max(-128) } else { -128 };
        (zero_point, relu, low)
    }

    /// Forward pass to int8 outputs. Returns the number of outputs written.
    ///
    /// The output zero point is taken within +-2^28 (`MAX_FOLDED_ZERO_POINT`), where the
    /// kernels fold it into the rounding. The model validator allows only -128..=127,
    /// so only a hand-built layer is clamped; the device carries no second kernel
    /// instance for it (620 bytes of flash on the Cortex-M3).
    pub fn forward_i8(&self, input: &[i8], widened: &mut [i32], out: &mut [i8]) -> usize {
        let (zero_point, _, low) = self.int8_output();
        // `clamp(-128, 127)` is one `SSAT` on Thumb-2, the ReLU bound one `max` (-128
        // for a linear layer). One instance of the loop for both: a second, for linear
        // layers without the `max`, saved one instruction an output for 600 bytes of
        // code (the decoder's last layer: 784 a frame), bytes the fault head needed.
        self.run(input, widened, zero_point, out, |q| {
            q.clamp(-128, 127).max(low) as i8
        })
    }

    /// Output `j` for the dot product `dot` (`sum_i w[j][i] (x[i] - input zero point)`):
    /// the bias added, requantized and clamped as [`DenseLayer::forward_i8`] does, with
    /// `output` from [`DenseLayer::int8_output`]. For passes that form their own dot
    /// products (the fault head's), so that their bits are the kernel's.
    #[inline(always)]
    pub(crate) fn output_i8(
        &self,
        j: usize,
        dot: i32,
        (zero_point, _, low): (i32, bool, i32),
    ) -> i8 {
        let acc = self.bias(j).wrapping_add(dot);
        let q = requantize_folded(acc, self.multiplier(j), self.shift(j), zero_point);
        q.clamp(-128, 127).max(low) as i8
    }

    /// [`DenseLayer::forward_i8`] without scratch space, for a layer wider than any
    /// scratch a board can spare (the fault head's hidden layer reads 1,568 inputs:
    /// widened, 6 KiB). One group of four outputs at a time, as the weights are stored:
    /// each input is read once a group, skipped at the zero point (a pooled ReLU map's
    /// background), and its four weights are one word with four sums to add to (in
    /// registers). The same integer sums and requantization, so the same bits as the
    /// kernel's. Returns the outputs written (fewer when `input` is short of `in_dim`
    /// or `out` of `out_dim`).
    pub fn forward_i8_direct(&self, input: &[i8], out: &mut [i8]) -> usize {
        let output = self.int8_output();
        if input.len() < self.in_dim {
            return 0;
        }
        let n = self.out_dim.min(out.len());
        let input = &input[..self.in_dim];
        let mut dot = [0i32; CHANNEL_GROUP];
        for (j, slot) in out[..n].iter_mut().enumerate() {
            let c = j % CHANNEL_GROUP;
            if c == 0 {
                // The group's four sums, in four registers (at opt-level "s" an
                // array of them stays in memory).
                let weights = self.weights.get(j * self.in_dim..).unwrap_or(&[]);
                let (weights, _) = weights.as_chunks::<CHANNEL_GROUP>();
                let zero_point = self.input_zero_point;
                dot = group_dots(weights, input.iter().map(|&x| i32::from(x) - zero_point));
            }
            *slot = self.output_i8(j, dot[c], output);
        }
        n
    }

    /// Forward pass to Q16 outputs (the encoder head). Returns the outputs written.
    pub fn forward_q16(&self, input: &[i8], widened: &mut [i32], out: &mut [Q16]) -> usize {
        self.run(input, widened, 0, out, |scaled| scaled)
    }

    /// Multiply-accumulates one forward pass performs (for cost reports).
    pub fn macs(&self) -> usize {
        self.in_dim * self.out_dim
    }
}

/// One group's four dot products: `weights[i]` holds input `i`'s four weights (the
/// layout of a group: one word an input), `inputs` the inputs less the input zero
/// point; inputs at 0 (a ReLU map's or a frame's background) are skipped. The sums are
/// four locals, kept in registers (at opt-level "s" an array of them stays in memory);
/// inlined, the caller's loop is one loop. For the passes that form their own dot
/// products ([`DenseLayer::forward_i8_direct`], the fault head's first layer).
#[inline(always)]
pub(crate) fn group_dots(
    weights: &[[i8; CHANNEL_GROUP]],
    inputs: impl Iterator<Item = i32>,
) -> [i32; CHANNEL_GROUP] {
    let (mut d0, mut d1, mut d2, mut d3) = (0i32, 0i32, 0i32, 0i32);
    for (w, x) in weights.iter().zip(inputs) {
        if x != 0 {
            d0 = d0.wrapping_add(i32::from(w[0]).wrapping_mul(x));
            d1 = d1.wrapping_add(i32::from(w[1]).wrapping_mul(x));
            d2 = d2.wrapping_add(i32::from(w[2]).wrapping_mul(x));
            d3 = d3.wrapping_add(i32::from(w[3]).wrapping_mul(x));
        }
    }
    [d0, d1, d2, d3]
}

/// Applies `acc * multiplier / 2^31 * 2^shift`, rounding half away from zero and
/// saturating to the `i32` range.
///
/// This is TensorFlow Lite's `MultiplyByQuantizedMultiplier` with a single rounding:
/// the 64-bit product is shifted once by `31 - shift`, so a left shift can never
/// saturate an intermediate (TFLite saturates `acc << shift` first, which clips results
/// a wider accumulator would still represent). On the Cortex-M3 this is one `SMULL` and
/// a 64-bit shift per output channel. `shift` outside -31..=30 is clamped (the model
/// validator rejects such models anyway).
#[inline]
pub fn requantize(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let total = (31 - shift.clamp(-31, 30)) as u32;
    let wide = acc as i64 * multiplier as i64;
    // Half away from zero without a branch: for negative `wide`,
    // `-((half - wide) >> total) == (wide + half - 1) >> total` (both are
    // `ceil((wide - half) / 2^total)`). `|wide| < 2^62`, so nothing overflows.
    let toward = wide - (wide < 0) as i64;
    if total > 32 {
        // The usual case (scales below 1/2). Adding `half`, a multiple of 2^32, and
        // shifting commute with dropping the low word first, so only the high word is
        // needed. It is below 2^30 in magnitude, and so is the result: no saturation.
        // On the Cortex-M3 this is 32-bit work after the SMULL.
        let high = (toward >> 32) as i32;
        return (high + (1 << (total - 33))) >> (total - 32);
    }
    saturate_i64((toward + (1i64 << (total - 1))) >> total)
}

/// Largest zero point magnitude that [`requantize_offset`]'s fast path may add inside
/// its rounding step without overflowing (the model validator allows 128).
const MAX_FOLDED_ZERO_POINT: u32 = 1 << 28;

/// `requantize(acc, multiplier, shift).saturating_add(zero_point)`, as the kernels run
/// it once per output.
///
/// Shifts in -31..=-2 (every scale below 1/2: all of a trained model's) take the fast
/// path: [`requantize`] needs only the high word of the 64-bit product there, and its
/// rounding becomes one arithmetic shift and an add. Per target:
///
/// * Thumb-2 (Cortex-M3/M4): `SMULL`, then `ADDS`/`ADC` with the sign word subtract
///   one from a negative product, `ASRS` by `-1 - shift` leaves the rounding bit in the
///   carry, and `ADC` adds it with the zero point: 5 instructions.
/// * Cortex-M0 (no 64-bit product): the high word from four 32-bit `MULS` of 16-bit
///   halves ([`widening_mul_by_halves`]).
/// * Elsewhere: the `i64` product.
///
/// The result is below 2^30 in magnitude, so with `|zero_point| <= 2^28` nothing
/// saturates there. Other shifts, and larger zero points, take the definition.
#[inline]
pub fn requantize_offset(acc: i32, multiplier: i32, shift: i32, zero_point: i32) -> i32 {
    if zero_point.unsigned_abs() <= MAX_FOLDED_ZERO_POINT {
        requantize_folded(acc, multiplier, shift, zero_point)
    } else {
        requantize(acc, multiplier, shift).saturating_add(zero_point)
    }
}

/// [`requantize_offset`] for a zero point already known to be within
/// `MAX_FOLDED_ZERO_POINT` (the layer checks it once, not every output).
#[inline(always)]
pub(crate) fn requantize_folded(acc: i32, multiplier: i32, shift: i32, zero_point: i32) -> i32 {
    debug_assert!(zero_point.unsigned_abs() <= MAX_FOLDED_ZERO_POINT);
    // `s = total - 32 = -1 - shift`; the fast path wants it in 1..=30.
    let s = !shift;
    if (s.wrapping_sub(1) as u32) < 30 {
        round_high_word(acc, multiplier, s, zero_point)
    } else {
        requantize_offset_by_definition(acc, multiplier, shift, zero_point)
    }
}

/// The slow path of [`requantize_folded`] (shifts of -1 and above: scales of 1/2 and
/// more, which trained layers do not have), out of line so the fast path inlines.
#[cold]
#[inline(never)]
fn requantize_offset_by_definition(acc: i32, multiplier: i32, shift: i32, zero_point: i32) -> i32 {
    requantize(acc, multiplier, shift).saturating_add(zero_point)
}

/// `requantize`'s high-word path plus `zero_point`, for `s = -1 - shift` in 1..=30.
#[cfg(any(tinyvae_kernel = "thumb2", tinyvae_kernel = "dsp"))]
#[inline(always)]
fn round_high_word(acc: i32, multiplier: i32, s: i32, zero_point: i32) -> i32 {
    let out;
    // SAFETY: register arithmetic only (no memory, no stack); every register written
    // is declared.
    #[allow(unsafe_code)]
    unsafe {
        core::arch::asm!(
            // hi:lo = acc * multiplier
            "smull {lo}, {hi}, {acc}, {m}",
            // hi:lo -= 1 when negative: the high word of `toward` in `requantize`
            "adds {lo}, {lo}, {hi}, asr #31",
            "adc {hi}, {hi}, {hi}, asr #31",
            // hi >> s; the carry is bit s-1, the rounding bit
            "asrs {hi}, {hi}, {s}",
            "adc {hi}, {hi}, {zp}",
            acc = in(reg) acc,
            m = in(reg) multiplier,
            s = in(reg) s,
            zp = in(reg) zero_point,
            lo = out(reg) _,
            hi = out(reg) out,
            options(pure, nomem, nostack),
        );
    }
    out
}

/// `requantize`'s high-word path plus `zero_point`, for `s = -1 - shift` in 1..=30.
#[cfg(not(any(tinyvae_kernel = "thumb2", tinyvae_kernel = "dsp")))]
#[inline(always)]
fn round_high_word(acc: i32, multiplier: i32, s: i32, zero_point: i32) -> i32 {
    #[cfg(tinyvae_kernel = "thumb1")]
    let (lo, hi) = widening_mul_by_halves(acc, multiplier);
    #[cfg(not(tinyvae_kernel = "thumb1"))]
    let (lo, hi) = {
        let wide = acc as i64 * multiplier as i64;
        (wide as u32, (wide >> 32) as i32)
    };
    // The high word of `wide - (wide < 0)`: the borrow reaches it only when lo == 0.
    let high = hi - (hi < 0 && lo == 0) as i32;
    // `(high + 2^(s-1)) >> s` is `((high >> (s-1)) + 1) >> 1`; the zero point rides along
    // doubled (|high| <= 2^30, |zero_point| <= 2^28: no overflow).
    ((high >> (s - 1)) + (2 * zero_point + 1)) >> 1
}

/// The 64-bit product `a * b` as `(low word, high word)`, from four 32-bit multiplies
/// of 16-bit halves: the Cortex-M0 has `MULS` (32-bit result) and no `SMULL`.
///
/// With `a = ah 2^16 + al` and `b = bh 2^16 + bl` (`al`, `bl` unsigned), every partial
/// product fits its type: `al bl < 2^32` unsigned, `|ah bl|, |al bh| < 2^31`,
/// `|ah bh| <= 2^30`. The middle terms are split at bit 16 and added with carries.
/// Public so that the host tests check it against `i64` multiplication.
#[inline(always)]
pub fn widening_mul_by_halves(a: i32, b: i32) -> (u32, i32) {
    let (al, ah) = (a as u32 & 0xffff, a >> 16);
    let (bl, bh) = (b as u32 & 0xffff, b >> 16);
    let low = al * bl;
    let mid_a = ah * bl as i32;
    let mid_b = al as i32 * bh;
    let (lo, carry_a) = low.overflowing_add((mid_a as u32) << 16);
    let (lo, carry_b) = lo.overflowing_add((mid_b as u32) << 16);
    let hi = ah * bh + (mid_a >> 16) + (mid_b >> 16) + carry_a as i32 + carry_b as i32;
    (lo, hi)
}

/// Splits a positive real scale into a Q0.31 multiplier in `[2^30, 2^31)` and a shift,
/// so that `real = multiplier / 2^31 * 2^shift` (host only: used at export).
///
/// Returns `(0, 0)` for zero, negative or non-finite scales.
#[cfg(feature = "host")]
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    if !(real.is_finite() && real > 0.0) {
        return (0, 0);
    }
    let mut shift = 0i32;
    let mut mantissa = real;
    while mantissa >= 1.0 {
        mantissa /= 2.0;
        shift += 1;
    }
    while mantissa < 0.5 {
        mantissa *= 2.0;
        shift -= 1;
    }
    let mut q = (mantissa * (1i64 << 31) as f64).round() as i64;
    if q == 1i64 << 31 {
        q /= 2;
        shift += 1;
    }
    if shift < -31 {
        return (0, 0);
    }
    (q as i32, shift.min(30))
}

/// Lays out row-major `weight[out][in]` int8 weights in the kernel's grouped order
/// (host only: used at export).
#[cfg(feature = "host")]
pub fn group_weights(weight: &[i8], in_dim: usize, out_dim: usize) -> std::vec::Vec<i8> {
    let mut grouped = std::vec![0i8; weight_bytes(in_dim, out_dim)];
    for j in 0..out_dim {
        for i in 0..in_dim {
            let g = j / CHANNEL_GROUP;
            let c = j % CHANNEL_GROUP;
            grouped[(g * in_dim + i) * CHANNEL_GROUP + c] = weight[j * in_dim + i];
        }
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requantize_rounds_half_away_from_zero() {
        let half = 1 << 30; // multiplier 0.5
        assert_eq!(requantize(3, half, 0), 2);
        assert_eq!(requantize(-3, half, 0), -2);
        assert_eq!(requantize(4, half, 0), 2);
        assert_eq!(requantize(5, half, 2), 10);
        assert_eq!(requantize(i32::MAX, i32::MAX, 30), i32::MAX);
        assert_eq!(requantize(i32::MIN, i32::MAX, 30), i32::MIN);
        assert_eq!(requantize(i32::MIN, i32::MIN, -31), 1);
    }

    /// The definition the branch-free form replaces: round the magnitude, then restore
    /// the sign.
    fn requantize_by_sign(acc: i32, multiplier: i32, shift: i32) -> i32 {
        let total = (31 - shift.clamp(-31, 30)) as u32;
        let wide = acc as i64 * multiplier as i64;
        let half = 1i64 << (total - 1);
        let rounded = if wide >= 0 {
            (wide + half) >> total
        } else {
            -((half - wide) >> total)
        };
        saturate_i64(rounded)
    }

    #[test]
    fn branch_free_rounding_equals_the_definition() {
        let mut rng = crate::rng::Rng::new(7);
        let edges = [i32::MIN, i32::MIN + 1, -3, -1, 0, 1, 3, i32::MAX];
        for round in 0..200_000 {
            let pick = |r: &mut crate::rng::Rng| {
                let v = r.next_u32();
                if v.is_multiple_of(8) {
                    edges[(v / 8) as usize % edges.len()]
                } else if v % 8 < 4 {
                    (v as i32) >> (v % 24)
                } else {
                    v as i32
                }
            };
            let acc = pick(&mut rng);
            let multiplier = pick(&mut rng);
            let shift = (round % 70) - 35;
            assert_eq!(
                requantize(acc, multiplier, shift),
                requantize_by_sign(acc, multiplier, shift),
                "acc {acc} multiplier {multiplier} shift {shift}"
            );
        }
    }
}
