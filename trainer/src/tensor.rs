//! Image sets as candle tensors: the one place the trainer turns a
//! [`tinyvae_datasets::Dataset`] (raw `u8` pixels) into floats. Also the f32 elements
//! of CPU storage, which the trainer's custom ops (`model::nll_op`, `train::adam`) read
//! and write.

use candle_core::{CpuStorage, Device, Layout, Tensor};
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

/// The f32 elements of a contiguous CPU tensor; `what` names it in the error.
pub(crate) fn cpu_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&data[start..end]),
        _ => candle_core::bail!("{what}: expected a contiguous f32 tensor"),
    }
}

/// [`cpu_f32`], to write.
pub(crate) fn cpu_f32_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<&'a mut [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&mut data[start..end]),
        _ => candle_core::bail!("{what}: expected a contiguous f32 tensor"),
    }
}
