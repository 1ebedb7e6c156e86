//! The training step on the CPU, written out instead of run through candle's autograd.
//!
//! candle runs a step as a graph of single operations. Each op allocates its output.
//! The backward pass starts every gradient from a zeroed tensor. Adam costs another
//! dozen passes per parameter tensor. On this model, the matrix products were less than
//! half of an epoch. Here an epoch copies the parameters and Adam's moments out of the
//! model once, runs every batch on buffers reused from batch to batch ([`net`]), with the
//! products in the `gemm` crate (candle's own CPU kernels) and one pass for each
//! element-wise step, and writes the results back. The model, loss, noise stream and
//! update are the same as the candle path, which stays the path on a GPU. The tests below
//! compare the two.

mod gemm;
pub(crate) mod math;
mod net;

use candle_core::{Tensor, Var};

use super::adam::Adam;
use super::{augment, faults, BatchPlan};
use crate::model::Model;
pub use net::BatchLoss;
use net::{Net, Scratch};

/// Parameters, gradients and moments of one epoch, as plain buffers.
pub struct EpochState {
    net: Net,
    data: Vec<f32>,
    pixels: usize,
    size: (usize, usize),
    params: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    batch: Vec<f32>,
    input: Vec<f32>,
    scratch: Scratch,
    threads: usize,
}

fn to_vec(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1()
}

impl EpochState {
    /// Copies out the model's parameters, Adam's moments and the training images.
    pub fn new(model: &Model, adam: &Adam, train: &Tensor) -> candle_core::Result<Self> {
        let net = Net::new(&model.config);
        let params = model
            .named_vars()
            .iter()
            .map(|(_, v)| to_vec(v.as_tensor()))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let sizes = net.parameter_sizes();
        if !params.iter().map(Vec::len).eq(sizes.iter().copied()) {
            candle_core::bail!("cpu training: the model's tensors do not match its configuration");
        }
        let (m, v) = adam.moments();
        let m = m
            .iter()
            .map(to_vec)
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = v
            .iter()
            .map(to_vec)
            .collect::<candle_core::Result<Vec<_>>>()?;
        let pixels = model.config.input_dim();
        let data = to_vec(train)?;
        if data.len() != train.dim(0)? * pixels {
            candle_core::bail!("cpu training: images are not {pixels} pixels each");
        }
        Ok(Self {
            grads: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            net,
            data,
            pixels,
            size: (model.config.width, model.config.height),
            params,
            m,
            v,
            batch: Vec::new(),
            input: Vec::new(),
            scratch: Scratch::default(),
            threads: candle_core::utils::get_num_threads(),
        })
    }

    /// One batch and one Adam update: the plan's rows of the training images,
    /// translated by its shifts when there are any; the inputs faulted when it has
    /// faults; each image `draws` times with its own noise. Returns the loss terms
    /// summed over the images (each the mean over its draws).
    pub fn step(
        &mut self,
        plan: &BatchPlan,
        beta: f64,
        adam: &mut Adam,
    ) -> candle_core::Result<BatchLoss> {
        let (rows, shifts) = (plan.rows, plan.shifts);
        self.batch.resize(rows.len() * self.pixels, 0.0);
        for (k, &row) in rows.iter().enumerate() {
            let start = row as usize * self.pixels;
            let Some(image) = self.data.get(start..start + self.pixels) else {
                candle_core::bail!("cpu training: image {row} out of range");
            };
            let slot = &mut self.batch[k * self.pixels..(k + 1) * self.pixels];
            match shifts.get(k) {
                Some(&offset) => augment::translate(image, slot, self.size, offset),
                None => slot.copy_from_slice(image),
            }
        }
        let faulted = !plan.faults.is_empty();
        if faulted {
            self.input.clear();
            self.input.resize(self.batch.len(), 0.0);
            faults::apply_batch_into(&self.batch, &mut self.input, self.size, plan.faults);
        }
        // Each image once per draw, draw-major like the noise: replicated rows with
        // weight 1/L are the L-sample estimator's gradient exactly.
        let images = self.batch.len();
        for _ in 1..plan.draws {
            self.batch.extend_from_within(..images);
            if faulted {
                self.input.extend_from_within(..images);
            }
        }
        let input = if faulted { &self.input } else { &self.batch };
        let mut loss = self.net.step(
            &self.params,
            &mut self.grads,
            input,
            &self.batch,
            plan.eps,
            rows.len() * plan.draws,
            beta,
            self.threads,
            &mut self.scratch,
        );
        if plan.draws > 1 {
            loss.recon /= plan.draws as f64;
            loss.kl /= plan.draws as f64;
        }
        let update = adam.next_update();
        for (((p, g), m), v) in self
            .params
            .iter_mut()
            .zip(&self.grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            update.step(p, g, m, v, adam.beta1, adam.beta2);
        }
        Ok(loss)
    }

