//! Checkpoints: safetensors files with the parameters (PyTorch layout, names
//! `encoder.{i}.weight|bias`, `decoder.{i}.weight|bias`) and string metadata:
//!
//! | key | value |
//! |---|---|
//! | `format` | `tinyvae-1` |
//! | `architecture` | JSON [`ModelConfig`] |
//! | `data` | JSON [`DataInfo`] |
//! | `train` | JSON [`TrainConfig`] |
//! | `seed`, `epoch` | decimal |
//! | `metrics` | JSON: the last epoch's metrics (and test results when known) |
//! | `progress` | JSON [`Progress`] (resume files only) |
//!
//! A resume file (`last.safetensors`) also holds the Adam moments
//! (`adam.m.<name>`, `adam.v.<name>`) and the best-epoch parameters
//! (`best.<name>`). Files are written to `<path>.tmp` and renamed, so a crash
//! never leaves a half-written checkpoint behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::{Init, Model, ModelConfig, ModelError};
use crate::train::{Progress, TrainConfig, Trainer};

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

/// Checkpoint errors, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The checkpoint path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a tinyvae checkpoint, or is damaged.
    #[error("{}: not a usable tinyvae checkpoint: {detail}", path.display())]
    Format {
        /// The checkpoint path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The tensors do not fit the architecture.
    #[error("{}: {source}", path.display())]
    Model {
        /// The checkpoint path.
        path: PathBuf,
        /// The mismatch.
        source: ModelError,
    },
}

fn fmt_err(path: &Path, detail: impl ToString) -> CheckpointError {
    CheckpointError::Format {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn base_metadata(meta: &CheckpointMeta) -> Result<HashMap<String, String>, serde_json::Error> {
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

/// Writes `bytes` to `path` atomically (see [`tinyvae_shared::model_file::write_atomic`]).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    tinyvae_shared::model_file::write_atomic(path, bytes)
        .map_err(|(path, source)| CheckpointError::Io { path, source })
}

fn write(
    path: &Path,
    tensors: Vec<(String, Tensor)>,
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
            .map_err(|e| fmt_err(path, e))?;
    write_atomic(path, &bytes)
}

/// Saves the model's parameters with `meta`.
pub fn save_model(
    path: &Path,
    model: &Model,
    meta: &CheckpointMeta,
) -> Result<(), CheckpointError> {
    let tensors = model
        .named_vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().clone()))
        .collect();
    write(
        path,
        tensors,
        base_metadata(meta).map_err(|e| fmt_err(path, e))?,
    )
}

/// Saves everything needed to resume: parameters, Adam moments, best-epoch
/// parameters and progress.
pub fn save_trainer(
    path: &Path,
    trainer: &Trainer,
    meta: &CheckpointMeta,
) -> Result<(), CheckpointError> {
    let vars = trainer.model.named_vars();
    let mut tensors: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    let (m, v) = trainer.adam.moments();
    for (i, (n, _)) in vars.iter().enumerate() {
        tensors.push((format!("adam.m.{n}"), m[i].clone()));
        tensors.push((format!("adam.v.{n}"), v[i].clone()));
        if let Some(best) = &trainer.best {
            tensors.push((format!("best.{n}"), best[i].clone()));
        }
    }
    let mut md = base_metadata(meta).map_err(|e| fmt_err(path, e))?;
    md.insert(
        "progress".into(),
        serde_json::to_string(&trainer.progress).map_err(|e| fmt_err(path, e))?,
    );
    md.insert("adam_step".into(), trainer.adam.step.to_string());
    write(path, tensors, md)
}

/// A checkpoint read from disk.
pub struct Loaded {
    /// The model, on the requested device.
    pub model: Model,
    /// Its metadata.
    pub meta: CheckpointMeta,
    /// Every tensor in the file (including optimizer state, if any).
    pub tensors: HashMap<String, Tensor>,
    /// The raw metadata strings.
    pub raw: HashMap<String, String>,
}

fn parse_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    raw: &HashMap<String, String>,
    key: &str,
) -> Result<T, CheckpointError> {
    let s = raw
        .get(key)
        .ok_or_else(|| fmt_err(path, format!("metadata key {key:?} missing")))?;
    serde_json::from_str(s).map_err(|e| fmt_err(path, format!("metadata {key:?}: {e}")))
}

