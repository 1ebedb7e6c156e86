//! Accuracy of the fixed-point `exp`, `ln` and `sqrt` against `f64`.
//!
//! Errors are in units of the last place of the result (1 ulp of Q16 = 2^-16). The
//! `f64` references are accurate to ~1e-16 relative, i.e. below 1e-6 ulp here, so a
//! measured error of 0.5 + tiny ulp means "correctly rounded except at near-ties".
//! Run with `--nocapture` to see the numbers; the bounds asserted are the ones the
//! doc comments of `shared/src/math.rs` state.

use tinyvae_shared::fixed::{q16_to_f64, Q16};
use tinyvae_shared::math::{exp_half_q16, exp_q16, isqrt_u64, ln_q16, ln_u64_q32, sqrt_q16};
use tinyvae_shared::rng::Rng;

const ONE: f64 = 65536.0;

/// Largest error of `exp(x * scale)` over every raw Q16 `x` in `[lo, hi]`, split at
/// results of 2^14; also checks saturation and monotonicity. Returns
/// (max ulp below 2^14, max ulp at or above 2^14, max relative error for results >= 2^10).
fn sweep_exp(f: fn(Q16) -> Q16, scale: f64, lo: Q16, hi: Q16) -> (f64, f64, f64) {
    let (mut small, mut large, mut rel) = (0.0f64, 0.0f64, 0.0f64);
    let mut prev = 0;
    for x in lo..=hi {
        let got = f(x);
        assert!(got >= prev, "exp not monotone at raw {x}");
        prev = got;
        let exact = (q16_to_f64(x) * scale).exp() * ONE;
        if exact >= i32::MAX as f64 + 0.5 {
            assert_eq!(got, i32::MAX, "no saturation at raw {x}");
            continue;
        }
        let err = (got as f64 - exact).abs();
        if exact < 16384.0 * ONE {
            small = small.max(err);
        } else {
            large = large.max(err);
        }
        if exact >= 1024.0 * ONE {
            rel = rel.max(err / exact);
        }
    }
    (small, large, rel)
}

#[test]
fn exp_every_input() {
    let (small, large, rel) = sweep_exp(exp_q16, 1.0, -16 * 65536, (10.3 * ONE) as Q16);
    println!("exp_q16 over every raw in [-16, 10.3]: max err {small:.7} ulp (< 2^14), {large:.7} ulp (>= 2^14), max rel {rel:.3e} (results >= 1024)");
    assert!(small <= 0.5 + 1e-6, "{small}");
    assert!(large <= 0.5 + 1e-6, "{large}");
    // Only the final Q16 rounding: 0.5 / 2^26 = 7.45e-9.
    assert!(rel <= 7.5e-9, "{rel}");

    // The saturation region right up to and past ln(32768).
    let (_, large, _) = sweep_exp(exp_q16, 1.0, (10.3 * ONE) as Q16, 11 * 65536);
    assert!(large <= 0.5 + 1e-6, "{large}");
    for x in [11 * 65536, 100 * 65536, i32::MAX] {
        assert_eq!(exp_q16(x), i32::MAX);
    }
    for x in [-12 * 65536, -1000 * 65536, i32::MIN] {
        assert_eq!(exp_q16(x), 0);
    }
}

#[test]
fn exp_half_every_input() {
    let (small, large, rel) = sweep_exp(exp_half_q16, 0.5, -32 * 65536, 21 * 65536);
    println!("exp_half_q16 over every raw in [-32, 21]: max err {small:.7} ulp (< 2^14), {large:.7} ulp (>= 2^14), max rel {rel:.3e} (results >= 1024)");
    assert!(small <= 0.5 + 1e-6, "{small}");
    assert!(large <= 0.5 + 1e-6, "{large}");
    // Only the final Q16 rounding: 0.5 / 2^26 = 7.45e-9.
    assert!(rel <= 7.5e-9, "{rel}");
    assert_eq!(exp_half_q16(i32::MAX), i32::MAX);
    assert_eq!(exp_half_q16(i32::MIN), 0);
}

#[test]
fn ln_grid_and_random() {
    let mut max_err = 0.0f64;
    let mut check = |x: Q16| {
        let got = ln_q16(x);
        let exact = (q16_to_f64(x)).ln() * ONE;
        max_err = max_err.max((got as f64 - exact).abs());
    };
    // Every input in [2^-16, 16], then a stride through the rest, then random ones.
    for x in 1..=(1 << 20) {
        check(x);
    }
    let mut x: i64 = 1 << 20;
    while x <= i32::MAX as i64 {
        check(x as Q16);
        x += 997;
    }
    let mut rng = Rng::new(7);
    for _ in 0..2_000_000 {
        let bits = rng.next_u32() >> 1;
        // Spread over all magnitudes: shift by 0..31.
        let v = (bits >> (rng.next_u32() % 31)).max(1);
        check(v as Q16);
    }
    check(i32::MAX);
    println!("ln_q16 over [2^-16, 32768): max err {max_err:.7} ulp");
    assert!(max_err <= 0.5 + 1e-4, "{max_err}");
    for x in [0, -1, i32::MIN] {
        assert_eq!(ln_q16(x), i32::MIN);
    }
}

