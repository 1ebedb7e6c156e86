//! # tinyvae-checkpoint
//!
//! What a tinyvae checkpoint file is, without candle: the metadata types stored in it
//! and [`check`], the validator of a file's bytes. The trainer (`tinyvae-trainer`)
//! writes checkpoints and, after [`check`] or [`check_resume`] has accepted a file,
//! builds its candle tensors; the fuzzer exercises the validator alone, so it builds in
//! seconds.
//!
//! A checkpoint is a safetensors file with the parameters (F32, PyTorch layout, names
//! `encoder.{i}.weight|bias`, `decoder.{i}.weight|bias`, see
//! [`ModelConfig::parameters`]) and string metadata:
//!
//! | key | value |
//! |---|---|
//! | `format` | `tinyvae-1` ([`FORMAT`]) |
//! | `architecture` | JSON [`ModelConfig`] |
//! | `init` | JSON [`Init`] |
//! | `data` | JSON [`DataInfo`] |
//! | `train` | JSON [`TrainConfig`] |
//! | `seed`, `epoch` | decimal |
//! | `metrics` | JSON: the last epoch's metrics (and test results when known) |
//! | `progress` | JSON [`Progress`] (resume files only) |
//! | `adam_step` | decimal: Adam's step count (resume files only) |
//!
//! A resume file (`last.safetensors`) also holds the Adam moments
//! (`adam.m.<name>`, `adam.v.<name>`) and, once a validation loss has been measured, the
//! best-epoch parameters (`best.<name>`), each with its parameter's shape and type.

pub mod config;
pub mod train;

mod check;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use check::{check, check_resume, CheckError, Checked, ResumeState};
pub use config::{ConfigError, Init, Likelihood, ModelConfig, ModelKind};
pub use train::{EpochMetrics, LossParts, Progress, TrainConfig};

/// Value of the `format` metadata key.
pub const FORMAT: &str = "tinyvae-1";

/// Where the training data came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// Path of the data.
    pub source: String,
    /// Images used for training (after the validation split).
    pub train_images: usize,
    /// Images held out for validation.
    pub val_images: usize,
    /// The class kept for one-class training, if any.
    pub normal_class: Option<String>,
    /// The seed the train/validation split was drawn with (absent in older checkpoints).
    #[serde(default)]
    pub split_seed: Option<u64>,
    /// The fraction held out for validation (absent in older checkpoints).
    #[serde(default)]
    pub val_frac: Option<f64>,
    /// The cap on training images (`--limit`), if one was set.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Everything a checkpoint says besides the tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Architecture.
    pub config: ModelConfig,
    /// Weight initialisation used.
    pub init: Init,
    /// Training data.
    pub data: DataInfo,
    /// Hyperparameters.
    pub train: TrainConfig,
    /// Epochs completed.
    pub epoch: usize,
    /// Free-form metrics (JSON).
    pub metrics: serde_json::Value,
}

/// The metadata of a model file: every key of the table above but the resume keys.
pub fn metadata(meta: &CheckpointMeta) -> Result<HashMap<String, String>, serde_json::Error> {
    let mut m = HashMap::new();
    m.insert("format".into(), FORMAT.into());
    m.insert("architecture".into(), serde_json::to_string(&meta.config)?);
    m.insert("init".into(), serde_json::to_string(&meta.init)?);
    m.insert("data".into(), serde_json::to_string(&meta.data)?);
    m.insert("train".into(), serde_json::to_string(&meta.train)?);
    m.insert("seed".into(), meta.train.seed.to_string());
    m.insert("epoch".into(), meta.epoch.to_string());
    m.insert("metrics".into(), serde_json::to_string(&meta.metrics)?);
    Ok(m)
}

/// The metadata of a resume file: [`metadata`] plus `progress` and `adam_step`.
pub fn resume_metadata(
    meta: &CheckpointMeta,
    progress: &Progress,
    adam_step: u64,
) -> Result<HashMap<String, String>, serde_json::Error> {
    let mut m = metadata(meta)?;
    m.insert("progress".into(), serde_json::to_string(progress)?);
    m.insert("adam_step".into(), adam_step.to_string());
    Ok(m)
}
