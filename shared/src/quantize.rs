//! Post-training quantization arithmetic (host only).
//!
//! This is the host half of the contract the kernels in [`crate::dense`] implement: how
//! float weights, biases and activation ranges become int8 weights, i32 biases and
//! fixed-point multipliers. The exporter calibrates ranges on real images and calls
//! these functions; the tests call them on random layers.

use std::vec::Vec;

use crate::dense::{group_weights, quantize_multiplier, DenseLayer, LayerOutput};
use crate::fixed::Q16_ONE;
use crate::model::LayerSpec;

/// An affine int8 quantization: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActQuant {
    /// Real value of one step.
    pub scale: f64,
    /// The int8 code of real zero.
    pub zero_point: i32,
}

impl ActQuant {
    /// The quantization covering `[min, max]` (widened to include 0, as the zero point
    /// must be exact for zero padding and ReLU).
    pub fn from_range(min: f64, max: f64) -> Self {
        let min = min.min(0.0);
        let max = max.max(0.0);
        let span = (max - min).max(1e-8);
        let scale = span / 255.0;
        let zero_point = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i32;
        Self { scale, zero_point }
    }

    /// The pixel input: `pixel / 255`, entering as `pixel - 128`.
    pub fn pixels() -> Self {
        Self {
            scale: 1.0 / 255.0,
            zero_point: crate::model::INPUT_ZERO_POINT,
        }
    }

    /// Quantizes one value, rounding to nearest and saturating.
    pub fn quantize(&self, x: f64) -> i8 {
        ((x / self.scale).round() + self.zero_point as f64).clamp(-128.0, 127.0) as i8
    }

    /// The real value of a code.
    pub fn dequantize(&self, q: i8) -> f64 {
        self.scale * (q as i32 - self.zero_point) as f64
    }
}

/// What a quantized layer outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputQuant {
    /// int8 with this quantization; ReLU fused when `relu`.
    Int8 {
        /// Output quantization.
        quant: ActQuant,
        /// Fused ReLU.
        relu: bool,
    },
    /// Q16 fixed point (the encoder head).
    Q16,
}

/// A float dense layer `y = W x + b` (`weight[j * in_dim + i]`, PyTorch's row-major
/// `out x in` layout), optionally followed by ReLU: what the trainer hands to the
/// quantizer, the float reference forward pass and the ONNX exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatLayer {
    /// Inputs.
    pub in_dim: usize,
    /// Outputs.
    pub out_dim: usize,
    /// Row-major weights.
    pub weight: Vec<f32>,
    /// Biases.
    pub bias: Vec<f32>,
    /// Whether ReLU follows (every layer but the last of each stack).
    pub relu: bool,
}

/// Quantizes a float layer: symmetric per-channel int8 weights, i32 bias in
/// `scale_in * scale_w[j]` units, and per-channel requantization multipliers.
pub fn quantize_layer(layer: &FloatLayer, input: ActQuant, output: OutputQuant) -> LayerSpec {
    let (n_in, n_out) = (layer.in_dim, layer.out_dim);
    let mut weight = Vec::with_capacity(n_in * n_out);
    let mut bias = Vec::with_capacity(n_out);
    let mut multiplier = Vec::with_capacity(n_out);
    let mut shift = Vec::with_capacity(n_out);
    for j in 0..n_out {
        let row = &layer.weight[j * n_in..(j + 1) * n_in];
        let max_abs = row.iter().fold(0.0f64, |m, &w| m.max((w as f64).abs()));
        let scale_w = if max_abs > 0.0 { max_abs / 127.0 } else { 1.0 };
        weight.extend(
            row.iter()
                .map(|&w| (w as f64 / scale_w).round().clamp(-127.0, 127.0) as i8),
        );
        let acc_scale = input.scale * scale_w;
        let b = layer.bias.get(j).copied().unwrap_or(0.0) as f64;
        bias.push(
            (b / acc_scale)
                .round()
                .clamp(i32::MIN as f64, i32::MAX as f64) as i32,
        );
        let real = match output {
            OutputQuant::Int8 { quant, .. } => acc_scale / quant.scale,
            OutputQuant::Q16 => acc_scale * Q16_ONE as f64,
        };
        let (m, s) = quantize_multiplier(real);
        multiplier.push(m);
        shift.push(s);
    }
    let output = match output {
        OutputQuant::Int8 { quant, relu } => LayerOutput::Int8 {
            zero_point: quant.zero_point,
            relu,
        },
        OutputQuant::Q16 => LayerOutput::Q16,
    };
    LayerSpec {
        in_dim: n_in,
        out_dim: n_out,
        output,
        input_zero_point: input.zero_point,
        weight,
        bias,
        multiplier,
        shift,
    }
}

/// A quantized layer's bytes laid out as a model image holds them, owned: what a
/// [`DenseLayer`] borrows, for running a layer outside a model image (the fault head
/// before it is written into one, tests).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerBytes {
    in_dim: usize,
    out_dim: usize,
    output: LayerOutput,
    input_zero_point: i32,
    weights: Vec<i8>,
    bias: Vec<u8>,
    multiplier: Vec<u8>,
    shift: Vec<u8>,
}

impl LayerBytes {
    /// The bytes of `spec` (its weights grouped as the kernels read them).
    pub fn new(spec: &LayerSpec) -> Self {
        let le = |values: &[i32]| values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self {
            in_dim: spec.in_dim,
            out_dim: spec.out_dim,
            output: spec.output,
            input_zero_point: spec.input_zero_point,
            weights: group_weights(&spec.weight, spec.in_dim, spec.out_dim),
            bias: le(&spec.bias),
            multiplier: le(&spec.multiplier),
            shift: le(&spec.shift),
        }
    }

    /// The layer.
    pub fn view(&self) -> DenseLayer<'_> {
        DenseLayer {
            in_dim: self.in_dim,
            out_dim: self.out_dim,
            input_zero_point: self.input_zero_point,
            output: self.output,
            weights: &self.weights,
            bias: &self.bias,
            multiplier: &self.multiplier,
            shift: &self.shift,
        }
    }
}

/// The requantization taking a Q16 latent into the decoder's int8 input `quant`:
/// `(multiplier, shift, zero point)` for [`crate::model::ModelSpec::z_quant`].
pub fn latent_quant(quant: ActQuant) -> (i32, i32, i32) {
    let (m, s) = quantize_multiplier(1.0 / (quant.scale * Q16_ONE as f64));
    (m, s, quant.zero_point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_includes_zero_exactly() {
        let q = ActQuant::from_range(0.0, 6.0);
        assert_eq!(q.zero_point, -128);
        assert_eq!(q.dequantize(q.quantize(0.0)), 0.0);
        let q = ActQuant::from_range(-3.0, 1.0);
        assert!((q.dequantize(q.quantize(-3.0)) + 3.0).abs() <= q.scale);
        assert!((q.dequantize(q.quantize(0.5)) - 0.5).abs() <= q.scale / 2.0 + 1e-12);
    }

    #[test]
    fn pixels_map_to_offset_codes() {
        let q = ActQuant::pixels();
        assert_eq!(q.quantize(0.0), -128);
        assert_eq!(q.quantize(1.0), 127);
    }
}
