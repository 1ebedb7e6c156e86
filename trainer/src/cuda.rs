//! Training kernels for NVIDIA GPUs (the `cuda` feature), and the device they run on.
//!
//! A training step of these small networks is bound by kernel launches, not arithmetic:
//! candle composes the reconstruction loss from about ten element-wise ops (each a
//! launch and an allocation), its gradient from more, and Adam from about thirteen per
//! parameter tensor. Here the loss is one kernel, its gradient one, and Adam three per
//! tensor, each doing the arithmetic of the CPU's versions (`model::nll_op`,
//! `train::adam`), whose CPU implementations the tests compare with the composed ops.
//!
//! The kernels are CUDA C (`trainer/kernels/training.cu`), compiled to PTX by the
//! build script with the same `nvcc` candle's own kernels need, so a mistake in them
//! stops the build, not a training run, and nothing is compiled at run time; the
//! driver turns the PTX into the GPU's own code when the module is loaded.
//!
//! Launching a kernel, and allocating memory its every element will overwrite, are
//! `unsafe` in cudarc (it cannot check a kernel's signature or what it writes): this
//! module allows `unsafe` blocks, each saying why its call is sound.
#![allow(unsafe_code)]

use std::sync::Arc;

use candle_core::cuda_backend::cudarc::driver::{
    CudaFunction, CudaStream, CudaView, CudaViewMut, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDevice, CudaStorage, WrapErr};
use candle_core::{Device, Layout, Result, Shape};

/// The name the compiled module is cached under in candle's device.
const MODULE: &str = "tinyvae_training";

/// The kernels (`trainer/kernels/training.cu`), compiled to PTX by the build script.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/training.ptx"));

/// Opens CUDA device `ordinal` for training, with a stream of its own.
///
/// The device's work goes to one stream created for it (not the per-thread default
/// stream), which CUDA graphs can capture (`train::cuda_graph`). cudarc gives every
/// allocation two CUDA events (created, and destroyed when it is freed) so that work on
/// several streams can be ordered; a training step allocates about a hundred tensors,
/// so that is hundreds of driver calls per step. All of this device's tensors live on
/// its one stream, used from one thread, so stream order alone keeps every use after
/// its write: the events are turned off.
pub fn open(ordinal: usize) -> Result<Device> {
    let cuda = CudaDevice::new_with_stream(ordinal)?;
    // SAFETY: see above; every tensor of this device lives on its single stream.
    unsafe { cuda.disable_event_tracking() };
    Ok(Device::Cuda(cuda))
}

/// Kernel `name` and the device's stream, to launch it on.
fn kernel(device: &CudaDevice, name: &str) -> Result<(Arc<CudaStream>, CudaFunction)> {
    let func = device
        .get_or_load_custom_func(name, MODULE, PTX)?
        .into_cuda_function();
    Ok((device.cuda_stream(), func))
}

fn offsets(layout: &Layout, what: &str) -> Result<(usize, usize)> {
    layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{what}: expected a contiguous tensor")))
}

/// The elements of a contiguous f32 tensor.
fn view<'a>(s: &'a CudaStorage, layout: &Layout, what: &str) -> Result<CudaView<'a, f32>> {
    let (start, end) = offsets(layout, what)?;
    Ok(s.as_cuda_slice::<f32>()?.slice(start..end))
}

/// The elements of a contiguous f32 tensor, to write.
fn view_mut<'a>(
    s: &'a mut CudaStorage,
    layout: &Layout,
    what: &str,
) -> Result<CudaViewMut<'a, f32>> {
    let (start, end) = offsets(layout, what)?;
    Ok(s.as_cuda_slice_mut::<f32>()?.slice_mut(start..end))
}

/// Elements as the kernels' `unsigned int`.
fn count(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| {
        candle_core::Error::Msg(format!(
            "{what}: {n} elements exceed the kernels' u32 index"
        ))
    })
}

