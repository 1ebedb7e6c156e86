//! The dense kernel's accumulators against a naive integer reference.
//!
//! Each target runs its own loop shape (SIMD on x86-64, assembly on Cortex-M, a portable
//! loop elsewhere), and all must give the same bits. A layer whose requantization is
//! exactly x1 (`multiplier = 2^30`, `shift = 1`) and whose output is Q16 hands back the
//! raw i32 accumulators, so they can be compared one for one. Sizes cover every
//! remainder of the SIMD blocks (4 and 8 inputs) and partial channel groups; weights
//! and activations cover the extremes the model format allows.

use proptest::prelude::*;
use tinyvae_shared::dense::{group_weights, requantize, weight_bytes, DenseLayer, LayerOutput};

/// `bias[j] + sum_i w[j][i] * (x[i] - zero_point)`, one term at a time.
fn reference(w: &[i8], bias: &[i32], x: &[i8], zero_point: i32, in_dim: usize) -> Vec<i32> {
    bias.iter()
        .enumerate()
        .map(|(j, &b)| {
            (0..in_dim).fold(b, |acc, i| {
                acc.wrapping_add(w[j * in_dim + i] as i32 * (x[i] as i32 - zero_point))
            })
        })
        .collect()
}

fn le_bytes(values: impl IntoIterator<Item = i32>) -> Vec<u8> {
    values.into_iter().flat_map(i32::to_le_bytes).collect()
}

/// The layer's Q16 outputs with requantization `multiplier` and `shift` on every
/// channel: the raw accumulators when they are `(2^30, 1)` (exactly x1).
fn kernel(w: &[i8], bias: &[i32], x: &[i8], zero_point: i32, in_dim: usize) -> Vec<i32> {
    kernel_requantized(w, bias, x, zero_point, in_dim, (&[1 << 30], &[1]))
}

fn kernel_requantized(
    w: &[i8],
    bias: &[i32],
    x: &[i8],
    zero_point: i32,
    in_dim: usize,
    (multipliers, shifts): (&[i32], &[i32]),
) -> Vec<i32> {
    let out_dim = bias.len();
    let grouped = group_weights(w, in_dim, out_dim);
    assert_eq!(grouped.len(), weight_bytes(in_dim, out_dim));
    let bias_bytes = le_bytes(bias.iter().copied());
    let multiplier = le_bytes(multipliers.iter().copied().cycle().take(out_dim));
    let shift = le_bytes(shifts.iter().copied().cycle().take(out_dim));
    let layer = DenseLayer {
        in_dim,
        out_dim,
        input_zero_point: zero_point,
        output: LayerOutput::Q16,
        weights: &grouped,
        bias: &bias_bytes,
        multiplier: &multiplier,
        shift: &shift,
    };
    let mut widened = vec![0; in_dim];
    let mut out = vec![0; out_dim];
    assert_eq!(layer.forward_q16(x, &mut widened, &mut out), out_dim);
    out
}

