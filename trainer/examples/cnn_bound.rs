//! The measurement behind "What the last six kinds need" (BENCHMARKS.md): a small
//! convolutional classifier (3x3 conv, 16 channels, 2x2 max pool; 3x3 conv, 32 channels,
//! pool; dense 128; one logit) trained on the training frames against faulted copies of
//! them, thresholded at 1% false positives on the fitting frames
//! (`common::one_percent_threshold`), judged on the evaluation frames of `tinyvae
//! detect`.
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
//! - `multi-class COPIES`: as `outlier-exposure`, but the classifier tells the clean
//!   class and each of the 18 tuned kinds apart (softmax over 19 classes, each copy
//!   gives a frame the next kind), and a frame's score is the log-odds of any fault
//!   against clean: a head that need not fold 18 kinds into one logit.
//!
//! A sixth argument: for `per-kind` and `specialists` the number of faulted copies of
//! the training frames (1 unless given; each after the first reorders the frames, so
//! an overlaid or torn frame gets a new partner); for `multi-class` tuned kinds
//! (comma-separated, repeats allowed) drawn once more in each turn of the kinds, the
//! copies after the first reordered likewise. The 17th-term rows of `specialists` and
//! `multi-class` are followed by the same head weighted by 1.25, 1.5 and 2 (a larger
//! share of the false positives). `TINYVAE_BOUND_SPLITS=N` judges a `multi-class` head
//! on the splits of seeds 0 to N - 1 (trained once); `TINYVAE_BOUND_SPREAD=1` gives
//! each of its faulted training frames a severity from half to twice the default.
//!
//! A last argument `dense` trains a dense classifier (784-128-1) in place of the
//! convolutional one, `small` a classifier of the size a board could run beside the
//! VAE (5x5 convolution of 8 channels at stride 2, 3x3 convolution of 16 at stride 2,
//! dense to the logits: about 110,000 multiply-accumulates a frame, the VAE's 103,424),
//! `pooled` the small one's convolutions with each channel's largest and mean value
//! over the frame, `mid` the CNN's first layer with a second at stride 2 (about
//! 400,000), `narrow` the CNN with a dense layer of 32 (`narrow-texture`: its dense
//! layer also reads the first convolution's channels' largest and mean over the
//! frame), `texture` one full-resolution
//! 3x3 convolution whose channels are summarized over the frame (see [`Arch`]).
//!
//! Float only, on the CPU: 5 epochs on 16,000 frames take about 4 minutes on 2 cores;
//! `multi-class 6` (95,952 frames) 12 minutes for 4 epochs, 17 for 8; `small` 4 for 10.

mod common;

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{conv2d, linear, Conv2dConfig, VarBuilder, VarMap};
use tinyvae_datasets::corrupt::{
    corrupt_each_at, corrupt_with, corrupt_with_spread_severity, Corruption,
};
use tinyvae_datasets::Dataset;
use tinyvae_trainer::detector::two_class_auroc;
use tinyvae_trainer::fault_head::{self, reordered};
use tinyvae_trainer::tensor::ToTensor;

/// The classifier's shape.
#[derive(Clone, Copy, PartialEq)]
enum Arch {
    /// 3x3 convolutions of 16 and 32 channels, each with 2x2 max pooling, dense 128.
    Cnn,
    /// A 5x5 convolution of 8 channels and a 3x3 of 16, both at stride 2, then the
    /// logits: the size a board could run beside the VAE.
    Small,
    /// [`Arch::Cnn`] with a dense layer of 32 in place of 128: its weights (about
    /// 55,000 int8) fit a board's flash beside the VAE, the CNN's (205,000) do not.
    Narrow,
    /// [`Arch::Narrow`] whose dense layer also reads the largest and the mean of each
    /// of its first convolution's channels over the frame ([`Arch::Texture`]'s
    /// statistics, at no extra multiply-accumulates): a clipped stroke's profile,
    /// which pooling loses, beside the shapes.
    NarrowTexture,
    /// A 3x3 convolution of 16 channels at full resolution with 2x2 max pooling, a 3x3
    /// of 32 at stride 2, then the logits: [`Arch::Cnn`]'s first layer, a third of its
    /// multiply-accumulates and a tenth of its weights.
    Mid,
    /// One 3x3 convolution of 16 channels at full resolution, then the largest and the
    /// mean of each channel over the frame, dense 64, the logits: statistics of a local
    /// pattern over the whole frame (a stroke's clipped profile), about 113,000
    /// multiply-accumulates.
    Texture,
    /// [`Arch::Small`]'s convolutions, then the largest and the mean of each channel
    /// over the frame (32 values), dense 64, the logits: a fault is found wherever it
    /// falls, with few weights to learn.
    Pooled,
    /// Dense on the pixels, 784-128: the shape the board's kernels already run.
    Dense,
}

