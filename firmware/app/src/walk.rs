//! The idle screen's walk through latent space.
//!
//! Key points are prior samples `z_k ~ N(0, I)` from the shared seeded generator
//! (seed [`WALK_SEED`] + k), and the walk moves between consecutive ones along a
//! quarter circle, `z = z_k cos(t) + z_{k+1} sin(t)` for t from 0 to pi/2. Unlike a
//! straight line, this keeps z distributed as N(0, I) all the way (cos^2 + sin^2 = 1),
//! so every frame is a typical sample rather than a washed-out average near the middle.

use tinyvae_shared::fixed::{mul_q16, Q16};
use tinyvae_shared::pipeline::prior_sample;
use tinyvae_shared::protocol::Latent;

/// Seed of the first key point.
pub const WALK_SEED: u64 = 0x7761_6C6B; // "walk"
/// Frames from one key point to the next.
pub const STEPS: usize = 16;
/// `sin(k * pi / 32)` in Q16 for k = 0..=16: a quarter circle in [`STEPS`] steps.
const SIN_Q16: [Q16; STEPS + 1] = [
    0, 6424, 12785, 19024, 25080, 30893, 36410, 41576, 46341, 50660, 54491, 57798, 60547, 62714,
    64277, 65220, 65536,
];

/// Where the walk is.
pub struct Walk {
    latent: usize,
    from: Latent,
    to: Latent,
    segment: u64,
    step: usize,
    frames: u32,
}

impl Walk {
    /// A walk for a model with `latent` dimensions, at its first key point.
    pub fn new(latent: usize) -> Self {
        Self {
            latent,
            from: prior_sample(latent, WALK_SEED, 1 << 16),
            to: prior_sample(latent, WALK_SEED.wrapping_add(1), 1 << 16),
            segment: 0,
            step: 0,
            frames: 0,
        }
    }

    /// The next point of the walk and its frame number.
    pub fn next_point(&mut self) -> (Latent, u32) {
        let sin = SIN_Q16[self.step.min(STEPS)];
        let cos = SIN_Q16[STEPS - self.step.min(STEPS)];
        let z = self
            .from
            .iter()
            .zip(&self.to)
            .map(|(&a, &b)| mul_q16(a, cos).saturating_add(mul_q16(b, sin)))
            .collect();
        let frame = self.frames;
        self.frames = self.frames.wrapping_add(1);
        self.step += 1;
        if self.step >= STEPS {
            self.step = 0;
            self.segment = self.segment.wrapping_add(1);
            self.from = core::mem::take(&mut self.to);
            let seed = WALK_SEED.wrapping_add(self.segment).wrapping_add(1);
            self.to = prior_sample(self.latent, seed, 1 << 16);
        }
        (z, frame)
    }
}