/// Reads a checkpoint written by [`save_model`] or [`save_trainer`].
pub fn load(path: &Path, device: &Device) -> Result<Loaded, CheckpointError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    load_bytes(path, &bytes, device)
}

/// Reads a checkpoint from the bytes of its file; `path` only names the file in
/// errors. Every input gives a checkpoint whose tensors fit its architecture or a
/// [`CheckpointError`], never a panic.
pub fn load_bytes(path: &Path, bytes: &[u8], device: &Device) -> Result<Loaded, CheckpointError> {
    let (_, header) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| fmt_err(path, e))?;
    let raw = header.metadata().clone().unwrap_or_default();
    match raw.get("format") {
        Some(f) if f == FORMAT => {}
        other => {
            return Err(fmt_err(
                path,
                format!("format {other:?}, expected {FORMAT:?}"),
            ))
        }
    }
    let config: ModelConfig = parse_json(path, &raw, "architecture")?;
    let meta = CheckpointMeta {
        init: parse_json(path, &raw, "init")?,
        data: parse_json(path, &raw, "data")?,
        train: parse_json(path, &raw, "train")?,
        epoch: raw
            .get("epoch")
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| fmt_err(path, "metadata \"epoch\" missing or not a number"))?,
        metrics: parse_json(path, &raw, "metrics")?,
        config: config.clone(),
    };
    let tensors =
        candle_core::safetensors::load_buffer(bytes, device).map_err(|e| fmt_err(path, e))?;
    let model =
        Model::from_tensors(config, &tensors, device).map_err(|source| CheckpointError::Model {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Loaded {
        model,
        meta,
        tensors,
        raw,
    })
}

/// Reads a resume file into a trainer that continues where it stopped. The
/// number of epochs may be raised with `epochs`.
pub fn load_trainer(
    path: &Path,
    device: &Device,
    epochs: Option<usize>,
) -> Result<(Trainer, CheckpointMeta), CheckpointError> {
    let loaded = load(path, device)?;
    let progress: Progress = parse_json(path, &loaded.raw, "progress")?;
    let step: u64 = loaded
        .raw
        .get("adam_step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| fmt_err(path, "not a resume file (no optimizer state)"))?;
    let mut cfg = loaded.meta.train.clone();
    let raised = epochs.is_some_and(|e| e > cfg.epochs);
    if let Some(e) = epochs {
        cfg.epochs = e;
    }
    let vars = loaded.model.named_vars();
    // Every companion tensor (Adam moments, best-epoch parameters) must have its
    // parameter's shape and type. Checked here, when the run resumes: a wrong best.*
    // tensor would otherwise surface only when the finished run restores its best
    // epoch, after all the epochs it trained.
    let companions = |prefix: &str| {
        vars.iter()
            .map(|(n, var)| {
                let key = format!("{prefix}.{n}");
                let t = loaded
                    .tensors
                    .get(&key)
                    .ok_or_else(|| fmt_err(path, format!("tensor {key} missing")))?;
                if t.dims() != var.dims() || t.dtype() != var.dtype() {
                    return Err(fmt_err(
                        path,
                        format!(
                            "tensor {key} is {:?} {:?}, expected {:?} {:?} like parameter {n}",
                            t.dtype(),
                            t.dims(),
                            var.dtype(),
                            var.dims()
                        ),
                    ));
                }
                Ok(t.clone())
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let m = companions("adam.m")?;
    let v = companions("adam.v")?;
    let has_best = loaded.tensors.keys().any(|k| k.starts_with("best."));
    let best = if has_best {
        Some(companions("best")?)
    } else {
        None
    };
    let mut trainer = Trainer::new(loaded.model, cfg).map_err(|e| fmt_err(path, e))?;
    trainer
        .adam
        .set_moments(m, v, step)
        .map_err(|e| fmt_err(path, e))?;
    trainer.progress = progress;
    // A raised epoch budget lets an early-stopped run continue; anything else keeps
    // the run's own verdict.
    if raised {
        trainer.progress.stopped_early = false;
    }
    trainer.best = best;
    Ok((trainer, loaded.meta))
}
