//! The dense layer's inner loop: four output channels against every input.
//!
//! [`widen`] and [`for_each_group`] are the entry points. Each target gets the loop
//! shape that runs best on it, and all of them compute the same thing: integer sums
//! with wrapping adds, whose result does not depend on the order of the terms, so every
//! shape gives the same bits. `tests/dense_kernel.rs` checks that on random layers
//! against a naive reference; the end-to-end tests check it between the device and the
//! host. The target is chosen by `cfg(tinyvae_kernel)`, which `build.rs` derives from
//! the target triple (stable Rust hides Arm's target features from `cfg`).
//!
//! Inner-loop instructions per multiply-accumulate (from the disassembly,
//! `scripts/kernel-cost`):
//!
//! * Cortex-M4 (`thumbv7em`, [`dsp`]): `SMLAD` on weight pairs built with
//!   `PKHBT`/`PKHTB` and `SXTB16`, 48 instructions per 32 MACs (1.5) on word-aligned
//!   weights, 52 (1.625) on unaligned ones.
//! * Cortex-M3 (`thumbv7m`, [`thumb`]): `LDRSB` and `MLA`, 68 per 32 MACs (2.125).
//! * Cortex-M0 (`thumbv6m`, [`thumb1`]): `LDRSB`/`LDRB`+`SXTB`, `MULS` and `ADD`,
//!   34 per 8 MACs (4.25; LLVM's loop spills and takes 7).
//! * x86-64 ([`x86`]): SSE2 `PMADDWD`, and AVX2 chosen at run time where the CPU has it
//!   (the host's fixed-point path).
//!
//! Per output, every target runs [`super::requantize_folded`] (5 instructions of
//! arithmetic on Thumb-2 for the usual shifts) plus the bias add, the clamp and the
//! store.

use super::CHANNEL_GROUP;

#[cfg(tinyvae_kernel = "dsp")]
mod dsp;
#[cfg(tinyvae_kernel = "thumb2")]
mod thumb;
#[cfg(tinyvae_kernel = "thumb1")]
mod thumb1;
#[cfg(target_arch = "x86_64")]
mod x86;

/// A little-endian i32 of the model bytes.
pub(super) trait Word: Copy {
    /// Its value.
    fn value(self) -> i32;
}

/// Any alignment: byte loads on the Cortex-M0 (about ten instructions), one `LDR`
/// on Thumb-2 and x86.
impl Word for [u8; 4] {
    #[inline(always)]
    fn value(self) -> i32 {
        i32::from_le_bytes(self)
    }
}

/// Word-aligned bytes read as a word: one `LDR` everywhere.
impl Word for i32 {
    #[inline(always)]
    fn value(self) -> i32 {
        i32::from_le(self)
    }
}

/// A layer's requantization: little-endian i32 words, one per output, and the output
/// zero point (at most `MAX_FOLDED_ZERO_POINT` in magnitude).
pub(super) struct LayerParams<'a, W> {
    /// Added to the dot products (wrapping).
    pub bias: &'a [W],
    /// Requantization multipliers (see [`super::requantize`]).
    pub multiplier: &'a [W],
    /// Requantization shifts.
    pub shift: &'a [W],
    /// Added after requantization.
    pub zero_point: i32,
}

/// Subtracts the zero point from every input into `widened` in the form this target's
/// loop reads, so that every output channel reuses it. Returns the widened values and
/// how many inputs they hold (as many as fit in `widened`).
///
/// One i32 per input, except on the Cortex-M4: two inputs packed as i16 halves per
/// word, the operand `SMLAD` takes (`x - zero_point` is within -255..=255).
#[inline]
pub(super) fn widen<'w>(
    input: &[i8],
    zero_point: i32,
    widened: &'w mut [i32],
) -> (&'w [i32], usize) {
    #[cfg(tinyvae_kernel = "dsp")]
    {
        dsp::widen_pairs(input, zero_point, widened)
    }
    #[cfg(not(tinyvae_kernel = "dsp"))]
    {
        let n = input.len().min(widened.len());
        for (w, &x) in widened[..n].iter_mut().zip(&input[..n]) {
            *w = x as i32 - zero_point;
        }
        (&widened[..n], n)
    }
}

