//! Adam, written out so that its moment estimates can be saved in a checkpoint
//! and a resumed run continues exactly where it stopped (candle-nn's optimizer
//! keeps its state private). Same update as `torch.optim.Adam` without weight decay.

use candle_core::{backprop::GradStore, Tensor, Var};

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

    /// One update from the gradients of a backward pass.
    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
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
            let denom = v.sqrt()?.affine(1.0 / bc2.sqrt(), self.eps)?;
            let update = (m.div(&denom)?).affine(self.lr / bc1, 0.0)?;
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