fn layer_strategy() -> impl Strategy<Value = (usize, Vec<i8>, Vec<i32>, Vec<i8>, i32)> {
    (1usize..40, 1usize..20, -128i32..=127).prop_flat_map(|(in_dim, out_dim, zero_point)| {
        (
            Just(in_dim),
            prop::collection::vec(-127i8..=127, in_dim * out_dim),
            prop::collection::vec(-(1 << 24)..(1i32 << 24), out_dim),
            prop::collection::vec(any::<i8>(), in_dim),
            Just(zero_point),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn accumulators_equal_the_reference((in_dim, w, bias, x, zero_point) in layer_strategy()) {
        prop_assert_eq!(
            kernel(&w, &bias, &x, zero_point, in_dim),
            reference(&w, &bias, &x, zero_point, in_dim)
        );
    }
}

/// Biases, multipliers and shifts that reach the saturation and rounding edges.
fn requant_strategy() -> impl Strategy<Value = (Vec<i32>, Vec<i32>, Vec<i32>)> {
    let value = prop_oneof![
        any::<i32>(),
        Just(i32::MIN),
        Just(i32::MAX),
        Just(0),
        Just(-1),
        Just(1),
        (-1000i32..1000),
    ];
    (1usize..13).prop_flat_map(move |out_dim| {
        (
            prop::collection::vec(value.clone(), out_dim),
            prop::collection::vec(value.clone(), out_dim),
            prop::collection::vec(-40i32..40, out_dim),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    /// Each target may requantize a group at once (AVX2 does): the outputs must equal
    /// the scalar `requantize` of the reference accumulators.
    #[test]
    fn requantized_outputs_equal_the_scalar_definition(
        (bias, multipliers, shifts) in requant_strategy(),
        x in prop::collection::vec(any::<i8>(), 9),
        w_seed in any::<i8>(),
    ) {
        let in_dim = 9;
        let out_dim = bias.len();
        let w: Vec<i8> = (0..in_dim * out_dim)
            .map(|k| (w_seed as i32 + 37 * k as i32).rem_euclid(255) as i8)
            .collect();
        let accs = reference(&w, &bias, &x, 3, in_dim);
        let expected: Vec<i32> = accs
            .iter()
            .enumerate()
            .map(|(j, &acc)| requantize(acc, multipliers[j], shifts[j]))
            .collect();
        prop_assert_eq!(
            kernel_requantized(&w, &bias, &x, 3, in_dim, (&multipliers, &shifts)),
            expected
        );
    }
}

#[test]
fn extremes_of_a_full_size_layer() {
    // 784 inputs: 98 AVX2 steps; 791: 98 steps, one SSE2 block and 3 leftover inputs.
    for in_dim in [784, 791] {
        for (w_value, x_value, zero_point) in
            [(127, -128, 127), (-128, 127, -128), (-127, -128, 127)]
        {
            let out_dim = 6;
            let w = vec![w_value; in_dim * out_dim];
            let bias = vec![7; out_dim];
            let x = vec![x_value; in_dim];
            assert_eq!(
                kernel(&w, &bias, &x, zero_point, in_dim),
                reference(&w, &bias, &x, zero_point, in_dim),
                "w {w_value} x {x_value} zero point {zero_point} in_dim {in_dim}"
            );
        }
    }
}

/// An int8 layer's output zero point is taken within +-2^28: a hand-built layer with a
/// larger one computes as one at the bound (the validator never lets a model have one).
#[test]
fn huge_output_zero_points_are_clamped_to_the_folded_range() {
    let (in_dim, out_dim) = (5, 6);
    let w: Vec<i8> = (0..in_dim * out_dim)
        .map(|i| (i as i8).wrapping_mul(37))
        .collect();
    let grouped = group_weights(&w, in_dim, out_dim);
    // Biases that put the requantized values far below zero, where the zero point
    // decides whether an output saturates.
    let bias = le_bytes([-(1 << 29), -5, 0, 7, 1 << 20, -(1 << 28) - 100]);
    let multiplier = le_bytes(std::iter::repeat_n(1 << 30, out_dim));
    let shift = le_bytes(std::iter::repeat_n(1, out_dim));
    let x: Vec<i8> = vec![-128, 3, 127, -1, 0];
    let outputs = |zero_point: i32| {
        let layer = DenseLayer {
            in_dim,
            out_dim,
            input_zero_point: 0,
            output: LayerOutput::Int8 {
                zero_point,
                relu: false,
            },
            weights: &grouped,
            bias: &bias,
            multiplier: &multiplier,
            shift: &shift,
        };
        let mut widened = vec![0; in_dim];
        let mut out = vec![0i8; out_dim];
        assert_eq!(layer.forward_i8(&x, &mut widened, &mut out), out_dim);
        out
    };
    assert_eq!(outputs(i32::MAX), outputs(1 << 28));
    assert_eq!(outputs(i32::MIN), outputs(-(1 << 28)));
    assert_ne!(outputs(1 << 28), outputs(0), "the zero point matters here");
}
