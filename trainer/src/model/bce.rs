//! Binary cross-entropy with logits as one candle op, for the places that still run
//! candle on the CPU (evaluation, and training with the candle engine).
//!
//! Composed from candle ops, the loss and its backward pass are about twenty
//! element-wise passes over the `(batch, pixels)` logits, each allocating a fresh
//! tensor. Here each is one pass, with the same per-pixel arithmetic as the CPU training
//! step ([`bce_with_logits`]). On other devices the caller keeps the composed ops,
//! which compute the same formula (`tests` below compare the two).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use crate::train::cpu::math::bce_with_logits;

/// The f32 data of a contiguous CPU tensor.
fn slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{what}: expected a contiguous f32 tensor"),
    }
}

/// Binary cross-entropy with logits, summed per row: `(B, D), (B, D) -> (B,)`, computed
/// stably as `max(l, 0) - x l + ln(1 + e^-|l|)`. Its gradient with respect to the
/// logits is `sigmoid(l) - x` times the row's incoming gradient ([`BceGrad`]).
pub struct BceWithLogits;

impl CustomOp2 for BceWithLogits {
    fn name(&self) -> &'static str {
        "bce-with-logits"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_layout: &Layout,
        target: &CpuStorage,
        target_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, cols) = logits_layout.shape().dims2()?;
        if target_layout.shape().dims2()? != (rows, cols) {
            candle_core::bail!(
                "bce: logits {rows}x{cols} and targets {:?} differ",
                target_layout.shape()
            );
        }
        let logits = slice(logits, logits_layout, "bce logits")?;
        let target = slice(target, target_layout, "bce targets")?;
        let sums = logits
            .chunks_exact(cols.max(1))
            .zip(target.chunks_exact(cols.max(1)))
            .map(|(l, x)| {
                l.iter()
                    .zip(x)
                    .map(|(&l, &x)| bce_with_logits(l, x).0)
                    .sum::<f32>()
            })
            .collect();
        Ok((CpuStorage::F32(sums), Shape::from(rows)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        target: &Tensor,
        _sums: &Tensor,
        grad_sums: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_logits = logits.apply_op3_no_bwd(target, &grad_sums.contiguous()?, &BceGrad)?;
        Ok((Some(grad_logits), None))
    }
}

/// The gradient of [`BceWithLogits`] with respect to the logits:
/// `(sigmoid(l) - x) * grad[row]`.
pub struct BceGrad;

impl CustomOp3 for BceGrad {
    fn name(&self) -> &'static str {
        "bce-with-logits-grad"
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
        let (_, cols) = shape.dims2()?;
        let logits = slice(logits, logits_layout, "bce logits")?;
        let target = slice(target, target_layout, "bce targets")?;
        let grad = slice(grad, grad_layout, "bce row gradient")?;
        let mut out = Vec::with_capacity(logits.len());
        for ((l, x), &g) in logits
            .chunks_exact(cols.max(1))
            .zip(target.chunks_exact(cols.max(1)))
            .zip(grad)
        {
            out.extend(l.iter().zip(x).map(|(&l, &x)| bce_with_logits(l, x).1 * g));
        }
        Ok((CpuStorage::F32(out), shape))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var, D};

    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .expect("same shapes")
    }

    #[test]
    fn bce_and_its_gradient_match_the_composed_ops() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let logits = Var::from_tensor(&(Tensor::randn(0f32, 4.0, (5, 37), &dev)?))?;
        let target = Tensor::rand(0f32, 1.0, (5, 37), &dev)?;
        let l = logits.as_tensor();
        let composed = ((l.relu()? + (l.abs()?.neg()?.exp()? + 1.0)?.log()?)? - (&target * l)?)?
            .sum(D::Minus1)?;
        let fused = l.apply_op2(&target, BceWithLogits)?;
        assert!(max_diff(&composed, &fused) < 1e-4);

        let weights = Tensor::rand(0f32, 1.0, 5, &dev)?;
        let g_composed = (composed * &weights)?.sum_all()?.backward()?;
        let g_fused = (fused * &weights)?.sum_all()?.backward()?;
        let (a, b) = (
            g_composed.get(l).expect("gradient"),
            g_fused.get(l).expect("gradient"),
        );
        assert!(
            max_diff(a, b) < 1e-6,
            "gradients differ by {}",
            max_diff(a, b)
        );
        Ok(())
    }
}
