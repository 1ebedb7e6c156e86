//! The models: a VAE with MLP encoder and decoder, and the plain autoencoder
//! with the same layers (the baseline the VAE is compared against).
//!
//! # Interface for export and quantization
//!
//! * [`ModelConfig`]: input `width`/`height`, `hidden` sizes, `latent` size,
//!   [`Likelihood`] and [`ModelKind`].
//! * [`Model::encoder_layers`] / [`Model::decoder_layers`] return the float
//!   layers as [`FloatLayer`] (weight `out x in`, row major, PyTorch layout).
//!   - Encoder: `input -> hidden[0] -> … -> hidden[n-1] -> head`. For a VAE the
//!     head has `2 * latent` outputs: the first `latent` are `mu`, the next
//!     `latent` are `logvar`. For an AE the head has `latent` outputs (the code).
//!   - Decoder: `latent -> hidden[n-1] -> … -> hidden[0] -> input`; the last
//!     layer outputs logits, the sigmoid is applied outside.
//!   - Every layer but the last of each stack has `relu = true`.
//! * [`Model::encode`] `(B, input) -> (mu, logvar)` (for an AE, `logvar` is zeros)
//!   and [`Model::decode`] `(B, latent) -> logits`, as candle tensors.
//! * [`loss::anomaly_score`]: negative ELBO at `z = mu` (see there).

pub mod loss;
pub mod nll_op;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var, D};

use tinyvae_datasets::rng::SeededRng;
// The architecture is part of the checkpoint format: it lives in `tinyvae-checkpoint`.
pub use tinyvae_checkpoint::config::{ConfigError, Init, Likelihood, ModelConfig, ModelKind};
pub use tinyvae_shared::quantize::FloatLayer;

/// Errors from building, running or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The configuration is unusable.
    #[error("bad model configuration: {0}")]
    Config(String),
    /// A stored tensor is missing or has the wrong shape.
    #[error("tensor {name}: {detail}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// What is wrong.
        detail: String,
    },
}

impl From<ConfigError> for ModelError {
    fn from(e: ConfigError) -> Self {
        ModelError::Config(e.0)
    }
}

/// A trainable dense layer.
#[derive(Clone, Debug)]
pub struct Dense {
    /// `(out, in)` weight.
    pub weight: Var,
    /// `(out,)` bias.
    pub bias: Var,
    /// Whether ReLU follows.
    pub relu: bool,
}

impl Dense {
    fn new(
        in_dim: usize,
        out_dim: usize,
        relu: bool,
        init: Init,
        rng: &mut SeededRng,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let (w, b): (Vec<f32>, Vec<f32>) = match init {
            Init::Torch => {
                let bound = 1.0 / (in_dim as f64).sqrt();
                let w = (0..in_dim * out_dim)
                    .map(|_| rng.uniform_range(-bound, bound) as f32)
                    .collect();
                let b = (0..out_dim)
                    .map(|_| rng.uniform_range(-bound, bound) as f32)
                    .collect();
                (w, b)
            }
            Init::Kaiming => {
                let std = (2.0 / in_dim as f64).sqrt();
                let w = (0..in_dim * out_dim)
                    .map(|_| (rng.normal() * std) as f32)
                    .collect();
                (w, vec![0.0; out_dim])
            }
        };
        Ok(Self {
            weight: Var::from_tensor(&Tensor::from_vec(w, (out_dim, in_dim), device)?)?,
            bias: Var::from_tensor(&Tensor::from_vec(b, out_dim, device)?)?,
            relu,
        })
    }

    /// `x (B, in) -> (B, out)`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x
            .matmul(&self.weight.as_tensor().t()?)?
            .broadcast_add(self.bias.as_tensor())?;
        if self.relu {
            y.relu()
        } else {
            Ok(y)
        }
    }

    fn to_f32(&self) -> Result<FloatLayer, ModelError> {
        let (out_dim, in_dim) = self.weight.as_tensor().dims2()?;
        Ok(FloatLayer {
            in_dim,
            out_dim,
            weight: self.weight.as_tensor().flatten_all()?.to_vec1()?,
            bias: self.bias.as_tensor().to_vec1()?,
            relu: self.relu,
        })
    }
}