/// Each channel's largest and mean value over the frame: `(B, C, H, W)` to `(B, 2C)`.
fn frame_max_and_mean(x: &Tensor) -> candle_core::Result<Tensor> {
    let x = x.flatten_from(2)?;
    Tensor::cat(&[x.max(D::Minus1)?, x.mean(D::Minus1)?], 1)
}

/// The classifier: its convolutions (none for [`Arch::Dense`]) and dense layers, with
/// `classes` logits (1: one logit for "faulted").
struct Cnn {
    arch: Arch,
    convs: Option<(candle_nn::Conv2d, candle_nn::Conv2d)>,
    dense: Vec<candle_nn::Linear>,
    classes: usize,
}

impl Cnn {
    fn new(vb: VarBuilder, arch: Arch, classes: usize) -> candle_core::Result<Self> {
        let (k1, k2, c1, c2, stride1, stride2) = match arch {
            Arch::Small | Arch::Pooled => (5, 3, 8, 16, 2, 2),
            Arch::Mid => (3, 3, 16, 32, 1, 2),
            Arch::Texture => (3, 3, 16, 16, 1, 1),
            _ => (3, 3, 16, 32, 1, 1),
        };
        let cfg = |k: usize, stride: usize| Conv2dConfig {
            padding: k / 2,
            stride,
            ..Default::default()
        };
        let convs = match arch {
            Arch::Dense => None,
            _ => Some((
                conv2d(1, c1, k1, cfg(k1, stride1), vb.pp("c1"))?,
                conv2d(c1, c2, k2, cfg(k2, stride2), vb.pp("c2"))?,
            )),
        };
        let dense = match arch {
            Arch::Small | Arch::Mid => vec![linear(c2 * 7 * 7, classes, vb.pp("f1"))?],
            Arch::Cnn
            | Arch::Narrow
            | Arch::NarrowTexture
            | Arch::Dense
            | Arch::Pooled
            | Arch::Texture => {
                let (inputs, hidden) = match arch {
                    Arch::Cnn => (c2 * 7 * 7, 128),
                    Arch::Narrow => (c2 * 7 * 7, 32),
                    Arch::NarrowTexture => (c2 * 7 * 7 + c1 * 2, 32),
                    Arch::Pooled => (c2 * 2, 64),
                    Arch::Texture => (c1 * 2, 64),
                    _ => (784, 128),
                };
                vec![
                    linear(inputs, hidden, vb.pp("f1"))?,
                    linear(hidden, classes, vb.pp("f2"))?,
                ]
            }
        };
        Ok(Self {
            arch,
            convs,
            dense,
            classes,
        })
    }

