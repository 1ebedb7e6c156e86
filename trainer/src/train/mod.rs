//! Training: minibatch Adam on the negative ELBO (VAE) or the reconstruction
//! loss (AE), with KL warm-up, a validation set, early stopping and exactly
//! resumable state.
//!
//! Everything random (shuffles, reparameterisation noise) comes from
//! [`SeededRng`] streams keyed by `(seed, epoch)`, so a run resumed from a
//! checkpoint takes the same steps as one that never stopped.

pub mod adam;
pub mod augment;
pub(crate) mod cpu;
#[cfg(feature = "cuda")]
mod cuda_graph;
pub mod faults;
pub mod profile;

use std::time::Instant;

use candle_core::{DType, Tensor};

pub use adam::Adam;
pub use profile::StepProfile;
// The hyperparameters and progress are plain data stored in checkpoints: they live with
// the file format, in `tinyvae-checkpoint`.
pub use tinyvae_checkpoint::train::{EpochMetrics, LossParts, Progress, TrainConfig};

use crate::model::{loss, Model, ModelKind};
use tinyvae_datasets::rng::SeededRng;

/// Statistics of one minibatch, for progress bars.
#[derive(Clone, Copy, Debug)]
pub struct BatchStats {
    /// Batch index within the epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Loss terms of this batch.
    pub parts: LossParts,
}

/// What one minibatch trains on, drawn from the epoch's stream before the step so
/// that both engines take the same images, offsets, faults and noise.
pub(crate) struct BatchPlan<'a> {
    /// Indices of the batch's training images.
    pub rows: &'a [u32],
    /// One offset per image, or none (no augmentation).
    pub shifts: &'a [(i32, i32)],
    /// One fault per image, or none (no denoising).
    pub faults: &'a [Option<faults::Fault>],
    /// `draws x rows x latent` standard normals, draw-major (see [`repeat_batch`]).
    pub eps: &'a [f32],
    /// Noise draws per image (L).
    pub draws: usize,
}

/// A model, its optimizer and its progress.
pub struct Trainer {
    /// The model being trained.
    pub model: Model,
    /// Optimizer state.
    pub adam: Adam,
    /// Hyperparameters.
    pub cfg: TrainConfig,
    /// Progress so far.
    pub progress: Progress,
    /// Parameters at the best validation loss.
    pub best: Option<Vec<Tensor>>,
    /// Whether epochs on the CPU run the fused step (the `cpu` module) rather than candle's
    /// autograd (the same model and loss; on by default).
    pub cpu_engine: bool,
    /// When set, candle's steps are timed phase by phase into it (see [`profile`]);
    /// `None` (the default) adds no synchronization.
    pub profile: Option<StepProfile>,
    /// Whether steps on a CUDA device run as captured CUDA graphs (see `cuda_graph`).
    /// Off by default until measured on a GPU (`scripts/gpu-bench` compares both);
    /// turned off, with [`Trainer::graph_note`] saying why, when a capture fails.
    pub cuda_graphs: bool,
    /// Why the run stopped using CUDA graphs, if it did.
    pub graph_note: Option<String>,
    #[cfg(feature = "cuda")]
    graphs: cuda_graph::StepGraphs,
}

/// The per-image loss terms of a batch: `input` encoded, with standard-normal noise
/// `eps` (ignored by an AE), scored against `target` (the same tensor, except in
/// denoising training, where the input is a faulted copy of the target). Returns
/// `(loss to minimise, sum of recon, sum of kl)`.
pub fn batch_loss(
    model: &Model,
    input: &Tensor,
    target: &Tensor,
    eps: &Tensor,
    beta: f64,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let x = target;
    let b = x.dim(0)? as f64;
    let (mu, logvar) = model.encode(input)?;
    match model.config.kind {
        ModelKind::Vae => {
            let z = (&mu + (logvar.affine(0.5, 0.0)?.exp()? * eps)?)?;
            let rec = loss::recon_nll(&model.decode(&z)?, x, model.config.likelihood)?.sum_all()?;
            let kl = loss::kl(&mu, &logvar)?.sum_all()?;
            let total = ((&rec + kl.affine(beta, 0.0)?)? / b)?;
            Ok((total, rec, kl))
        }
        ModelKind::Ae => {
            let rec =
                loss::recon_nll(&model.decode(&mu)?, x, model.config.likelihood)?.sum_all()?;
            let total = (&rec / b)?;
            let kl = Tensor::zeros((), DType::F32, x.device())?;
            Ok((total, rec, kl))
        }
    }
}

