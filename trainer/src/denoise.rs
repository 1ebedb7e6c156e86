//! Denoising: how well models rebuild the clean image from a faulted one.
//!
//! Every test image is corrupted with each pixel-level sensor fault of
//! [`Corruption::PIXEL_FAULTS`] (seeded; the seven kinds the benchmark numbers were
//! made with, which denoising training also draws from by default), passed through each model (encoder mean, decoder mean: what the device's
//! Denoise request computes in fixed point) and scored against the clean image by PSNR
//! and SSIM, beside the faulted image's own scores. A model trained to denoise
//! (`TrainConfig::denoise`) should gain on every fault that adds or removes content;
//! a plain VAE or AE shows how much a bottleneck removes without being taught to.

use candle_core::Tensor;
use serde::Serialize;
use tinyvae_datasets::corrupt::{other_index, Corruption};
use tinyvae_datasets::metrics::{psnr, ssim};
use tinyvae_datasets::rng::SeededRng;
use tinyvae_datasets::Dataset;

use crate::model::Model;
use crate::pictures;

/// Why a denoising report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DenoiseError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// No models or no test images.
    #[error("nothing to denoise: {0}")]
    Empty(String),
    /// A model's input size is not the images'.
    #[error("model {label:?} takes {model_w}x{model_h} images but the data is {data_w}x{data_h}")]
    Size {
        /// The model's label.
        label: String,
        /// The model's input width.
        model_w: usize,
        /// The model's input height.
        model_h: usize,
        /// The images' width.
        data_w: usize,
        /// The images' height.
        data_h: usize,
    },
}

/// Settings of [`denoise`].
#[derive(Clone, Debug)]
pub struct DenoiseOptions {
    /// Seed of the faults.
    pub seed: u64,
    /// Test images shown per fault kind in the picture.
    pub examples: usize,
}

impl Default for DenoiseOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            examples: 8,
        }
    }
}

/// Mean image quality against the clean images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Quality {
    /// Mean PSNR in dB (peak 1). An image that equals the clean one (say, an occlusion
    /// of background only) counts as [`PSNR_CAP`], not infinity, so one such image
    /// does not make the mean infinite.
    pub psnr: f64,
    /// Mean SSIM (7x7 windows; see `tinyvae_datasets::metrics::ssim`).
    pub ssim: f64,
}

/// The PSNR an exact image counts as: that of a one-count error on every pixel of an
/// 8-bit image, `20 log10(255)`, the best an 8-bit sensor reading can be told apart by.
pub const PSNR_CAP: f64 = 48.130_803_608_679_1;

/// One model's output on one fault kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelQuality {
    /// The model's label.
    pub model: String,
    /// Its output's quality.
    #[serde(flatten)]
    pub quality: Quality,
}

/// One fault kind's row of the table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindReport {
    /// The fault.
    pub kind: Corruption,
    /// The faulted images' quality (what a model has to improve on).
    pub faulted: Quality,
    /// Each model's denoised images, in the order the models were given.
    pub denoised: Vec<ModelQuality>,
}

/// The table of [`denoise`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DenoiseReport {
    /// Test images per fault kind.
    pub images: usize,
    /// Seed of the faults.
    pub seed: u64,
    /// One row per fault kind, in [`Corruption::PIXEL_FAULTS`] order.
    pub kinds: Vec<KindReport>,
}

impl DenoiseReport {
    /// The table as markdown: PSNR then SSIM for the faulted input and each model.
    pub fn markdown(&self) -> String {
        let labels: Vec<&str> = self
            .kinds
            .first()
            .map(|k| k.denoised.iter().map(|m| m.model.as_str()).collect())
            .unwrap_or_default();
        let mut head = String::from("| fault | faulted PSNR");
        let mut rule = String::from("|---|---:");
        for l in &labels {
            head.push_str(&format!(" | {l} PSNR"));
            rule.push_str("|---:");
        }
        head.push_str(" | faulted SSIM");
        rule.push_str("|---:");
        for l in &labels {
            head.push_str(&format!(" | {l} SSIM"));
            rule.push_str("|---:");
        }
        let mut out = format!("{head} |\n{rule}|\n");
        for k in &self.kinds {
            let mut line = format!("| {} | {:.2}", k.kind.name(), k.faulted.psnr);
            for m in &k.denoised {
                line.push_str(&format!(" | {:.2}", m.quality.psnr));
            }
            line.push_str(&format!(" | {:.3}", k.faulted.ssim));
            for m in &k.denoised {
                line.push_str(&format!(" | {:.3}", m.quality.ssim));
            }
            out.push_str(&line);
            out.push_str(" |\n");
        }
        out
    }
}

