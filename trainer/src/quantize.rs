//! Post-training quantization of a trained VAE into the device's model image.
//!
//! 1. Calibration: the float network runs on training images (and, for the decoder, on
//!    prior samples too, since the device decodes both posterior means and random
//!    latents); each layer's output range fixes its int8 scale and zero point.
//! 2. Quantization: [`tinyvae_shared::quantize`] turns weights, biases and ranges into
//!    int8 weights, i32 biases and fixed-point multipliers.
//! 3. Threshold: the fixed-point scores of held-out normal images, computed by the very
//!    code the device runs, set the anomaly threshold at the requested false-positive
//!    rate.
//!
//! The float reference here ([`FloatVae`]) is plain `f64` arithmetic over the exported
//! layers, so the quantization report compares the device's arithmetic with exactly the
//! weights it was given.

use tinyvae_shared::fixed::{q16_from_f64, q16_to_f64, Q16};
use tinyvae_shared::model::{Likelihood as DeviceLikelihood, Model, ModelError, ModelSpec};
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::quantize::{latent_quant, quantize_layer, ActQuant, FloatLayer, OutputQuant};

use crate::model::{Likelihood, ModelConfig, ModelKind};
use tinyvae_datasets::rng::SeededRng;

/// Logits beyond this magnitude are clipped. A pixel needs no more than 12
/// (sigmoid(-12) is 6e-6, below a pixel step), but the score does: a pixel the model
/// draws confidently wrong costs its whole logit in nats, and a clip at 12 undercharged
/// it. The default model, trained to denoise, draws sharper: at 12 one clean test digit
/// in 1,002 scored 9.2% below its float score and 9 verdicts of 2,004 flipped; at 20,
/// 0.8% at most and 1 flipped (`trainer/tests/export.rs`), the coarser logit step
/// costing nothing measurable. The device's tables allow up to 64.
const LOGIT_CLIP: f64 = 20.0;
/// The decoder must take prior samples out to this many standard deviations.
const PRIOR_SPAN: f64 = 4.0;

/// Errors from quantizing a model.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// Only VAEs have an encoder head with mu and logvar.
    #[error("export needs a VAE checkpoint; this one is a plain autoencoder")]
    NotAVae,
    /// The layers or sizes do not fit the device.
    #[error("the model does not fit the device format: {0}")]
    Model(#[from] ModelError),
    /// No images were given for calibration or the threshold.
    #[error("{0} needs at least one image")]
    NoImages(&'static str),
}

/// The float VAE as plain layers (`f64` arithmetic).
pub struct FloatVae {
    /// Encoder layers; the head outputs mu then logvar.
    pub encoder: Vec<FloatLayer>,
    /// Decoder layers; the last outputs logits.
    pub decoder: Vec<FloatLayer>,
    /// Latent size.
    pub latent: usize,
    /// Reconstruction likelihood.
    pub likelihood: Likelihood,
}

fn forward(layer: &FloatLayer, x: &[f64]) -> Vec<f64> {
    (0..layer.out_dim)
        .map(|j| {
            let row = &layer.weight[j * layer.in_dim..(j + 1) * layer.in_dim];
            let y =
                layer.bias[j] as f64 + row.iter().zip(x).map(|(&w, &v)| w as f64 * v).sum::<f64>();
            if layer.relu {
                y.max(0.0)
            } else {
                y
            }
        })
        .collect()
}

/// Runs `layers` on `x`, returning every layer's output.
pub fn forward_stack(layers: &[FloatLayer], x: &[f64]) -> Vec<Vec<f64>> {
    let mut outputs: Vec<Vec<f64>> = Vec::with_capacity(layers.len());
    for layer in layers {
        let input = outputs.last().map_or(x, |v| v.as_slice());
        let y = forward(layer, input);
        outputs.push(y);
    }
    outputs
}

/// `ln(1 + e^l)`, stable for any `l`.
fn softplus(l: f64) -> f64 {
    l.max(0.0) + (-l.abs()).exp().ln_1p()
}

/// An image's float score: the negative ELBO at z = mu, in nats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloatScore {
    /// Reconstruction term.
    pub reconstruction: f64,
    /// KL term.
    pub kl: f64,
}