    /// Logits of `x` (`(B, 784)`, pixels in `[0, 1]`): `(B, classes)`, or `(B,)` for one.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.logit_rows(x)?;
        if self.classes == 1 {
            x.squeeze(D::Minus1)
        } else {
            Ok(x)
        }
    }

    /// Logits of `x`: `(B, classes)`.
    fn logit_rows(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = match &self.convs {
            Some((c1, c2)) => {
                let x = x.reshape((x.dim(0)?, 1, 28, 28))?;
                match self.arch {
                    Arch::Small => c2
                        .forward(&c1.forward(&x)?.relu()?)?
                        .relu()?
                        .flatten_from(1)?,
                    Arch::Mid => {
                        let x = c1.forward(&x)?.relu()?.max_pool2d(2)?;
                        c2.forward(&x)?.relu()?.flatten_from(1)?
                    }
                    Arch::Texture => frame_max_and_mean(&c1.forward(&x)?.relu()?)?,
                    Arch::NarrowTexture => {
                        let x = c1.forward(&x)?.relu()?;
                        let texture = frame_max_and_mean(&x)?;
                        let x = c2.forward(&x.max_pool2d(2)?)?.relu()?.max_pool2d(2)?;
                        Tensor::cat(&[x.flatten_from(1)?, texture], 1)?
                    }
                    Arch::Pooled => {
                        frame_max_and_mean(&c2.forward(&c1.forward(&x)?.relu()?)?.relu()?)?
                    }
                    _ => {
                        let x = c1.forward(&x)?.relu()?.max_pool2d(2)?;
                        c2.forward(&x)?.relu()?.max_pool2d(2)?.flatten_from(1)?
                    }
                }
            }
            None => x.clone(),
        };
        for (i, layer) in self.dense.iter().enumerate() {
            x = layer.forward(&x)?;
            if i + 1 < self.dense.len() {
                x = x.relu()?;
            }
        }
        Ok(x)
    }

    /// Every frame's score ([`Cnn::logits`]) of each of `scored`'s sets.
    fn logits_of(&self, scored: &[common::Scored]) -> Result<Vec<Vec<f64>>> {
        scored.iter().map(|s| self.logits(&s.frames)).collect()
    }

    /// Every frame of `d`'s score, 500 at a time: the logit, or with several classes
    /// the log-odds of any fault class against the clean one (class 0).
    fn logits(&self, d: &Dataset) -> Result<Vec<f64>> {
        let x = d.to_tensor(&Device::Cpu)?;
        let mut out = Vec::with_capacity(d.len());
        for start in (0..d.len()).step_by(500) {
            let rows = x.narrow(0, start, 500.min(d.len() - start))?;
            let logits = self.forward(&rows)?;
            if self.classes == 1 {
                out.extend(logits.to_vec1::<f32>()?.into_iter().map(f64::from));
            } else {
                out.extend(
                    logits
                        .to_vec2::<f32>()?
                        .iter()
                        .map(|row| fault_head::fault_log_odds(row)),
                );
            }
        }
        Ok(out)
    }
}

/// [`Cnn`] as candle's `Module`: its logits `(B, classes)`, unsqueezed.
struct ModuleOf<'a>(&'a Cnn);

impl Module for ModuleOf<'_> {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.0.logit_rows(x)
    }
}

/// A classifier trained for `epochs` on `sets`, each frame of a set with the set's
/// class (0: clean): AdamW at 1e-3, batches of 128, binary cross-entropy on one logit
/// (`classes` = 1, every class above 0 faulted) or cross-entropy over `classes`, a
/// seeded shuffle.
fn train(sets: &[(&Dataset, Vec<u32>)], epochs: usize, arch: Arch, classes: usize) -> Result<Cnn> {
    let cpu = Device::Cpu;
    let mut xs = Vec::new();
    let mut labels = Vec::new();
    for (d, class) in sets {
        xs.push(d.to_tensor(&cpu)?);
        labels.extend(class.iter().copied());
    }
    let x = Tensor::cat(&xs, 0)?;
    let y = if classes == 1 {
        let faulted: Vec<f32> = labels.iter().map(|&c| f32::from(u8::from(c > 0))).collect();
        Tensor::new(faulted, &cpu)?
    } else {
        Tensor::new(labels, &cpu)?
    };
    let vars = VarMap::new();
    let cnn = Cnn::new(
        VarBuilder::from_varmap(&vars, DType::F32, &cpu),
        arch,
        classes,
    )?;
    fault_head::seed_parameters(&vars)?;
    fault_head::fit_classifier(&ModuleOf(&cnn), &vars, &x, &y, epochs, classes)?;
    Ok(cnn)
}

