//! Seeded synthetic models for tests, examples and benchmarks (host only).
//!
//! A synthetic model is a random float MLP quantized with the exporter's own arithmetic
//! ([`crate::quantize`]), so it exercises every field of the model image the way a
//! trained model does, without needing a trained checkpoint.

use std::vec::Vec;

use crate::model::{LayerSpec, Likelihood, ModelSpec};
use crate::quantize::{latent_quant, quantize_layer, ActQuant, FloatLayer, OutputQuant};
use crate::rng::Rng;

/// Shape of a synthetic model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticShape {
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Hidden width of the encoder and of the decoder (one hidden layer each).
    pub hidden: usize,
    /// Latent size.
    pub latent: usize,
}

impl Default for SyntheticShape {
    /// The default model's shape: 28x28, 64 hidden, 16 latent.
    fn default() -> Self {
        Self {
            width: 28,
            height: 28,
            hidden: 64,
            latent: 16,
        }
    }
}

/// A uniform value in `[-limit, limit)`.
pub fn uniform(rng: &mut Rng, limit: f32) -> f32 {
    let unit = rng.next_u32() as f64 / 4_294_967_296.0;
    ((2.0 * unit - 1.0) * limit as f64) as f32
}

/// A float layer with PyTorch's default init (uniform +-1/sqrt(fan_in)).
/// (`relu` is off: the quantizer takes the clamp from its `OutputQuant`.)
pub fn random_layer(rng: &mut Rng, in_dim: usize, out_dim: usize) -> FloatLayer {
    let limit = 1.0 / (in_dim as f32).sqrt();
    FloatLayer {
        in_dim,
        out_dim,
        weight: (0..in_dim * out_dim).map(|_| uniform(rng, limit)).collect(),
        bias: (0..out_dim).map(|_| uniform(rng, limit)).collect(),
        relu: false,
    }
}

/// A random fault head ([`crate::fault_head`]) with `c1` and `c2` channels, 8 hidden
/// units and 5 classes, drawn from `seed`, its activation ranges wide enough that its
/// maps are neither all zero nor all saturated.
pub fn synthetic_head(seed: u64, c1: usize, c2: usize) -> [LayerSpec; 4] {
    let mut rng = Rng::new(seed);
    let q1 = ActQuant::from_range(0.0, 1.5);
    let q2 = ActQuant::from_range(0.0, 1.0);
    let q3 = ActQuant::from_range(0.0, 1.0);
    let relu = |quant| OutputQuant::Int8 { quant, relu: true };
    [
        quantize_layer(&random_layer(&mut rng, 9, c1), ActQuant::pixels(), relu(q1)),
        quantize_layer(&random_layer(&mut rng, 9 * c1, c2), q1, relu(q2)),
        quantize_layer(&random_layer(&mut rng, 49 * c2, 8), q2, relu(q3)),
        quantize_layer(&random_layer(&mut rng, 8, 5), q3, OutputQuant::Q16),
    ]
}

/// A valid model image spec with random weights, drawn from `seed`.
pub fn synthetic_model(seed: u64, shape: SyntheticShape) -> ModelSpec {
    let mut rng = Rng::new(seed);
    let pixels = shape.width * shape.height;
    let hidden = ActQuant::from_range(0.0, 2.0);
    let z = ActQuant::from_range(-4.0, 4.0);
    let logits = ActQuant::from_range(-8.0, 8.0);
    let encoder: Vec<_> = vec![
        quantize_layer(
            &random_layer(&mut rng, pixels, shape.hidden),
            ActQuant::pixels(),
            OutputQuant::Int8 {
                quant: hidden,
                relu: true,
            },
        ),
        quantize_layer(
            &random_layer(&mut rng, shape.hidden, 2 * shape.latent),
            hidden,
            OutputQuant::Q16,
        ),
    ];
    let decoder = vec![
        quantize_layer(
            &random_layer(&mut rng, shape.latent, shape.hidden),
            z,
            OutputQuant::Int8 {
                quant: hidden,
                relu: true,
            },
        ),
        quantize_layer(
            &random_layer(&mut rng, shape.hidden, pixels),
            hidden,
            OutputQuant::Int8 {
                quant: logits,
                relu: false,
            },
        ),
    ];
    ModelSpec {
        name: std::format!("synthetic-{seed}"),
        likelihood: Likelihood::Bernoulli,
        input_width: shape.width,
        input_height: shape.height,
        latent: shape.latent,
        threshold: 300 << 16,
        z_quant: latent_quant(z),
        encoder,
        decoder,
        logit_scale: logits.scale,
        logit_zero_point: logits.zero_point,
        detector: None,
        seen: None,
        head: None,
    }
}

/// Times `f` for benchmarks: a warm-up of a tenth of `iterations` calls, then `batches`
/// batches of `iterations` calls each. Returns the fastest and the median batch, in
/// microseconds per call. On a shared machine the fastest batch is the one least
/// disturbed by other work.
pub fn time_batches(batches: usize, iterations: usize, mut f: impl FnMut(usize)) -> (f64, f64) {
    for i in 0..iterations / 10 {
        f(i);
    }
    let mut per_call: Vec<f64> = (0..batches.max(1))
        .map(|_| {
            let start = std::time::Instant::now();
            for i in 0..iterations {
                f(i);
            }
            start.elapsed().as_secs_f64() * 1e6 / iterations.max(1) as f64
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    (per_call[0], per_call[per_call.len() / 2])
}
