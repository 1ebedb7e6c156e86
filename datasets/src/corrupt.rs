//! Simulated sensor faults, used to check that the anomaly score flags broken
//! inputs and not only unfamiliar classes. Every corruption is seeded.

use serde::Serialize;

use crate::dataset::Dataset;
use crate::rng::SeededRng;

/// A kind of sensor fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Corruption {
    /// Additive Gaussian noise, sigma = 0.25 of full scale.
    Noise,
    /// 15% of pixels read 0 (dead).
    DeadPixels,
    /// 3% of pixels read 255 (stuck hot).
    StuckPixels,
    /// A 9x9 patch near the centre covered (reads 0): part of the stroke vanishes.
    Occlusion,
    /// Offset drift: every pixel reads 64 counts (25%) too high.
    Drift,
    /// One row and one column stuck at full scale (a readout line fault).
    StuckLines,
    /// Salt-and-pepper: 5% of pixels flip to 0 or 255.
    SaltPepper,
}

impl Corruption {
    /// Every corruption, in report order.
    pub const ALL: [Corruption; 7] = [
        Corruption::Noise,
        Corruption::DeadPixels,
        Corruption::StuckPixels,
        Corruption::Occlusion,
        Corruption::Drift,
        Corruption::StuckLines,
        Corruption::SaltPepper,
    ];

    /// Short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Corruption::Noise => "noise",
            Corruption::DeadPixels => "dead-pixels",
            Corruption::StuckPixels => "stuck-pixels",
            Corruption::Occlusion => "occlusion",
            Corruption::Drift => "drift",
            Corruption::StuckLines => "stuck-lines",
            Corruption::SaltPepper => "salt-pepper",
        }
    }

    /// The corruption called `name` (as [`Corruption::name`] spells it).
    pub fn from_name(name: &str) -> Option<Corruption> {
        Corruption::ALL.into_iter().find(|c| c.name() == name)
    }

    /// A comma-separated list of names, or `all` for [`Corruption::ALL`], without
    /// repeats and in the order given: what `--denoise` and similar flags take.
    pub fn parse_list(list: &str) -> Result<Vec<Corruption>, UnknownCorruption> {
        if list.trim() == "all" {
            return Ok(Corruption::ALL.to_vec());
        }
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim) {
            let kind = Corruption::from_name(name).ok_or_else(|| UnknownCorruption {
                name: name.to_string(),
            })?;
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
        Ok(out)
    }

    /// A corrupted copy of `img` (`w` x `h` bytes).
    pub fn apply(self, img: &[u8], w: usize, h: usize, rng: &mut SeededRng) -> Vec<u8> {
        let mut out = img.to_vec();
        match self {
            Corruption::Noise => {
                for p in &mut out {
                    let v = f64::from(*p) + 0.25 * 255.0 * rng.normal();
                    *p = v.round().clamp(0.0, 255.0) as u8;
                }
            }
            Corruption::DeadPixels => {
                for p in &mut out {
                    if rng.uniform() < 0.15 {
                        *p = 0;
                    }
                }
            }
            Corruption::StuckPixels => {
                for p in &mut out {
                    if rng.uniform() < 0.03 {
                        *p = 255;
                    }
                }
            }
            Corruption::Occlusion => {
                let s = 9.min(w).min(h);
                let x0 = w / 4 + rng.below((w / 2).saturating_sub(s).max(1));
                let y0 = h / 4 + rng.below((h / 2).saturating_sub(s).max(1));
                for y in y0..(y0 + s).min(h) {
                    for x in x0..(x0 + s).min(w) {
                        out[y * w + x] = 0;
                    }
                }
            }
            Corruption::Drift => {
                for p in &mut out {
                    *p = p.saturating_add(64);
                }
            }
            Corruption::StuckLines => {
                let r = rng.below(h);
                let c = rng.below(w);
                for x in 0..w {
                    out[r * w + x] = 255;
                }
                for y in 0..h {
                    out[y * w + c] = 255;
                }
            }
            Corruption::SaltPepper => {
                for p in &mut out {
                    let u = rng.uniform();
                    if u < 0.025 {
                        *p = 0;
                    } else if u < 0.05 {
                        *p = 255;
                    }
                }
            }
        }
        out
    }
}

/// A name that is no [`Corruption`] (its message lists the valid ones).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown fault kind {name:?}: expected a comma-separated list of {} or all",
    valid_names()
)]
pub struct UnknownCorruption {
    /// The name given.
    pub name: String,
}

/// Every [`Corruption::name`], comma separated.
pub fn valid_names() -> String {
    Corruption::ALL.map(Corruption::name).join(", ")
}

/// A corrupted copy of every image of `ds`, cycling through [`Corruption::ALL`]
/// (image `i` gets corruption `i mod 7`), each seeded by `(seed, i)`.
pub fn corrupt_dataset(ds: &Dataset, seed: u64) -> (Dataset, Vec<Corruption>) {
    let mut out = ds.clone();
    let mut kinds = Vec::with_capacity(ds.len());
    let d = ds.image_len();
    for i in 0..ds.len() {
        let kind = Corruption::ALL[i % Corruption::ALL.len()];
        let mut rng = SeededRng::stream(seed, "corrupt", i as u64);
        let img = kind.apply(ds.image_u8(i), ds.width, ds.height, &mut rng);
        out.pixels[i * d..(i + 1) * d].copy_from_slice(&img);
        kinds.push(kind);
    }
    out.source = format!("{} (corrupted)", ds.source);
    (out, kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_corruption_changes_a_digit_like_image() {
        let (w, h) = (28, 28);
        let mut img = vec![0u8; w * h];
        for y in 6..22 {
            for x in 10..18 {
                img[y * w + x] = 200;
            }
        }
        for c in Corruption::ALL {
            let out = c.apply(&img, w, h, &mut SeededRng::new(1));
            assert_eq!(out.len(), img.len());
            assert_ne!(out, img, "{}", c.name());
        }
    }

    #[test]
    fn names_parse_back() {
        for c in Corruption::ALL {
            assert_eq!(Corruption::from_name(c.name()), Some(c));
        }
        assert_eq!(Corruption::parse_list("all"), Ok(Corruption::ALL.to_vec()));
        assert_eq!(
            Corruption::parse_list("drift, noise,drift"),
            Ok(vec![Corruption::Drift, Corruption::Noise])
        );
        let err = Corruption::parse_list("noise,fog").unwrap_err();
        assert_eq!(err.name, "fog");
        assert!(err.to_string().contains("salt-pepper"), "{err}");
    }
}
