//! One training step of the MLP VAE or AE, forward and backward, written out.
//!
//! The same model and loss as [`crate::model`] and [`crate::train::batch_loss`]:
//! dense layers `y = x W^T + b` with ReLU on all but the last of each stack, the
//! reparameterization `z = mu + exp(logvar / 2) eps`, and the loss
//! `(reconstruction + beta KL) / batch`. Activations and gradients live in buffers that
//! are reused from batch to batch, and every element-wise step is one pass.

use super::gemm::{matmul, Operand};
use super::math::{bce_with_logits, softplus_neg_abs_and_sigmoid};
use crate::model::{Likelihood, ModelConfig, ModelKind};

/// One dense layer's sizes.
#[derive(Clone, Copy, Debug)]
struct LayerShape {
    in_dim: usize,
    out_dim: usize,
    relu: bool,
}

/// The network's layout: encoder layers, then decoder layers.
#[derive(Clone, Debug)]
pub struct Net {
    kind: ModelKind,
    likelihood: Likelihood,
    latent: usize,
    layers: Vec<LayerShape>,
    encoder_layers: usize,
    parameter_sizes: Vec<usize>,
}

/// Buffers reused across steps.
#[derive(Default)]
pub struct Scratch {
    outputs: Vec<Vec<f32>>,
    z: Vec<f32>,
    std: Vec<f32>,
    delta: Vec<f32>,
    delta_in: Vec<f32>,
    pixel_losses: Vec<f32>,
}

/// Summed loss terms of one batch (not divided by the batch size).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchLoss {
    /// Reconstruction negative log-likelihood.
    pub recon: f64,
    /// KL term (0 for an AE).
    pub kl: f64,
}

impl Net {
    /// The layout of a model with this configuration.
    pub fn new(config: &ModelConfig) -> Self {
        let stack = |dims: Vec<(usize, usize)>| {
            let n = dims.len();
            dims.into_iter()
                .enumerate()
                .map(move |(i, (in_dim, out_dim))| LayerShape {
                    in_dim,
                    out_dim,
                    relu: i + 1 < n,
                })
        };
        let encoder: Vec<_> = stack(config.encoder_dims()).collect();
        let encoder_layers = encoder.len();
        let layers: Vec<LayerShape> = encoder
            .into_iter()
            .chain(stack(config.decoder_dims()))
            .collect();
        let parameter_sizes = layers
            .iter()
            .flat_map(|l| [l.out_dim * l.in_dim, l.out_dim])
            .collect();
        Self {
            kind: config.kind,
            likelihood: config.likelihood,
            latent: config.latent,
            layers,
            encoder_layers,
            parameter_sizes,
        }
    }

    /// Sizes of the parameter tensors, in [`crate::model::Model::named_vars`] order
    /// (weight `out x in`, then bias, per layer).
    pub fn parameter_sizes(&self) -> &[usize] {
        &self.parameter_sizes
    }

    /// Width of the encoder's output: `2 latent` (mu, logvar) or `latent`.
    fn head_width(&self) -> usize {
        match self.kind {
            ModelKind::Vae => 2 * self.latent,
            ModelKind::Ae => self.latent,
        }
    }