/// Writes `out[j] = convert(requantize(bias[j] + dot[j]) + zero_point)` for every
/// output `j` of `out` (as many as `params` has), where `dot[j] = sum_i w[j][i] x[i]`
/// (wrapping) over `min(inputs, group_len / 4)` inputs of `xs` (as [`widen`] made it)
/// and the weights come in groups of `group_len` bytes.
///
/// One pass per group of four outputs: the group's dot products, then each output's
/// parameters read straight from the model bytes, requantized and stored. Zipping the
/// slices leaves no bounds check in the loop, and a last, partial group needs no
/// special case.
#[inline]
pub(super) fn run<T, W: Word>(
    weights: &[i8],
    xs: &[i32],
    inputs: usize,
    group_len: usize,
    params: &LayerParams<'_, W>,
    out: &mut [T],
    convert: impl Fn(i32) -> T,
) {
    if group_len == 0 {
        return;
    }
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if std::is_x86_feature_detected!("avx2") {
        let _ = inputs;
        // SAFETY: the CPU has AVX2 (checked just above).
        #[allow(unsafe_code)]
        unsafe {
            x86::avx2_run(weights, xs, group_len, params, out, convert)
        };
        return;
    }
    // Dot products for a batch of groups first, then the batch's outputs: each loop
    // keeps its own few pointers in registers, where one loop doing both spilled them
    // around the assembly (which takes 12 registers on Thumb-2).
    let mut dots = [0i32; BATCH * CHANNEL_GROUP];
    let batches = out
        .chunks_mut(BATCH * CHANNEL_GROUP)
        .zip(weights.chunks(BATCH * group_len))
        .zip(params.bias.chunks(BATCH * CHANNEL_GROUP))
        .zip(params.multiplier.chunks(BATCH * CHANNEL_GROUP))
        .zip(params.shift.chunks(BATCH * CHANNEL_GROUP));
    for ((((out, weights), bias), multiplier), shift) in batches {
        let (dot_groups, _) = dots.as_chunks_mut::<CHANNEL_GROUP>();
        for (dot, weights) in dot_groups.iter_mut().zip(weights.chunks_exact(group_len)) {
            dot_group_into(weights, xs, inputs, dot);
        }
        let outputs = out
            .iter_mut()
            .zip(&dots)
            .zip(bias)
            .zip(multiplier)
            .zip(shift);
        for ((((slot, &dot), bias), multiplier), shift) in outputs {
            *slot = convert(super::requantize_folded(
                bias.value().wrapping_add(dot),
                multiplier.value(),
                shift.value(),
                params.zero_point,
            ));
        }
    }
}

/// Groups whose dot products [`run`] computes before requantizing their outputs.
const BATCH: usize = 8;

/// One group's dot products into `dot`, with the best loop this target has without
/// run-time checks.
#[inline(always)]
fn dot_group_into(weights: &[i8], xs: &[i32], inputs: usize, dot: &mut [i32; CHANNEL_GROUP]) {
    #[cfg(target_arch = "x86_64")]
    {
        let _ = inputs;
        *dot = x86::sse2_dot_group(weights, xs);
    }
    #[cfg(tinyvae_kernel = "dsp")]
    dsp::dot_group_into(weights, xs, inputs, dot);
    #[cfg(not(any(target_arch = "x86_64", tinyvae_kernel = "dsp")))]
    {
        let _ = inputs;
        #[cfg(tinyvae_kernel = "thumb2")]
        let (weights, xs) = thumb::accumulate_blocks(dot, weights, xs);
        #[cfg(tinyvae_kernel = "thumb1")]
        let (weights, xs) = thumb1::accumulate_pairs(dot, weights, xs);
        #[cfg(not(any(tinyvae_kernel = "thumb2", tinyvae_kernel = "thumb1")))]
        {
            *dot = [0; CHANNEL_GROUP];
        }
        portable(dot, weights, xs);
    }
}

/// A group's weights and the activations they multiply (one i32 per input).
#[cfg(not(tinyvae_kernel = "dsp"))]
pub(super) type Operands<'a, 'b> = (&'a [i8], &'b [i32]);

/// Splits `weights` and `xs` into whole steps of `inputs` inputs and the rest.
#[cfg(not(tinyvae_kernel = "dsp"))]
#[inline(always)]
pub(super) fn split_steps<'a, 'b>(
    weights: &'a [i8],
    xs: &'b [i32],
    inputs: usize,
) -> (Operands<'a, 'b>, Operands<'a, 'b>) {
    let steps = (weights.len() / (CHANNEL_GROUP * inputs)).min(xs.len() / inputs);
    let (w_done, w_rest) = weights.split_at(steps * CHANNEL_GROUP * inputs);
    let (x_done, x_rest) = xs.split_at(steps * inputs);
    ((w_done, x_done), (w_rest, x_rest))
}

/// The reference loop: one input at a time, four multiply-accumulates each.
#[cfg(not(tinyvae_kernel = "dsp"))]
#[inline]
fn portable(acc: &mut [i32; CHANNEL_GROUP], weights: &[i8], xs: &[i32]) {
    for (w, &x) in weights.chunks_exact(CHANNEL_GROUP).zip(xs) {
        for (a, &w) in acc.iter_mut().zip(w) {
            *a = a.wrapping_add((w as i32).wrapping_mul(x));
        }
    }
}