/// A VAE or AE: encoder and decoder MLPs.
#[derive(Clone, Debug)]
pub struct Model {
    /// Architecture.
    pub config: ModelConfig,
    encoder: Vec<Dense>,
    decoder: Vec<Dense>,
    device: Device,
}

fn stack(
    dims: &[(usize, usize)],
    init: Init,
    rng: &mut SeededRng,
    device: &Device,
) -> Result<Vec<Dense>, ModelError> {
    let n = dims.len();
    dims.iter()
        .enumerate()
        .map(|(i, &(a, b))| Dense::new(a, b, i + 1 < n, init, rng, device))
        .collect()
}

impl Model {
    /// A freshly initialised model; the weights depend only on `config`, `init` and `seed`.
    pub fn new(
        config: ModelConfig,
        init: Init,
        seed: u64,
        device: &Device,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        let mut rng = SeededRng::stream(seed, "init", 0);
        let encoder = stack(&config.encoder_dims(), init, &mut rng, device)?;
        let decoder = stack(&config.decoder_dims(), init, &mut rng, device)?;
        Ok(Self {
            config,
            encoder,
            decoder,
            device: device.clone(),
        })
    }

    /// Rebuilds a model from named tensors (`encoder.{i}.weight`, `…bias`, `decoder.{i}.…`).
    pub fn from_tensors(
        config: ModelConfig,
        tensors: &HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        let load = |prefix: &str, dims: &[(usize, usize)]| -> Result<Vec<Dense>, ModelError> {
            let n = dims.len();
            dims.iter()
                .enumerate()
                .map(|(i, &(a, b))| {
                    let get = |what: &str, shape: &[usize]| -> Result<Var, ModelError> {
                        let name = format!("{prefix}.{i}.{what}");
                        let t = tensors.get(&name).ok_or_else(|| ModelError::Tensor {
                            name: name.clone(),
                            detail: "missing".into(),
                        })?;
                        if t.dims() != shape {
                            return Err(ModelError::Tensor {
                                name,
                                detail: format!("shape {:?}, expected {shape:?}", t.dims()),
                            });
                        }
                        Ok(Var::from_tensor(
                            &t.to_dtype(DType::F32)?.to_device(device)?,
                        )?)
                    };
                    Ok(Dense {
                        weight: get("weight", &[b, a])?,
                        bias: get("bias", &[b])?,
                        relu: i + 1 < n,
                    })
                })
                .collect()
        };
        Ok(Self {
            encoder: load("encoder", &config.encoder_dims())?,
            decoder: load("decoder", &config.decoder_dims())?,
            config,
            device: device.clone(),
        })
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// All parameters with their checkpoint names, in a fixed order.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut v = Vec::new();
        for (prefix, layers) in [("encoder", &self.encoder), ("decoder", &self.decoder)] {
            for (i, l) in layers.iter().enumerate() {
                v.push((format!("{prefix}.{i}.weight"), l.weight.clone()));
                v.push((format!("{prefix}.{i}.bias"), l.bias.clone()));
            }
        }
        v
    }

    /// Encoder output before splitting into heads: `(B, encoder_out_dim)`.
    pub fn encode_raw(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.encoder
            .iter()
            .try_fold(x.clone(), |h, l| l.forward(&h))
    }

    /// `x (B, input) -> (mu, logvar)`, each `(B, latent)`. For an AE `mu` is the
    /// code and `logvar` is zeros.
    pub fn encode(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let h = self.encode_raw(x)?;
        let l = self.config.latent;
        match self.config.kind {
            ModelKind::Vae => Ok((h.narrow(D::Minus1, 0, l)?, h.narrow(D::Minus1, l, l)?)),
            ModelKind::Ae => {
                let z = h.zeros_like()?;
                Ok((h, z))
            }
        }
    }