/// A classifier told fault `name` (its index in [`Corruption::ALL`] with it): trained
/// on `train_frames` against `copies` faulted copies of them (seeds 2, 3, ...), the
/// clean frames repeated as often. Copy 0 is the frames in order, as every table in
/// BENCHMARKS.md before the copies were added; each later copy reorders them
/// (seeded), so that a fault drawing a second frame (overlay, torn) pairs each frame
/// with a new partner.
fn specialist(
    train_frames: &Dataset,
    name: &str,
    epochs: usize,
    arch: Arch,
    copies: usize,
) -> Result<(usize, Cnn)> {
    let (i, &kind) = Corruption::ALL
        .iter()
        .enumerate()
        .find(|(_, k)| k.name() == name)
        .ok_or_else(|| anyhow!("no fault kind {name}"))?;
    let faulted: Vec<Dataset> = (0..copies)
        .map(|c| corrupt_each_at(&reordered(train_frames, c), kind, 1.0, 2 + c as u64))
        .collect();
    let mut sets: Vec<(&Dataset, Vec<u32>)> = (0..copies)
        .map(|_| (train_frames, all(train_frames, 0)))
        .collect();
    sets.extend(faulted.iter().map(|d| (d, all(d, 1))));
    Ok((i, train(&sets, epochs, arch, 1)?))
}

/// The table of a head with a class per kind on `scored`'s frames: the shipped
/// sixteen, the head alone, the head as a 17th term, and weighted.
fn print_head_rows(scored: &[common::Scored], cnn: &Cnn) -> Result<()> {
    let head = cnn.logits_of(scored)?;
    let shipped = common::print_shipped_row(scored);
    println!(
        "| the classifier alone | {}",
        common::summary_row(scored, &head)
    );
    println!(
        "| 16 terms + the classifier as a 17th | {}",
        common::summary_row(scored, &common::with_extra_term(&shipped, &head))
    );
    print_weighted_rows(scored, &shipped, &head, "the classifier as a 17th");
    Ok(())
}

/// Rows of the shipped sixteen with `head` as a 17th term whose standardized value is
/// weighted by 1.25, 1.5 and 2: the head's share of the false positives grows with its
/// weight. A measurement of what a larger share would give, not a weight chosen on
/// these frames.
fn print_weighted_rows(
    scored: &[common::Scored],
    shipped: &[Vec<f64>],
    head: &[Vec<f64>],
    what: &str,
) {
    for weight in [1.25, 1.5, 2.0] {
        println!(
            "| 16 terms + {what}, weight {weight} | {}",
            common::summary_row(
                scored,
                &common::with_weighted_extra_term(shipped, head, weight)
            )
        );
    }
}

/// Class `class` for every frame of `d`.
fn all(d: &Dataset, class: u32) -> Vec<u32> {
    vec![class; d.len()]
}

