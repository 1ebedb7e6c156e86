//! `tinyvae train`: fit a VAE or AE, log metrics, draw curves, save checkpoints.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{DataArgs, DeviceArgs};
use tinyvae_datasets::corrupt::Corruption;
use tinyvae_trainer::checkpoint::{self, CheckpointMeta, DataInfo};
use tinyvae_trainer::model::{Init, Likelihood, Model, ModelConfig, ModelKind};
use tinyvae_trainer::pictures::plot;
use tinyvae_trainer::tensor::ToTensor;
use tinyvae_trainer::train::{evaluate, EpochMetrics, StepProfile, TrainConfig, Trainer};

/// Arguments of `tinyvae train`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub hyper: HyperArgs,
    /// Fraction of the training images held out for validation and early stopping
    /// [default: 0.1; on --resume: the checkpoint's]; in [0, 1), 0 = no validation.
    #[arg(long, allow_negative_numbers = true, value_parser = crate::args::fraction_below_one)]
    pub val_frac: Option<f64>,
    /// Output directory: model.safetensors (best), last.safetensors (resume),
    /// metrics.jsonl, loss.png.
    #[arg(long, default_value = "runs/vae")]
    pub out: PathBuf,
    /// Continue from `<out>/last.safetensors`: its architecture, settings and data split
    /// (seed, --val-frac, --limit, --normal-class) win, a flag that contradicts them is
    /// an error, and --epochs may raise the budget. The run ends exactly as one that
    /// never stopped.
    #[arg(long)]
    pub resume: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print each epoch's metrics and the final summary as JSON objects (one per line,
    /// as in metrics.jsonl) instead of readable lines.
    #[arg(long)]
    pub json: bool,
    /// Time candle's training steps phase by phase (batch, forward, backward, optimizer,
    /// readback), synchronizing the device after each, and report milliseconds per step
    /// at the end (in the summary line, or as `step_profile_ms` with --json). Slows the
    /// run a little; for finding where GPU time goes. The CPU's fused step is not split.
    #[arg(long)]
    pub profile: bool,
    /// On a CUDA device, capture each batch size's training step once as a CUDA graph
    /// and replay it (one launch per step instead of about a hundred; the same
    /// computation). Steps with --shift, denoising or a KL warm-up stay eager. Not yet
    /// measured on a GPU, hence off by default; a failed capture falls back to eager
    /// steps and says why.
    #[arg(long)]
    pub cuda_graphs: bool,
}

/// `--profile`'s readable line: milliseconds per step of each phase.
fn profile_line(p: &StepProfile) -> String {
    if p.steps == 0 {
        return "profile: no candle steps ran (the CPU's fused step is not split into phases)"
            .to_string();
    }
    let phases: Vec<String> = p
        .per_step_ms()
        .iter()
        .map(|(name, ms)| format!("{name} {ms:.3}"))
        .collect();
    let total: f64 = p.per_step_ms().iter().map(|(_, ms)| ms).sum();
    format!(
        "profile: {total:.3} ms per step over {} steps = {} ms",
        p.steps,
        phases.join(" + ")
    )
}

/// One readable line for an epoch: `epoch 3/10  loss 120.51 = recon 99.02 + KL 21.49 ...`.
fn epoch_line(m: &EpochMetrics, epochs: usize) -> String {
    let width = epochs.to_string().len();
    let mut line = format!(
        "epoch {:>width$}/{epochs}  loss {:.2} = recon {:.2} + KL {:.2}",
        m.epoch, m.train.loss, m.train.recon, m.train.kl
    );
    if m.beta != 1.0 {
        line.push_str(&format!(" (beta {:.3})", m.beta));
    }
    if let Some(v) = &m.val {
        line.push_str(&format!("  validation {:.2}", v.loss));
    }
    line.push_str(&format!("  {:.2} s", m.seconds));
    line
}

/// Architecture options.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// vae or ae (the plain autoencoder with the same layers).
    #[arg(long, default_value_t = ModelKind::Vae)]
    pub kind: ModelKind,
    /// Hidden layer sizes, comma separated (decoder mirrors them).
    #[arg(long, default_value = "400", value_delimiter = ',')]
    pub hidden: Vec<usize>,
    /// Latent dimensions.
    #[arg(long, default_value_t = 20)]
    pub latent: usize,
    /// bernoulli (BCE) or gaussian (MSE).
    #[arg(long, default_value_t = Likelihood::Bernoulli)]
    pub likelihood: Likelihood,
    /// torch (uniform ±1/sqrt(fan_in), like nn.Linear) or kaiming (normal).
    #[arg(long, default_value_t = Init::Torch)]
    pub init: Init,
}

