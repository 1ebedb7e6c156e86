//! Adam, written out so that its moment estimates can be saved in a checkpoint
//! and a resumed run continues exactly where it stopped (candle-nn's optimizer
//! keeps its state private). Same update as `torch.optim.Adam` without weight decay.

use candle_core::{backprop::GradStore, CpuStorage, InplaceOp2, InplaceOp3, Layout, Tensor, Var};

use crate::tensor::{cpu_f32, cpu_f32_mut};

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
        let update = self.f32();
        for (((p, &g), m), v) in param
            .iter_mut()
            .zip(grad)
            .zip(m.iter_mut())
            .zip(v.iter_mut())
        {
            *m = moving_average(*m, g, keep1, take1);
            *v = moving_average(*v, g * g, keep2, take2);
            *p = update.updated(*p, *m, *v);
        }
    }

    /// The update's numbers in f32, as every engine applies them.
    fn f32(&self) -> UpdateF32 {
        UpdateF32 {
            step: self.step_size as f32,
            root: self.root_scale as f32,
            eps: self.eps as f32,
        }
    }
}

/// [`ApplyUpdate`] in f32, for the per-element loops.
#[derive(Clone, Copy)]
struct UpdateF32 {
    step: f32,
    root: f32,
    eps: f32,
}

impl UpdateF32 {
    /// One parameter after the update, given its new moments:
    /// `p - m / (sqrt(v) root + eps) step`.
    #[inline(always)]
    fn updated(self, p: f32, m: f32, v: f32) -> f32 {
        p - m / (v.sqrt() * self.root + self.eps) * self.step
    }
}

/// One moment's moving average: `old keep + new take` (f32, as every engine computes it).
#[inline(always)]
fn moving_average(old: f32, new: f32, keep: f32, take: f32) -> f32 {
    old * keep + new * take
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
    /// The update of the step in progress (set by [`Adam::begin_step`]).
    current: ApplyUpdate,
    /// On a GPU: `[step_size, root_scale]` of the step in progress, on the device, where
    /// the update kernel reads them (a captured CUDA graph replays the kernel with the
    /// same arguments every step, so the numbers that change must live in memory).
    schedule: Option<Tensor>,
}

