//! The int8 dense kernel against a float reference.
//!
//! Each random layer is quantized with the exporter's arithmetic; the kernel's int8 or
//! Q16 outputs are dequantized and compared with `W x + b` computed in f64 on the same
//! (dequantized) inputs. Weight rounding contributes up to `0.5 * scale_w * sum|x|`, so
//! the bound is stated in output steps (LSBs) and measured.

use tinyvae_shared::dense::{requantize, DenseLayer};
use tinyvae_shared::fixed::q16_to_f64;
use tinyvae_shared::model::{Model, ModelSpec};
use tinyvae_shared::quantize::{quantize_layer, ActQuant, OutputQuant};
use tinyvae_shared::rng::Rng;
use tinyvae_shared::testing::{random_layer, synthetic_model, SyntheticShape};

fn float_forward(w: &[f32], b: &[f32], x: &[f64], in_dim: usize, j: usize) -> f64 {
    let row = &w[j * in_dim..(j + 1) * in_dim];
    b[j] as f64 + row.iter().zip(x).map(|(&w, &x)| w as f64 * x).sum::<f64>()
}

/// The image holds one layer as the first encoder layer; wrap it in a model to get
/// a validated `DenseLayer` view.
fn layer_model(spec_layer: tinyvae_shared::model::LayerSpec, pixels: usize) -> Vec<u8> {
    let mut spec: ModelSpec = synthetic_model(1, SyntheticShape::default());
    let _ = pixels;
    spec.encoder[0] = spec_layer;
    spec.to_bytes().expect("valid model")
}

#[test]
fn int8_relu_layer_matches_float_within_two_steps() {
    let mut rng = Rng::new(7);
    let mut worst_steps: f64 = 0.0;
    for trial in 0..20 {
        let float = random_layer(&mut rng, 784, 64);
        let out_q = ActQuant::from_range(0.0, 1.5 + trial as f64 * 0.1);
        let spec = quantize_layer(
            &float,
            ActQuant::pixels(),
            OutputQuant::Int8 {
                quant: out_q,
                relu: true,
            },
        );
        let bytes = layer_model(spec, 784);
        let model = Model::parse(&bytes).expect("parses");
        let layer: &DenseLayer = &model.encoder[0];
        let pixels: Vec<u8> = (0..784).map(|_| (rng.next_u32() >> 24) as u8).collect();
        let input: Vec<i8> = pixels.iter().map(|&p| (p as i32 - 128) as i8).collect();
        let x: Vec<f64> = pixels.iter().map(|&p| p as f64 / 255.0).collect();
        let mut widened = vec![0i32; 784];
        let mut out = vec![0i8; 64];
        assert_eq!(layer.forward_i8(&input, &mut widened, &mut out), 64);
        for (j, &q) in out.iter().enumerate() {
            let reference = float_forward(&float.weight, &float.bias, &x, 784, j).max(0.0);
            let clipped = reference.min(out_q.dequantize(127));
            let err = (out_q.dequantize(q) - clipped).abs() / out_q.scale;
            worst_steps = worst_steps.max(err);
        }
    }
    println!("int8 ReLU layer 784->64: max error {worst_steps:.3} output steps");
    assert!(worst_steps <= 2.0, "error {worst_steps} steps");
}

#[test]
fn q16_head_matches_float() {
    let mut rng = Rng::new(11);
    let hidden = ActQuant::from_range(0.0, 2.0);
    let mut worst: f64 = 0.0;
    for _ in 0..50 {
        let float = random_layer(&mut rng, 64, 32);
        let spec = quantize_layer(&float, hidden, OutputQuant::Q16);
        let mut model = synthetic_model(2, SyntheticShape::default());
        model.encoder[1] = spec;
        let bytes = model.to_bytes().expect("valid");
        let model = Model::parse(&bytes).expect("parses");
        let layer = &model.encoder[1];
        let input: Vec<i8> = (0..64)
            .map(|_| (rng.next_u32() >> 24) as u8 as i8)
            .collect();
        let x: Vec<f64> = input.iter().map(|&q| hidden.dequantize(q)).collect();
        let mut widened = vec![0i32; 64];
        let mut out = vec![0i32; 32];
        layer.forward_q16(&input, &mut widened, &mut out);
        for (j, &q) in out.iter().enumerate() {
            let reference = float_forward(&float.weight, &float.bias, &x, 64, j);
            // Weight rounding: at most half a weight step per input.
            let row = &float.weight[j * 64..(j + 1) * 64];
            let scale_w = row.iter().fold(0.0f64, |m, &w| m.max((w as f64).abs())) / 127.0;
            let bound = 0.5 * scale_w * x.iter().map(|v| v.abs()).sum::<f64>() + 1e-4;
            let err = (q16_to_f64(q) - reference).abs();
            assert!(err <= bound, "output {j}: error {err} > bound {bound}");
            worst = worst.max(err);
        }
    }
    println!("Q16 head 64->32: max abs error {worst:.5}");
}

#[test]
fn requantize_matches_real_scale() {
    let mut rng = Rng::new(3);
    let mut worst: f64 = 0.0;
    for _ in 0..100_000 {
        let acc = rng.next_u32() as i32 >> (rng.next_u32() % 16);
        let real = (rng.next_u32() as f64 / u32::MAX as f64) * 4.0 + 1e-6;
        let (m, s) = tinyvae_shared::dense::quantize_multiplier(real);
        let got = requantize(acc, m, s) as f64;
        let want = (acc as f64 * real).clamp(i32::MIN as f64, i32::MAX as f64);
        worst = worst.max((got - want).abs());
        assert!(
            (got - want).abs() <= 0.5 + want.abs() * 1e-9 + 1.0,
            "{acc} * {real}: {got} vs {want}"
        );
    }
    println!("requantize: max abs error {worst:.3} (bound 1.5 steps)");
}