/// Optimisation options.
#[derive(clap::Args, Clone, Debug)]
pub struct HyperArgs {
    /// Epochs (maximum, with early stopping; at least 1) [default: 10; on --resume: the
    /// checkpoint's].
    #[arg(long, value_parser = crate::args::at_least_one)]
    pub epochs: Option<usize>,
    /// Minibatch size [default: 128; on --resume: the checkpoint's].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate [default: 0.001; on --resume: the checkpoint's].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed of all randomness (init, split, shuffles, noise) [default: 0; on --resume:
    /// the checkpoint's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// KL weight (1 = ELBO) [default: 1; on --resume: the checkpoint's].
    #[arg(long)]
    pub beta: Option<f64>,
    /// Epochs of linear KL warm-up from 0 to beta [default: 0; on --resume: the
    /// checkpoint's].
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Early stopping patience in epochs (0 = off) [default: 5; on --resume: the
    /// checkpoint's].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Augment: translate each training image by a random offset of up to this many
    /// pixels in x and y (zero fill; 0 = off) [default: 0; on --resume: the checkpoint's].
    #[arg(long)]
    pub shift: Option<usize>,
    /// Noise draws per image in the ELBO estimate (Kingma and Welling's L; at least 1):
    /// lower-variance gradients for L times the decoder's work [default: 1; on --resume:
    /// the checkpoint's].
    #[arg(long, value_name = "L", value_parser = crate::args::at_least_one)]
    pub mc_samples: Option<usize>,
    /// Denoising training: corrupt each training input with one of these sensor faults
    /// (comma separated names as `tinyvae faults` lists them; `pixel` for the seven
    /// pixel faults noise, dead-pixels, stuck-pixels, occlusion, drift, stuck-lines and
    /// salt-pepper; `all` for every kind, geometric and content faults too), drawn at
    /// random, and score the output against the clean image. Validation stays clean to
    /// clean. [default: none; on --resume: the checkpoint's]
    #[arg(long, value_name = "KINDS", value_parser = fault_kinds)]
    pub denoise: Option<FaultKinds>,
    /// With --denoise: the fraction of training images corrupted, in (0, 1] [default: 1;
    /// on --resume: the checkpoint's].
    #[arg(long, value_parser = fraction_up_to_one)]
    pub denoise_frac: Option<f64>,
}

/// The fault kinds of --denoise, checked when the flag is parsed.
#[derive(Clone, Debug)]
pub struct FaultKinds(Vec<String>);

/// Parses --denoise's list; clap names the flag in the error, which lists the valid names.
fn fault_kinds(s: &str) -> Result<FaultKinds, String> {
    Corruption::parse_list(s)
        .map(|kinds| FaultKinds(kinds.iter().map(|k| k.name().to_string()).collect()))
        .map_err(|e| e.to_string())
}

/// Parses a fraction in `(0, 1]`, such as --denoise-frac (0 would corrupt nothing).
fn fraction_up_to_one(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|e| format!("expected a fraction in (0, 1] ({e})"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("expected a fraction in (0, 1], got {v}"))
    }
}

/// Epochs of a fresh run without --epochs.
const DEFAULT_EPOCHS: usize = 10;
/// Early-stopping patience of a fresh run without --patience.
const DEFAULT_PATIENCE: usize = 5;
/// Validation fraction of a fresh run without --val-frac.
const DEFAULT_VAL_FRAC: f64 = 0.1;