/// The table and the picture's tiles.
#[derive(Clone, Debug)]
pub struct Denoised {
    /// Mean PSNR and SSIM per fault kind.
    pub report: DenoiseReport,
    /// Per fault kind: a row of faulted images, one row per model's output, a row of
    /// the clean images; each image `width x height` in `[0, 1]`.
    pub tiles: Vec<Vec<f32>>,
    /// Images per row of `tiles`.
    pub columns: usize,
}

/// Mean quality of `images` against `clean` (both `width x height` each).
fn quality(images: &[Vec<f32>], clean: &[Vec<f32>], (w, h): (usize, usize)) -> Quality {
    let (mut p, mut s, mut n) = (0.0, 0.0, 0usize);
    for (image, reference) in images.iter().zip(clean) {
        if let (Some(pv), Some(sv)) = (psnr(image, reference), ssim(image, reference, w, h)) {
            p += pv.min(PSNR_CAP);
            s += sv;
            n += 1;
        }
    }
    let n = n.max(1) as f64;
    Quality {
        psnr: p / n,
        ssim: s / n,
    }
}

/// Decoder means at the encoder means of `images`, in batches of 1024.
fn reconstruct_all(model: &Model, images: &[Vec<f32>]) -> candle_core::Result<Vec<Vec<f32>>> {
    let d = model.config.input_dim();
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(1024) {
        let flat: Vec<f32> = chunk.iter().flatten().copied().collect();
        let x = Tensor::from_vec(flat, (chunk.len(), d), model.device())?;
        out.extend(pictures::reconstruct(model, &x)?);
    }
    Ok(out)
}

/// Corrupts every image of `test` with each fault kind (image `i` of kind `k` seeded by
/// `(seed, "denoise-<k>", i)`), denoises it with each of `models` (label, model) and
/// scores faulted and denoised images against the clean ones.
pub fn denoise(
    models: &[(String, &Model)],
    test: &Dataset,
    opts: &DenoiseOptions,
) -> Result<Denoised, DenoiseError> {
    if models.is_empty() {
        return Err(DenoiseError::Empty("no models".into()));
    }
    if test.is_empty() {
        return Err(DenoiseError::Empty("no test images".into()));
    }
    let size = (test.width, test.height);
    for (label, m) in models {
        if (m.config.width, m.config.height) != size {
            return Err(DenoiseError::Size {
                label: label.clone(),
                model_w: m.config.width,
                model_h: m.config.height,
                data_w: size.0,
                data_h: size.1,
            });
        }
    }
    let clean: Vec<Vec<f32>> = (0..test.len()).map(|i| test.image_f32(i)).collect();
    let columns = opts.examples.clamp(1, test.len());
    let mut kinds = Vec::new();
    let mut tiles = Vec::new();
    for kind in Corruption::PIXEL_FAULTS {
        let purpose = format!("denoise-{}", kind.name());
        let faulted: Vec<Vec<f32>> = (0..test.len())
            .map(|i| {
                let mut rng = SeededRng::stream(opts.seed, &purpose, i as u64);
                let other = test.image_u8(other_index(i, test.len()));
                kind.apply(test.image_u8(i), other, size.0, size.1, &mut rng)
                    .into_iter()
                    .map(|p| f32::from(p) / 255.0)
                    .collect()
            })
            .collect();
        tiles.extend(faulted[..columns].iter().cloned());
        let mut denoised = Vec::with_capacity(models.len());
        for (label, model) in models {
            let out = reconstruct_all(model, &faulted)?;
            denoised.push(ModelQuality {
                model: label.clone(),
                quality: quality(&out, &clean, size),
            });
            tiles.extend(out.into_iter().take(columns));
        }
        tiles.extend(clean[..columns].iter().cloned());
        kinds.push(KindReport {
            kind,
            faulted: quality(&faulted, &clean, size),
            denoised,
        });
    }
    Ok(Denoised {
        report: DenoiseReport {
            images: test.len(),
            seed: opts.seed,
            kinds,
        },
        tiles,
        columns,
    })
}
