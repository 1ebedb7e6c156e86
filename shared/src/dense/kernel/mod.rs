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
//! Sparse inputs ([`prepare`]): where at most three quarters of a layer's inputs are
//! off the zero point (the background of an image, the units ReLU silenced), the
//! Cortex-M loops read only those inputs' weight words, from a list built once per
//! layer (the `sparse` module): per listed input and group, 7 instructions on the
//! Cortex-M4 (`SMLAD` on two listed inputs at once, 28 per 16 MACs), 10.5 on the M3
//! (21 per 8) and 19 on the M0 (38 per 8). On the default model a digit leaves
//! about 150 of 784 pixels off the background, so the first encoder layer reads a
//! fifth of its weights.
//!
//! Per output, every target runs [`super::requantize_folded`] (5 instructions of
//! arithmetic on Thumb-2 for the usual shifts) plus the bias add, the clamp and the
//! store.

use super::CHANNEL_GROUP;

#[cfg(tinyvae_kernel = "dsp")]
mod dsp;
mod sparse;
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

/// A layer's inputs, prepared once for every group of four output channels.
pub(super) enum Inputs<'w> {
    /// Every input, as [`widen`] writes it, and how many there are.
    Dense {
        /// The widened values.
        xs: &'w [i32],
        /// Inputs they hold.
        inputs: usize,
    },
    /// Only the inputs off the zero point, as [`sparse_list`] writes them (not on
    /// x86: see [`prepare`]).
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    Sparse {
        /// The entries: word pairs, an even number of them ([`sparse_list`]), or on
        /// the Cortex-M4 word triples ([`sparse::pairs`]).
        list: &'w [i32],
        /// Every offset of the list plus a word's four bytes is at most this: a group
        /// of at least `reach` weight bytes holds every word the list points at.
        reach: usize,
    },
}

/// Prepares `input` for the group loops: as a list of the inputs off the zero point
/// where that is the cheaper loop (on the Cortex-M cores, when at most three quarters of
/// the inputs are off it; see the module docs), else widened. Both give the same sums.
/// x86 keeps its SIMD loop over every input (`AVX2` does 16 MACs an instruction).
#[inline]
pub(super) fn prepare<'w>(input: &[i8], zero_point: i32, widened: &'w mut [i32]) -> Inputs<'w> {
    #[cfg(not(target_arch = "x86_64"))]
    if let Some(words) = sparse_list(input, zero_point, widened) {
        return Inputs::Sparse {
            list: &widened[..words],
            reach: CHANNEL_GROUP * input.len(),
        };
    }
    let (xs, inputs) = widen(input, zero_point, widened);
    Inputs::Dense { xs, inputs }
}

/// Writes the inputs off the zero point into `list` in this target's format (see
/// the `sparse` module). Returns the words written, or `None` when more than three
/// quarters of the inputs are off the zero point or the list would not fit: then the
/// dense loop is cheaper (or the only one possible).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline]
pub(super) fn sparse_list(input: &[i8], zero_point: i32, list: &mut [i32]) -> Option<usize> {
    // The break-even count.
    let most = input.len() - input.len() / 4;
    #[cfg(tinyvae_kernel = "dsp")]
    return sparse::pairs(input, zero_point, most, list);
    #[cfg(not(tinyvae_kernel = "dsp"))]
    sparse::entries(input, zero_point, most, list)
}

/// Subtracts the zero point from every input into `widened` in the form this target's
/// loop reads, so that every output channel reuses it. Returns the widened values and
/// how many inputs they hold (as many as fit in `widened`).
///
/// One i32 per input, except on the Cortex-M4: two inputs packed as i16 halves per
/// word, the operand `SMLAD` takes (`x - zero_point` is within -255..=255).
#[inline]
fn widen<'w>(input: &[i8], zero_point: i32, widened: &'w mut [i32]) -> (&'w [i32], usize) {
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
/// (wrapping) over the `inputs` as [`prepare`] made them (dense: the first
/// `min(inputs, group_len / 4)` of them; sparse: the listed ones) and the weights come
/// in groups of `group_len` bytes.
///
/// One pass per group of four outputs: the group's dot products, then each output's
/// parameters read straight from the model bytes, requantized and stored. Zipping the
/// slices leaves no bounds check in the loop, and a last, partial group needs no
/// special case.
#[inline]
pub(super) fn run<T, W: Word>(
    weights: &[i8],
    inputs: &Inputs<'_>,
    group_len: usize,
    params: &LayerParams<'_, W>,
    out: &mut [T],
    convert: impl Fn(i32) -> T,
) {
    if group_len == 0 {
        return;
    }
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if let (true, Inputs::Dense { xs, .. }) = (std::is_x86_feature_detected!("avx2"), inputs) {
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
        batch_dots(weights, inputs, group_len, &mut dots);
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

/// The dot products of the groups in `weights` (at most [`BATCH`] of `group_len`
/// bytes) into `dots`, four per group.
///
/// Not inlined: [`run`] has a copy per output type and conversion (four on the
/// device), and the loops here (dense and sparse, assembly and remainders) do not
/// depend on either; one copy of them saves flash, and the call costs a few
/// instructions per eight groups.
#[inline(never)]
fn batch_dots(
    weights: &[i8],
    inputs: &Inputs<'_>,
    group_len: usize,
    dots: &mut [i32; BATCH * CHANNEL_GROUP],
) {
    let (dot_groups, _) = dots.as_chunks_mut::<CHANNEL_GROUP>();
    let groups = dot_groups.iter_mut().zip(weights.chunks_exact(group_len));
    match *inputs {
        Inputs::Dense { xs, inputs } => {
            for (dot, weights) in groups {
                dot_group_into(weights, xs, inputs, dot);
            }
        }
        Inputs::Sparse { list, reach } => {
            for (dot, weights) in groups {
                sparse_dot_group_into(weights, list, reach, dot);
            }
        }
    }
}

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

/// One group's dot products over the inputs of a [`sparse_list`], into `dot`.
#[inline(always)]
fn sparse_dot_group_into(
    weights: &[i8],
    list: &[i32],
    reach: usize,
    dot: &mut [i32; CHANNEL_GROUP],
) {
    #[cfg(tinyvae_kernel = "dsp")]
    dsp::sparse_dot_group_into(weights, list, reach, dot);
    #[cfg(tinyvae_kernel = "thumb2")]
    thumb::sparse_dot_group_into(weights, list, reach, dot);
    #[cfg(tinyvae_kernel = "thumb1")]
    thumb1::sparse_dot_group_into(weights, list, reach, dot);
    #[cfg(not(any(
        tinyvae_kernel = "dsp",
        tinyvae_kernel = "thumb2",
        tinyvae_kernel = "thumb1"
    )))]
    {
        let _ = reach;
        sparse::entries_dot(weights, list, dot);
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
