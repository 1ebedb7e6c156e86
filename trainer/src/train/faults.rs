//! Corrupted training inputs for denoising training (Vincent et al. 2008): the model
//! sees a faulted image and is scored on how well it rebuilds the clean one, so it
//! learns to undo the sensor faults the device meets instead of copying them.
//!
//! The faults are the anomaly report's ([`Corruption`]). Which image gets which fault,
//! and the fault's own randomness, are drawn from the epoch's stream before the step,
//! so the fused CPU step and candle's path corrupt every image identically and a
//! resumed run repeats them.

use tinyvae_datasets::corrupt::{other_index, Corruption};
use tinyvae_datasets::grid::unit_to_pixels;
use tinyvae_datasets::rng::SeededRng;

use super::TrainConfig;

/// One image's fault: its kind and the seed of its randomness.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fault {
    /// The fault applied.
    pub kind: Corruption,
    /// Seed of the fault's own random choices (which pixels, where).
    pub seed: u64,
}

/// The fault kinds a run trains against (empty: plain reconstruction). A checkpoint
/// with a name this build does not know is refused rather than trained differently.
pub fn kinds(cfg: &TrainConfig) -> candle_core::Result<Vec<Corruption>> {
    if cfg.denoise.is_empty() {
        return Ok(Vec::new());
    }
    Corruption::parse_list(&cfg.denoise.join(","))
        .map_err(|e| candle_core::Error::Msg(format!("--denoise: {e}")))
}

/// Draws each of `images` images' fault: with probability `frac` one of `kinds` (uniform)
/// and a seed, else none. Draws nothing when `kinds` is empty, so that runs without
/// denoising take exactly the random numbers they always did.
pub fn draw(
    rng: &mut SeededRng,
    images: usize,
    kinds: &[Corruption],
    frac: f64,
) -> Vec<Option<Fault>> {
    if kinds.is_empty() {
        return Vec::new();
    }
    (0..images)
        .map(|_| {
            // Every image takes the same three draws, corrupted or not, so `frac` does
            // not shift the rest of the stream.
            let hit = rng.uniform() < frac;
            let kind = kinds[rng.below(kinds.len())];
            let seed = rng.next_u64();
            hit.then_some(Fault { kind, seed })
        })
        .collect()
}

/// Writes `clean` (one `width x height` image in `[0, 1]`) with `fault` applied into
/// `out`; `other` is another image of the batch, the frame the faults that mix two
/// frames (torn, overlay) take their second one from. The faults act on 8-bit
/// readings, as a sensor's would; the training images are 8-bit values over 255, so
/// the round trip leaves untouched pixels exact.
pub fn apply(
    clean: &[f32],
    other: &[f32],
    out: &mut [f32],
    (width, height): (usize, usize),
    fault: Option<Fault>,
) {
    let Some(fault) = fault else {
        out.copy_from_slice(clean);
        return;
    };
    let clean_px = unit_to_pixels(clean);
    // Only the kinds that read `other` pay for its conversion.
    let other_px = if fault.kind.uses_other() {
        unit_to_pixels(other)
    } else {
        Vec::new()
    };
    let faulted = fault.kind.apply(
        &clean_px,
        &other_px,
        width,
        height,
        &mut SeededRng::new(fault.seed),
    );
    for (o, &p) in out.iter_mut().zip(&faulted) {
        *o = f32::from(p) / 255.0;
    }
}

/// [`apply`] over a batch of images stored back to back (`clean`), one fault per image,
/// into `out` (as long as `clean`). Image `i`'s other frame is image `i + 1` of the batch
/// (wrapping; itself in a batch of one): the CPU step and candle's path both call this,
/// so they corrupt every image identically.
pub fn apply_batch_into(
    clean: &[f32],
    out: &mut [f32],
    size: (usize, usize),
    faults: &[Option<Fault>],
) {
    let pixels = size.0 * size.1;
    if pixels == 0 {
        return;
    }
    let n = clean.len() / pixels;
    for (i, (dst, &fault)) in out.chunks_exact_mut(pixels).zip(faults).enumerate() {
        let o = other_index(i, n);
        apply(
            &clean[i * pixels..(i + 1) * pixels],
            &clean[o * pixels..(o + 1) * pixels],
            dst,
            size,
            fault,
        );
    }
}

/// [`apply_batch_into`] into a new vector (images past `faults` stay clean).
pub fn apply_batch(clean: &[f32], size: (usize, usize), faults: &[Option<Fault>]) -> Vec<f32> {
    let mut out = clean.to_vec();
    apply_batch_into(clean, &mut out, size, faults);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_kinds_draw_nothing() {
        let mut a = SeededRng::new(3);
        let mut b = a.clone();
        assert!(draw(&mut a, 10, &[], 1.0).is_empty());
        assert_eq!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn fraction_zero_corrupts_nothing_and_one_everything() {
        let kinds = Corruption::ALL;
        let none = draw(&mut SeededRng::new(1), 50, &kinds, 0.0);
        assert!(none.iter().all(Option::is_none));
        let all = draw(&mut SeededRng::new(1), 50, &kinds, 1.0);
        assert!(all.iter().all(Option::is_some));
    }

    #[test]
    fn a_fault_changes_the_image_and_none_keeps_it() {
        let size = (8, 8);
        let clean: Vec<f32> = (0..64).map(|i| (i % 7) as f32 / 255.0 * 30.0).collect();
        let mut out = vec![0.0; 64];
        apply(&clean, &clean, &mut out, size, None);
        assert_eq!(out, clean);
        let fault = Fault {
            kind: Corruption::Drift,
            seed: 4,
        };
        apply(&clean, &clean, &mut out, size, Some(fault));
        assert!(out.iter().zip(&clean).all(|(o, c)| o > c));
    }
}
