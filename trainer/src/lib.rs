//! tinyvae's host side: train, evaluate and look at VAEs and plain autoencoders
//! with candle, and hand their float layers to the quantizer.
//!
//! * [`data`]: IDX files and image folders → [`data::Dataset`] (raw `u8` pixels, floats = byte/255).
//! * [`model`]: [`model::Model`] (VAE or AE), its [`model::ModelConfig`], the
//!   float layers [`model::DenseF32`] and the loss terms, including
//!   [`model::loss::anomaly_score`].
//! * [`train`]: Adam, KL warm-up, validation, early stopping, exact resume.
//! * [`checkpoint`]: safetensors with metadata, written atomically.
//! * [`eval`]: negative ELBO, IWAE NLL estimate, reconstruction error, AUROC.
//! * [`pictures`]: sample / reconstruction / interpolation / traversal grids and loss curves.
//! * [`cli`]: the `tinyvae` subcommands.
//!
//! Loading a checkpoint for export or quantization:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let loaded = tinyvae_trainer::checkpoint::load(
//!     std::path::Path::new("runs/vae/model.safetensors"),
//!     &candle_core::Device::Cpu,
//! )?;
//! let cfg = &loaded.model.config; // width, height, hidden, latent, likelihood, kind
//! let enc = loaded.model.encoder_layers()?; // last layer: 2*latent outputs (mu | logvar) for a VAE
//! let dec = loaded.model.decoder_layers()?; // last layer: logits
//! # let _ = (cfg, enc, dec); Ok(()) }
//! ```

pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod device_model;
pub mod emulate;
pub mod eval;
pub mod model;
pub mod onnx;
pub mod pictures;
pub mod quant_report;
pub mod quantize;
pub mod rng;
pub mod serial;
pub mod train;

pub use model::{DenseF32, Model, ModelConfig};
