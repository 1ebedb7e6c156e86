//! What quantization costs: the float model against the device's fixed-point run on the
//! same images.
//!
//! * anomaly AUROC (normal test images against anomalous ones), float and fixed;
//! * mean reconstruction term and KL, float and fixed;
//! * per layer, the largest difference between the float network's activations and the
//!   device's (dequantized), each network run end to end in its own arithmetic;
//! * how many verdicts flip: the float model with its own threshold at the same
//!   false-positive rate against the device's verdicts.

use serde::Serialize;
use tinyvae_shared::dense::LayerOutput;
use tinyvae_shared::fixed::{q16_to_f64, Q16};
use tinyvae_shared::model::Model;
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::quantize::ActQuant;

use crate::quantize::{forward_stack, to_unit, Calibration, FloatVae};
use tinyvae_datasets::metrics::auroc;

/// One layer's largest float-versus-device difference.
#[derive(Debug, Clone, Serialize)]
pub struct LayerError {
    /// `encoder.0`, `decoder.1`, ...
    pub layer: String,
    /// `in -> out`.
    pub shape: String,
    /// Largest absolute difference, in the layer's real units.
    pub max_abs_error: f64,
    /// The same, in output quantization steps (Q16 layers: in units of 2^-16).
    pub max_error_steps: f64,
}

