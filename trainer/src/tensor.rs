//! Image sets as candle tensors: the one place the trainer turns a
//! [`tinyvae_datasets::Dataset`] (raw `u8` pixels) into floats.

use candle_core::{Device, Tensor};
use tinyvae_datasets::Dataset;

/// A dataset as an `(n, width*height)` f32 tensor in `[0, 1]` (`byte / 255`).
pub trait ToTensor {
    /// The tensor on `device`.
    fn to_tensor(&self, device: &Device) -> candle_core::Result<Tensor>;
}

impl ToTensor for Dataset {
    fn to_tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_vec(self.to_unit_f32(), (self.len(), self.image_len()), device)
    }
}
