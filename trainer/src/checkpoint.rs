//! Checkpoints: safetensors files with the parameters and string metadata, written
//! atomically (to `<path>.tmp`, then renamed, so a crash never leaves a half-written
//! checkpoint behind).
//!
//! What a checkpoint file is (its keys, the metadata types, the tensors it must hold)
//! is `tinyvae-checkpoint`'s: its types are re-exported here, and [`load_bytes`] and
//! [`load_trainer`] run its validator ([`tinyvae_checkpoint::check`],
//! [`tinyvae_checkpoint::check_resume`]) before they build any candle tensor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use tinyvae_checkpoint::CheckError;

use crate::model::{Model, ModelError};
use crate::train::Trainer;

pub use tinyvae_checkpoint::{CheckpointMeta, DataInfo, FORMAT};

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

impl From<CheckError> for CheckpointError {
    fn from(e: CheckError) -> Self {
        match e {
            CheckError::Format { path, detail } => CheckpointError::Format { path, detail },
            CheckError::Config { path, detail } => CheckpointError::Model {
                path,
                source: ModelError::Config(detail),
            },
            CheckError::Tensor { path, name, detail } => CheckpointError::Model {
                path,
                source: ModelError::Tensor { name, detail },
            },
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
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
    let mut bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
            .map_err(|e| fmt_err(path, e))?;
    // The same weights and metadata give the same file.
    tinyvae_shared::model_file::sort_header_keys(&mut bytes);
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
        tinyvae_checkpoint::metadata(meta).map_err(|e| fmt_err(path, e))?,
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
    let md = tinyvae_checkpoint::resume_metadata(meta, &trainer.progress, trainer.adam.step)
        .map_err(|e| fmt_err(path, e))?;
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

/// Reads a checkpoint written by [`save_model`] or [`save_trainer`].
pub fn load(path: &Path, device: &Device) -> Result<Loaded, CheckpointError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    load_bytes(path, &bytes, device)
}

/// Reads a checkpoint from the bytes of its file; `path` only names the file in
/// errors. Every input gives a checkpoint whose tensors fit its architecture or a
/// [`CheckpointError`], never a panic: the bytes pass [`tinyvae_checkpoint::check`]
/// before candle reads them.
pub fn load_bytes(path: &Path, bytes: &[u8], device: &Device) -> Result<Loaded, CheckpointError> {
    let checked = tinyvae_checkpoint::check(path, bytes)?;
    from_checked(path, bytes, checked.meta, checked.raw, device)
}

/// The candle half of loading: the tensors of a file the validator accepted.
fn from_checked(
    path: &Path,
    bytes: &[u8],
    meta: CheckpointMeta,
    raw: HashMap<String, String>,
    device: &Device,
) -> Result<Loaded, CheckpointError> {
    let tensors =
        candle_core::safetensors::load_buffer(bytes, device).map_err(|e| fmt_err(path, e))?;
    let model = Model::from_tensors(meta.config.clone(), &tensors, device).map_err(|source| {
        CheckpointError::Model {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(Loaded {
        model,
        meta,
        tensors,
        raw,
    })
}

/// Reads a resume file into a trainer that continues where it stopped. The
/// number of epochs may be raised with `epochs`. The file passes
/// [`tinyvae_checkpoint::check_resume`] first: progress, optimizer state, and every
/// Adam moment and best-epoch tensor in its parameter's shape and type, so a wrong
/// `best.*` tensor is refused now rather than when the finished run restores its best
/// epoch, after all the epochs it trained.
pub fn load_trainer(
    path: &Path,
    device: &Device,
    epochs: Option<usize>,
) -> Result<(Trainer, CheckpointMeta), CheckpointError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let (checked, state) = tinyvae_checkpoint::check_resume(path, &bytes)?;
    let loaded = from_checked(path, &bytes, checked.meta, checked.raw, device)?;
    let mut cfg = loaded.meta.train.clone();
    let raised = epochs.is_some_and(|e| e > cfg.epochs);
    if let Some(e) = epochs {
        cfg.epochs = e;
    }
    let vars = loaded.model.named_vars();
    let companions = |prefix: &str| {
        vars.iter()
            .map(|(n, _)| {
                let key = format!("{prefix}.{n}");
                loaded
                    .tensors
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| fmt_err(path, format!("tensor {key} missing")))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let m = companions("adam.m")?;
    let v = companions("adam.v")?;
    let best = if state.has_best {
        Some(companions("best")?)
    } else {
        None
    };
    let mut trainer = Trainer::new(loaded.model, cfg).map_err(|e| fmt_err(path, e))?;
    trainer
        .adam
        .set_moments(m, v, state.adam_step)
        .map_err(|e| fmt_err(path, e))?;
    trainer.progress = state.progress;
    // A raised epoch budget lets an early-stopped run continue; anything else keeps
    // the run's own verdict.
    if raised {
        trainer.progress.stopped_early = false;
    }
    trainer.best = best;
    Ok((trainer, loaded.meta))
}
