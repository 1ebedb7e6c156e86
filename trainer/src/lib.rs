//! # tinyvae-trainer
//!
//! The training library: train, evaluate, quantize and export VAEs and plain
//! autoencoders with candle. No command-line code (that is the `tinyvae` crate) and no
//! device link (that is `tinyvae-link`).
//!
//! Modules:
//! * [`model`] — [`model::Model`] (VAE or AE), its [`model::ModelConfig`], the loss terms
//!   (including [`model::loss::anomaly_score`]) and the reconstruction term as one op
//!   ([`model::nll_op`]).
//! * [`train`] — Adam, KL warm-up, validation, early stopping, exact resume; the fused
//!   CPU step and candle's autograd on other devices.
//! * [`checkpoint`] — safetensors with metadata, written atomically; the file format,
//!   its metadata types and its validator are `tinyvae-checkpoint`'s.
//! * [`eval`] — negative ELBO, IWAE NLL estimate, reconstruction error.
//! * [`denoise`] — faulted images through models, PSNR and SSIM against the clean ones.
//! * [`fault_gallery`] — every simulated sensor fault on a few digits, as a picture.
//! * [`fault_head`] — the fault head: a small convolutional classifier of faulted frames,
//!   the detector's 17th term.
//! * [`pictures`] — samples, reconstructions, interpolations, traversals, loss curves.
//! * [`quantize`] — the float reference of the device pipeline, calibration, the
//!   quantized model spec and its threshold.
//! * [`quant_report`] — what quantization cost (scores, AUROC, verdicts, per layer).
//! * [`onnx`] — the float networks as ONNX, run back in tract.
//! * [`export`] — [`export::export`] with [`export::ExportOptions`]: all of the above
//!   into a device model.
//! * [`card`] — [`card::write_card`] with [`card::CardOptions`]: the model card.
//! * [`pca`] — principal components (nalgebra), the linear baseline.
//! * [`probe`] — logistic regression and kNN on frozen codes, pixels and PCA.
//! * [`latent_map`] — the test set's codes as a scatter and the decoded manifold.
//! * [`compress`] — the latent code as an image codec beside PCA, JPEG and PNG.
//! * [`tensor`] — datasets as tensors ([`tensor::ToTensor`]).
//! * `cuda` (feature `cuda`) — the training kernels for NVIDIA GPUs and `cuda::open`, the
//!   device they run on.
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

pub mod card;
pub mod checkpoint;
pub mod compress;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod denoise;
pub mod detector;
pub mod eval;
pub mod export;
pub mod fault_gallery;
pub mod fault_head;
pub mod latent_map;
pub mod model;
pub mod onnx;
pub mod pca;
pub mod pictures;
pub mod probe;
pub mod quant_report;
pub mod quantize;
pub mod tensor;
pub mod train;

pub use model::{FloatLayer, Model, ModelConfig};