    /// `z (B, latent) -> logits (B, input)`.
    pub fn decode(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        self.decoder
            .iter()
            .try_fold(z.clone(), |h, l| l.forward(&h))
    }

    /// `z (B, latent) -> images (B, input)` in `[0, 1]`.
    pub fn decode_mean(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::sigmoid(&self.decode(z)?)
    }

    /// Encoder layers as floats (see the module docs for the layout).
    pub fn encoder_layers(&self) -> Result<Vec<FloatLayer>, ModelError> {
        self.encoder.iter().map(Dense::to_f32).collect()
    }

    /// Decoder layers as floats; the last outputs logits.
    pub fn decoder_layers(&self) -> Result<Vec<FloatLayer>, ModelError> {
        self.decoder.iter().map(Dense::to_f32).collect()
    }

    /// Copies of every parameter tensor, for snapshots (best epoch, comparisons).
    pub fn snapshot(&self) -> candle_core::Result<Vec<Tensor>> {
        self.named_vars()
            .iter()
            .map(|(_, v)| v.as_tensor().copy())
            .collect()
    }

    /// Restores parameters from [`Model::snapshot`].
    pub fn restore(&self, snap: &[Tensor]) -> candle_core::Result<()> {
        for ((_, v), t) in self.named_vars().iter().zip(snap) {
            v.set(t)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: ModelKind) -> ModelConfig {
        ModelConfig {
            kind,
            width: 4,
            height: 3,
            hidden: vec![8, 6],
            latent: 2,
            likelihood: Likelihood::Bernoulli,
        }
    }

    #[test]
    fn layer_layout_matches_the_contract() {
        let m = Model::new(cfg(ModelKind::Vae), Init::Torch, 1, &Device::Cpu).unwrap();
        let enc = m.encoder_layers().unwrap();
        let dec = m.decoder_layers().unwrap();
        assert_eq!(
            enc.iter()
                .map(|l| (l.in_dim, l.out_dim, l.relu))
                .collect::<Vec<_>>(),
            vec![(12, 8, true), (8, 6, true), (6, 4, false)]
        );
        assert_eq!(
            dec.iter()
                .map(|l| (l.in_dim, l.out_dim, l.relu))
                .collect::<Vec<_>>(),
            vec![(2, 6, true), (6, 8, true), (8, 12, false)]
        );
        // The float layers reproduce the candle forward pass.
        let x: Vec<f32> = (0..12).map(|i| i as f32 / 12.0).collect();
        let mut h = x.clone();
        for l in &enc {
            h = (0..l.out_dim)
                .map(|o| {
                    let s: f32 = (0..l.in_dim)
                        .map(|i| l.weight[o * l.in_dim + i] * h[i])
                        .sum::<f32>()
                        + l.bias[o];
                    if l.relu {
                        s.max(0.0)
                    } else {
                        s
                    }
                })
                .collect();
        }
        let xt = Tensor::from_vec(x, (1, 12), &Device::Cpu).unwrap();
        let (mu, lv) = m.encode(&xt).unwrap();
        let mu: Vec<f32> = mu.flatten_all().unwrap().to_vec1().unwrap();
        let lv: Vec<f32> = lv.flatten_all().unwrap().to_vec1().unwrap();
        for (a, b) in h.iter().zip(mu.iter().chain(lv.iter())) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn init_is_seeded() {
        let a = Model::new(cfg(ModelKind::Ae), Init::Kaiming, 3, &Device::Cpu).unwrap();
        let b = Model::new(cfg(ModelKind::Ae), Init::Kaiming, 3, &Device::Cpu).unwrap();
        let c = Model::new(cfg(ModelKind::Ae), Init::Kaiming, 4, &Device::Cpu).unwrap();
        assert_eq!(a.encoder_layers().unwrap(), b.encoder_layers().unwrap());
        assert_ne!(a.encoder_layers().unwrap(), c.encoder_layers().unwrap());
        assert_eq!(a.encoder_layers().unwrap().last().unwrap().out_dim, 2);
    }
}
