//! Would a small convolutional VAE lift the fault detector? The measurement behind
//! BENCHMARKS.md's "A convolutional VAE, float only" table, kept so that it can be
//! repeated before the device gains convolution layers (issue #12).
//!
//! It trains a float conv VAE on the bundled digits with candle's autograd (the
//! product's `Model` is dense only), then runs the same per-fault report as
//! `tinyvae detect` on its float reconstruction ([`TermSource::Custom`]), and prints
//! beside each kind the AUROC of three terms alone (the negative ELBO, missing ink,
//! excess ink), which the largest-term combination can hide.
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example conv_detect -- CH1 CH2 EPOCHS [DENOISE]
//! ```
//!
//! `CH1`, `CH2`: the channels of the two stride-2 3x3 convolutions (28 -> 14 -> 7); the
//! decoder mirrors them with 4x4 stride-2 transposed convolutions. Latent 16, Bernoulli
//! likelihood, Adam 1e-3, batch 64, seed 1, as the default model. `DENOISE`: a
//! `--denoise` list; half the training images then get one of its faults as input and
//! the clean image as target.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig, Optimizer, VarBuilder, VarMap};
use tinyvae_datasets::corrupt::{corrupt_each_at, Corruption};
use tinyvae_datasets::rng::SeededRng;
use tinyvae_datasets::Dataset;
use tinyvae_shared::detect::{RawTerms, Seen, Term};
use tinyvae_trainer::detector::{
    fault_report, fit_seen, terms_from_reconstructions, two_class_auroc, ReportError,
    ReportOptions, TermSource,
};
use tinyvae_trainer::model::loss::{kl, recon_nll};
use tinyvae_trainer::model::Likelihood;
use tinyvae_trainer::tensor::ToTensor;
use tinyvae_trainer::train::faults;

const LATENT: usize = 16;
const SIDE: usize = 28;

/// The conv VAE: two strided convolutions and a dense head; a dense layer and two
/// transposed convolutions back.
struct ConvVae {
    conv1: candle_nn::Conv2d,
    conv2: candle_nn::Conv2d,
    head: candle_nn::Linear,
    expand: candle_nn::Linear,
    up1: candle_nn::ConvTranspose2d,
    up2: candle_nn::ConvTranspose2d,
    ch2: usize,
}

impl ConvVae {
    fn new(vb: VarBuilder, ch1: usize, ch2: usize) -> candle_core::Result<Self> {
        let down = Conv2dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        let up = ConvTranspose2dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        let cells = ch2 * (SIDE / 4) * (SIDE / 4);
        Ok(Self {
            conv1: candle_nn::conv2d(1, ch1, 3, down, vb.pp("conv1"))?,
            conv2: candle_nn::conv2d(ch1, ch2, 3, down, vb.pp("conv2"))?,
            head: candle_nn::linear(cells, 2 * LATENT, vb.pp("head"))?,
            expand: candle_nn::linear(LATENT, cells, vb.pp("expand"))?,
            up1: candle_nn::conv_transpose2d(ch2, ch1, 4, up, vb.pp("up1"))?,
            up2: candle_nn::conv_transpose2d(ch1, 1, 4, up, vb.pp("up2"))?,
            ch2,
        })
    }

    /// `(B, 784) -> (mu, logvar)`.
    fn encode(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let h = x.reshape((x.dim(0)?, 1, SIDE, SIDE))?;
        let h = self.conv1.forward(&h)?.relu()?;
        let h = self.conv2.forward(&h)?.relu()?;
        let h = self.head.forward(&h.flatten_from(1)?)?;
        Ok((
            h.narrow(D::Minus1, 0, LATENT)?,
            h.narrow(D::Minus1, LATENT, LATENT)?,
        ))
    }

    /// `(B, latent) -> logits (B, 784)`.
    fn decode(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let b = z.dim(0)?;
        let h = self.expand.forward(z)?.relu()?;
        let h = h.reshape((b, self.ch2, SIDE / 4, SIDE / 4))?;
        let h = self.up1.forward(&h)?.relu()?;
        self.up2.forward(&h)?.reshape((b, SIDE * SIDE))
    }

    /// Every frame's detector terms: reconstruction and negative ELBO at `z = mu`, and
    /// `unseen` against `seen`.
    fn terms(
        &self,
        frames: &Dataset,
        seen: Option<Seen<'_>>,
    ) -> Result<Vec<RawTerms>, ReportError> {
        let x = frames.to_tensor(&Device::Cpu)?;
        let (mu, logvar) = self.encode(&x)?;
        let logits = self.decode(&mu)?;
        let elbo = (recon_nll(&logits, &x, Likelihood::Bernoulli)? + kl(&mu, &logvar)?)?;
        let elbo: Vec<f64> = elbo.to_vec1::<f32>()?.into_iter().map(f64::from).collect();
        let means = candle_nn::ops::sigmoid(&logits)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(terms_from_reconstructions(frames, &means, &elbo, seen))
    }
}

