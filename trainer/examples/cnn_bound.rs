//! The measurement behind "What the last six kinds need" (BENCHMARKS.md): a small
//! convolutional classifier (3x3 conv, 16 channels, 2x2 max pool; 3x3 conv, 32 channels,
//! pool; dense 128; one logit) trained on the training frames against faulted copies of
//! them, thresholded so that at most 1% of the fitting frames lie above it, judged on the
//! evaluation frames of `tinyvae detect`.
//!
//! - `per-kind KINDS`: one classifier per kind (comma-separated names), trained on the
//!   7,996 training frames against the same frames with that fault (seed 2). It is told
//!   what the fault looks like, which no one-class detector is: what it reaches is what
//!   the frames themselves allow a detector to see, near enough.
//! - `outlier-exposure COPIES`: one classifier against `COPIES` faulted copies of the
//!   training frames, each frame with one of the 18 tuned kinds in turn (Hendrycks et
//!   al. 2019), the clean frames repeated as often; printed alone and as a 17th term
//!   beside the shipped sixteen.
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example cnn_bound -- CHECKPOINT EPOCHS per-kind occlusion,overlay
//! cargo run --release -p tinyvae-trainer --example cnn_bound -- CHECKPOINT EPOCHS outlier-exposure 3
//! ```
//!
//! A last argument `dense` trains a dense classifier (784-128-1) in place of the
//! convolutional one.
//!
//! Float only, on the CPU: 5 epochs on 16,000 frames take about 4 minutes on 2 cores.

mod common;

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{conv2d, linear, Conv2dConfig, Optimizer, VarBuilder, VarMap};
use tinyvae_datasets::corrupt::{corrupt_each_at, corrupt_with, Corruption};
use tinyvae_datasets::Dataset;
use tinyvae_trainer::detector::two_class_auroc;
use tinyvae_trainer::tensor::ToTensor;

/// The classifier: the two convolutions (`None` for a dense classifier on the pixels,
/// 784-128-1, the shape the board's kernels already run) and the dense layers.
struct Cnn {
    convs: Option<(candle_nn::Conv2d, candle_nn::Conv2d)>,
    f1: candle_nn::Linear,
    f2: candle_nn::Linear,
}

impl Cnn {
    fn new(vb: VarBuilder, convolutional: bool) -> candle_core::Result<Self> {
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let convs = if convolutional {
            Some((
                conv2d(1, 16, 3, cfg, vb.pp("c1"))?,
                conv2d(16, 32, 3, cfg, vb.pp("c2"))?,
            ))
        } else {
            None
        };
        let inputs = if convolutional { 32 * 7 * 7 } else { 784 };
        Ok(Self {
            convs,
            f1: linear(inputs, 128, vb.pp("f1"))?,
            f2: linear(128, 1, vb.pp("f2"))?,
        })
    }

    /// Logits of `x` (`(B, 784)`, pixels in `[0, 1]`).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = match &self.convs {
            Some((c1, c2)) => {
                let x = x.reshape((x.dim(0)?, 1, 28, 28))?;
                let x = c1.forward(&x)?.relu()?.max_pool2d(2)?;
                c2.forward(&x)?.relu()?.max_pool2d(2)?.flatten_from(1)?
            }
            None => x.clone(),
        };
        let x = self.f1.forward(&x)?.relu()?;
        self.f2.forward(&x)?.squeeze(D::Minus1)
    }

    /// The logit of every frame of `d`, 500 at a time.
    fn logits(&self, d: &Dataset) -> Result<Vec<f64>> {
        let x = d.to_tensor(&Device::Cpu)?;
        let mut out = Vec::with_capacity(d.len());
        for start in (0..d.len()).step_by(500) {
            let rows = x.narrow(0, start, 500.min(d.len() - start))?;
            out.extend(
                self.forward(&rows)?
                    .to_vec1::<f32>()?
                    .into_iter()
                    .map(f64::from),
            );
        }
        Ok(out)
    }
}