/// A grid-stride launch over `n` elements (at most 4,096 blocks of 256 threads).
fn elementwise(n: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(256).clamp(1, 4096), 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `(rows, cols), (rows, cols) -> (rows,)`: the reconstruction NLL summed per row.
pub fn row_nll(
    logits: (&CudaStorage, &Layout),
    target: (&CudaStorage, &Layout),
    (rows, cols): (usize, usize),
    gaussian: bool,
) -> Result<(CudaStorage, Shape)> {
    let device = logits.0.device.clone();
    let l = view(logits.0, logits.1, "nll logits")?;
    let x = view(target.0, target.1, "nll targets")?;
    let out = device.alloc_zeros::<f32>(rows)?;
    if rows > 0 {
        let (stream, func) = kernel(&device, "row_nll")?;
        let (cols, gaussian) = (count(cols, "nll row")?, i32::from(gaussian));
        let mut launch = stream.launch_builder(&func);
        launch.arg(&l).arg(&x).arg(&out).arg(&cols).arg(&gaussian);
        let config = LaunchConfig {
            grid_dim: (count(rows, "nll rows")?, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the arguments match the kernel's signature; `out` has `rows` elements
        // and `l`, `x` have `rows * cols` (checked by the caller).
        unsafe { launch.launch(config) }.w()?;
    }
    Ok((CudaStorage::wrap_cuda_slice(out, device), Shape::from(rows)))
}

/// The gradient of [`row_nll`] with respect to the logits, given the rows' incoming
/// gradients: `(rows, cols)`.
pub fn row_nll_grad(
    logits: (&CudaStorage, &Layout),
    target: (&CudaStorage, &Layout),
    row_grad: (&CudaStorage, &Layout),
    (rows, cols): (usize, usize),
    gaussian: bool,
) -> Result<(CudaStorage, Shape)> {
    let device = logits.0.device.clone();
    let l = view(logits.0, logits.1, "nll logits")?;
    let x = view(target.0, target.1, "nll targets")?;
    let g = view(row_grad.0, row_grad.1, "nll row gradient")?;
    let n = count(rows * cols, "nll gradient")?;
    // SAFETY: every element is written by the kernel below.
    let out = unsafe { device.alloc::<f32>(rows * cols) }?;
    if n > 0 {
        let (stream, func) = kernel(&device, "row_nll_grad")?;
        let (cols, gaussian) = (count(cols, "nll row")?, i32::from(gaussian));
        let mut launch = stream.launch_builder(&func);
        launch
            .arg(&l)
            .arg(&x)
            .arg(&g)
            .arg(&out)
            .arg(&cols)
            .arg(&n)
            .arg(&gaussian);
        // SAFETY: the arguments match the kernel's signature and lengths.
        unsafe { launch.launch(elementwise(n)) }.w()?;
    }
    Ok((
        CudaStorage::wrap_cuda_slice(out, device),
        Shape::from((rows, cols)),
    ))
}

/// Adam's moving average in place: `m = keep m + take g` (of `g²` when `square`).
pub fn adam_moment(
    m: (&mut CudaStorage, &Layout),
    g: (&CudaStorage, &Layout),
    keep: f32,
    take: f32,
    square: bool,
) -> Result<()> {
    let device = m.0.device.clone();
    let n = m.1.shape().elem_count();
    if g.1.shape().elem_count() != n {
        candle_core::bail!(
            "adam: moment {:?} and gradient {:?} differ",
            m.1.shape(),
            g.1.shape()
        );
    }
    let gv = view(g.0, g.1, "adam gradient")?;
    let mut mv = view_mut(m.0, m.1, "adam moment")?;
    let n = count(n, "adam moment")?;
    if n == 0 {
        return Ok(());
    }
    let (stream, func) = kernel(&device, "adam_moment")?;
    let square = i32::from(square);
    let mut launch = stream.launch_builder(&func);
    launch
        .arg(&mut mv)
        .arg(&gv)
        .arg(&n)
        .arg(&keep)
        .arg(&take)
        .arg(&square);
    // SAFETY: the arguments match the kernel's signature; both views hold `n` elements.
    unsafe { launch.launch(elementwise(n)) }.w()?;
    Ok(())
}

/// Adam's parameter update in place: `p -= m / (sqrt(v) root + eps) step`, with
/// `schedule = [step, root]` on the device.
pub fn adam_param(
    p: (&mut CudaStorage, &Layout),
    m: (&CudaStorage, &Layout),
    v: (&CudaStorage, &Layout),
    schedule: (&CudaStorage, &Layout),
    eps: f32,
) -> Result<()> {
    let device = p.0.device.clone();
    let n = p.1.shape().elem_count();
    if m.1.shape().elem_count() != n || v.1.shape().elem_count() != n {
        candle_core::bail!("adam: parameter {:?} and its moments differ", p.1.shape());
    }
    if schedule.1.shape().elem_count() != 2 {
        candle_core::bail!(
            "adam: the schedule holds step size and root scale, got {:?}",
            schedule.1.shape()
        );
    }
    let mv = view(m.0, m.1, "adam first moment")?;
    let vv = view(v.0, v.1, "adam second moment")?;
    let sv = view(schedule.0, schedule.1, "adam schedule")?;
    let mut pv = view_mut(p.0, p.1, "adam parameter")?;
    let n = count(n, "adam parameter")?;
    if n == 0 {
        return Ok(());
    }
    let (stream, func) = kernel(&device, "adam_param")?;
    let mut launch = stream.launch_builder(&func);
    launch
        .arg(&mut pv)
        .arg(&mv)
        .arg(&vv)
        .arg(&n)
        .arg(&sv)
        .arg(&eps);
    // SAFETY: the arguments match the kernel's signature; the views hold `n` elements
    // and the schedule two.
    unsafe { launch.launch(elementwise(n)) }.w()?;
    Ok(())
}

/// Host numbers copied into an existing GPU tensor, in place: the tensor keeps its
/// memory, so a captured CUDA graph that reads it sees the new numbers when replayed.
pub struct Upload<'a, T>(pub &'a [T]);

impl<T> candle_core::InplaceOp1 for Upload<'_, T>
where
    T: candle_core::cuda_backend::CudaDType + candle_core::cuda_backend::cudarc::driver::DeviceRepr,
{
    fn name(&self) -> &'static str {
        "upload"
    }

    fn cpu_fwd(&self, _: &mut candle_core::CpuStorage, _: &Layout) -> Result<()> {
        candle_core::bail!("upload: for GPU tensors only")
    }

    fn cuda_fwd(&self, storage: &mut CudaStorage, layout: &Layout) -> Result<()> {
        let (start, end) = offsets(layout, "upload")?;
        if end - start != self.0.len() {
            candle_core::bail!(
                "upload: {} numbers into a tensor of {}",
                self.0.len(),
                end - start
            );
        }
        let stream = storage.device.cuda_stream();
        let mut dst = storage.as_cuda_slice_mut::<T>()?.slice_mut(start..end);
        // Straight to the stream, not through candle's copy cache (which serves capture).
        stream.memcpy_htod(self.0, &mut dst).w()
    }
}

/// The kernels against the CPU's arithmetic and candle's composed ops, on GPU 0. These
/// run only in a `cuda` build, on a machine with an NVIDIA GPU (`scripts/gpu-bench`
/// runs them there).
#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use crate::model::Likelihood;

    fn gpu() -> candle_core::Result<Device> {
        super::open(0)
    }

    #[test]
    fn the_nll_kernels_match_the_composed_ops() -> candle_core::Result<()> {
        crate::model::nll_op::reference::check(&gpu()?)
    }

    #[test]
    fn the_nll_kernels_match_the_cpu_op_on_wide_and_odd_rows() -> candle_core::Result<()> {
        let dev = gpu()?;
        for likelihood in [Likelihood::Bernoulli, Likelihood::Gaussian] {
            // 784 columns (3 rounds of 256 threads and a remainder), 1 column, 0 rows.
            for (rows, cols) in [(129, 784), (3, 1), (0, 5)] {
                let l = Tensor::randn(0f32, 5.0, (rows, cols), &Device::Cpu)?;
                let x = Tensor::rand(0f32, 1.0, (rows, cols), &Device::Cpu)?;
                let op = crate::model::nll_op::RowNll(likelihood);
                let cpu = l.apply_op2_no_bwd(&x, &op)?;
                let gpu = l
                    .to_device(&dev)?
                    .apply_op2_no_bwd(&x.to_device(&dev)?, &op)?
                    .to_device(&Device::Cpu)?;
                assert_eq!(gpu.dims(), [rows]);
                if rows > 0 {
                    let d = crate::model::nll_op::reference::max_diff(&cpu, &gpu);
                    let scale = cpu.abs()?.max(0)?.to_scalar::<f32>()?.max(1.0);
                    assert!(d / scale < 1e-5, "{likelihood:?} {rows}x{cols}: {d}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn the_adam_kernels_match_the_composed_ops() -> candle_core::Result<()> {
        crate::train::adam::tests::check_in_place_update(&gpu()?)
    }
}