impl FloatScore {
    /// reconstruction + KL.
    pub fn total(&self) -> f64 {
        self.reconstruction + self.kl
    }
}

impl FloatVae {
    /// The float layers of a trained model.
    pub fn new(
        config: &ModelConfig,
        encoder: Vec<FloatLayer>,
        decoder: Vec<FloatLayer>,
    ) -> Result<Self, QuantizeError> {
        if config.kind != ModelKind::Vae {
            return Err(QuantizeError::NotAVae);
        }
        Ok(Self {
            encoder,
            decoder,
            latent: config.latent,
            likelihood: config.likelihood,
        })
    }

    /// `(mu, logvar)` for pixels in [0, 1].
    pub fn encode(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let head = forward_stack(&self.encoder, x).pop().unwrap_or_default();
        let (mu, logvar) = head.split_at(self.latent.min(head.len()));
        (mu.to_vec(), logvar.to_vec())
    }

    /// The decoder's logits for `z`.
    pub fn decode_logits(&self, z: &[f64]) -> Vec<f64> {
        forward_stack(&self.decoder, z).pop().unwrap_or_default()
    }

    /// The negative ELBO at z = mu, as the device defines it.
    pub fn score(&self, x: &[f64]) -> FloatScore {
        let (mu, logvar) = self.encode(x);
        let logits = self.decode_logits(&mu);
        let reconstruction = match self.likelihood {
            Likelihood::Bernoulli => x
                .iter()
                .zip(&logits)
                .map(|(&p, &l)| softplus(l) - p * l)
                .sum(),
            Likelihood::Gaussian => x
                .iter()
                .zip(&logits)
                .map(|(&p, &l)| {
                    let mean = 1.0 / (1.0 + (-l).exp());
                    (p - mean) * (p - mean)
                })
                .sum(),
        };
        let kl = 0.5
            * mu.iter()
                .zip(&logvar)
                .map(|(&m, &lv)| lv.exp() + m * m - 1.0 - lv)
                .sum::<f64>();
        FloatScore { reconstruction, kl }
    }
}

/// Pixels as the float network sees them.
pub fn to_unit(pixels: &[u8]) -> Vec<f64> {
    pixels.iter().map(|&p| p as f64 / 255.0).collect()
}

/// Running minimum and maximum of one layer's outputs.
#[derive(Debug, Clone, Copy)]
struct Range {
    min: f64,
    max: f64,
}

