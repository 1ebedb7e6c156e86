//! The reconstruction term, `-log p(x | logits)` summed per image, as one candle op with
//! its own backward pass: on the CPU (evaluation, and training with the candle engine)
//! and, with the `cuda` feature, on NVIDIA GPUs (one kernel each way, see
//! [`crate::cuda`]).
//!
//! Composed from candle ops, the loss and its backward pass are ten to twenty
//! element-wise passes over the `(batch, pixels)` logits, each allocating a fresh
//! tensor (and, on a GPU, launching a kernel). Here each is one pass, with the
//! per-pixel arithmetic of the CPU training step ([`bce_with_logits`]). `tests` below
//! compare both likelihoods with the composed ops.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::Likelihood;
use crate::tensor::cpu_f32;
use crate::train::cpu::math::{bce_with_logits, softplus_neg_abs_and_sigmoid};

/// `(rows, cols)` of the logits, after checking that the targets have the same shape.
fn rows_cols(logits: &Layout, target: &Layout) -> candle_core::Result<(usize, usize)> {
    let (rows, cols) = logits.shape().dims2()?;
    if target.shape().dims2()? != (rows, cols) {
        candle_core::bail!(
            "nll: logits {rows}x{cols} and targets {:?} differ",
            target.shape()
        );
    }
    Ok((rows, cols))
}

/// One pixel's negative log-likelihood and its derivative with respect to the logit.
/// Bernoulli: `max(l, 0) - x l + ln(1 + e^-|l|)`, derivative `sigmoid(l) - x`.
/// Gaussian: `(sigmoid(l) - x)²` (variance 1/2, constant left out), derivative
/// `2 (s - x) s (1 - s)`.
#[inline(always)]
fn pixel_nll(likelihood: Likelihood, l: f32, x: f32) -> (f32, f32) {
    match likelihood {
        Likelihood::Bernoulli => bce_with_logits(l, x),
        Likelihood::Gaussian => {
            let s = softplus_neg_abs_and_sigmoid(l).1;
            let d = s - x;
            (d * d, 2.0 * d * s * (1.0 - s))
        }
    }
}

/// The reconstruction NLL per row: `(B, D), (B, D) -> (B,)`. Its gradient with respect
/// to the logits is [`RowNllGrad`].
pub struct RowNll(pub Likelihood);

impl CustomOp2 for RowNll {
    fn name(&self) -> &'static str {
        "row-nll"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_layout: &Layout,
        target: &CpuStorage,
        target_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, cols) = rows_cols(logits_layout, target_layout)?;
        let logits = cpu_f32(logits, logits_layout, "nll logits")?;
        let target = cpu_f32(target, target_layout, "nll targets")?;
        let sums = logits
            .chunks_exact(cols.max(1))
            .zip(target.chunks_exact(cols.max(1)))
            .map(|(l, x)| {
                l.iter()
                    .zip(x)
                    .map(|(&l, &x)| pixel_nll(self.0, l, x).0)
                    .sum::<f32>()
            })
            .collect();
        Ok((CpuStorage::F32(sums), Shape::from(rows)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        logits: &candle_core::CudaStorage,
        logits_layout: &Layout,
        target: &candle_core::CudaStorage,
        target_layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let dims = rows_cols(logits_layout, target_layout)?;
        crate::cuda::row_nll(
            (logits, logits_layout),
            (target, target_layout),
            dims,
            self.0 == Likelihood::Gaussian,
        )
    }

    fn bwd(
        &self,
        logits: &Tensor,
        target: &Tensor,
        _sums: &Tensor,
        grad_sums: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_logits =
            logits.apply_op3_no_bwd(target, &grad_sums.contiguous()?, &RowNllGrad(self.0))?;
        Ok((Some(grad_logits), None))
    }
}

/// The gradient of [`RowNll`] with respect to the logits: each pixel's derivative
/// times its row's incoming gradient.
pub struct RowNllGrad(pub Likelihood);

