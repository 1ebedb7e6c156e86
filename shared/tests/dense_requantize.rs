//! The kernels' per-output requantization against the definition.
//!
//! `requantize_offset` (the fast path every target runs per output: the high word of the
//! product, a shift with the rounding bit, the zero point added inside) must equal
//! `requantize(acc, multiplier, shift).saturating_add(zero_point)` for every input,
//! and the Cortex-M0's product from 16-bit halves must equal the `i64` product. On the
//! host the fast path runs its portable form; the Thumb-2 assembly form is checked on
//! the emulated cores.

use proptest::prelude::*;
use tinyvae_shared::dense::{requantize, requantize_offset, widening_mul_by_halves};
use tinyvae_shared::rng::Rng;

/// Values that reach the edges: extremes, signs, zero, and the multipliers the model
/// validator allows (`[2^30, 2^31)`), mixed with plain random words.
fn edgy(rng: &mut Rng) -> i32 {
    const EDGES: [i32; 10] = [
        i32::MIN,
        i32::MIN + 1,
        -65536,
        -65535,
        -1,
        0,
        1,
        65535,
        65536,
        i32::MAX,
    ];
    let r = rng.next_u32();
    match r % 8 {
        0 => EDGES[(r / 8) as usize % EDGES.len()],
        1 => (1 << 30) | (rng.next_u32() >> 2) as i32,
        2 | 3 => (rng.next_u32() as i32) >> (r / 8 % 31),
        _ => rng.next_u32() as i32,
    }
}

fn definition(acc: i32, multiplier: i32, shift: i32, zero_point: i32) -> i32 {
    requantize(acc, multiplier, shift).saturating_add(zero_point)
}

#[test]
fn product_from_halves_equals_the_64_bit_product() {
    let mut rng = Rng::new(3);
    for _ in 0..1_000_000 {
        let (a, b) = (edgy(&mut rng), edgy(&mut rng));
        let wide = a as i64 * b as i64;
        assert_eq!(
            widening_mul_by_halves(a, b),
            (wide as u32, (wide >> 32) as i32),
            "{a} * {b}"
        );
    }
}

#[test]
fn fast_requantization_equals_the_definition() {
    let mut rng = Rng::new(5);
    for round in 0..1_000_000u32 {
        let acc = edgy(&mut rng);
        let multiplier = edgy(&mut rng);
        // Every shift of the fast path (-31..=-2) and of the slow one, and beyond.
        let shift = (round % 76) as i32 - 40;
        let zero_point = match round % 5 {
            0 => 0,
            1 => (rng.next_u32() % 256) as i32 - 128,
            2 => edgy(&mut rng),
            3 => [-(1 << 28), 1 << 28, (1 << 28) + 1, -(1 << 28) - 1][(round / 5 % 4) as usize],
            _ => (rng.next_u32() as i32) >> 3,
        };
        assert_eq!(
            requantize_offset(acc, multiplier, shift, zero_point),
            definition(acc, multiplier, shift, zero_point),
            "acc {acc} multiplier {multiplier} shift {shift} zero point {zero_point}"
        );
    }
}

#[test]
fn rounding_ties_go_away_from_zero_on_the_fast_path() {
    // multiplier 2^30 (0.5), shift -2: acc / 8, exactly halfway for acc = 4 (mod 8).
    for (acc, expected) in [
        (4, 1),
        (-4, -1),
        (12, 2),
        (-12, -2),
        (3, 0),
        (-3, 0),
        (5, 1),
        (-5, -1),
    ] {
        assert_eq!(
            requantize_offset(acc, 1 << 30, -2, 0),
            expected,
            "acc {acc}"
        );
        assert_eq!(
            requantize_offset(acc, 1 << 30, -2, -7),
            expected - 7,
            "acc {acc}"
        );
    }
    // The largest product: i32::MIN * i32::MIN = 2^62, and one below and above zero.
    assert_eq!(requantize_offset(i32::MIN, i32::MIN, -31, 0), 1);
    assert_eq!(requantize_offset(-1, 1 << 30, -2, 0), 0);
    assert_eq!(requantize_offset(1, 1 << 30, -31, 0), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn fast_requantization_equals_the_definition_prop(
        acc in any::<i32>(),
        multiplier in prop_oneof![any::<i32>(), (1i32 << 30)..=i32::MAX],
        shift in -33i32..=31,
        zero_point in prop_oneof![-128i32..=127, any::<i32>()],
    ) {
        prop_assert_eq!(
            requantize_offset(acc, multiplier, shift, zero_point),
            definition(acc, multiplier, shift, zero_point)
        );
    }
}
