//! Fused CPU kernels for the two places where candle's one-op-at-a-time execution
//! costs the most in training: the Adam update and the Bernoulli reconstruction loss.
//!
//! Composed from candle ops, Adam runs about a dozen element-wise passes per parameter
//! tensor per step, and each allocates a fresh tensor. The BCE-with-logits loss and its
//! backward pass run about twenty more over the `(batch, pixels)` logits. Here each is
//! one pass with no allocation (Adam updates in place). These kernels are CPU only. On
//! other devices the callers keep the composed ops, which compute the same formulas
//! (`tests` below compare the two).

use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, InplaceOp2, InplaceOp3, Layout, Shape, Tensor,
};

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

/// The f32 data of a contiguous CPU tensor, for writing.
fn slice_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<&'a mut [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&mut data[start..end]),
        _ => candle_core::bail!("{what}: expected a contiguous f32 tensor"),
    }
}

/// Adam's moment update in place: `m = decay m + (1 - decay) g`, or with `g^2` for
/// the second moment.
pub struct MomentUpdate {
    /// `beta1` or `beta2`.
    pub decay: f64,
    /// Whether this is the second moment (of `g^2`).
    pub squared: bool,
}

impl InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(
        &self,
        moment: &mut CpuStorage,
        moment_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<()> {
        let moment = slice_mut(moment, moment_layout, "adam moment")?;
        let grad = slice(grad, grad_layout, "adam gradient")?;
        if moment.len() != grad.len() {
            candle_core::bail!(
                "adam: moment has {} values, gradient {}",
                moment.len(),
                grad.len()
            );
        }
        update_moment(moment, grad, self.decay, self.squared);
        Ok(())
    }
}

/// Adam's moment update over slices: `m = decay m + (1 - decay) g` (or `g^2`).
pub fn update_moment(moment: &mut [f32], grad: &[f32], decay: f64, squared: bool) {
    let (keep, take) = (decay as f32, (1.0 - decay) as f32);
    for (m, &g) in moment.iter_mut().zip(grad) {
        *m = ema(*m, if squared { g * g } else { g }, keep, take);
    }
}

/// One moving-average step: `m keep + x take`.
#[inline(always)]
fn ema(m: f32, x: f32, keep: f32, take: f32) -> f32 {
    m * keep + x * take
}

/// Adam's parameter update in place: `p -= step_size * m / (sqrt(v) * root_scale + eps)`,
/// where `step_size = lr / (1 - beta1^t)` and `root_scale = 1 / sqrt(1 - beta2^t)`.
pub struct ApplyUpdate {
    /// `lr / (1 - beta1^t)`.
    pub step_size: f64,
    /// `1 / sqrt(1 - beta2^t)`.
    pub root_scale: f64,
    /// Denominator epsilon.
    pub eps: f64,
}

impl ApplyUpdate {
    /// How far one parameter moves for moments `m` and `v`.
    #[inline(always)]
    fn delta(&self, m: f32, v: f32) -> f32 {
        m / (v.sqrt() * self.root_scale as f32 + self.eps as f32) * self.step_size as f32
    }

    /// Both moment updates and the parameter update in one pass over the slices (the
    /// same arithmetic as [`update_moment`] then [`ApplyUpdate::apply`]).
    pub fn step(
        &self,
        param: &mut [f32],
        grad: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        beta1: f64,
        beta2: f64,
    ) {
        let (keep1, take1) = (beta1 as f32, (1.0 - beta1) as f32);
        let (keep2, take2) = (beta2 as f32, (1.0 - beta2) as f32);
        for (((p, &g), m), v) in param
            .iter_mut()
            .zip(grad)
            .zip(m.iter_mut())
            .zip(v.iter_mut())
        {
            *m = ema(*m, g, keep1, take1);
            *v = ema(*v, g * g, keep2, take2);
            *p -= self.delta(*m, *v);
        }
    }

    /// The parameter update over slices, given updated moments.
    pub fn apply(&self, param: &mut [f32], m: &[f32], v: &[f32]) {
        for ((p, &m), &v) in param.iter_mut().zip(m).zip(v) {
            *p -= self.delta(m, v);
        }
    }
}

impl InplaceOp3 for ApplyUpdate {
    fn name(&self) -> &'static str {
        "adam-apply"
    }

    fn cpu_fwd(
        &self,
        param: &mut CpuStorage,
        param_layout: &Layout,
        m: &CpuStorage,
        m_layout: &Layout,
        v: &CpuStorage,
        v_layout: &Layout,
    ) -> candle_core::Result<()> {
        let param = slice_mut(param, param_layout, "adam parameter")?;
        let m = slice(m, m_layout, "adam first moment")?;
        let v = slice(v, v_layout, "adam second moment")?;
        if param.len() != m.len() || param.len() != v.len() {
            candle_core::bail!("adam: parameter and moments differ in size");
        }
        self.apply(param, m, v);
        Ok(())
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
                    .map(|(&l, &x)| l.max(0.0) - x * l + (-l.abs()).exp().ln_1p())
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
            out.extend(
                l.iter()
                    .zip(x)
                    .map(|(&l, &x)| (1.0 / (1.0 + (-l).exp()) - x) * g),
            );
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