impl HyperArgs {
    /// The seed: `--seed`, or 0.
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(0)
    }

    /// As a [`TrainConfig`] for a fresh run: the flags, or their defaults.
    pub fn config(&self) -> TrainConfig {
        let d = TrainConfig::default();
        TrainConfig {
            epochs: self.epochs.unwrap_or(DEFAULT_EPOCHS),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            lr: self.lr.unwrap_or(d.lr),
            seed: self.seed(),
            beta: self.beta.unwrap_or(d.beta),
            warmup_epochs: self.warmup.unwrap_or(d.warmup_epochs),
            patience: self.patience.unwrap_or(DEFAULT_PATIENCE),
            shift: self.shift.unwrap_or(d.shift),
            mc_samples: self.mc_samples.unwrap_or(d.mc_samples),
            denoise: self.denoise.clone().map(|k| k.0).unwrap_or(d.denoise),
            denoise_frac: self.denoise_frac.unwrap_or(d.denoise_frac),
        }
    }

    /// Fails when a flag given with --resume differs from the checkpoint's training
    /// settings: a resumed run continues the training it resumes (its optimizer state,
    /// noise streams and faults), so it takes them all from the checkpoint, and a flag
    /// that says otherwise would be silently ignored. `--epochs` may raise the total.
    fn check_resumed(&self, stored: &TrainConfig) -> Result<()> {
        fn same<T: PartialEq + std::fmt::Debug>(
            flag: &str,
            given: Option<T>,
            stored: T,
        ) -> Result<()> {
            match given {
                Some(g) if g != stored => anyhow::bail!(
                    "--{flag} {g:?} contradicts the checkpoint, which trains with {stored:?}: \
                     a resumed run continues the same training (leave --{flag} out, or start \
                     a new run in another --out)"
                ),
                _ => Ok(()),
            }
        }
        same("batch-size", self.batch_size, stored.batch_size)?;
        same("lr", self.lr, stored.lr)?;
        same("beta", self.beta, stored.beta)?;
        same("warmup", self.warmup, stored.warmup_epochs)?;
        same("patience", self.patience, stored.patience)?;
        same("shift", self.shift, stored.shift)?;
        same("mc-samples", self.mc_samples, stored.mc_samples)?;
        same(
            "denoise",
            self.denoise.clone().map(|k| k.0),
            stored.denoise.clone(),
        )?;
        same("denoise-frac", self.denoise_frac, stored.denoise_frac)
    }
}

fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(f, "{line}").with_context(|| format!("cannot write {}", path.display()))
}

/// Which images a run trains and validates on: everything that decides the split.
#[derive(Debug, Clone, PartialEq)]
struct Split {
    source: String,
    seed: u64,
    val_frac: f64,
    limit: Option<usize>,
    normal_class: Option<String>,
}

/// `stored` when the checkpoint has it, else the flag, else `default`; a flag that
/// contradicts the checkpoint is an error, so a resumed run never trains on another
/// split (which would leak validation images into training).
fn keep<T: PartialEq + std::fmt::Debug>(
    flag: &str,
    given: Option<T>,
    stored: Option<T>,
    default: T,
) -> Result<T> {
    match (given, stored) {
        (Some(g), Some(s)) if g != s => anyhow::bail!(
            "--{flag} {g:?} contradicts the checkpoint, which was trained with {s:?}: a \
             resumed run keeps its data split (leave --{flag} out)"
        ),
        (given, stored) => Ok(stored.or(given).unwrap_or(default)),
    }
}

/// Like [`keep`] for a setting whose absence means something ("no limit", "all
/// classes"): when the checkpoint `recorded` it, a different flag is an error and the
/// checkpoint's value (even "none") stands.
fn keep_optional<T: PartialEq + std::fmt::Debug>(
    flag: &str,
    given: Option<T>,
    stored: Option<T>,
    recorded: bool,
) -> Result<Option<T>> {
    if !recorded {
        return Ok(given);
    }
    match given {
        Some(g) if Some(&g) != stored.as_ref() => anyhow::bail!(
            "--{flag} {g:?} contradicts the checkpoint, which was trained with {}: a resumed \
             run keeps its data split (leave --{flag} out)",
            stored.map_or("none".to_string(), |s| format!("{s:?}"))
        ),
        _ => Ok(stored),
    }
}

impl Split {
    /// The split of a fresh run: the flags, or their defaults.
    fn fresh(args: &Args) -> Self {
        Self {
            source: args.data.data.display().to_string(),
            seed: args.hyper.seed(),
            val_frac: args.val_frac.unwrap_or(DEFAULT_VAL_FRAC),
            limit: args.data.limit,
            normal_class: args.data.normal_class.clone(),
        }
    }

    /// The split a checkpoint was trained on; flags may repeat it, not change it.
    fn resumed(args: &Args, meta: &CheckpointMeta) -> Result<Self> {
        let stored = &meta.data;
        let source = args.data.data.display().to_string();
        anyhow::ensure!(
            source == stored.source,
            "--data {source} is not the checkpoint's data {}: resume with --data {}",
            stored.source,
            stored.source
        );
        // Older checkpoints did not store the split: then the flags (or defaults) stand.
        let complete = stored.split_seed.is_some();
        let limit = keep_optional("limit", args.data.limit, stored.limit, complete)?;
        Ok(Self {
            source,
            seed: keep("seed", args.hyper.seed, Some(meta.train.seed), 0)?,
            val_frac: keep("val-frac", args.val_frac, stored.val_frac, DEFAULT_VAL_FRAC)?,
            limit,
            normal_class: keep_optional(
                "normal-class",
                args.data.normal_class.clone(),
                stored.normal_class.clone(),
                complete || stored.normal_class.is_some(),
            )?,
        })
    }

