//! The architecture stored in every checkpoint: [`ModelConfig`] with its
//! [`ModelKind`] and [`Likelihood`], and the weight initialisation [`Init`].

use serde::{Deserialize, Serialize};

pub use tinyvae_shared::model::{Likelihood, UnknownName};

/// VAE or plain autoencoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Variational autoencoder: Gaussian posterior, KL term, samples from the prior.
    Vae,
    /// Deterministic autoencoder with the same layers, no KL term.
    Ae,
}

/// How the initial weights are drawn (always from the trainer's seeded generator).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// PyTorch `nn.Linear` default: weight and bias uniform in ±1/sqrt(fan_in).
    Torch,
    /// Kaiming normal (std sqrt(2/fan_in)), zero bias: candle-nn's `linear` default.
    Kaiming,
}

/// Names on the command line and in checkpoints (serde's lowercase names).
macro_rules! named_enum {
    ($ty:ident, $expected:literal, $($variant:ident = $name:literal),+) => {
        impl $ty {
            /// The lowercase name used on the command line and in checkpoints.
            pub const fn name(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(UnknownName { expected: $expected }),
                }
            }
        }
    };
}

named_enum!(ModelKind, "vae or ae", Vae = "vae", Ae = "ae");
named_enum!(
    Init,
    "torch or kaiming",
    Torch = "torch",
    Kaiming = "kaiming"
);

/// Architecture of a model, stored in every checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// VAE or AE.
    pub kind: ModelKind,
    /// Input image width.
    pub width: usize,
    /// Input image height.
    pub height: usize,
    /// Hidden layer sizes of the encoder (the decoder mirrors them).
    pub hidden: Vec<usize>,
    /// Latent size.
    pub latent: usize,
    /// Reconstruction likelihood.
    pub likelihood: Likelihood,
}

/// An unusable [`ModelConfig`]: what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ModelConfig {
    /// Pixels per input image.
    pub fn input_dim(&self) -> usize {
        self.width * self.height
    }

    /// Outputs of the encoder's last layer: `2*latent` for a VAE, `latent` for an AE.
    pub fn encoder_out_dim(&self) -> usize {
        match self.kind {
            ModelKind::Vae => 2 * self.latent,
            ModelKind::Ae => self.latent,
        }
    }

    /// `(in, out)` of every encoder layer.
    pub fn encoder_dims(&self) -> Vec<(usize, usize)> {
        let mut sizes = vec![self.input_dim()];
        sizes.extend(&self.hidden);
        sizes.push(self.encoder_out_dim());
        sizes.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// `(in, out)` of every decoder layer.
    pub fn decoder_dims(&self) -> Vec<(usize, usize)> {
        let mut sizes = vec![self.latent];
        sizes.extend(self.hidden.iter().rev());
        sizes.push(self.input_dim());
        sizes.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Checks that every size is positive and that the derived sizes
    /// ([`input_dim`](Self::input_dim), [`encoder_out_dim`](Self::encoder_out_dim))
    /// fit in a `usize`; after that, none of the methods above overflows.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.width == 0 || self.height == 0 || self.latent == 0 || self.hidden.contains(&0) {
            return Err(ConfigError(format!("sizes must be positive: {self:?}")));
        }
        if self.width.checked_mul(self.height).is_none() || self.latent.checked_mul(2).is_none() {
            return Err(ConfigError(format!("sizes too large: {self:?}")));
        }
        Ok(())
    }

    /// Every parameter tensor of the architecture, in a fixed order (encoder, then
    /// decoder; each layer's weight, then its bias), with its shape in PyTorch layout:
    /// `encoder.{i}.weight` is `[out, in]`, `encoder.{i}.bias` is `[out]`, and the same
    /// for `decoder.{i}`. Call [`validate`](Self::validate) first.
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for (network, dims) in [
            ("encoder", self.encoder_dims()),
            ("decoder", self.decoder_dims()),
        ] {
            for (i, (a, b)) in dims.into_iter().enumerate() {
                out.push((format!("{network}.{i}.weight"), vec![b, a]));
                out.push((format!("{network}.{i}.bias"), vec![b]));
            }
        }
        out
    }
}