#[test]
fn ln_u64_q32_random() {
    let mut rng = Rng::new(11);
    let mut max_err = 0.0f64;
    let q32 = 4_294_967_296.0f64;
    for i in 0..3_000_000u64 {
        let raw = ((rng.next_u32() as u64) << 32) | rng.next_u32() as u64;
        let x = (raw >> (rng.next_u32() % 64)).max(1);
        let frac = (i % 65) as u32;
        let got = ln_u64_q32(x, frac);
        // Split x into two exact halves so the f64 reference keeps every bit.
        let exact = ((x as f64).ln() - frac as f64 * core::f64::consts::LN_2) * q32;
        let err = (got as f64 - exact).abs();
        // f64 itself is only good to |exact| * 2^-52 here; subtract that slack.
        let slack = exact.abs() * 2f64.powi(-52) * 4.0;
        max_err = max_err.max(err - slack);
    }
    println!("ln_u64_q32 over random u64 and frac_bits 0..=64: max err {max_err:.4} Q32 ulp");
    assert!(max_err <= 0.6, "{max_err}");
    assert_eq!(ln_u64_q32(0, 3), i64::MIN);
}

#[test]
fn sqrt_grid_and_random() {
    let mut max_err = 0.0f64;
    let mut check = |x: Q16| {
        let got = sqrt_q16(x);
        // Exact test of correct rounding: (2r - 1)^2 <= 4 v <= (2r + 1)^2, v = x 2^16.
        let r = got as i128;
        let lower = (2 * r - 1).max(0);
        let v4 = 4 * ((x as i128) << 16);
        assert!(
            lower * lower <= v4 && v4 <= (2 * r + 1).pow(2),
            "sqrt_q16({x}) = {got}"
        );
        let exact = q16_to_f64(x).sqrt() * ONE;
        max_err = max_err.max((got as f64 - exact).abs());
    };
    for x in 0..=(1 << 20) {
        check(x);
    }
    let mut x: i64 = 1 << 20;
    while x <= i32::MAX as i64 {
        check(x as Q16);
        x += 997;
    }
    let mut rng = Rng::new(13);
    for _ in 0..2_000_000 {
        check((rng.next_u32() >> 1) as Q16);
    }
    check(i32::MAX);
    println!("sqrt_q16 over [0, 32768): max err {max_err:.7} ulp");
    assert!(max_err <= 0.5 + 1e-6, "{max_err}");
    assert_eq!(sqrt_q16(-1), 0);
    assert_eq!(sqrt_q16(i32::MIN), 0);
}

#[test]
fn isqrt_is_exact_floor() {
    let check = |x: u64| {
        let r = isqrt_u64(x) as u128;
        assert!(
            r * r <= x as u128 && (r + 1) * (r + 1) > x as u128,
            "isqrt_u64({x})"
        );
    };
    let mut rng = Rng::new(17);
    for _ in 0..2_000_000 {
        let raw = ((rng.next_u32() as u64) << 32) | rng.next_u32() as u64;
        check(raw >> (rng.next_u32() % 64));
    }
    for k in 0..=u32::MAX as u64 / 65_521 {
        let r = k * 65_521;
        for x in [r * r, (r * r).saturating_sub(1), r * r + 1] {
            check(x);
        }
    }
    for x in [0, 1, 2, 3, u64::MAX, u64::MAX - 1, 1 << 62, (1 << 62) - 1] {
        check(x);
    }
    println!("isqrt_u64: exact floor on 2e6 random inputs, squares and edges");
}

#[test]
fn any_i32_is_safe_and_ordered() {
    // Random raw values of every magnitude: no panic (debug builds check overflow),
    // and the outputs keep their documented ranges and monotonicity.
    let mut rng = Rng::new(23);
    let mut prev: Option<(Q16, Q16, Q16, Q16)> = None;
    for _ in 0..1_000_000 {
        let x = (rng.next_u32() as i32) >> (rng.next_u32() % 32);
        let (e, h, l, s) = (exp_q16(x), exp_half_q16(x), ln_q16(x), sqrt_q16(x));
        assert!(e >= 0 && h >= 0 && s >= 0);
        assert!(x > 0 || l == i32::MIN);
        if let Some((px, pe, ph, ps)) = prev {
            let (lo, hi) = if px <= x {
                ((px, pe, ph, ps), (x, e, h, s))
            } else {
                ((x, e, h, s), (px, pe, ph, ps))
            };
            assert!(
                lo.1 <= hi.1 && lo.2 <= hi.2 && lo.3 <= hi.3,
                "not monotone between {} and {}",
                lo.0,
                hi.0
            );
        }
        prev = Some((x, e, h, s));
    }
}