    /// Fails when the split leaves nothing to train on, or an empty validation set where
    /// one was asked for: training would "finish" on nothing, or early stopping and the
    /// best epoch would silently fall back to the last epoch.
    fn check_sizes(&self, available: usize, train: usize, val: Option<usize>) -> Result<()> {
        let source = match self.limit {
            Some(n) => format!("{} (--limit {n})", self.source),
            None => self.source.clone(),
        };
        if train == 0 {
            anyhow::bail!(
                "no training images: --val-frac {} holds out {} of the {available} images \
                 in {source}{}; use more images or a smaller --val-frac",
                self.val_frac,
                val.unwrap_or(0),
                self.normal_class
                    .as_ref()
                    .map_or(String::new(), |c| format!(" of class {c:?}")),
            );
        }
        if val == Some(0) {
            anyhow::bail!(
                "--val-frac {} of the {available} images in {source} is no validation image \
                 (it rounds to 0); use a larger --val-frac or more images, or --val-frac 0 \
                 to train without validation",
                self.val_frac
            );
        }
        Ok(())
    }
}

/// Runs `tinyvae train`.
pub fn run(args: Args) -> Result<()> {
    let device = args.device.device()?;
    let last = args.out.join("last.safetensors");
    let resumed = if args.resume {
        Some(
            checkpoint::load_trainer(&last, &device, args.hyper.epochs)
                .with_context(|| format!("cannot resume from {}", last.display()))?,
        )
    } else {
        None
    };
    if let Some((t, _)) = &resumed {
        args.hyper.check_resumed(&t.cfg)?;
    }
    let split = match &resumed {
        Some((_, meta)) => Split::resumed(&args, meta)?,
        None => Split::fresh(&args),
    };
    let seed = split.seed;
    let (mut train, test) = args.data.load_train_test(seed)?;
    if let Some(c) = &split.normal_class {
        train = train.filter_class(train.class_index(c)?)?;
    }
    if let Some(n) = split.limit {
        train = train.take(n);
    }
    let available = train.len();
    let (train, val) = if split.val_frac > 0.0 {
        let (t, v) = train.split(split.val_frac, seed);
        (t, Some(v))
    } else {
        (train, None)
    };
    split.check_sizes(available, train.len(), val.as_ref().map(|v| v.len()))?;
    let config = ModelConfig {
        kind: args.model.kind,
        width: train.width,
        height: train.height,
        hidden: args.model.hidden.clone(),
        latent: args.model.latent,
        likelihood: args.model.likelihood,
    };
    let metrics_path = args.out.join("metrics.jsonl");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for stale in tinyvae_shared::model_file::remove_stale_temp_files(&args.out) {
        eprintln!(
            "removed {}, left by a run that was killed while writing",
            stale.display()
        );
    }
    let (mut trainer, init) = match resumed {
        Some((t, meta)) => {
            // The log holds exactly the epochs the checkpoint holds: a crash between an
            // epoch's checkpoint and its log line neither loses nor repeats a line.
            let mut log = String::new();
            for m in &t.progress.history {
                log.push_str(&serde_json::to_string(m)?);
                log.push('\n');
            }
            crate::output::write_file(&metrics_path, log.as_bytes())?;
            (t, meta.init)
        }
        None => {
            let _ = std::fs::remove_file(&metrics_path);
            let model = Model::new(config, args.model.init, seed, &device)?;
            (Trainer::new(model, args.hyper.config())?, args.model.init)
        }
    };
    if args.profile {
        trainer.profile = Some(Default::default());
    }
    trainer.cuda_graphs = args.cuda_graphs;
    let cfg = trainer.model.config.clone();
    if (cfg.width, cfg.height) != (train.width, train.height) {
        anyhow::bail!(
            "the data is {}x{} but the checkpoint expects {}x{}",
            train.width,
            train.height,
            cfg.width,
            cfg.height
        );
    }
    let train_t = train.to_tensor(&device)?;
    let val_t = val.as_ref().map(|v| v.to_tensor(&device)).transpose()?;
    let data_info = DataInfo {
        source: split.source.clone(),
        train_images: train.len(),
        val_images: val.as_ref().map_or(0, |v| v.len()),
        normal_class: split.normal_class.clone(),
        split_seed: Some(split.seed),
        val_frac: Some(split.val_frac),
        limit: split.limit,
    };
    let batches = train.len().div_ceil(trainer.cfg.batch_size.max(1));
    let remaining = trainer.cfg.epochs.saturating_sub(trainer.progress.epoch);
    let pb = if args.quiet {
        ProgressBar::hidden()
    } else {
        let pb = ProgressBar::new((remaining * batches) as u64);
        pb.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    };
    eprintln!(
        "training {:?} {}-{}-{} on {} images ({} validation), {} epochs",
        cfg.kind,
        cfg.input_dim(),
        cfg.hidden
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join("-"),
        cfg.latent,
        train.len(),
        val.as_ref().map_or(0, |v| v.len()),
        trainer.cfg.epochs
    );
    while !trainer.finished() {
        let epoch = trainer.progress.epoch + 1;
        let m = trainer.run_epoch(&train_t, val_t.as_ref(), &mut |b| {
            pb.inc(1);
            pb.set_message(format!(
                "epoch {epoch} loss {:.2} recon {:.2} kl {:.2}",
                b.parts.loss, b.parts.recon, b.parts.kl
            ));
        })?;
        let line = serde_json::to_string(&m)?;
        let meta = CheckpointMeta {
            config: cfg.clone(),
            init,
            data: data_info.clone(),
            train: trainer.cfg.clone(),
            epoch: trainer.progress.epoch,
            metrics: serde_json::to_value(&m)?,
        };
        // The checkpoint first, then its log line (see the resume above).
        checkpoint::save_trainer(&last, &trainer, &meta)?;
        append_line(&metrics_path, &line)?;
        if args.json {
            pb.suspend(|| println!("{line}"));
        } else {
            pb.println(epoch_line(&m, trainer.cfg.epochs));
        }
    }
    pb.finish_and_clear();
    trainer.restore_best()?;
    let test_t = test.to_tensor(&device)?;
    // The test loss with the run's own number of noise draws (`tinyvae eval
    // --mc-samples` gives any other).
    let test_loss = evaluate(
        &trainer.model,
        &test_t,
        1024,
        1.0,
        seed,
        trainer.cfg.mc_samples,
    )?;
    let seconds: Vec<f64> = trainer.progress.history.iter().map(|m| m.seconds).collect();
    let mut summary = serde_json::json!({
        "event": "done",
        "epochs": trainer.progress.epoch,
        "best_epoch": trainer.progress.best_epoch,
        "stopped_early": trainer.progress.stopped_early,
        "test_images": test.len(),
        "test": test_loss,
        "mean_epoch_seconds": seconds.iter().sum::<f64>() / seconds.len().max(1) as f64,
    });
    if let Some(p) = &trainer.profile {
        let ms: serde_json::Map<_, _> = p
            .per_step_ms()
            .iter()
            .map(|&(name, ms)| (name.to_string(), ms.into()))
            .collect();
        summary["step_profile_ms"] = ms.into();
        summary["profiled_steps"] = p.steps.into();
    }
    if device.is_cuda() {
        summary["cuda_graphs"] = trainer.cuda_graphs.into();
    }
    if let Some(note) = &trainer.graph_note {
        eprintln!("{note}");
        summary["cuda_graph_note"] = note.clone().into();
    }
    append_line(&metrics_path, &summary.to_string())?;
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "done: {} epochs (best {}{}), test loss {:.2} = recon {:.2} + KL {:.2} on {} images, {:.2} s per epoch",
            trainer.progress.epoch,
            trainer.progress.best_epoch,
            if trainer.progress.stopped_early { ", stopped early" } else { "" },
            test_loss.loss,
            test_loss.recon,
            test_loss.kl,
            test.len(),
            seconds.iter().sum::<f64>() / seconds.len().max(1) as f64,
        );
        if let Some(p) = &trainer.profile {
            println!("{}", profile_line(p));
        }
    }
    let meta = CheckpointMeta {
        config: cfg.clone(),
        init,
        data: data_info,
        train: trainer.cfg.clone(),
        epoch: trainer
            .progress
            .best_epoch
            .max(1)
            .min(trainer.progress.epoch),
        metrics: serde_json::json!({
            "last": trainer.progress.history.last(),
            "best_val": trainer.progress.best_val,
            "test": test_loss,
        }),
    };
    let model_path = args.out.join("model.safetensors");
    checkpoint::save_model(&model_path, &trainer.model, &meta)?;
    plot::loss_curves(
        &args.out.join("loss.png"),
        &trainer.progress.history,
        &format!("tinyvae {:?} {}", cfg.kind, args.out.display()),
    )?;
    eprintln!(
        "saved {} and {}",
        model_path.display(),
        args.out.join("loss.png").display()
    );
    Ok(())
}
