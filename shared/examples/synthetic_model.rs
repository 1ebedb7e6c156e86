//! Writes a random but valid 784-64-(2x16) / 16-64-784 model as a safetensors file, so
//! the firmware can be built and exercised before a trained model exists.
//!
//! ```text
//! cargo run -p tinyvae-shared --features host --example synthetic_model -- OUT.safetensors [SEED]
//! ```
//!
//! The weights are uniform int8 drawn from the crate's own seeded generator, so a seed
//! always gives the same file. The requantization scales are chosen so that the
//! activations of a typical input use a good part of the int8 range (neither all
//! saturated nor all zero), which makes the decoded images and the instruction counts
//! representative of a real model of the same shape; the pictures themselves are noise.

use std::collections::HashMap;
use std::process::ExitCode;

use safetensors::tensor::{Dtype, TensorView};
use tinyvae_shared::dense::{quantize_multiplier, LayerOutput};
use tinyvae_shared::fixed::q16_from_f64;
use tinyvae_shared::model::{
    LayerSpec, Likelihood, ModelSpec, DEVICE_IMAGE_TENSOR, INPUT_ZERO_POINT,
};
use tinyvae_shared::rng::Rng;

const SIDE: usize = 28;
const HIDDEN: usize = 64;
const LATENT: usize = 16;
/// Standard deviation of uniform integers in -127..=127.
const WEIGHT_STD: f64 = 73.3;
/// The int8 range a latent value is quantized over at the decoder's input: +-4.
const Z_RANGE: f64 = 4.0;

/// One dense layer with uniform int8 weights and the requantization that maps an input
/// of standard deviation `input_std` (in int8 steps from the zero point) to an output
/// of standard deviation `output_std` (in output units).
fn layer(
    rng: &mut Rng,
    in_dim: usize,
    out_dim: usize,
    input_zero_point: i32,
    output: LayerOutput,
    input_std: f64,
    output_std: f64,
) -> LayerSpec {
    let weight = (0..in_dim * out_dim)
        .map(|_| ((rng.next_u32() % 255) as i32 - 127) as i8)
        .collect();
    let acc_std = (in_dim as f64).sqrt() * WEIGHT_STD * input_std;
    let (m, s) = quantize_multiplier(output_std / acc_std);
    // Small random biases, a tenth of the accumulator's spread.
    let bias = (0..out_dim)
        .map(|_| ((rng.next_u32() % 2001) as f64 / 1000.0 - 1.0) * acc_std * 0.1)
        .map(|b| b.round() as i32)
        .collect();
    LayerSpec {
        in_dim,
        out_dim,
        output,
        input_zero_point,
        weight,
        bias,
        multiplier: vec![m; out_dim],
        shift: vec![s; out_dim],
    }
}

fn build(seed: u64) -> ModelSpec {
    let mut rng = Rng::new(seed);
    let relu = LayerOutput::Int8 {
        zero_point: -128,
        relu: true,
    };
    let pixels = SIDE * SIDE;
    // Encoder: pixels (std ~100 steps) -> 64 ReLU (std ~60 steps above -128) -> mu, logvar.
    let enc0 = layer(
        &mut rng,
        pixels,
        HIDDEN,
        INPUT_ZERO_POINT,
        relu,
        100.0,
        60.0,
    );
    let mut head = layer(
        &mut rng,
        HIDDEN,
        2 * LATENT,
        -128,
        LayerOutput::Q16,
        60.0,
        65536.0,
    );
    // logvar a third as wide as mu: posteriors between e^-1 and e^1.
    let (m, s) = quantize_multiplier(65536.0 / 3.0 / ((HIDDEN as f64).sqrt() * WEIGHT_STD * 60.0));
    for j in LATENT..2 * LATENT {
        head.multiplier[j] = m;
        head.shift[j] = s;
    }
    // Decoder: z (int8, std ~32 steps) -> 64 ReLU -> 784 linear logits (std ~25 steps).
    let dec0 = layer(&mut rng, LATENT, HIDDEN, 0, relu, 32.0, 60.0);
    let linear = LayerOutput::Int8 {
        zero_point: 0,
        relu: false,
    };
    let dec1 = layer(&mut rng, HIDDEN, pixels, -128, linear, 60.0, 25.0);
    // z in Q16 -> int8 steps of Z_RANGE / 127.
    let (zm, zs) = quantize_multiplier(127.0 / Z_RANGE / 65536.0);
    ModelSpec {
        name: format!("synthetic-{seed}"),
        likelihood: Likelihood::Bernoulli,
        input_width: SIDE,
        input_height: SIDE,
        latent: LATENT,
        threshold: q16_from_f64(600.0),
        z_quant: (zm, zs, 0),
        encoder: vec![enc0, head],
        decoder: vec![dec0, dec1],
        logit_scale: 0.1,
        logit_zero_point: 0,
        detector: None,
        seen: None,
        head: None,
    }
}

fn run() -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .ok_or("usage: synthetic_model OUT.safetensors [SEED]")?;
    let seed = match args.next() {
        Some(s) => s
            .parse::<u64>()
            .map_err(|e| format!("bad seed {s:?}: {e}"))?,
        None => 1,
    };
    let spec = build(seed);
    let image = spec
        .to_bytes()
        .map_err(|e| format!("model does not validate: {e}"))?;
    let model = tinyvae_shared::model::Model::parse(&image).map_err(|e| e.to_string())?;
    let view = TensorView::new(Dtype::U8, vec![image.len()], &image).map_err(|e| e.to_string())?;
    let metadata = HashMap::from([
        ("name".to_string(), spec.name.clone()),
        ("kind".to_string(), "synthetic (random weights)".to_string()),
        ("seed".to_string(), seed.to_string()),
        ("model_hash".to_string(), format!("{:08x}", model.hash)),
    ]);
    safetensors::serialize_to_file([(DEVICE_IMAGE_TENSOR, view)], Some(metadata), out.as_ref())
        .map_err(|e| format!("cannot write {out}: {e}"))?;
    Ok(format!(
        "wrote {out}: {} ({} bytes, {} parameters, hash {:08x})",
        spec.name,
        image.len(),
        model.parameters(),
        model.hash
    ))
}

fn main() -> ExitCode {
    match run() {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