/// A classifier trained for `epochs` on `clean` (label 0) against `faulted` (label 1):
/// AdamW at 1e-3, batches of 128, binary cross-entropy, a seeded shuffle.
fn train(
    clean: &[Dataset],
    faulted: &[Dataset],
    epochs: usize,
    convolutional: bool,
) -> Result<Cnn> {
    let cpu = Device::Cpu;
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for (sets, label) in [(clean, 0.0), (faulted, 1.0)] {
        for d in sets {
            xs.push(d.to_tensor(&cpu)?);
            ys.push((Tensor::ones(d.len(), DType::F32, &cpu)? * label)?);
        }
    }
    let (x, y) = (Tensor::cat(&xs, 0)?, Tensor::cat(&ys, 0)?);
    let vars = VarMap::new();
    let cnn = Cnn::new(
        VarBuilder::from_varmap(&vars, DType::F32, &cpu),
        convolutional,
    )?;
    // candle draws its initial weights from an unseeded generator on the CPU: redraw
    // them from a seeded one, in the order of the parameters' names (weights uniform
    // within 1/sqrt(fan-in), as candle's default; biases 0), so that a run repeats.
    let mut init = tinyvae_datasets::rng::SeededRng::stream(0, "cnn-bound-init", 0);
    let named = vars
        .data()
        .lock()
        .map_err(|_| anyhow!("the parameters' lock"))?
        .clone();
    let mut names: Vec<&String> = named.keys().collect();
    names.sort();
    for name in names {
        let var = &named[name];
        let dims = var.dims().to_vec();
        let bound = match dims.get(1..) {
            Some(fan_in) if !fan_in.is_empty() => {
                1.0 / (fan_in.iter().product::<usize>() as f64).sqrt()
            }
            _ => 0.0,
        };
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| init.uniform_range(-bound, bound) as f32)
            .collect();
        var.set(&Tensor::from_vec(values, dims, &cpu)?)?;
    }
    let params = candle_nn::ParamsAdamW {
        lr: 1e-3,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = candle_nn::AdamW::new(vars.all_vars(), params)?;
    let mut order_rng = tinyvae_datasets::rng::SeededRng::stream(0, "cnn-bound", 0);
    for _ in 0..epochs {
        let order: Vec<u32> = order_rng
            .permutation(x.dim(0)?)
            .into_iter()
            .map(|i| i as u32)
            .collect();
        for batch in order.chunks(128) {
            let rows = Tensor::new(batch, &cpu)?;
            let logit = cnn.forward(&x.index_select(&rows, 0)?)?;
            let target = y.index_select(&rows, 0)?;
            // log(1 + e^l) - l y, written to stay finite for large |l|.
            let softplus = (logit.relu()? + (logit.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
            opt.backward_step(&(softplus - (&logit * &target)?)?.mean_all()?)?;
        }
    }
    Ok(cnn)
}

fn main() -> Result<()> {
    let usage = "cnn_bound CHECKPOINT EPOCHS (per-kind KINDS | outlier-exposure COPIES) [dense]";
    let (_checkpoint, train_frames, scored) = common::score_detect_frames(usage)?;
    let arg = |i: usize| {
        std::env::args()
            .nth(i)
            .ok_or_else(|| anyhow!("usage: {usage}"))
    };
    let epochs: usize = arg(2)?.parse()?;
    let convolutional = std::env::args().nth(5).as_deref() != Some("dense");
    match arg(3)?.as_str() {
        "per-kind" => {
            println!("| kind | AUROC | recall at 1% | false positives |\n|---|---|---|---|");
            for name in arg(4)?.split(',') {
                let (i, &kind) = Corruption::ALL
                    .iter()
                    .enumerate()
                    .find(|(_, k)| k.name() == name)
                    .ok_or_else(|| anyhow!("no fault kind {name}"))?;
                let faulted = corrupt_each_at(&train_frames, kind, 1.0, 2);
                let cnn = train(
                    std::slice::from_ref(&train_frames),
                    &[faulted],
                    epochs,
                    convolutional,
                )?;
                let logits: Vec<Vec<f64>> = [&scored[0], &scored[1], &scored[2 + i]]
                    .iter()
                    .map(|s| cnn.logits(&s.frames))
                    .collect::<Result<_>>()?;
                let t = common::one_percent_threshold(&logits[0]);
                let above = |s: &[f64]| {
                    s.iter().filter(|&&v| v > t).count() as f64 / s.len() as f64 * 100.0
                };
                println!(
                    "| {name} | {:.4} | {:.1}% | {:.2}% |",
                    two_class_auroc(&logits[1], &logits[2]),
                    above(&logits[2]),
                    above(&logits[1])
                );
            }
        }
        "outlier-exposure" => {
            let copies: u64 = arg(4)?.parse()?;
            let tuned: Vec<Corruption> = Corruption::ALL
                .iter()
                .copied()
                .filter(|k| !k.held_out())
                .collect();
            let faulted: Vec<Dataset> = (0..copies)
                .map(|c| corrupt_with(&train_frames, &tuned, 3 + c))
                .collect();
            let clean = vec![train_frames.clone(); copies as usize];
            let cnn = train(&clean, &faulted, epochs, convolutional)?;
            let head: Vec<Vec<f64>> = scored
                .iter()
                .map(|s| cnn.logits(&s.frames))
                .collect::<Result<_>>()?;
            let shipped = common::shipped_scores(&scored);
            println!(
                "| detector | pooled AUROC | false positives | mean recall | kinds below 90% | which |\n|---|---|---|---|---|---|"
            );
            println!(
                "| the shipped 16 terms | {}",
                common::summary_row(&scored, &shipped)
            );
            println!(
                "| the classifier alone | {}",
                common::summary_row(&scored, &head)
            );
            println!(
                "| 16 terms + the classifier as a 17th | {}",
                common::summary_row(&scored, &common::with_extra_term(&shipped, &head))
            );
        }
        other => bail!("{other}: expected per-kind or outlier-exposure"),
    }
    Ok(())
}
