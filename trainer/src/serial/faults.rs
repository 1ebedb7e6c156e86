//! Deterministic image faults: the "anomalies" used to check that the device's score
//! separates damaged inputs from clean ones, and to build test sets that the host and
//! the device see identically.

use tinyvae_shared::rng::Rng;

/// A way to damage an image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Replace each pixel with a uniform random byte with this probability.
    Noise {
        /// Probability that a pixel is replaced, 0..=1.
        fraction: f32,
    },
    /// Paint a solid rectangle of this side (in pixels) and grey level at a random
    /// place.
    Occlusion {
        /// Side of the square.
        side: usize,
        /// Grey level painted.
        level: u8,
    },
}

/// Applies `fault` to a copy of `image` (`width` x `height`, row major), drawing its
/// randomness from `seed`.
pub fn apply(fault: Fault, image: &[u8], width: usize, height: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = image.to_vec();
    match fault {
        Fault::Noise { fraction } => {
            let cut = (fraction.clamp(0.0, 1.0) as f64 * 4_294_967_295.0) as u32;
            for p in &mut out {
                if rng.next_u32() <= cut {
                    *p = rng.next_u32() as u8;
                }
            }
        }
        Fault::Occlusion { side, level } => {
            let side_w = side.min(width);
            let side_h = side.min(height);
            let x0 = (rng.next_u32() as usize) % (width - side_w + 1);
            let y0 = (rng.next_u32() as usize) % (height - side_h + 1);
            for y in y0..y0 + side_h {
                for x in x0..x0 + side_w {
                    if let Some(p) = out.get_mut(y * width + x) {
                        *p = level;
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_deterministic_and_change_the_image() {
        let image = vec![0u8; 28 * 28];
        for fault in [
            Fault::Noise { fraction: 0.3 },
            Fault::Occlusion {
                side: 10,
                level: 255,
            },
        ] {
            let a = apply(fault, &image, 28, 28, 7);
            assert_eq!(a, apply(fault, &image, 28, 28, 7));
            assert_ne!(a, image);
            assert_eq!(a.len(), image.len());
        }
        let occluded = apply(
            Fault::Occlusion {
                side: 10,
                level: 255,
            },
            &image,
            28,
            28,
            1,
        );
        assert_eq!(occluded.iter().filter(|&&p| p == 255).count(), 100);
    }
}
