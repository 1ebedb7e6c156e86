//! `tinyvae train`: fit a VAE or AE, log metrics, draw curves, save checkpoints.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{DataArgs, DeviceArgs};
use tinyvae_trainer::checkpoint::{self, CheckpointMeta, DataInfo};
use tinyvae_trainer::model::{Init, Likelihood, Model, ModelConfig, ModelKind};
use tinyvae_trainer::pictures::plot;
use tinyvae_trainer::tensor::ToTensor;
use tinyvae_trainer::train::{evaluate, EpochMetrics, TrainConfig, Trainer};

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
    /// Fraction of the training images held out for validation and early stopping.
    #[arg(long, default_value_t = 0.1)]
    pub val_frac: f64,
    /// Output directory: model.safetensors (best), last.safetensors (resume),
    /// metrics.jsonl, loss.png.
    #[arg(long, default_value = "runs/vae")]
    pub out: PathBuf,
    /// Continue from `<out>/last.safetensors` (its architecture and settings win;
    /// --epochs may raise the budget).
    #[arg(long)]
    pub resume: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print each epoch's metrics and the final summary as JSON objects (one per line,
    /// as in metrics.jsonl) instead of readable lines.
    #[arg(long)]
    pub json: bool,
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
    /// Epochs (maximum, with early stopping).
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Seed of all randomness (init, split, shuffles, noise).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// KL weight (1 = ELBO).
    #[arg(long, default_value_t = 1.0)]
    pub beta: f64,
    /// Epochs of linear KL warm-up from 0 to beta.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Early stopping patience in epochs (0 = off).
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Augment: translate each training image by a random offset of up to this many
    /// pixels in x and y (zero fill; 0 = off).
    #[arg(long, default_value_t = 0)]
    pub shift: usize,
}

impl HyperArgs {
    /// As a [`TrainConfig`].
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            seed: self.seed,
            beta: self.beta,
            warmup_epochs: self.warmup,
            patience: self.patience,
            shift: self.shift,
        }
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

/// Runs `tinyvae train`.
pub fn run(args: Args) -> Result<()> {
    let device = args.device.device()?;
    let seed = args.hyper.seed;
    let (mut train, test) = args.data.load_train_test(seed)?;
    if let Some(c) = &args.data.normal_class {
        train = train.filter_class(train.class_index(c)?)?;
    }
    if let Some(n) = args.data.limit {
        train = train.take(n);
    }
    let (train, val) = if args.val_frac > 0.0 {
        let (t, v) = train.split(args.val_frac, seed);
        (t, Some(v))
    } else {
        (train, None)
    };
    let config = ModelConfig {
        kind: args.model.kind,
        width: train.width,
        height: train.height,
        hidden: args.model.hidden.clone(),
        latent: args.model.latent,
        likelihood: args.model.likelihood,
    };
    let last = args.out.join("last.safetensors");
    let metrics_path = args.out.join("metrics.jsonl");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let (mut trainer, init) = if args.resume {
        let (t, meta) = checkpoint::load_trainer(&last, &device, Some(args.hyper.epochs))
            .with_context(|| format!("cannot resume from {}", last.display()))?;
        (t, meta.init)
    } else {
        let _ = std::fs::remove_file(&metrics_path);
        let model = Model::new(config, args.model.init, seed, &device)?;
        (Trainer::new(model, args.hyper.config())?, args.model.init)
    };
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
        source: args.data.data.display().to_string(),
        train_images: train.len(),
        val_images: val.as_ref().map_or(0, |v| v.len()),
        normal_class: args.data.normal_class.clone(),
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
        append_line(&metrics_path, &line)?;
        if args.json {
            pb.suspend(|| println!("{line}"));
        } else {
            pb.println(epoch_line(&m, trainer.cfg.epochs));
        }
        let meta = CheckpointMeta {
            config: cfg.clone(),
            init,
            data: data_info.clone(),
            train: trainer.cfg.clone(),
            epoch: trainer.progress.epoch,
            metrics: serde_json::to_value(&m)?,
        };
        checkpoint::save_trainer(&last, &trainer, &meta)?;
    }
    pb.finish_and_clear();
    trainer.restore_best()?;
    let test_t = test.to_tensor(&device)?;
    let test_loss = evaluate(&trainer.model, &test_t, 1024, 1.0, seed)?;
    let seconds: Vec<f64> = trainer.progress.history.iter().map(|m| m.seconds).collect();
    let summary = serde_json::json!({
        "event": "done",
        "epochs": trainer.progress.epoch,
        "best_epoch": trainer.progress.best_epoch,
        "stopped_early": trainer.progress.stopped_early,
        "test_images": test.len(),
        "test": test_loss,
        "mean_epoch_seconds": seconds.iter().sum::<f64>() / seconds.len().max(1) as f64,
    });
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
