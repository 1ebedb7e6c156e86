//! Adam, written out so that its moment estimates can be saved in a checkpoint
//! and a resumed run continues exactly where it stopped (candle-nn's optimizer
//! keeps its state private). Same update as `torch.optim.Adam` without weight decay.

use candle_core::{backprop::GradStore, Tensor, Var};

/// The parameter update of one Adam step: `p -= step_size * m / (sqrt(v) * root_scale
/// + eps)`, where `step_size = lr / (1 - beta1^t)` and `root_scale = 1 / sqrt(1 - beta2^t)`.
#[derive(Clone, Copy, Debug)]
pub struct ApplyUpdate {
    /// `lr / (1 - beta1^t)`.
    pub step_size: f64,
    /// `1 / sqrt(1 - beta2^t)`.
    pub root_scale: f64,
    /// Denominator epsilon.
    pub eps: f64,
}

impl ApplyUpdate {
    /// The whole step over slices, in one pass: both moment updates, then the
    /// parameter update (the CPU training step's Adam; the same arithmetic as
    /// [`Adam::step`]'s candle ops).
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
        let (step, root, eps) = (
            self.step_size as f32,
            self.root_scale as f32,
            self.eps as f32,
        );
        for (((p, &g), m), v) in param
            .iter_mut()
            .zip(grad)
            .zip(m.iter_mut())
            .zip(v.iter_mut())
        {
            *m = *m * keep1 + g * take1;
            *v = *v * keep2 + g * g * take2;
            *p -= *m / (v.sqrt() * root + eps) * step;
        }
    }
}

/// Adam optimizer state.
#[derive(Debug)]
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Steps taken so far.
    pub step: u64,
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    /// Fresh state for `vars` with PyTorch's defaults (0.9, 0.999, 1e-8).
    pub fn new(vars: Vec<Var>, lr: f64) -> candle_core::Result<Self> {
        let m = vars
            .iter()
            .map(|v| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            vars,
            m,
            v,
        })
    }

    /// Counts a step and returns its bias-corrected parameter update.
    pub fn next_update(&mut self) -> ApplyUpdate {
        self.step += 1;
        let t = self.step as i32;
        ApplyUpdate {
            step_size: self.lr / (1.0 - self.beta1.powi(t)),
            root_scale: 1.0 / (1.0 - self.beta2.powi(t)).sqrt(),
            eps: self.eps,
        }
    }

    /// One update from the gradients of a backward pass.
    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        let apply = self.next_update();
        for ((var, m), v) in self
            .vars
            .iter()
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            *m = (m.affine(self.beta1, 0.0)? + g.affine(1.0 - self.beta1, 0.0)?)?;
            *v = (v.affine(self.beta2, 0.0)? + g.sqr()?.affine(1.0 - self.beta2, 0.0)?)?;
            let denom = v.sqrt()?.affine(apply.root_scale, self.eps)?;
            let update = (m.div(&denom)?).affine(apply.step_size, 0.0)?;
            var.set(&var.as_tensor().sub(&update)?)?;
        }
        Ok(())
    }

    /// The moment tensors, `(m, v)`, in the order of the vars.
    pub fn moments(&self) -> (&[Tensor], &[Tensor]) {
        (&self.m, &self.v)
    }

    /// Replaces the moments (from a checkpoint); shapes must match the vars.
    pub fn set_moments(
        &mut self,
        m: Vec<Tensor>,
        v: Vec<Tensor>,
        step: u64,
    ) -> candle_core::Result<()> {
        if m.len() != self.vars.len() || v.len() != self.vars.len() {
            candle_core::bail!(
                "optimizer state has {} tensors, model has {}",
                m.len(),
                self.vars.len()
            );
        }
        for ((var, a), b) in self.vars.iter().zip(&m).zip(&v) {
            if a.dims() != var.dims() || b.dims() != var.dims() {
                candle_core::bail!(
                    "optimizer state shape {:?} != parameter {:?}",
                    a.dims(),
                    var.dims()
                );
            }
        }
        self.m = m;
        self.v = v;
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::Adam;

    /// Ten steps of the one-pass slice update (the CPU training step's) and of the
    /// composed candle ops, on the same parameters and gradients, end within float
    /// rounding of each other.
    #[test]
    fn slice_update_matches_the_composed_ops() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let start = Tensor::randn(0f32, 1.0, (7, 13), &dev)?;
        let var = Var::from_tensor(&start)?;
        let mut composed = Adam::new(vec![var.clone()], 1e-2)?;
        let mut sliced = Adam::new(Vec::new(), 1e-2)?;
        let mut p: Vec<f32> = start.flatten_all()?.to_vec1()?;
        let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
        for step in 0..10 {
            let target = step as f32 * 0.1;
            let loss = (var.as_tensor() - f64::from(target))?.sqr()?.sum_all()?;
            composed.step(&loss.backward()?)?;
            let grad: Vec<f32> = p.iter().map(|&x| 2.0 * (x - target)).collect();
            let (beta1, beta2) = (sliced.beta1, sliced.beta2);
            sliced
                .next_update()
                .step(&mut p, &grad, &mut m, &mut v, beta1, beta2);
        }
        let fused = Tensor::from_vec(p, (7, 13), &dev)?;
        let diff = (&fused - var.as_tensor())?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-6, "fused and composed Adam differ by {diff}");
        let moved = (&fused - &start)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(moved > 0.05, "the parameters barely moved ({moved})");
        Ok(())
    }
}
