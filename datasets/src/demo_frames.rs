//! Which images the stand-alone demo carries: the first few test digits as they are,
//! and the next few with a sensor fault each, written in the
//! [`tinyvae_shared::demo_frames`] format for the firmware to compile in
//! (`firmware/app/demo-frames.bin`).
//!
//! The faults are ones a camera-style sensor shows often and that the default model's
//! score flags: a board demonstrating itself should show both verdicts. The file is
//! regenerated and compared byte for byte by this crate's tests, so it cannot drift
//! from this code (`TINYVAE_BLESS=1` rewrites it).

use tinyvae_shared::demo_frames;

use crate::corrupt::{other_index, Corruption};
use crate::dataset::Dataset;
use crate::error::DataError;
use crate::rng::SeededRng;

/// Clean test digits, the first this many of the test split.
pub const CLEAN: usize = 4;
/// The faulted frames, one each, on the test digits after the clean ones.
pub const FAULTS: [Corruption; 4] = [
    Corruption::Noise,
    Corruption::StuckLines,
    Corruption::SaltPepper,
    Corruption::Drift,
];
/// Seed of the faults.
pub const SEED: u64 = 0xDE30;

/// The demo-frames file for `test` (MNIST-sized images with labels).
pub fn build(test: &Dataset) -> Result<Vec<u8>, DataError> {
    let needed = CLEAN + FAULTS.len();
    let invalid = |detail: String| DataError::WrongDims {
        path: test.source.clone().into(),
        detail,
    };
    if test.len() < needed {
        return Err(invalid(format!(
            "the demo needs {needed} test images, the set has {}",
            test.len()
        )));
    }
    let (w, h) = (test.width, test.height);
    let (Ok(w8), Ok(h8)) = (u8::try_from(w), u8::try_from(h)) else {
        return Err(invalid(format!(
            "{w}x{h} images; the demo takes at most 255x255"
        )));
    };
    let name = |i: usize| match &test.labels {
        Some(labels) => test
            .class_names
            .get(labels[i] as usize)
            .cloned()
            .unwrap_or_else(|| labels[i].to_string()),
        None => format!("#{i}"),
    };
    let mut frames = Vec::with_capacity(needed);
    for i in 0..CLEAN {
        frames.push((format!("digit {}", name(i)), test.image_u8(i).to_vec()));
    }
    for (k, fault) in FAULTS.iter().enumerate() {
        let i = CLEAN + k;
        let mut rng = SeededRng::stream(SEED, "demo-frames", i as u64);
        frames.push((
            fault.name().to_string(),
            fault.apply(
                test.image_u8(i),
                test.image_u8(other_index(i, test.len())),
                w,
                h,
                &mut rng,
            ),
        ));
    }
    demo_frames::write(w8, h8, &frames).map_err(invalid)
}