fn arg(args: &[String], i: usize, name: &str) -> Result<usize> {
    let s = args
        .get(i)
        .ok_or_else(|| anyhow!("usage: conv_detect CH1 CH2 EPOCHS [DENOISE] ({name} missing)"))?;
    s.parse()
        .with_context(|| format!("{name}: expected a whole number, got {s:?}"))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (ch1, ch2, epochs) = (
        arg(&args, 1, "CH1")?,
        arg(&args, 2, "CH2")?,
        arg(&args, 3, "EPOCHS")?,
    );
    let denoise = match args.get(4) {
        Some(list) => Corruption::parse_list(list).map_err(|e| anyhow!("DENOISE: {e}"))?,
        None => Vec::new(),
    };
    let dev = Device::Cpu;
    let (train, test) =
        tinyvae_datasets::load_train_test(Path::new("data/mnist-10k"), (SIDE, SIDE), 0)?;
    if train.width != SIDE || train.height != SIDE {
        bail!("data/mnist-10k: expected {SIDE}x{SIDE} images");
    }
    let varmap = VarMap::new();
    let vae = ConvVae::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev), ch1, ch2)?;
    // AdamW without weight decay is Adam, the default model's optimizer.
    let params = candle_nn::ParamsAdamW {
        lr: 1e-3,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = candle_nn::AdamW::new(varmap.all_vars(), params)?;
    let x = train.to_tensor(&dev)?;
    let n = train.len();
    for epoch in 0..epochs {
        let started = std::time::Instant::now();
        let mut rng = SeededRng::stream(1, "epoch", epoch as u64);
        let perm: Vec<u32> = rng.permutation(n).into_iter().map(|i| i as u32).collect();
        let mut total = 0.0;
        for rows in perm.chunks(64) {
            let target = x.index_select(&Tensor::from_slice(rows, rows.len(), &dev)?, 0)?;
            let input = if denoise.is_empty() {
                target.clone()
            } else {
                let drawn = faults::draw(&mut rng, rows.len(), &denoise, 0.5);
                let clean = target.flatten_all()?.to_vec1::<f32>()?;
                let faulted = faults::apply_batch(&clean, (SIDE, SIDE), &drawn);
                Tensor::from_vec(faulted, target.shape(), &dev)?
            };
            let (mu, logvar) = vae.encode(&input)?;
            let eps =
                Tensor::from_vec(rng.normals(rows.len() * LATENT), (rows.len(), LATENT), &dev)?;
            let z = (&mu + (logvar.affine(0.5, 0.0)?.exp()? * eps)?)?;
            let rec = recon_nll(&vae.decode(&z)?, &target, Likelihood::Bernoulli)?.sum_all()?;
            let loss = ((rec + kl(&mu, &logvar)?.sum_all()?)? / rows.len() as f64)?;
            total += f64::from(loss.to_scalar::<f32>()?) * rows.len() as f64;
            opt.backward_step(&loss)?;
        }
        eprintln!(
            "epoch {}: loss {:.2} ({:.1} s)",
            epoch + 1,
            total / n as f64,
            started.elapsed().as_secs_f64()
        );
    }

    // The `unseen` term's set, fitted on the training frames as `tinyvae export` does.
    let seen_bytes = fit_seen(&train);
    let seen = Seen::new(&seen_bytes);
    let terms = |frames: &Dataset| vae.terms(frames, seen);
    let source = TermSource::Custom(&terms);
    let seed = 0;
    let report = fault_report(&source, &test, seed, ReportOptions::default())?;
    // The single terms alone, on the frames the report scores.
    let (_, eval_set) = test.split(0.5, seed);
    let clean = vae.terms(&eval_set, seen)?;
    let alone = [Term::Elbo, Term::MissingInk, Term::ExcessInk];
    println!(
        "conv {ch1}-{ch2}, latent {LATENT}, {epochs} epochs{}",
        if denoise.is_empty() {
            ""
        } else {
            ", denoising"
        }
    );
    println!("| fault | AUROC | recall | fired | -ELBO alone | missing alone | excess alone |");
    println!("|---|---|---|---|---|---|---|");
    for (row, kind) in report.rows.iter().zip(Corruption::ALL) {
        let faulted = vae.terms(&corrupt_each_at(&eval_set, kind, 1.0, seed), seen)?;
        let single: Vec<String> = alone
            .iter()
            .map(|&t| {
                let raw = |terms: &[RawTerms]| -> Vec<f64> {
                    terms.iter().map(|r| f64::from(r[t as usize])).collect()
                };
                format!("{:.3}", two_class_auroc(&raw(&clean), &raw(&faulted)))
            })
            .collect();
        println!(
            "| {}{} | {:.3} | {:.1}% | {} | {} |",
            row.kind,
            if row.held_out { " *" } else { "" },
            row.auroc,
            row.recall * 100.0,
            row.fired.unwrap_or("-"),
            single.join(" | ")
        );
    }
    println!(
        "pooled {:.4} (tuned {:.4}, held out {:.4}); threshold {:.3}, {:.2}% false positives",
        report.pooled_auroc,
        report.tuned_auroc,
        report.held_out_auroc,
        tinyvae_shared::fixed::q16_to_f64(report.params.threshold),
        report.false_positive_rate * 100.0
    );
    Ok(())
}
