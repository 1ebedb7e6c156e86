//! Finding the device model image in a model file, to compare it with what a device
//! reports or to predict the device on the host.

use std::path::Path;

use tinyvae_shared::model::{Model, DEVICE_IMAGE_TENSOR, MAGIC};

use super::error::DataError;

/// Reads the model image from `path`: either an exported safetensors file (the `u8`
/// tensor [`DEVICE_IMAGE_TENSOR`]) or a bare image starting with `TVAE`. The image is
/// validated with [`Model::parse`].
pub fn load_model_image(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Read {
        path: path.to_owned(),
        source,
    })?;
    let bad = |reason: String| DataError::BadModel {
        path: path.to_owned(),
        reason,
    };
    let image = if bytes.starts_with(&MAGIC) {
        bytes
    } else {
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
        view.data().to_vec()
    };
    Model::parse(&image).map_err(|e| bad(e.to_string()))?;
    Ok(image)
}
