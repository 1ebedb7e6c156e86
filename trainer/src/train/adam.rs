//! Adam, written out so that its moment estimates can be saved in a checkpoint
//! and a resumed run continues exactly where it stopped (candle-nn's optimizer
//! keeps its state private). Same update as `torch.optim.Adam` without weight decay.

use candle_core::{backprop::GradStore, Tensor, Var};

use super::fused::{ApplyUpdate, MomentUpdate};

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
    /// Whether CPU tensors take the fused in-place update (always, but for the test
    /// that compares it with the composed one).
    in_place: bool,
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    /// Fresh state for `vars` with PyTorch's defaults (0.9, 0.999, 1e-8).
    pub fn new(vars: Vec<Var>, lr: f64) -> candle_core::Result<Self> {
        // Separate tensors for every moment: the CPU path updates them in place.
        let zeros = || {
            vars.iter()
                .map(|v| v.as_tensor().zeros_like())
                .collect::<candle_core::Result<Vec<_>>>()
        };
        let (m, v) = (zeros()?, zeros()?);
        Ok(Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            in_place: true,
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
            if self.in_place && var.device().is_cpu() {
                // One pass per tensor, in place (see `fused`).
                let g = g.contiguous()?;
                m.inplace_op2(
                    &g,
                    &MomentUpdate {
                        decay: self.beta1,
                        squared: false,
                    },
                )?;
                v.inplace_op2(
                    &g,
                    &MomentUpdate {
                        decay: self.beta2,
                        squared: true,
                    },
                )?;

                var.as_tensor().inplace_op3(m, v, &apply)?;
                continue;
            }
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
        // Own copies: the CPU path updates the moments in place.
        self.m = m
            .iter()
            .map(Tensor::copy)
            .collect::<candle_core::Result<_>>()?;
        self.v = v
            .iter()
            .map(Tensor::copy)
            .collect::<candle_core::Result<_>>()?;
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::Adam;

    /// Ten steps of the fused in-place update and of the composed candle ops, on the
    /// same parameters and gradients, end within float rounding of each other.
    #[test]
    fn in_place_update_matches_the_composed_ops() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let start = Tensor::randn(0f32, 1.0, (7, 13), &dev)?;
        let run = |in_place: bool| -> candle_core::Result<Tensor> {
            let var = Var::from_tensor(&start)?;
            let mut adam = Adam::new(vec![var.clone()], 1e-2)?;
            adam.in_place = in_place;
            for step in 0..10 {
                let target = Tensor::full(step as f32 * 0.1, (7, 13), &dev)?;
                let loss = (var.as_tensor() - &target)?.sqr()?.sum_all()?;
                adam.step(&loss.backward()?)?;
            }
            Ok(var.as_tensor().clone())
        };
        let (fused, composed) = (run(true)?, run(false)?);
        let diff = (&fused - &composed)?
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