impl Range {
    const EMPTY: Range = Range {
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    fn add(&mut self, values: &[f64]) {
        for &v in values {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
    }

    fn quant(&self) -> ActQuant {
        if self.min > self.max {
            return ActQuant::from_range(0.0, 1.0);
        }
        ActQuant::from_range(self.min, self.max)
    }
}

/// The activation quantizations found by calibration.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// Output quantization of each hidden encoder layer.
    pub encoder: Vec<ActQuant>,
    /// Quantization of the decoder's input z.
    pub latent: ActQuant,
    /// Output quantization of each decoder layer (the last: the logits).
    pub decoder: Vec<ActQuant>,
}

/// Measures every layer's range on `images` and on `prior_samples` standard-normal
/// latents drawn from `seed`.
pub fn calibrate(
    vae: &FloatVae,
    images: &[Vec<u8>],
    prior_samples: usize,
    seed: u64,
) -> Result<Calibration, QuantizeError> {
    if images.is_empty() {
        return Err(QuantizeError::NoImages("calibration"));
    }
    let mut encoder = vec![Range::EMPTY; vae.encoder.len().saturating_sub(1)];
    let mut decoder = vec![Range::EMPTY; vae.decoder.len()];
    let mut latent = Range {
        min: -PRIOR_SPAN,
        max: PRIOR_SPAN,
    };
    let mut latents = Vec::with_capacity(images.len() + prior_samples);
    for image in images {
        let outputs = forward_stack(&vae.encoder, &to_unit(image));
        for (range, out) in encoder.iter_mut().zip(&outputs) {
            range.add(out);
        }
        let (mu, _) = vae.encode(&to_unit(image));
        latent.add(&mu);
        latents.push(mu);
    }
    let mut rng = SeededRng::new(seed);
    for _ in 0..prior_samples {
        latents.push((0..vae.latent).map(|_| rng.normal()).collect());
    }
    for z in &latents {
        for (range, out) in decoder.iter_mut().zip(forward_stack(&vae.decoder, z)) {
            range.add(&out);
        }
    }
    if let Some(logits) = decoder.last_mut() {
        logits.min = logits.min.max(-LOGIT_CLIP);
        logits.max = logits.max.min(LOGIT_CLIP);
    }
    Ok(Calibration {
        encoder: encoder.iter().map(Range::quant).collect(),
        latent: latent.quant(),
        decoder: decoder.iter().map(Range::quant).collect(),
    })
}

/// Quantizes `vae` with `calibration` into a model image spec; the threshold is left
/// at `threshold` (see [`calibrate_threshold`]).
pub fn quantize(
    vae: &FloatVae,
    calibration: &Calibration,
    config: &ModelConfig,
    name: &str,
    threshold: Q16,
) -> ModelSpec {
    let mut input = ActQuant::pixels();
    let mut encoder = Vec::new();
    for (i, layer) in vae.encoder.iter().enumerate() {
        let output = match calibration.encoder.get(i) {
            Some(&quant) => OutputQuant::Int8 {
                quant,
                relu: layer.relu,
            },
            None => OutputQuant::Q16,
        };
        encoder.push(quantize_layer(layer, input, output));
        if let OutputQuant::Int8 { quant, .. } = output {
            input = quant;
        }
    }
    let mut input = calibration.latent;
    let mut decoder = Vec::new();
    for (layer, &quant) in vae.decoder.iter().zip(&calibration.decoder) {
        let output = OutputQuant::Int8 {
            quant,
            relu: layer.relu,
        };
        decoder.push(quantize_layer(layer, input, output));
        input = quant;
    }
    let logits = calibration
        .decoder
        .last()
        .copied()
        .unwrap_or_else(|| ActQuant::from_range(-LOGIT_CLIP, LOGIT_CLIP));
    ModelSpec {
        name: name.to_string(),
        likelihood: match vae.likelihood {
            Likelihood::Bernoulli => DeviceLikelihood::Bernoulli,
            Likelihood::Gaussian => DeviceLikelihood::Gaussian,
        },
        input_width: config.width,
        input_height: config.height,
        latent: vae.latent,
        threshold,
        z_quant: latent_quant(calibration.latent),
        encoder,
        decoder,
        logit_scale: logits.scale,
        logit_zero_point: logits.zero_point,
        detector: None,
        seen: None,
        head: None,
    }
}

/// Which largest of `n` clean scores the threshold at false-positive rate `fpr` is
/// (1: the largest). A new clean frame scores above the `j`-th largest of `n` with
/// probability `j / (n + 1)` on average (the frames' scores are exchangeable), so the
/// `floor(fpr * (n + 1))`-th largest (at least the largest) keeps the rate on frames the
/// threshold was not set on at `fpr` or below, on average. The rule before it (at most
/// `fpr` of the fitting frames above the threshold) took the 11th largest of 1,002,
/// which gives 1.1% on average; 1.16% was measured over five splits of the default
/// model's frames (`tinyvae detect --splits 5`, BENCHMARKS.md "How much the split
/// moves the numbers"), and on 100 frames it gives 2%.
pub fn threshold_rank(n: usize, fpr: f64) -> usize {
    // (The small addition keeps a product such as 0.01 * 100 from flooring to 0.)
    let rank = (fpr.clamp(0.0, 1.0) * (n + 1) as f64 + 1e-9).floor() as usize;
    rank.clamp(1, n.max(1))
}

/// The threshold at false-positive rate `fpr` on clean `scores`: their
/// [`threshold_rank`]-th largest (a frame is flagged above it).
pub fn threshold_at_fpr(scores: &[Q16], fpr: f64) -> Option<Q16> {
    if scores.is_empty() {
        return None;
    }
    let mut sorted = scores.to_vec();
    sorted.sort_unstable();
    Some(sorted[sorted.len() - threshold_rank(sorted.len(), fpr)])
}

/// Scores `normal` with the device's fixed-point code and returns the threshold at
/// false-positive rate `fpr` on them ([`threshold_at_fpr`]).
pub fn calibrate_threshold(
    model: &Model<'_>,
    normal: &[Vec<u8>],
    fpr: f64,
) -> Result<Q16, QuantizeError> {
    let scores = fixed_scores(model, normal);
    threshold_at_fpr(&scores, fpr).ok_or(QuantizeError::NoImages("threshold calibration"))
}

/// The device's scores for `images` (`i32::MAX` for an image of the wrong size).
pub fn fixed_scores(model: &Model<'_>, images: &[Vec<u8>]) -> Vec<Q16> {
    let mut ws = Workspace::new();
    images
        .iter()
        .map(|image| {
            pipeline::score_image(model, &mut ws, image, model.threshold)
                .map_or(i32::MAX, |s| s.score.score)
        })
        .collect()
}

/// Float threshold at the same false-positive rate, for comparing decisions.
pub fn float_threshold(scores: &[f64], fpr: f64) -> Option<f64> {
    let fixed: Vec<Q16> = scores.iter().map(|&s| q16_from_f64(s)).collect();
    threshold_at_fpr(&fixed, fpr).map(q16_to_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_the_rank_that_keeps_new_frames_at_the_rate() {
        let scores: Vec<Q16> = (1..=200).collect();
        // 0.01 * 201: the 2nd largest, one fitting frame above it.
        let t = threshold_at_fpr(&scores, 0.01).expect("scores");
        assert_eq!(t, 199);
        assert_eq!(threshold_rank(1002, 0.01), 10);
        assert_eq!(threshold_rank(100, 0.01), 1);
        assert_eq!(threshold_rank(99, 0.01), 1);
        assert_eq!(threshold_rank(499, 0.01), 5);
        assert_eq!(threshold_rank(3, 0.5), 2);
        assert_eq!(threshold_at_fpr(&[], 0.01), None);
        assert_eq!(threshold_at_fpr(&[5], 0.0), Some(5));
        assert_eq!(threshold_at_fpr(&[5, 7], 1.0), Some(5));
    }

    #[test]
    fn new_clean_frames_are_flagged_at_the_rate_on_average() {
        // 400 fits on 200 clean scores each, every one judged on 2,000 new ones from
        // the same distribution: the mean false-positive rate is 2/201 = 0.995% in
        // expectation (0.035% standard error). Taking the 3rd largest, as "at most 1%
        // of the fitting frames above it" does, gives 1.49%.
        let mut rng = SeededRng::stream(7, "threshold-rank-test", 0);
        let mut draw = |k: usize| -> Vec<Q16> {
            (0..k)
                .map(|_| (rng.uniform() * f64::from(1 << 24)) as Q16)
                .collect()
        };
        let trials = 400;
        let mut rate = 0.0;
        for _ in 0..trials {
            let t = threshold_at_fpr(&draw(200), 0.01).expect("scores");
            let new = draw(2000);
            rate += new.iter().filter(|&&s| s > t).count() as f64 / new.len() as f64;
        }
        rate /= f64::from(trials);
        assert!((0.0085..0.0115).contains(&rate), "{rate}");
    }
}