/// Noise for `rows` reparameterisations from `rng`.
pub fn eps_tensor(
    rng: &mut SeededRng,
    rows: usize,
    latent: usize,
    device: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    Tensor::from_vec(rng.normals(rows * latent), (rows, latent), device)
}

/// `t` stacked `draws` times along the rows (draw-major: every image once, then every
/// image again, ...), so that with `draws` times as many noise rows each image meets
/// `draws` separate draws. One draw returns `t` itself.
pub fn repeat_batch(t: &Tensor, draws: usize) -> candle_core::Result<Tensor> {
    if draws <= 1 {
        return Ok(t.clone());
    }
    Tensor::cat(&vec![t; draws], 0)
}

/// Loss over `data` (`(N, D)`), per image, estimated with `draws` noise draws per image
/// (the ELBO estimator's L; the KL term is exact either way), with noise from
/// `SeededRng::stream(seed, "eval-eps", 0)` so repeated calls agree. One draw takes the
/// same noise for a batch whatever `draws` later runs use.
pub fn evaluate(
    model: &Model,
    data: &Tensor,
    batch_size: usize,
    beta: f64,
    seed: u64,
    draws: usize,
) -> candle_core::Result<LossParts> {
    if draws == 0 {
        candle_core::bail!("the ELBO needs at least one noise draw per image (got 0)");
    }
    let n = data.dim(0)?;
    let mut rng = SeededRng::stream(seed, "eval-eps", 0);
    let (mut rec, mut kl) = (0.0f64, 0.0f64);
    let mut start = 0;
    while start < n {
        let len = batch_size.min(n - start);
        let x = repeat_batch(&data.narrow(0, start, len)?, draws)?;
        let eps = eps_tensor(&mut rng, len * draws, model.config.latent, model.device())?;
        let (_, r, k) = batch_loss(model, &x, &x, &eps, beta)?;
        rec += f64::from(r.to_scalar::<f32>()?) / draws as f64;
        kl += f64::from(k.to_scalar::<f32>()?) / draws as f64;
        start += len;
    }
    let n = n.max(1) as f64;
    Ok(LossParts {
        loss: (rec + beta * kl) / n,
        recon: rec / n,
        kl: kl / n,
    })
}

impl Trainer {
    /// A trainer at epoch 0.
    pub fn new(model: Model, cfg: TrainConfig) -> candle_core::Result<Self> {
        if cfg.mc_samples == 0 {
            candle_core::bail!("--mc-samples: the ELBO needs at least one noise draw per image");
        }
        faults::kinds(&cfg)?;
        let vars = model.named_vars().into_iter().map(|(_, v)| v).collect();
        let adam = Adam::new(vars, cfg.lr)?;
        Ok(Self {
            model,
            adam,
            cfg,
            progress: Progress::default(),
            best: None,
            cpu_engine: true,
            profile: None,
            cuda_graphs: false,
            graph_note: None,
            #[cfg(feature = "cuda")]
            graphs: Default::default(),
        })
    }

    /// KL weight at fractional epoch `t` (0-based, e.g. 2.5 = half-way through the third).
    pub fn beta_at(&self, t: f64) -> f64 {
        if self.cfg.warmup_epochs > 0.0 {
            self.cfg.beta * (t / self.cfg.warmup_epochs).min(1.0)
        } else {
            self.cfg.beta
        }
    }