    /// Forward and backward over `rows` images `x` (row major, `rows x pixels`) with
    /// the reparameterization noise `eps` (`rows x latent`), scored against `target`
    /// (`x` itself, or the clean images when `x` is faulted for denoising): writes the
    /// gradient of `(recon + beta KL) / rows` into `grads` and returns the summed loss
    /// terms.
    ///
    /// # Panics
    /// If `params`, `grads`, `x`, `target` or `eps` do not have the sizes of this
    /// network (the caller builds them from the same configuration).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        params: &[Vec<f32>],
        grads: &mut [Vec<f32>],
        x: &[f32],
        target: &[f32],
        eps: &[f32],
        rows: usize,
        beta: f64,
        threads: usize,
        scratch: &mut Scratch,
    ) -> BatchLoss {
        let sizes = self.parameter_sizes();
        assert!(
            params.iter().map(Vec::len).eq(sizes.iter().copied()),
            "parameter sizes"
        );
        assert!(
            grads.iter().map(Vec::len).eq(sizes.iter().copied()),
            "gradient sizes"
        );
        let pixels = self.layers[0].in_dim;
        assert_eq!(x.len(), rows * pixels, "batch size");
        assert_eq!(target.len(), rows * pixels, "target size");
        assert_eq!(eps.len(), rows * self.latent, "noise size");
        let scale = 1.0 / rows.max(1) as f32;
        scratch.outputs.resize_with(self.layers.len(), Vec::new);

        // Encoder, then z, then decoder.
        for l in 0..self.layers.len() {
            if l == self.encoder_layers {
                self.sample_z(rows, eps, scratch);
            }
            let (done, rest) = scratch.outputs.split_at_mut(l);
            let input = self.layer_input(l, x, &scratch.z, done);
            self.forward_layer(l, params, input, rows, &mut rest[0], threads);
        }

        // Loss and its gradient with respect to the logits.
        let last = self.layers.len() - 1;
        let mut loss = BatchLoss {
            recon: self.reconstruction(
                &scratch.outputs[last],
                target,
                scale,
                &mut scratch.delta,
                &mut scratch.pixel_losses,
            ),
            kl: 0.0,
        };

        // Decoder and encoder, last layer first; between them the head's gradient.
        for l in (0..self.layers.len()).rev() {
            if l + 1 == self.encoder_layers {
                loss.kl = self.head_gradient(l, rows, eps, beta as f32 * scale, scratch);
            }
            let (done, rest) = scratch.outputs.split_at(l);
            let input = self.layer_input(l, x, &scratch.z, done);
            self.backward_layer(
                l,
                params,
                grads,
                input,
                &rest[0],
                rows,
                &mut scratch.delta,
                &mut scratch.delta_in,
                threads,
            );
            std::mem::swap(&mut scratch.delta, &mut scratch.delta_in);
        }
        loss
    }

    /// What layer `l` reads: the images, z, or the previous layer's output.
    fn layer_input<'a>(
        &self,
        l: usize,
        x: &'a [f32],
        z: &'a [f32],
        before: &'a [Vec<f32>],
    ) -> &'a [f32] {
        if l == 0 {
            x
        } else if l == self.encoder_layers {
            z
        } else {
            &before[l - 1]
        }
    }

    /// `out = relu?(input W^T + b)`.
    fn forward_layer(
        &self,
        l: usize,
        params: &[Vec<f32>],
        input: &[f32],
        rows: usize,
        out: &mut Vec<f32>,
        threads: usize,
    ) {
        let shape = self.layers[l];
        let (weight, bias) = (&params[2 * l], &params[2 * l + 1]);
        out.resize(rows * shape.out_dim, 0.0);
        for row in out.chunks_exact_mut(shape.out_dim) {
            row.copy_from_slice(bias);
        }
        matmul(
            out,
            Operand::plain(input),
            Operand::transposed(weight),
            (rows, shape.in_dim, shape.out_dim),
            true,
            threads,
        );
        if shape.relu {
            for v in out.iter_mut() {
                *v = v.max(0.0);
            }
        }
    }

    /// `z = mu + exp(logvar / 2) eps` for a VAE, `z = code` for an AE.
    fn sample_z(&self, rows: usize, eps: &[f32], scratch: &mut Scratch) {
        let head = &scratch.outputs[self.encoder_layers - 1];
        let latent = self.latent;
        scratch.z.resize(rows * latent, 0.0);
        match self.kind {
            ModelKind::Ae => scratch.z.copy_from_slice(&head[..rows * latent]),
            ModelKind::Vae => {
                scratch.std.resize(rows * latent, 0.0);
                for (((h, z), s), e) in head
                    .chunks_exact(2 * latent)
                    .zip(scratch.z.chunks_exact_mut(latent))
                    .zip(scratch.std.chunks_exact_mut(latent))
                    .zip(eps.chunks_exact(latent))
                {
                    let (mu, logvar) = h.split_at(latent);
                    for j in 0..latent {
                        s[j] = (0.5 * logvar[j]).exp();
                        z[j] = mu[j] + s[j] * e[j];
                    }
                }
            }
        }
    }

    /// The summed reconstruction NLL of `x` under `logits`, and its gradient times
    /// `scale` into `delta`.
    fn reconstruction(
        &self,
        logits: &[f32],
        x: &[f32],
        scale: f32,
        delta: &mut Vec<f32>,
        losses: &mut Vec<f32>,
    ) -> f64 {
        delta.resize(logits.len(), 0.0);
        match self.likelihood {
            Likelihood::Bernoulli => per_pixel(logits, x, delta, losses, |l, x| {
                let (loss, grad) = bce_with_logits(l, x);
                (loss, grad * scale)
            }),
            Likelihood::Gaussian => per_pixel(logits, x, delta, losses, |l, x| {
                let (_, mean) = softplus_neg_abs_and_sigmoid(l);
                let err = mean - x;
                (err * err, 2.0 * err * mean * (1.0 - mean) * scale)
            }),
        }
    }

    /// Turns the gradient with respect to z (in `delta`) into the gradient with
    /// respect to the encoder's output, adding the KL term's; returns the summed KL.
    fn head_gradient(
        &self,
        head_layer: usize,
        rows: usize,
        eps: &[f32],
        kl_scale: f32,
        scratch: &mut Scratch,
    ) -> f64 {
        let latent = self.latent;
        let width = self.head_width();
        let head = &scratch.outputs[head_layer];
        if self.kind == ModelKind::Ae {
            // z is the code itself: its gradient is the head's.
            return 0.0;
        }
        scratch.delta_in.resize(rows * width, 0.0);
        let mut kl = 0.0f64;
        for ((((h, dz), s), e), d) in head
            .chunks_exact(width)
            .zip(scratch.delta.chunks_exact(latent))
            .zip(scratch.std.chunks_exact(latent))
            .zip(eps.chunks_exact(latent))
            .zip(scratch.delta_in.chunks_exact_mut(width))
        {
            let (mu, logvar) = h.split_at(latent);
            let (d_mu, d_logvar) = d.split_at_mut(latent);
            let mut row = 0.0f32;
            for j in 0..latent {
                let var = s[j] * s[j];
                row += 0.5 * ((var + mu[j] * mu[j]) - logvar[j] - 1.0);
                d_mu[j] = dz[j] + kl_scale * mu[j];
                d_logvar[j] = dz[j] * e[j] * 0.5 * s[j] + kl_scale * 0.5 * (var - 1.0);
            }
            kl += f64::from(row);
        }
        std::mem::swap(&mut scratch.delta, &mut scratch.delta_in);
        kl
    }

    /// Given the gradient with respect to layer `l`'s output in `delta`: the weight
    /// and bias gradients into `grads`, and the gradient with respect to its input
    /// into `delta_in` (not for the first layer, whose input is the data).
    #[allow(clippy::too_many_arguments)]
    fn backward_layer(
        &self,
        l: usize,
        params: &[Vec<f32>],
        grads: &mut [Vec<f32>],
        input: &[f32],
        output: &[f32],
        rows: usize,
        delta: &mut [f32],
        delta_in: &mut Vec<f32>,
        threads: usize,
    ) {
        let shape = self.layers[l];
        let delta = &mut delta[..rows * shape.out_dim];
        if shape.relu {
            for (d, &y) in delta.iter_mut().zip(output) {
                if y <= 0.0 {
                    *d = 0.0;
                }
            }
        }
        let (grad_weight, grad_bias) = match &mut grads[2 * l..2 * l + 2] {
            [w, b] => (w, b),
            _ => unreachable!("two tensors per layer"),
        };
        matmul(
            grad_weight,
            Operand::transposed(delta),
            Operand::plain(input),
            (shape.out_dim, rows, shape.in_dim),
            false,
            threads,
        );
        grad_bias.fill(0.0);
        for row in delta.chunks_exact(shape.out_dim) {
            for (g, &d) in grad_bias.iter_mut().zip(row) {
                *g += d;
            }
        }
        if l > 0 {
            delta_in.resize(rows * shape.in_dim, 0.0);
            matmul(
                delta_in,
                Operand::plain(delta),
                Operand::plain(&params[2 * l]),
                (rows, shape.out_dim, shape.in_dim),
                false,
                threads,
            );
        }
    }
}

/// Applies `loss_and_grad(logit, target)` to every pixel, writing the losses into
/// `losses` and the gradients into `delta`, and returns the losses' sum. Two plain
/// element-wise loops, so that the first vectorizes (a running f32 sum would keep it
/// scalar: float addition is not reassociated).
#[inline(always)]
fn per_pixel(
    logits: &[f32],
    x: &[f32],
    delta: &mut [f32],
    losses: &mut Vec<f32>,
    loss_and_grad: impl Fn(f32, f32) -> (f32, f32),
) -> f64 {
    losses.resize(logits.len(), 0.0);
    for (((&l, &x), d), loss) in logits
        .iter()
        .zip(x)
        .zip(delta.iter_mut())
        .zip(losses.iter_mut())
    {
        let (value, grad) = loss_and_grad(l, x);
        *loss = value;
        *d = grad;
    }
    losses.iter().map(|&v| f64::from(v)).sum()
}
