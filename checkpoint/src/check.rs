//! The validator: [`check`] for any checkpoint, [`check_resume`] for resume files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{tensor::Metadata, Dtype, SafeTensors};

use crate::{CheckpointMeta, ModelConfig, Progress, FORMAT};

/// Why a file is not a usable checkpoint; each error names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The file is not a tinyvae checkpoint, or is damaged: not safetensors, the wrong
    /// `format`, missing or malformed metadata, or a resume file's missing or
    /// misshapen companion tensor.
    #[error("{}: not a usable tinyvae checkpoint: {detail}", path.display())]
    Format {
        /// The checkpoint path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The stored architecture is unusable (see [`ModelConfig::validate`]).
    #[error("{}: bad model configuration: {detail}", path.display())]
    Config {
        /// The checkpoint path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A parameter tensor of the architecture is missing or has the wrong shape or type.
    #[error("{}: tensor {name}: {detail}", path.display())]
    Tensor {
        /// The checkpoint path.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// What is wrong.
        detail: String,
    },
}

/// A file [`check`] accepted.
#[derive(Debug)]
pub struct Checked<'a> {
    /// Its metadata.
    pub meta: CheckpointMeta,
    /// The raw metadata strings.
    pub raw: HashMap<String, String>,
    /// Every tensor in the file (parameters, and optimizer state if any), as views of
    /// its bytes; each parameter of `meta.config` is F32 with its shape.
    pub tensors: SafeTensors<'a>,
}

/// What [`check_resume`] reads besides [`Checked`].
#[derive(Clone, Debug, PartialEq)]
pub struct ResumeState {
    /// Progress through the run.
    pub progress: Progress,
    /// Adam's step count.
    pub adam_step: u64,
    /// Whether the file holds best-epoch parameters (`best.<name>`).
    pub has_best: bool,
}

fn format_err(path: &Path, detail: impl ToString) -> CheckError {
    CheckError::Format {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    raw: &HashMap<String, String>,
    key: &str,
) -> Result<T, CheckError> {
    let s = raw
        .get(key)
        .ok_or_else(|| format_err(path, format!("metadata key {key:?} missing")))?;
    serde_json::from_str(s).map_err(|e| format_err(path, format!("metadata {key:?}: {e}")))
}

/// Checks the bytes of a checkpoint file; `path` only names the file in errors. Accepts
/// exactly the files whose safetensors header and data layout are sound, whose `format`
/// is [`FORMAT`], whose metadata parses (`architecture`, `init`, `data`, `train`,
/// `epoch`, `metrics`) into a valid architecture, and which hold every parameter of
/// that architecture ([`ModelConfig::parameters`]) as F32 in its shape. Other tensors
/// are not looked at. Never panics.
pub fn check<'a>(path: &Path, bytes: &'a [u8]) -> Result<Checked<'a>, CheckError> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format_err(path, e))?;
    let raw = header.metadata().clone().unwrap_or_default();
    match raw.get("format") {
        Some(f) if f == FORMAT => {}
        other => {
            return Err(format_err(
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
            .ok_or_else(|| format_err(path, "metadata \"epoch\" missing or not a number"))?,
        metrics: parse_json(path, &raw, "metrics")?,
        config,
    };
    meta.config.validate().map_err(|e| CheckError::Config {
        path: path.to_path_buf(),
        detail: e.0,
    })?;
    check_parameters(path, &header, &meta.config)?;
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| format_err(path, e))?;
    Ok(Checked { meta, raw, tensors })
}

/// Every parameter of `config` is in `header`, F32, in its shape.
fn check_parameters(
    path: &Path,
    header: &Metadata,
    config: &ModelConfig,
) -> Result<(), CheckError> {
    for (name, shape) in config.parameters() {
        let tensor_err = |detail: String| CheckError::Tensor {
            path: path.to_path_buf(),
            name: name.clone(),
            detail,
        };
        let info = header
            .info(&name)
            .ok_or_else(|| tensor_err("missing".into()))?;
        if info.shape != shape {
            return Err(tensor_err(format!(
                "shape {:?}, expected {shape:?}",
                info.shape
            )));
        }
        if info.dtype != Dtype::F32 {
            return Err(tensor_err(format!(
                "dtype {:?}, expected {:?}",
                info.dtype,
                Dtype::F32
            )));
        }
    }
    Ok(())
}

/// Checks a resume file: what [`check`] checks, then the `progress` and `adam_step`
/// metadata, then that every parameter has its Adam moments (`adam.m.<name>`,
/// `adam.v.<name>`) and, when the file holds any `best.*` tensor, its best-epoch value
/// (`best.<name>`), each F32 in the parameter's shape. Never panics.
pub fn check_resume<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<(Checked<'a>, ResumeState), CheckError> {
    let checked = check(path, bytes)?;
    let progress: Progress = parse_json(path, &checked.raw, "progress")?;
    let adam_step: u64 = checked
        .raw
        .get("adam_step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format_err(path, "not a resume file (no optimizer state)"))?;
    let has_best = checked
        .tensors
        .names()
        .iter()
        .any(|k| k.starts_with("best."));
    let parameters = checked.meta.config.parameters();
    let prefixes: &[&str] = if has_best {
        &["adam.m", "adam.v", "best"]
    } else {
        &["adam.m", "adam.v"]
    };
    // Every companion tensor must have its parameter's shape and type. Checked when the
    // run resumes: a wrong best.* tensor would otherwise surface only when the finished
    // run restores its best epoch, after all the epochs it trained.
    for prefix in prefixes {
        for (name, shape) in &parameters {
            let key = format!("{prefix}.{name}");
            let t = checked
                .tensors
                .tensor(&key)
                .map_err(|_| format_err(path, format!("tensor {key} missing")))?;
            if t.shape() != shape.as_slice() || t.dtype() != Dtype::F32 {
                return Err(format_err(
                    path,
                    format!(
                        "tensor {key} is {:?} {:?}, expected {:?} {:?} like parameter {name}",
                        t.dtype(),
                        t.shape(),
                        Dtype::F32,
                        shape
                    ),
                ));
            }
        }
    }
    Ok((
        checked,
        ResumeState {
            progress,
            adam_step,
            has_best,
        },
    ))
}