    /// Whether the run is over (all epochs done, or stopped early).
    pub fn finished(&self) -> bool {
        self.progress.stopped_early || self.progress.epoch >= self.cfg.epochs
    }

    /// One batch through candle's autograd (the GPU path, and the CPU one when
    /// `cpu_engine` is off): returns the reconstruction and KL terms summed over the
    /// images (each the mean over the batch's noise draws).
    fn candle_step(
        &mut self,
        train: &Tensor,
        plan: &BatchPlan,
        beta: f64,
    ) -> candle_core::Result<(f64, f64)> {
        let device = train.device();
        let mut laps = profile::laps(self.profile.is_some(), device)?;
        let rows = plan.rows;
        let size = (self.model.config.width, self.model.config.height);
        let idx = Tensor::from_slice(rows, rows.len(), device)?;
        let mut x = train.index_select(&idx, 0)?;
        if !plan.shifts.is_empty() {
            let moved =
                augment::translate_batch(&x.flatten_all()?.to_vec1::<f32>()?, size, plan.shifts);
            x = Tensor::from_vec(moved, x.shape(), device)?;
        }
        let input = if plan.faults.is_empty() {
            x.clone()
        } else {
            let faulted =
                faults::apply_batch(&x.flatten_all()?.to_vec1::<f32>()?, size, plan.faults);
            Tensor::from_vec(faulted, x.shape(), device)?
        };
        let (input, target) = (
            repeat_batch(&input, plan.draws)?,
            repeat_batch(&x, plan.draws)?,
        );
        let eps = Tensor::from_slice(
            plan.eps,
            (rows.len() * plan.draws, self.model.config.latent),
            device,
        )?;
        let batch = profile::lap(&mut laps)?;
        let (total, rec, kl) = batch_loss(&self.model, &input, &target, &eps, beta)?;
        let forward = profile::lap(&mut laps)?;
        let grads = total.backward()?;
        let backward = profile::lap(&mut laps)?;
        self.adam.step(&grads)?;
        let optimizer = profile::lap(&mut laps)?;
        // One read of both terms: on a GPU each read waits for the device.
        let (rec, kl) = match Tensor::stack(&[&rec, &kl], 0)?.to_vec1::<f32>()?[..] {
            [rec, kl] => (rec, kl),
            _ => candle_core::bail!("the loss terms are two numbers"),
        };
        let draws = plan.draws as f64;
        let terms = (f64::from(rec) / draws, f64::from(kl) / draws);
        let readback = profile::lap(&mut laps)?;
        if let Some(p) = self.profile.as_mut() {
            p.add(&StepProfile {
                steps: 1,
                batch,
                forward,
                backward,
                optimizer,
                graph: 0.0,
                readback,
            });
        }
        Ok(terms)
    }

