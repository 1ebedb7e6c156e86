//! Seeded randomness for everything tinyvae draws: initial weights, shuffles,
//! reparameterisation noise, data splits and corruptions.
//!
//! candle's CPU device cannot be seeded (`Device::Cpu.set_seed` errors), so no
//! random tensor is ever drawn by candle: values come from this generator and
//! are turned into tensors. Independent streams are derived from
//! `(seed, purpose, index)` so that, e.g., epoch 7 shuffles the same way whether
//! the run was resumed at epoch 5 or not.

use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// A small, fast, reproducible generator (xoshiro256++).
#[derive(Clone, Debug)]
pub struct SeededRng {
    inner: Xoshiro256PlusPlus,
    spare_normal: Option<f64>,
}

/// FNV-1a, used only to turn a stream name into a number.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// SplitMix64 finaliser: mixes the stream key so nearby keys give unrelated streams.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SeededRng {
    /// A generator for a plain seed.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Xoshiro256PlusPlus::seed_from_u64(seed),
            spare_normal: None,
        }
    }

    /// An independent stream for `purpose` number `index` under `seed`.
    pub fn stream(seed: u64, purpose: &str, index: u64) -> Self {
        let key = mix(seed ^ mix(fnv1a(purpose) ^ mix(index.wrapping_add(0x9e37_79b9_7f4a_7c15))));
        Self::new(key)
    }

    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn uniform_range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n); `n` must be > 0. Uses Lemire's multiply-shift
    /// (the bias is below 2^-32 for the sizes used here).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Standard normal draw (Box–Muller, both values used).
    pub fn normal(&mut self) -> f64 {
        if let Some(v) = self.spare_normal.take() {
            return v;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        self.spare_normal = Some(r * t.sin());
        r * t.cos()
    }

    /// `n` standard normal draws as f32.
    pub fn normals(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal() as f32).collect()
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }

    /// A random permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        self.shuffle(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| SeededRng::stream(1, "x", 3).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            SeededRng::stream(1, "x", 3).next_u64(),
            SeededRng::stream(1, "x", 4).next_u64()
        );
        assert_ne!(
            SeededRng::stream(1, "x", 3).next_u64(),
            SeededRng::stream(1, "y", 3).next_u64()
        );
    }

    #[test]
    fn normals_have_unit_variance() {
        let mut r = SeededRng::new(5);
        let v = r.normals(20000);
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / v.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