impl CustomOp3 for RowNllGrad {
    fn name(&self) -> &'static str {
        "row-nll-grad"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_layout: &Layout,
        target: &CpuStorage,
        target_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let shape = logits_layout.shape().clone();
        let (_, cols) = rows_cols(logits_layout, target_layout)?;
        let logits = cpu_f32(logits, logits_layout, "nll logits")?;
        let target = cpu_f32(target, target_layout, "nll targets")?;
        let grad = cpu_f32(grad, grad_layout, "nll row gradient")?;
        let mut out = Vec::with_capacity(logits.len());
        for ((l, x), &g) in logits
            .chunks_exact(cols.max(1))
            .zip(target.chunks_exact(cols.max(1)))
            .zip(grad)
        {
            out.extend(
                l.iter()
                    .zip(x)
                    .map(|(&l, &x)| pixel_nll(self.0, l, x).1 * g),
            );
        }
        Ok((CpuStorage::F32(out), shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        logits: &candle_core::CudaStorage,
        logits_layout: &Layout,
        target: &candle_core::CudaStorage,
        target_layout: &Layout,
        grad: &candle_core::CudaStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let dims = rows_cols(logits_layout, target_layout)?;
        if grad_layout.shape().elem_count() != dims.0 {
            candle_core::bail!(
                "nll gradient: {:?} for {} rows",
                grad_layout.shape(),
                dims.0
            );
        }
        crate::cuda::row_nll_grad(
            (logits, logits_layout),
            (target, target_layout),
            (grad, grad_layout),
            dims,
            self.0 == Likelihood::Gaussian,
        )
    }
}

/// Tests shared with the GPU's: the composed ops each likelihood replaces, and the
/// largest difference between two tensors.
#[cfg(test)]
pub(crate) mod reference {
    use candle_core::{Tensor, D};

    use crate::model::Likelihood;

    /// The reconstruction NLL per row from candle's own ops.
    pub fn composed(l: &Tensor, x: &Tensor, likelihood: Likelihood) -> candle_core::Result<Tensor> {
        match likelihood {
            Likelihood::Bernoulli => {
                ((l.relu()? + (l.abs()?.neg()?.exp()? + 1.0)?.log()?)? - (x * l)?)?.sum(D::Minus1)
            }
            Likelihood::Gaussian => (candle_nn::ops::sigmoid(l)? - x)?.sqr()?.sum(D::Minus1),
        }
    }

    pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .expect("same shapes")
    }

    /// The op and its gradient against the composed ops on `device`.
    pub fn check(device: &candle_core::Device) -> candle_core::Result<()> {
        for likelihood in [Likelihood::Bernoulli, Likelihood::Gaussian] {
            let logits =
                candle_core::Var::from_tensor(&Tensor::randn(0f32, 4.0, (5, 37), device)?)?;
            let target = Tensor::rand(0f32, 1.0, (5, 37), device)?;
            let l = logits.as_tensor();
            let composed = composed(l, &target, likelihood)?;
            let fused = l.apply_op2(&target, super::RowNll(likelihood))?;
            let d = max_diff(&composed, &fused);
            assert!(d < 1e-4, "{likelihood:?}: losses differ by {d}");

            let weights = Tensor::rand(0f32, 1.0, 5, device)?;
            let g_composed = (composed * &weights)?.sum_all()?.backward()?;
            let g_fused = (fused * &weights)?.sum_all()?.backward()?;
            let (a, b) = (
                g_composed.get(l).expect("gradient"),
                g_fused.get(l).expect("gradient"),
            );
            let d = max_diff(a, b);
            assert!(d < 1e-6, "{likelihood:?}: gradients differ by {d}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    #[test]
    fn each_likelihood_and_its_gradient_match_the_composed_ops() -> candle_core::Result<()> {
        super::reference::check(&Device::Cpu)
    }
}