    /// Trains one epoch on `train` (`(N, D)` in `[0,1]`) and scores `val`.
    pub fn run_epoch(
        &mut self,
        train: &Tensor,
        val: Option<&Tensor>,
        on_batch: &mut dyn FnMut(&BatchStats),
    ) -> candle_core::Result<EpochMetrics> {
        let epoch = self.progress.epoch;
        let n = train.dim(0)?;
        let bs = self.cfg.batch_size.max(1);
        let mut rng = SeededRng::stream(self.cfg.seed, "epoch", epoch as u64);
        let perm: Vec<u32> = rng.permutation(n).into_iter().map(|i| i as u32).collect();
        let batches = n.div_ceil(bs);
        let started = Instant::now();
        let (mut rec_sum, mut kl_sum, mut loss_sum) = (0.0f64, 0.0f64, 0.0f64);
        let mut beta = self.beta_at(epoch as f64);
        let latent = self.model.config.latent;
        let draws = self.cfg.mc_samples;
        let kinds = faults::kinds(&self.cfg)?;
        let mut cpu_state = if self.cpu_engine && train.device().is_cpu() {
            Some(cpu::EpochState::new(&self.model, &self.adam, train)?)
        } else {
            None
        };
        for b in 0..batches {
            let lo = b * bs;
            let len = bs.min(n - lo);
            let rows = &perm[lo..lo + len];
            // The order of the draws is fixed: runs without extra draws or denoising
            // take exactly the random numbers they always did.
            let eps = rng.normals(len * draws * latent);
            let shifts = augment::draw_shifts(&mut rng, len, self.cfg.shift);
            let faults = faults::draw(&mut rng, len, &kinds, self.cfg.denoise_frac);
            let plan = BatchPlan {
                rows,
                shifts: &shifts,
                faults: &faults,
                eps: &eps,
                draws,
            };
            beta = self.beta_at(epoch as f64 + b as f64 / batches as f64);
            let (r, k) = match cpu_state.as_mut() {
                Some(state) => {
                    let loss = state.step(&plan, beta, &mut self.adam)?;
                    (loss.recon, loss.kl)
                }
                #[cfg(feature = "cuda")]
                None if self.graph_fits(train, &plan) => self.graph_step(train, &plan)?,
                None => self.candle_step(train, &plan, beta)?,
            };
            if !(r + beta * k).is_finite() {
                // A diverged step leaves NaN or Inf weights: stop before they are saved
                // or exported as a model (the last checkpoint is the previous epoch's).
                candle_core::bail!(
                    "training diverged in epoch {} (batch {} of {}): the loss is {} \
                     (reconstruction {r}, KL {k}); the last checkpoint holds the epoch \
                     before. Try a lower --lr or a KL warm-up.",
                    epoch + 1,
                    b + 1,
                    batches,
                    r + beta * k
                );
            }
            rec_sum += r;
            kl_sum += k;
            loss_sum += r + beta * k;
            on_batch(&BatchStats {
                batch: b,
                batches,
                parts: LossParts {
                    loss: (r + beta * k) / len as f64,
                    recon: r / len as f64,
                    kl: k / len as f64,
                },
            });
        }
        if let Some(state) = cpu_state {
            state.finish(&self.model, &mut self.adam)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let nf = n.max(1) as f64;
        let val = match val {
            // Clean to clean, also for a denoising run: the same yardstick as a plain
            // run's, with the run's own number of noise draws.
            Some(v) => Some(evaluate(
                &self.model,
                v,
                1024,
                self.cfg.beta,
                self.cfg.seed,
                draws,
            )?),
            None => None,
        };
        self.progress.epoch += 1;
        let metrics = EpochMetrics {
            epoch: self.progress.epoch,
            beta,
            train: LossParts {
                loss: loss_sum / nf,
                recon: rec_sum / nf,
                kl: kl_sum / nf,
            },
            val,
            seconds,
        };
        if val.is_none() {
            self.progress.best_epoch = self.progress.epoch;
        }
        if let Some(v) = val {
            // Only count epochs after the KL warm-up: before it the objective still moves.
            let warm = self.progress.epoch as f64 >= self.cfg.warmup_epochs;
            let better = self.progress.best_val.is_none_or(|b| v.loss < b);
            if better || !warm {
                self.progress.best_val = Some(v.loss);
                self.progress.best_epoch = self.progress.epoch;
                self.progress.bad_epochs = 0;
                self.best = Some(self.model.snapshot()?);
            } else {
                self.progress.bad_epochs += 1;
                if self.cfg.patience > 0 && self.progress.bad_epochs >= self.cfg.patience {
                    self.progress.stopped_early = true;
                }
            }
        }
        self.progress.history.push(metrics.clone());
        Ok(metrics)
    }

    /// Puts the best-validation parameters back into the model (no-op without validation).
    pub fn restore_best(&self) -> candle_core::Result<()> {
        match &self.best {
            Some(b) => self.model.restore(b),
            None => Ok(()),
        }
    }
}
