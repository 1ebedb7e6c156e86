//! The dense layer's inner loop: four output channels against every input.
//!
//! [`for_each_group`] is the one entry point. Each target gets the loop shape that runs
//! best on it, and all of them compute the same thing: integer sums with wrapping adds,
//! whose result does not depend on the order of the terms, so every shape gives the
//! same bits. `tests/dense_kernel.rs` checks that on random layers against a naive
//! reference; the end-to-end tests check it between the device and the host.
//!
//! * Cortex-M ([`thumb`]): a Thumb-2 loop in assembly, 35 instructions per 16 MACs.
//! * x86-64 ([`x86`]): SSE2 `PMADDWD`, and AVX2 chosen at run time where the CPU has it
//!   (the host's fixed-point path).
//! * Everything else: the portable loop below.

use super::CHANNEL_GROUP;

#[cfg(all(target_arch = "arm", target_os = "none"))]
mod thumb;
#[cfg(target_arch = "x86_64")]
mod x86;

/// What turns one group's dot products into its outputs.
#[derive(Debug, Clone, Copy)]
pub(super) struct GroupParams {
    /// Added to the dot products (wrapping).
    pub bias: [i32; CHANNEL_GROUP],
    /// Requantization multipliers (see [`super::requantize`]).
    pub multiplier: [i32; CHANNEL_GROUP],
    /// Requantization shifts.
    pub shift: [i32; CHANNEL_GROUP],
}

impl GroupParams {
    /// `requantize(bias + dot)` per channel: the scalar definition.
    #[inline]
    fn apply(&self, dot: [i32; CHANNEL_GROUP]) -> [i32; CHANNEL_GROUP] {
        core::array::from_fn(|c| {
            super::requantize(
                self.bias[c].wrapping_add(dot[c]),
                self.multiplier[c],
                self.shift[c],
            )
        })
    }
}

/// Calls `visit(g, outputs)` for every group `g` of `group_len` weight bytes, where
/// `outputs = params(g).apply(dot)` and `dot[c] = sum_i weights[g][4 i + c] * xs[i]`
/// (wrapping) over `min(xs.len(), group_len / 4)` inputs.
#[inline]
pub(super) fn for_each_group(
    weights: &[i8],
    xs: &[i32],
    group_len: usize,
    params: impl Fn(usize) -> GroupParams,
    mut visit: impl FnMut(usize, [i32; CHANNEL_GROUP]),
) {
    if group_len == 0 {
        return;
    }
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        #[allow(unsafe_code)]
        unsafe {
            x86::avx2_for_each_group(weights, xs, group_len, params, visit)
        };
        return;
    }
    for (g, group) in weights.chunks_exact(group_len).enumerate() {
        visit(g, params(g).apply(dot_group(group, xs)));
    }
}

/// One group's dot products with the best loop this target has without run-time checks.
#[inline]
fn dot_group(weights: &[i8], xs: &[i32]) -> [i32; CHANNEL_GROUP] {
    #[cfg(target_arch = "x86_64")]
    {
        x86::sse2_dot_group(weights, xs)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut dot = [0; CHANNEL_GROUP];
        #[cfg(all(target_arch = "arm", target_os = "none"))]
        let (weights, xs) = thumb::accumulate_blocks(&mut dot, weights, xs);
        portable(&mut dot, weights, xs);
        dot
    }
}

/// The reference loop: one input at a time, four multiply-accumulates each.
#[inline]
fn portable(acc: &mut [i32; CHANNEL_GROUP], weights: &[i8], xs: &[i32]) {
    for (w, &x) in weights.chunks_exact(CHANNEL_GROUP).zip(xs) {
        for (a, &w) in acc.iter_mut().zip(w) {
            *a = a.wrapping_add((w as i32).wrapping_mul(x));
        }
    }
}