/// The quantization report.
#[derive(Debug, Clone, Serialize)]
pub struct QuantReport {
    /// Normal images scored.
    pub normal_images: usize,
    /// Anomalous images scored.
    pub anomalous_images: usize,
    /// AUROC of the float scores.
    pub auroc_float: f64,
    /// AUROC of the device's scores.
    pub auroc_fixed: f64,
    /// `auroc_float - auroc_fixed`.
    pub auroc_drop: f64,
    /// Mean reconstruction term, float.
    pub reconstruction_float: f64,
    /// Mean reconstruction term, device.
    pub reconstruction_fixed: f64,
    /// Mean KL, float.
    pub kl_float: f64,
    /// Mean KL, device.
    pub kl_fixed: f64,
    /// Largest |float score - device score| over all images, nats.
    pub max_score_error: f64,
    /// The device threshold (nats).
    pub threshold_fixed: f64,
    /// The float threshold at the same false-positive rate (nats).
    pub threshold_float: f64,
    /// Verdicts that differ between float and device.
    pub decisions_flipped: usize,
    /// Fraction of verdicts that agree.
    pub decision_agreement: f64,
    /// Per-layer errors.
    pub layers: Vec<LayerError>,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// Measures the report on `normal` and `anomalous` images; `threshold_float` is the
/// float model's threshold at the device's false-positive rate.
pub fn measure(
    vae: &FloatVae,
    model: &Model<'_>,
    calibration: &Calibration,
    normal: &[Vec<u8>],
    anomalous: &[Vec<u8>],
    threshold_float: f64,
) -> QuantReport {
    let images: Vec<&Vec<u8>> = normal.iter().chain(anomalous).collect();
    let truth: Vec<bool> = (0..images.len()).map(|i| i >= normal.len()).collect();
    let mut ws = Workspace::new();
    let mut float_scores = Vec::with_capacity(images.len());
    let mut fixed_scores = Vec::with_capacity(images.len());
    let mut flips = 0;
    for image in &images {
        let f = vae.score(&to_unit(image));
        let device = pipeline::score_image(model, &mut ws, image, model.threshold)
            .map(|s| s.score)
            .unwrap_or_default();
        if (f.total() > threshold_float) != device.anomalous {
            flips += 1;
        }
        float_scores.push(f);
        fixed_scores.push(device);
    }
    let totals: Vec<f64> = float_scores.iter().map(|s| s.total()).collect();
    let fixed: Vec<f64> = fixed_scores.iter().map(|s| q16_to_f64(s.score)).collect();
    let auroc_float = auroc(&totals, &truth).unwrap_or(f64::NAN);
    let auroc_fixed = auroc(&fixed, &truth).unwrap_or(f64::NAN);
    let max_score_error = totals
        .iter()
        .zip(&fixed)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    QuantReport {
        normal_images: normal.len(),
        anomalous_images: anomalous.len(),
        auroc_float,
        auroc_fixed,
        auroc_drop: auroc_float - auroc_fixed,
        reconstruction_float: mean(float_scores.iter().map(|s| s.reconstruction)),
        reconstruction_fixed: mean(fixed_scores.iter().map(|s| q16_to_f64(s.reconstruction))),
        kl_float: mean(float_scores.iter().map(|s| s.kl)),
        kl_fixed: mean(fixed_scores.iter().map(|s| q16_to_f64(s.kl))),
        max_score_error,
        threshold_fixed: q16_to_f64(model.threshold),
        threshold_float,
        decisions_flipped: flips,
        decision_agreement: 1.0 - flips as f64 / images.len().max(1) as f64,
        layers: layer_errors(vae, model, calibration, &images),
    }
}

/// Tracks the largest difference of one layer.
struct Tracker {
    max_abs: f64,
    step: f64,
}

impl Tracker {
    fn add(&mut self, float: &[f64], device: impl Iterator<Item = f64>) {
        for (f, d) in float.iter().zip(device) {
            self.max_abs = self.max_abs.max((f - d).abs());
        }
    }
}

/// Runs both networks layer by layer, the float one on float activations and the
/// device one on its own int8 activations, and records each layer's largest gap.
fn layer_errors(
    vae: &FloatVae,
    model: &Model<'_>,
    calibration: &Calibration,
    images: &[&Vec<u8>],
) -> Vec<LayerError> {
    let q16_step = q16_to_f64(1);
    let steps = |quants: &[ActQuant], i: usize| quants.get(i).map_or(q16_step, |q| q.scale);
    let mut enc: Vec<Tracker> = (0..model.encoder.len())
        .map(|i| Tracker {
            max_abs: 0.0,
            step: steps(&calibration.encoder, i),
        })
        .collect();
    let mut dec: Vec<Tracker> = (0..model.decoder.len())
        .map(|i| Tracker {
            max_abs: 0.0,
            step: steps(&calibration.decoder, i),
        })
        .collect();
    let mut widened = vec![0i32; tinyvae_shared::model::MAX_WIDTH];
    for image in images {
        let float_enc = forward_stack(&vae.encoder, &to_unit(image));
        let mut act: Vec<i8> = image.iter().map(|&p| (p as i32 - 128) as i8).collect();
        let mut head: Vec<Q16> = Vec::new();
        for (i, layer) in model.encoder.iter().enumerate() {
            match layer.output {
                LayerOutput::Int8 { .. } => {
                    let mut out = vec![0i8; layer.out_dim];
                    layer.forward_i8(&act, &mut widened, &mut out);
                    let q = calibration.encoder[i];
                    enc[i].add(&float_enc[i], out.iter().map(|&v| q.dequantize(v)));
                    act = out;
                }
                LayerOutput::Q16 => {
                    head = vec![0; layer.out_dim];
                    layer.forward_q16(&act, &mut widened, &mut head);
                    enc[i].add(&float_enc[i], head.iter().map(|&v| q16_to_f64(v)));
                }
            }
        }
        let mu_float: Vec<f64> = float_enc
            .last()
            .map_or(Vec::new(), |h| h[..vae.latent].to_vec());
        let float_dec = forward_stack(&vae.decoder, &mu_float);
        let mu = &head[..vae.latent.min(head.len())];
        // The decoder's input as the device quantizes it, then layer by layer.
        let mut act = vec![0i8; mu.len()];
        pipeline::quantize_latent(model, mu, &mut act);
        for (i, layer) in model.decoder.iter().enumerate() {
            let mut out = vec![0i8; layer.out_dim];
            layer.forward_i8(&act, &mut widened, &mut out);
            let q = calibration.decoder[i];
            dec[i].add(&float_dec[i], out.iter().map(|&v| q.dequantize(v)));
            act = out;
        }
    }
    let describe = |net: &str, layers: &[tinyvae_shared::dense::DenseLayer<'_>], t: &[Tracker]| {
        layers
            .iter()
            .zip(t)
            .enumerate()
            .map(|(i, (l, t))| LayerError {
                layer: format!("{net}.{i}"),
                shape: format!("{} -> {}", l.in_dim, l.out_dim),
                max_abs_error: t.max_abs,
                max_error_steps: t.max_abs / t.step,
            })
            .collect::<Vec<_>>()
    };
    let mut out = describe("encoder", &model.encoder, &enc);
    out.extend(describe("decoder", &model.decoder, &dec));
    out
}
