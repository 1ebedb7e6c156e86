//! Exported device model files: a safetensors file whose `u8` tensor
//! [`DEVICE_IMAGE_TENSOR`] holds the model image the firmware compiles into flash, with
//! string metadata (architecture, quantization scheme, threshold, source checkpoint,
//! quantization report). A bare image starting with `TVAE` is accepted too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tinyvae_shared::model::{Model, DEVICE_IMAGE_TENSOR, MAGIC};

/// Value of the `format` metadata key of exported device models.
pub const FORMAT: &str = "tinyvae-device-1";

/// Errors reading or writing a device model file, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum DeviceModelError {
    /// Reading failed.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a usable device model.
    #[error("{}: not a usable tinyvae device model: {reason}", path.display())]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] crate::checkpoint::CheckpointError),
}

/// A device model read from disk.
#[derive(Debug, Clone)]
pub struct DeviceModelFile {
    /// The validated model image.
    pub image: Vec<u8>,
    /// The file's metadata (empty for a bare image).
    pub metadata: HashMap<String, String>,
}

impl DeviceModelFile {
    /// The parsed model (cannot fail: [`load`] validated the image).
    pub fn model(&self) -> Result<Model<'_>, tinyvae_shared::model::ModelError> {
        Model::parse(&self.image)
    }
}

/// Reads and validates the model image in `path`.
pub fn load(path: &Path) -> Result<DeviceModelFile, DeviceModelError> {
    let bytes = std::fs::read(path).map_err(|source| DeviceModelError::Read {
        path: path.to_owned(),
        source,
    })?;
    let bad = |reason: String| DeviceModelError::Bad {
        path: path.to_owned(),
        reason,
    };
    let (image, metadata) = if bytes.starts_with(&MAGIC) {
        (bytes, HashMap::new())
    } else {
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let tensors = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let view = tensors
            .tensor(DEVICE_IMAGE_TENSOR)
            .map_err(|e| bad(format!("no `{DEVICE_IMAGE_TENSOR}` tensor: {e}")))?;
        if view.dtype() != safetensors::Dtype::U8 {
            return Err(bad(format!(
                "`{DEVICE_IMAGE_TENSOR}` is {:?}, expected U8",
                view.dtype()
            )));
        }
        (view.data().to_vec(), metadata)
    };
    Model::parse(&image).map_err(|e| bad(e.to_string()))?;
    Ok(DeviceModelFile { image, metadata })
}

/// Writes `image` with `metadata` to `path` atomically.
pub fn save(
    path: &Path,
    image: &[u8],
    metadata: HashMap<String, String>,
) -> Result<(), DeviceModelError> {
    let bad = |reason: String| DeviceModelError::Bad {
        path: path.to_owned(),
        reason,
    };
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![image.len()], image)
            .map_err(|e| bad(e.to_string()))?;
    let bytes = safetensors::serialize([(DEVICE_IMAGE_TENSOR, view)], Some(metadata))
        .map_err(|e| bad(e.to_string()))?;
    crate::checkpoint::write_atomic(path, &bytes)?;
    Ok(())
}