    /// Writes the parameters and moments back into the model and the optimizer.
    pub fn finish(self, model: &Model, adam: &mut Adam) -> candle_core::Result<()> {
        let back = |var: &Var, values: Vec<f32>| -> candle_core::Result<Tensor> {
            Tensor::from_vec(values, var.shape(), var.device())
        };
        let vars = model.named_vars();
        let (mut m, mut v) = (Vec::new(), Vec::new());
        for ((((_, var), p), mv), vv) in vars.iter().zip(self.params).zip(self.m).zip(self.v) {
            var.set(&back(var, p)?)?;
            m.push(back(var, mv)?);
            v.push(back(var, vv)?);
        }
        let step = adam.step;
        adam.set_moments(m, v, step)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use crate::model::{Init, Likelihood, Model, ModelConfig, ModelKind};
    use crate::train::{TrainConfig, Trainer};
    use tinyvae_datasets::rng::SeededRng;

    /// A 6x5-pixel model with two hidden layers: small enough to compare engines
    /// value by value.
    fn small_config(kind: ModelKind, likelihood: Likelihood) -> ModelConfig {
        ModelConfig {
            kind,
            width: 6,
            height: 5,
            hidden: vec![11, 7],
            latent: 3,
            likelihood,
        }
    }

    /// 37 random images of the small model's size.
    fn small_data() -> Tensor {
        let mut rng = SeededRng::stream(5, "test", 0);
        let images: Vec<f32> = (0..37 * 30)
            .map(|_| rng.uniform_range(0.0, 1.0) as f32)
            .collect();
        Tensor::from_vec(images, (37, 30), &Device::Cpu).expect("tensor")
    }

    /// Two epochs in batches of 8 with a KL warm-up and translations: every random
    /// draw of a step in play.
    fn small_run() -> TrainConfig {
        TrainConfig {
            epochs: 2,
            batch_size: 8,
            beta: 0.7,
            warmup_epochs: 1.0,
            shift: 1,
            ..TrainConfig::default()
        }
    }

    /// `Trainer::profile` times every candle step, phase by phase, and leaves the
    /// steps themselves alone (the same losses as an unprofiled run).
    #[test]
    fn the_profile_times_every_candle_step_without_changing_it() {
        let data = small_data();
        let run = |profile: bool| {
            let model = Model::new(
                small_config(ModelKind::Vae, Likelihood::Bernoulli),
                Init::Torch,
                9,
                &Device::Cpu,
            )
            .expect("model");
            let mut trainer = Trainer::new(model, small_run()).expect("trainer");
            trainer.cpu_engine = false;
            trainer.profile = profile.then(Default::default);
            let loss = trainer
                .run_epoch(&data, None, &mut |_| {})
                .expect("epoch")
                .train
                .loss;
            (loss, trainer.profile)
        };
        let (plain, none) = run(false);
        let (profiled, p) = run(true);
        assert_eq!(plain, profiled);
        assert!(none.is_none());
        let p = p.expect("profile");
        assert_eq!(p.steps, 5, "37 images in batches of 8");
        for (name, ms) in p.per_step_ms() {
            match name {
                "graph" => assert_eq!(ms, 0.0, "no graphs on the CPU"),
                _ => assert!(ms > 0.0, "{name} took no time"),
            }
        }
    }

    /// Two epochs of a small model with each engine, from the same start and with
    /// translated images, `draws` noise draws per image and, when `denoise` is set,
    /// faulted inputs: the parameters and the losses agree to float rounding.
    fn engines_agree(kind: ModelKind, likelihood: Likelihood, draws: usize, denoise: bool) {
        let config = small_config(kind, likelihood);
        let data = small_data();
        let cfg = TrainConfig {
            mc_samples: draws,
            denoise: if denoise {
                vec!["noise".into(), "drift".into(), "stuck-lines".into()]
            } else {
                Vec::new()
            },
            denoise_frac: 0.8,
            ..small_run()
        };
        let run = |cpu_engine: bool| {
            let model = Model::new(config.clone(), Init::Torch, 9, &Device::Cpu).expect("model");
            let mut trainer = Trainer::new(model, cfg.clone()).expect("trainer");
            trainer.cpu_engine = cpu_engine;
            let losses: Vec<f64> = (0..2)
                .map(|_| {
                    trainer
                        .run_epoch(&data, None, &mut |_| {})
                        .expect("epoch")
                        .train
                        .loss
                })
                .collect();
            let params: Vec<Vec<f32>> = trainer
                .model
                .snapshot()
                .expect("snapshot")
                .iter()
                .map(|t| super::to_vec(t).expect("values"))
                .collect();
            (losses, params, trainer.adam.step)
        };
        let (fused, candle) = (run(true), run(false));
        assert_eq!(fused.2, candle.2, "Adam steps");
        for (a, b) in fused.0.iter().zip(&candle.0) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs(),
                "{kind:?} {likelihood:?} losses {a} vs {b}"
            );
        }
        for (a, b) in fused.1.iter().flatten().zip(candle.1.iter().flatten()) {
            assert!(
                (a - b).abs() <= 1e-4,
                "{kind:?} {likelihood:?} parameters {a} vs {b}"
            );
        }
    }

    /// One batch's gradient of every parameter tensor, from the fused step and from
    /// candle's `backward()` on [`crate::train::batch_loss`], agree within float
    /// rounding. The engine comparison above runs through Adam, whose update barely
    /// moves when a gradient is scaled by a constant; this compares the gradients
    /// themselves. Returns the largest gap relative to the tensor's largest gradient.
    fn gradients_agree(kind: ModelKind, likelihood: Likelihood) -> f32 {
        let config = small_config(kind, likelihood);
        let (rows, pixels, beta) = (8, 30, 0.7);
        let mut rng = SeededRng::stream(6, "test", 0);
        let x: Vec<f32> = (0..rows * pixels)
            .map(|_| rng.uniform_range(0.0, 1.0) as f32)
            .collect();
        let eps: Vec<f32> = rng.normals(rows * config.latent);
        let model = Model::new(config.clone(), Init::Torch, 4, &Device::Cpu).expect("model");

        let net = super::Net::new(&config);
        let vars = model.named_vars();
        let params: Vec<Vec<f32>> = vars
            .iter()
            .map(|(_, v)| super::to_vec(v.as_tensor()).expect("values"))
            .collect();
        let mut fused: Vec<Vec<f32>> = params.iter().map(|p| vec![f32::NAN; p.len()]).collect();
        let mut scratch = super::Scratch::default();
        // A target other than the input, as in denoising training.
        let target: Vec<f32> = x.iter().map(|v| (v * 1.3).min(1.0)).collect();
        net.step(
            &params,
            &mut fused,
            &x,
            &target,
            &eps,
            rows,
            beta,
            2,
            &mut scratch,
        );

        let xt = Tensor::from_vec(x, (rows, pixels), &Device::Cpu).expect("images");
        let tt = Tensor::from_vec(target, (rows, pixels), &Device::Cpu).expect("targets");
        let et = Tensor::from_vec(eps, (rows, config.latent), &Device::Cpu).expect("noise");
        let (total, _, _) = crate::train::batch_loss(&model, &xt, &tt, &et, beta).expect("loss");
        let grads = total.backward().expect("backward");
        let mut worst = 0.0f32;
        for ((name, var), fused) in vars.iter().zip(&fused) {
            let reference = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("candle has no gradient for {name}"));
            let reference = super::to_vec(reference).expect("values");
            let scale = reference.iter().fold(0.0f32, |m, g| m.max(g.abs()));
            let gap = fused
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, |m, d| if d.is_nan() { f32::NAN } else { m.max(d) });
            assert!(
                gap <= 1e-4 * scale + 1e-6,
                "{kind:?} {likelihood:?} {name}: fused and candle gradients differ by {gap:e} \
                 (largest gradient {scale:e})"
            );
            worst = worst.max(gap / scale.max(f32::MIN_POSITIVE));
        }
        worst
    }

    #[test]
    fn gradients_match_candle_backward() {
        for (kind, likelihood) in [
            (ModelKind::Vae, Likelihood::Bernoulli),
            (ModelKind::Vae, Likelihood::Gaussian),
            (ModelKind::Ae, Likelihood::Bernoulli),
            (ModelKind::Ae, Likelihood::Gaussian),
        ] {
            let worst = gradients_agree(kind, likelihood);
            println!("{kind:?} {likelihood:?}: largest relative gradient gap {worst:e}");
        }
    }

    #[test]
    fn vae_bernoulli_matches_candle() {
        engines_agree(ModelKind::Vae, Likelihood::Bernoulli, 1, false);
    }

    #[test]
    fn vae_gaussian_matches_candle() {
        engines_agree(ModelKind::Vae, Likelihood::Gaussian, 1, false);
    }

    #[test]
    fn ae_matches_candle() {
        engines_agree(ModelKind::Ae, Likelihood::Bernoulli, 1, false);
    }

    #[test]
    fn several_noise_draws_match_candle() {
        engines_agree(ModelKind::Vae, Likelihood::Bernoulli, 3, false);
        engines_agree(ModelKind::Vae, Likelihood::Gaussian, 5, false);
    }

    #[test]
    fn denoising_matches_candle() {
        engines_agree(ModelKind::Vae, Likelihood::Bernoulli, 1, true);
        engines_agree(ModelKind::Vae, Likelihood::Bernoulli, 2, true);
        engines_agree(ModelKind::Ae, Likelihood::Bernoulli, 1, true);
    }

    /// The losses (training and validation, per epoch) and the sum of the absolute
    /// parameters after two epochs (with validation) of the small model, from each
    /// engine.
    fn fingerprint(kind: ModelKind, cpu_engine: bool, cfg: TrainConfig) -> (Vec<f64>, f64) {
        let config = small_config(kind, Likelihood::Bernoulli);
        let data = small_data();
        let val = data.narrow(0, 0, 10).expect("validation rows");
        let model = Model::new(config, Init::Torch, 9, &Device::Cpu).expect("model");
        let mut trainer = Trainer::new(model, cfg).expect("trainer");
        trainer.cpu_engine = cpu_engine;
        let mut losses = Vec::new();
        for _ in 0..2 {
            let m = trainer
                .run_epoch(&data, Some(&val), &mut |_| {})
                .expect("epoch");
            losses.push(m.train.loss);
            losses.push(m.val.expect("validation").loss);
        }
        let mut mass = 0.0f64;
        for t in trainer.model.snapshot().expect("snapshot") {
            for v in super::to_vec(&t).expect("values") {
                mass += f64::from(v.abs());
            }
        }
        (losses, mass)
    }

    /// One noise draw and no denoising take the very steps training took before
    /// either existed: the fingerprints below were recorded, both engines, at the
    /// commit before `mc_samples` and `denoise` were added (the losses as their exact
    /// bits, the parameter mass to 10 digits). They are compared to a relative 1e-5, not bit for bit: the `gemm`
    /// kernels pick their SIMD code and split by the CPU they run on, which moves the
    /// last bits, while a shuffle, a noise draw or a fault drawn differently moves the
    /// losses by 1e-3 or more.
    #[test]
    fn one_draw_without_denoising_is_unchanged() {
        let cfg = small_run();
        let recorded: [(ModelKind, bool, [u64; 4], f64); 4] = [
            (
                ModelKind::Vae,
                true,
                [
                    4626612619068794117,
                    4626598492014462894,
                    4626588226417170842,
                    4626592945396724531,
                ],
                129.225_135_8,
            ),
            (
                ModelKind::Vae,
                false,
                [
                    4626612618916466064,
                    4626598492012114084,
                    4626588226448956864,
                    4626592945397898936,
                ],
                129.225_135_9,
            ),
            (
                ModelKind::Ae,
                true,
                [
                    4626515105305322579,
                    4626572003131156070,
                    4626527396453827888,
                    4626571049218919629,
                ],
                125.295_828_7,
            ),
            (
                ModelKind::Ae,
                false,
                [
                    4626515105633158448,
                    4626572003131156070,
                    4626527396378557136,
                    4626571049218919629,
                ],
                125.295_828_7,
            ),
        ];
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * b.abs();
        for (kind, cpu_engine, losses, params) in recorded {
            let (l, p) = fingerprint(kind, cpu_engine, cfg.clone());
            for (got, want) in l.iter().zip(losses.map(f64::from_bits)) {
                assert!(
                    close(*got, want),
                    "{kind:?} fused={cpu_engine}: loss {got} moved from {want}"
                );
            }
            assert!(
                close(p, params),
                "{kind:?} fused={cpu_engine}: parameter mass {p} moved from {params}"
            );
        }
    }
}
