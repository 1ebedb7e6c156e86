//! Accuracy of the reparameterization trick and the KL term against `f64`, on
//! seeded random inputs including extreme `logvar` and the `i32` extremes.
//!
//! Run with `--nocapture` to see the numbers.

use tinyvae_shared::fixed::{q16_from_f64, q16_to_f64, Q16};
use tinyvae_shared::latent::{kl_q16, reparameterize};
use tinyvae_shared::rng::{Gaussian, Rng};

const ONE: f64 = 65536.0;

/// A uniform raw Q16 in `[lo, hi]` (real units).
fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> Q16 {
    let t = rng.next_u32() as f64 / 4_294_967_296.0;
    q16_from_f64(lo + (hi - lo) * t)
}

/// A logvar drawn from a mix of typical, wide and extreme values.
fn logvar(rng: &mut Rng) -> Q16 {
    match rng.next_u32() % 8 {
        0 => i32::MIN,
        1 => i32::MAX,
        2 => q16_from_f64(if rng.next_u32() & 1 == 0 { 30.0 } else { -30.0 }),
        3 => rng.next_u32() as i32,
        4 => uniform(rng, -45.0, 45.0),
        _ => uniform(rng, -12.0, 6.0),
    }
}

/// A mu drawn from typical, wide and extreme values.
fn mu(rng: &mut Rng) -> Q16 {
    match rng.next_u32() % 8 {
        0 => i32::MIN,
        1 => i32::MAX,
        2 => rng.next_u32() as i32,
        3 => uniform(rng, -300.0, 300.0),
        _ => uniform(rng, -4.0, 4.0),
    }
}

#[test]
fn reparameterize_matches_f64() {
    let mut rng = Rng::new(2024);
    let mut gauss = Gaussian::new(77);
    let (mut max_abs, mut max_rel) = (0.0f64, 0.0f64);
    let mut saturated = 0usize;
    const LEN: usize = 64;
    for round in 0..40_000 {
        let mut m = [0 as Q16; LEN];
        let mut lv = [0 as Q16; LEN];
        let mut eps = [0 as Q16; LEN];
        for i in 0..LEN {
            m[i] = mu(&mut rng);
            lv[i] = logvar(&mut rng);
            eps[i] = match rng.next_u32() % 8 {
                0 => 0,
                1 => rng.next_u32() as i32,
                2 => [i32::MIN, i32::MAX, 1, -1][(rng.next_u32() % 4) as usize],
                _ => gauss.next_q16(),
            };
        }
        let mut z = [0 as Q16; LEN];
        reparameterize(&m, &lv, &eps, &mut z);
        for i in 0..LEN {
            let noise = if eps[i] == 0 {
                0.0
            } else {
                (q16_to_f64(lv[i]) / 2.0).exp() * q16_to_f64(eps[i])
            };
            let exact = (q16_to_f64(m[i]) + noise) * ONE;
            if exact >= i32::MAX as f64 + 0.5 {
                assert_eq!(z[i], i32::MAX, "round {round} i {i}");
                saturated += 1;
            } else if exact <= i32::MIN as f64 - 0.5 {
                assert_eq!(z[i], i32::MIN, "round {round} i {i}");
                saturated += 1;
            } else {
                let err = (z[i] as f64 - exact).abs();
                max_abs = max_abs.max(err);
                if exact.abs() >= ONE {
                    max_rel = max_rel.max(err / exact.abs());
                }
                assert!(
                    err <= 0.5 + 1e-6,
                    "round {round} i {i}: mu {} lv {} eps {} -> {} vs {exact}",
                    m[i],
                    lv[i],
                    eps[i],
                    z[i]
                );
            }
        }
    }
    println!("reparameterize: max abs err {max_abs:.7} ulp, max rel err {max_rel:.3e} (|z| >= 1), {saturated} saturated cases exact");
    assert!(max_abs <= 0.5 + 1e-6);
}

#[test]
fn kl_matches_f64() {
    let mut rng = Rng::new(4048);
    let (mut max_abs, mut max_rel) = (0.0f64, 0.0f64);
    let (mut saturated, mut compared) = (0usize, 0usize);
    for round in 0..200_000 {
        let len = 1 + (rng.next_u32() % 64) as usize;
        // Three regimes: typical (rarely saturates), wide, and with extremes.
        let regime = round % 3;
        let mut m = [0 as Q16; 64];
        let mut lv = [0 as Q16; 64];
        for i in 0..len {
            match regime {
                0 => {
                    m[i] = uniform(&mut rng, -3.0, 3.0);
                    lv[i] = uniform(&mut rng, -8.0, 2.0);
                }
                1 => {
                    m[i] = uniform(&mut rng, -40.0, 40.0);
                    lv[i] = uniform(&mut rng, -40.0, 12.0);
                }
                _ => {
                    m[i] = mu(&mut rng);
                    lv[i] = logvar(&mut rng);
                }
            }
        }
        let got = kl_q16(&m[..len], &lv[..len]);
        let exact: f64 = 0.5
            * m[..len]
                .iter()
                .zip(&lv[..len])
                .map(|(&m, &lv)| {
                    let (m, lv) = (q16_to_f64(m), q16_to_f64(lv));
                    lv.exp() + m * m - 1.0 - lv
                })
                .sum::<f64>()
            * ONE;
        if exact >= i32::MAX as f64 + 0.5 {
            assert_eq!(got, i32::MAX, "round {round}");
            saturated += 1;
        } else {
            let err = (got as f64 - exact).abs();
            max_abs = max_abs.max(err);
            if exact >= ONE {
                max_rel = max_rel.max(err / exact);
            }
            compared += 1;
            assert!(err <= 0.5 + 1e-3, "round {round}: {got} vs {exact}");
        }
    }
    println!("kl_q16: max abs err {max_abs:.7} ulp, max rel err {max_rel:.3e} (KL >= 1) over {compared} vectors; {saturated} saturated exactly");
    assert!(max_abs <= 0.5 + 1e-3);
    assert!(compared > 80_000 && saturated > 10_000);
}

#[test]
fn kl_extremes_never_panic() {
    let values = [
        i32::MIN,
        i32::MIN + 1,
        -30 << 16,
        -1,
        0,
        1,
        30 << 16,
        i32::MAX - 1,
        i32::MAX,
    ];
    for &m in &values {
        for &lv in &values {
            let one = kl_q16(&[m], &[lv]);
            let many = kl_q16(&[m; 256], &[lv; 256]);
            assert!(one >= 0 && many >= one, "mu {m} logvar {lv}: {one} {many}");
        }
    }
    // All-zero means and unit variances: exactly zero.
    assert_eq!(kl_q16(&[0; 64], &[0; 64]), 0);
    // Very negative logvar: each term is -1 - logvar; 64 * 0.5 * 29 = 928.
    assert_eq!(kl_q16(&[0; 64], &[-30 << 16; 64]), 928 << 16);
}