fn main() -> Result<()> {
    let usage = "cnn_bound CHECKPOINT EPOCHS (per-kind KINDS | specialists KINDS | outlier-exposure COPIES | multi-class COPIES) [dense | small | pooled | mid | narrow | narrow-texture | texture | cnn] [SPECIALIST_COPIES]";
    let (_checkpoint, train_frames, scored) = common::score_detect_frames(usage)?;
    let arg = |i: usize| {
        std::env::args()
            .nth(i)
            .ok_or_else(|| anyhow!("usage: {usage}"))
    };
    let epochs: usize = arg(2)?.parse()?;
    let arch = match std::env::args().nth(5).as_deref() {
        None | Some("cnn") => Arch::Cnn,
        Some("dense") => Arch::Dense,
        Some("small") => Arch::Small,
        Some("pooled") => Arch::Pooled,
        Some("mid") => Arch::Mid,
        Some("narrow") => Arch::Narrow,
        Some("narrow-texture") => Arch::NarrowTexture,
        Some("texture") => Arch::Texture,
        Some(other) => bail!(
            "{other}: expected cnn, dense, small, mid, narrow, narrow-texture, pooled or texture"
        ),
    };
    // A sixth argument: for `per-kind` and `specialists` the number of faulted copies
    // of the training frames (1 unless given); for `multi-class` the kinds drawn once
    // more in each turn of the kinds (see there).
    let sixth = std::env::args().nth(6);
    let copies = || -> Result<usize> {
        match &sixth {
            None => Ok(1),
            Some(c) => c
                .parse()
                .map_err(|_| anyhow!("{c}: expected the number of faulted copies")),
        }
    };
    match arg(3)?.as_str() {
        "per-kind" => {
            println!("| kind | AUROC | recall at 1% | false positives |\n|---|---|---|---|");
            for name in arg(4)?.split(',') {
                let (i, cnn) = specialist(&train_frames, name, epochs, arch, copies()?)?;
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
        "specialists" => {
            let shipped = common::print_shipped_row(&scored);
            let mut all_terms = shipped.clone();
            let list = arg(4)?;
            let names: Vec<&str> = list.split(',').collect();
            for name in &names {
                let (_, cnn) = specialist(&train_frames, name, epochs, arch, copies()?)?;
                let head = cnn.logits_of(&scored)?;
                println!(
                    "| 16 terms + the {name} classifier | {}",
                    common::summary_row(&scored, &common::with_extra_term(&shipped, &head))
                );
                print_weighted_rows(&scored, &shipped, &head, &format!("the {name} classifier"));
                all_terms = common::with_extra_term(&all_terms, &head);
            }
            if names.len() > 1 {
                println!(
                    "| 16 terms + every classifier above | {}",
                    common::summary_row(&scored, &all_terms)
                );
            }
        }
        mode @ ("outlier-exposure" | "multi-class") => {
            let copies: usize = arg(4)?.parse()?;
            let tuned: Vec<Corruption> = Corruption::ALL
                .iter()
                .copied()
                .filter(|k| !k.held_out())
                .collect();
            // With several classes, copy `c` gives frame `i` tuned kind `(i + c) mod
            // 18`, so that a frame is shown with several kinds; outlier exposure gives
            // it kind `i mod 18` in every copy (as its table in BENCHMARKS.md was run).
            // With a sixth argument (multi-class only: kinds, comma-separated), those
            // kinds come once more in each turn (the turn is 18 + their number long),
            // and every copy after the first reorders the frames (seeded), so that a
            // fault drawing a second frame (overlay) pairs each frame anew.
            let multi_class = mode == "multi-class";
            let mut turn_kinds = tuned.clone();
            if let (true, Some(list)) = (multi_class, &sixth) {
                for name in list.split(',') {
                    let kind = tuned
                        .iter()
                        .find(|k| k.name() == name)
                        .ok_or_else(|| anyhow!("{name}: not a tuned fault kind"))?;
                    turn_kinds.push(*kind);
                }
            }
            let reorder = multi_class && sixth.is_some();
            // TINYVAE_BOUND_SPREAD=1: each faulted frame at its own severity (see
            // `corrupt_with_spread_severity`) rather than every one at the default.
            let spread = std::env::var("TINYVAE_BOUND_SPREAD").is_ok_and(|v| v == "1");
            let class_of =
                |k: Corruption| 1 + tuned.iter().position(|&t| t == k).unwrap_or(0) as u32;
            let faulted: Vec<(Dataset, Vec<u32>)> = (0..copies)
                .map(|c| {
                    let turn = if multi_class { c % turn_kinds.len() } else { 0 };
                    let mut kinds = turn_kinds.clone();
                    kinds.rotate_left(turn);
                    let frames = reordered(&train_frames, if reorder { c } else { 0 });
                    let classes = (0..frames.len())
                        .map(|i| class_of(kinds[i % kinds.len()]))
                        .collect();
                    let faulted = if spread {
                        corrupt_with_spread_severity(&frames, &kinds, 3 + c as u64)
                    } else {
                        corrupt_with(&frames, &kinds, 3 + c as u64)
                    };
                    (faulted, classes)
                })
                .collect();
            let mut sets: Vec<(&Dataset, Vec<u32>)> = (0..copies)
                .map(|_| (&train_frames, all(&train_frames, 0)))
                .collect();
            sets.extend(faulted.iter().map(|(d, c)| (d, c.clone())));
            let classes = if mode == "multi-class" {
                1 + tuned.len()
            } else {
                1
            };
            let cnn = train(&sets, epochs, arch, classes)?;
            print_head_rows(&scored, &cnn)?;
            // The same head judged on more splits of the test digits (it never saw
            // them: only the sixteen terms' fit and the threshold move).
            let splits = common::bound_splits()?;
            for seed in 1..splits {
                std::env::set_var("TINYVAE_SPLIT_SEED", seed.to_string());
                let (_, _, scored) = common::score_detect_frames(usage)?;
                println!("\nsplit {seed}:");
                print_head_rows(&scored, &cnn)?;
            }
        }
        other => bail!("{other}: expected per-kind, specialists, outlier-exposure or multi-class"),
    }
    Ok(())
}