impl Adam {
    /// Fresh state for `vars` with PyTorch's defaults (0.9, 0.999, 1e-8).
    pub fn new(vars: Vec<Var>, lr: f64) -> candle_core::Result<Self> {
        // Separate storage for each moment: the in-place update writes them on their own.
        let zeros = || -> candle_core::Result<Vec<Tensor>> {
            vars.iter().map(|v| v.as_tensor().zeros_like()).collect()
        };
        let (m, v) = (zeros()?, zeros()?);
        Ok(Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            vars,
            m,
            v,
            current: ApplyUpdate {
                step_size: 0.0,
                root_scale: 1.0,
                eps: 1e-8,
            },
            schedule: None,
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
        if self.vars.first().is_some_and(|v| v.device().is_cuda()) {
            self.step_in_place(grads)
        } else {
            self.step_composed(grads)
        }
    }

    /// The step as candle ops (the CPU's candle engine keeps these: its recorded
    /// fingerprints were made with them).
    fn step_composed(&mut self, grads: &GradStore) -> candle_core::Result<()> {
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

    /// The same step as three in-place ops per parameter tensor (on a GPU three kernels,
    /// where the composed ops above launch thirteen and allocate ten tensors).
    fn step_in_place(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.begin_step()?;
        self.apply_in_place(grads)
    }

    /// Counts a step and, on a GPU, writes its bias corrections to the device, where
    /// [`Adam::apply_in_place`]'s kernel reads them.
    pub(crate) fn begin_step(&mut self) -> candle_core::Result<()> {
        self.current = self.next_update();
        let Some(device) = self.vars.first().map(|v| v.device().clone()) else {
            return Ok(());
        };
        if !device.is_cuda() {
            return Ok(());
        }
        let schedule = match &self.schedule {
            Some(s) => s.clone(),
            None => {
                let s = Tensor::zeros(2, candle_core::DType::F32, &device)?;
                self.schedule = Some(s.clone());
                s
            }
        };
        #[cfg(feature = "cuda")]
        schedule.inplace_op1(&crate::cuda::Upload(&[
            self.current.step_size as f32,
            self.current.root_scale as f32,
        ]))?;
        #[cfg(not(feature = "cuda"))]
        let _ = schedule;
        Ok(())
    }

    /// The update of the step begun by [`Adam::begin_step`], as in-place ops: the
    /// parameters and moments keep their memory, and the GPU kernels take nothing that
    /// changes between steps as an argument, so a captured graph can replay them.
    pub(crate) fn apply_in_place(&self, grads: &GradStore) -> candle_core::Result<()> {
        let first = MomentStep {
            keep: self.beta1 as f32,
            take: (1.0 - self.beta1) as f32,
            square: false,
        };
        let second = MomentStep {
            keep: self.beta2 as f32,
            take: (1.0 - self.beta2) as f32,
            square: true,
        };
        let update = ParamStep {
            update: self.current,
            schedule: self.schedule.as_ref(),
        };
        for ((var, m), v) in self.vars.iter().zip(&self.m).zip(&self.v) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = g.contiguous()?;
            m.inplace_op2(&g, &first)?;
            v.inplace_op2(&g, &second)?;
            var.as_tensor().inplace_op3(m, v, &update)?;
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

/// A moment's moving average in place, given the gradient: `m = keep m + take g` (of
/// `g²` when `square`).
struct MomentStep {
    keep: f32,
    take: f32,
    square: bool,
}

impl InplaceOp2 for MomentStep {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(
        &self,
        m: &mut CpuStorage,
        m_layout: &Layout,
        g: &CpuStorage,
        g_layout: &Layout,
    ) -> candle_core::Result<()> {
        let m = cpu_f32_mut(m, m_layout, "adam moment")?;
        let g = cpu_f32(g, g_layout, "adam gradient")?;
        if m.len() != g.len() {
            candle_core::bail!(
                "adam: moment of {} and gradient of {} elements",
                m.len(),
                g.len()
            );
        }
        for (m, &g) in m.iter_mut().zip(g) {
            let g = if self.square { g * g } else { g };
            *m = moving_average(*m, g, self.keep, self.take);
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        m: &mut candle_core::CudaStorage,
        m_layout: &Layout,
        g: &candle_core::CudaStorage,
        g_layout: &Layout,
    ) -> candle_core::Result<()> {
        crate::cuda::adam_moment(
            (m, m_layout),
            (g, g_layout),
            self.keep,
            self.take,
            self.square,
        )
    }
}

/// The parameter update in place, given both moments (see [`ApplyUpdate`]). On the CPU
/// it takes the step's numbers from `update`; on a GPU from the device copy `schedule`
/// (`[step_size, root_scale]`), written by [`Adam::begin_step`].
struct ParamStep<'a> {
    update: ApplyUpdate,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    schedule: Option<&'a Tensor>,
}

impl InplaceOp3 for ParamStep<'_> {
    fn name(&self) -> &'static str {
        "adam-param"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        p_layout: &Layout,
        m: &CpuStorage,
        m_layout: &Layout,
        v: &CpuStorage,
        v_layout: &Layout,
    ) -> candle_core::Result<()> {
        let p = cpu_f32_mut(p, p_layout, "adam parameter")?;
        let m = cpu_f32(m, m_layout, "adam first moment")?;
        let v = cpu_f32(v, v_layout, "adam second moment")?;
        if m.len() != p.len() || v.len() != p.len() {
            candle_core::bail!(
                "adam: parameter of {} elements and its moments differ",
                p.len()
            );
        }
        let update = self.update.f32();
        for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
            *p = update.updated(*p, m, v);
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        p: &mut candle_core::CudaStorage,
        p_layout: &Layout,
        m: &candle_core::CudaStorage,
        m_layout: &Layout,
        v: &candle_core::CudaStorage,
        v_layout: &Layout,
    ) -> candle_core::Result<()> {
        let Some(schedule) = self.schedule else {
            candle_core::bail!("adam: the GPU update needs the step's schedule on the device");
        };
        let (storage, layout) = schedule.storage_and_layout();
        let candle_core::Storage::Cuda(schedule) = &*storage else {
            candle_core::bail!("adam: the schedule is not on the GPU");
        };
        crate::cuda::adam_param(
            (p, p_layout),
            (m, m_layout),
            (v, v_layout),
            (schedule, layout),
            self.update.eps as f32,
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
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

    #[test]
    fn in_place_update_matches_the_composed_ops() -> candle_core::Result<()> {
        check_in_place_update(&Device::Cpu)
    }

    /// Ten steps of the in-place ops and of the composed ops on `device`, from the same
    /// parameters with the same losses, end within float rounding of each other, with
    /// moments that match too (also run on a GPU by `crate::cuda`'s tests).
    pub(crate) fn check_in_place_update(dev: &Device) -> candle_core::Result<()> {
        let start = Tensor::randn(0f32, 1.0, (7, 13), dev)?;
        let bias_start = Tensor::randn(0f32, 1.0, 13, dev)?;
        let run = |in_place: bool| -> candle_core::Result<(Vec<Tensor>, Adam)> {
            let vars = vec![Var::from_tensor(&start)?, Var::from_tensor(&bias_start)?];
            let mut adam = Adam::new(vars.clone(), 1e-2)?;
            for step in 0..10 {
                let target = step as f64 * 0.1;
                let loss = ((vars[0].as_tensor() - target)?.sqr()?.sum_all()?
                    + vars[1].as_tensor().sqr()?.sum_all()?)?;
                let grads = loss.backward()?;
                if in_place {
                    adam.step_in_place(&grads)?;
                } else {
                    adam.step_composed(&grads)?;
                }
            }
            Ok((vars.iter().map(|v| v.as_tensor().clone()).collect(), adam))
        };
        let (composed, composed_adam) = run(false)?;
        let (in_place, in_place_adam) = run(true)?;
        let max_diff = |a: &Tensor, b: &Tensor| -> candle_core::Result<f32> {
            (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
        };
        for (a, b) in composed.iter().zip(&in_place) {
            let d = max_diff(a, b)?;
            assert!(d < 1e-6, "in-place and composed Adam differ by {d}");
        }
        let (cm, cv) = composed_adam.moments();
        let (im, iv) = in_place_adam.moments();
        for (a, b) in cm.iter().chain(cv).zip(im.iter().chain(iv)) {
            let d = max_diff(a, b)?;
            assert!(d < 1e-6, "in-place and composed moments differ by {d}");
        }
        let moved = max_diff(&in_place[0], &start)?;
        assert!(moved > 0.05, "the parameters barely moved ({moved})");
        assert_eq!(in_place_adam.step, 10);
        Ok(())
    }
}
