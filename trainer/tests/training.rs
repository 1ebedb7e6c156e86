//! Training, checkpoints and bounds on a few hundred real digits with small models.

mod common;

use candle_core::{Device, Tensor};
use tinyvae_datasets::metrics::auroc;
use tinyvae_trainer::checkpoint::{self, CheckpointMeta, DataInfo};
use tinyvae_trainer::eval::bounds;
use tinyvae_trainer::model::{loss, Init, Likelihood, Model, ModelConfig, ModelKind};
use tinyvae_trainer::tensor::ToTensor;
use tinyvae_trainer::train::{evaluate, TrainConfig, Trainer};

fn config(kind: ModelKind, likelihood: Likelihood) -> ModelConfig {
    ModelConfig {
        kind,
        width: 28,
        height: 28,
        hidden: vec![64],
        latent: 8,
        likelihood,
    }
}

fn train_cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        lr: 2e-3,
        seed: 11,
        beta: 1.0,
        warmup_epochs: 1.0,
        patience: 0,
        shift: 0,
    }
}

fn meta(t: &Trainer) -> CheckpointMeta {
    CheckpointMeta {
        config: t.model.config.clone(),
        init: Init::Torch,
        data: DataInfo::default(),
        train: t.cfg.clone(),
        epoch: t.progress.epoch,
        metrics: serde_json::json!({}),
    }
}

fn params(m: &Model) -> Vec<Vec<f32>> {
    m.named_vars()
        .iter()
        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect()
}

#[test]
fn short_training_lowers_validation_loss() {
    let data = common::mnist_train(400);
    let (train, val) = data.split(0.25, 3);
    let dev = Device::Cpu;
    let (xt, xv) = (train.to_tensor(&dev).unwrap(), val.to_tensor(&dev).unwrap());
    for (kind, lik) in [
        (ModelKind::Vae, Likelihood::Bernoulli),
        (ModelKind::Ae, Likelihood::Bernoulli),
        (ModelKind::Vae, Likelihood::Gaussian),
    ] {
        let model = Model::new(config(kind, lik), Init::Torch, 1, &dev).unwrap();
        let before = evaluate(&model, &xv, 256, 1.0, 0).unwrap().loss;
        let mut t = Trainer::new(model, train_cfg(4)).unwrap();
        let mut seen = 0;
        while !t.finished() {
            t.run_epoch(&xt, Some(&xv), &mut |_| seen += 1).unwrap();
        }
        assert_eq!(seen, 4 * 300usize.div_ceil(32));
        let after = t.progress.history.last().unwrap().val.unwrap().loss;
        assert!(
            after < 0.8 * before,
            "{kind:?} {lik:?}: val loss {before} -> {after}"
        );
    }
}

#[test]
fn checkpoint_round_trip_and_exact_resume() {
    let data = common::mnist_train(200);
    let (train, val) = data.split(0.2, 5);
    let dev = Device::Cpu;
    let (xt, xv) = (train.to_tensor(&dev).unwrap(), val.to_tensor(&dev).unwrap());
    let cfg = config(ModelKind::Vae, Likelihood::Bernoulli);
    let dir = tempfile::tempdir().unwrap();

    // Straight through: 4 epochs.
    let mut straight = Trainer::new(
        Model::new(cfg.clone(), Init::Torch, 2, &dev).unwrap(),
        train_cfg(4),
    )
    .unwrap();
    while !straight.finished() {
        straight.run_epoch(&xt, Some(&xv), &mut |_| {}).unwrap();
    }

    // 2 epochs, save, load, 2 more.
    let mut first =
        Trainer::new(Model::new(cfg, Init::Torch, 2, &dev).unwrap(), train_cfg(2)).unwrap();
    while !first.finished() {
        first.run_epoch(&xt, Some(&xv), &mut |_| {}).unwrap();
    }
    let last = dir.path().join("last.safetensors");
    checkpoint::save_trainer(&last, &first, &meta(&first)).unwrap();
    assert!(
        !dir.path().join("last.safetensors.tmp").exists(),
        "temp file left behind"
    );

    // Saved and loaded parameters are identical.
    let loaded = checkpoint::load(&last, &dev).unwrap();
    assert_eq!(params(&loaded.model), params(&first.model));
    assert_eq!(loaded.meta.epoch, 2);
    assert_eq!(loaded.meta.config, first.model.config);
    let (mut resumed, _) = checkpoint::load_trainer(&last, &dev, Some(4)).unwrap();
    assert_eq!(resumed.progress, first.progress);
    while !resumed.finished() {
        resumed.run_epoch(&xt, Some(&xv), &mut |_| {}).unwrap();
    }
    assert_eq!(resumed.progress.epoch, 4);
    let (a, b) = (params(&straight.model), params(&resumed.model));
    for (x, y) in a.iter().zip(&b) {
        for (p, q) in x.iter().zip(y) {
            assert!(
                (p - q).abs() <= 1e-6,
                "resumed parameters differ: {p} vs {q}"
            );
        }
    }
    assert_eq!(
        straight.progress.history.len(),
        resumed.progress.history.len()
    );

    // Plain model files carry the float layers the quantizer reads.
    let mp = dir.path().join("model.safetensors");
    checkpoint::save_model(&mp, &resumed.model, &meta(&resumed)).unwrap();
    let m = checkpoint::load(&mp, &dev).unwrap().model;
    assert_eq!(
        m.encoder_layers().unwrap(),
        resumed.model.encoder_layers().unwrap()
    );
    assert_eq!(m.decoder_layers().unwrap().last().unwrap().out_dim, 784);
    assert_eq!(m.encoder_layers().unwrap().last().unwrap().out_dim, 16);
    // Resuming from a plain model file is refused with a clear error.
    let e = checkpoint::load_trainer(&mp, &dev, None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    // Garbage is refused with the file named.
    std::fs::write(dir.path().join("junk.safetensors"), b"junk").unwrap();
    let e = checkpoint::load(&dir.path().join("junk.safetensors"), &dev)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("junk.safetensors"), "{e}");
}

#[test]
fn iwae_bound_is_never_below_the_elbo() {
    let data = common::mnist_train(300);
    let dev = Device::Cpu;
    let x = data.to_tensor(&dev).unwrap();
    let mut t = Trainer::new(
        Model::new(
            config(ModelKind::Vae, Likelihood::Bernoulli),
            Init::Torch,
            4,
            &dev,
        )
        .unwrap(),
        train_cfg(2),
    )
    .unwrap();
    while !t.finished() {
        t.run_epoch(&x, None, &mut |_| {}).unwrap();
    }
    let sub = x.narrow(0, 0, 40).unwrap();
    let b = bounds(&t.model, &sub, 64, 9).unwrap();
    assert_eq!(b.nll.len(), 40);
    for (nll, ne) in b.nll.iter().zip(&b.neg_elbo) {
        assert!(nll.is_finite() && ne.is_finite());
        assert!(
            nll <= ne,
            "IWAE NLL estimate {nll} above the negative ELBO {ne}"
        );
    }
    // More samples tighten the bound on average.
    let b1 = bounds(&t.model, &sub, 1, 9).unwrap();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&b.nll) < mean(&b1.nll));
    // k = 1: the two estimates coincide.
    for (a, c) in b1.nll.iter().zip(&b1.neg_elbo) {
        assert!((a - c).abs() < 1e-6);
    }
}

#[test]
fn anomaly_score_is_neg_elbo_at_the_mean() {
    let dev = Device::Cpu;
    let m = Model::new(
        config(ModelKind::Vae, Likelihood::Bernoulli),
        Init::Torch,
        8,
        &dev,
    )
    .unwrap();
    let data = common::mnist_train(3);
    let x = data.to_tensor(&dev).unwrap();
    let s: Vec<f32> = loss::anomaly_score(&m, &x).unwrap().to_vec1().unwrap();
    // Recompute by hand from the float layers.
    let dense = |layers: &[tinyvae_trainer::FloatLayer], mut h: Vec<f32>| {
        for l in layers {
            h = (0..l.out_dim)
                .map(|o| {
                    let v = l.bias[o]
                        + (0..l.in_dim)
                            .map(|i| l.weight[o * l.in_dim + i] * h[i])
                            .sum::<f32>();
                    if l.relu {
                        v.max(0.0)
                    } else {
                        v
                    }
                })
                .collect();
        }
        h
    };
    for (i, &si) in s.iter().enumerate() {
        let xi = data.image_f32(i);
        let e = dense(&m.encoder_layers().unwrap(), xi.clone());
        let (mu, lv) = e.split_at(8);
        let logits = dense(&m.decoder_layers().unwrap(), mu.to_vec());
        let bce: f64 = logits
            .iter()
            .zip(&xi)
            .map(|(&l, &x)| {
                let p = 1.0 / (1.0 + (-f64::from(l)).exp());
                -(f64::from(x) * p.ln() + (1.0 - f64::from(x)) * (1.0 - p).ln())
            })
            .sum();
        let kl: f64 = mu
            .iter()
            .zip(lv)
            .map(|(&m, &v)| 0.5 * (f64::from(v).exp() + f64::from(m).powi(2) - 1.0 - f64::from(v)))
            .sum();
        assert!(
            (f64::from(si) - (bce + kl)).abs() < 1e-2 * (bce + kl).abs().max(1.0),
            "{si} vs {}",
            bce + kl
        );
    }
    let _ = Tensor::zeros(1, candle_core::DType::F32, &dev).unwrap();
    assert_eq!(auroc(&[0.0, 1.0], &[false, true]), Some(1.0));
}

/// A loss that turns NaN stops the epoch with an error naming it, instead of
/// finishing it and handing NaN weights to the checkpoint.
#[test]
fn a_diverged_epoch_is_an_error() {
    let data = common::mnist_train(64);
    let dev = Device::Cpu;
    let x = data.to_tensor(&dev).unwrap();
    let model = Model::new(
        config(ModelKind::Vae, Likelihood::Bernoulli),
        Init::Torch,
        1,
        &dev,
    )
    .unwrap();
    // Every parameter NaN (one NaN weight before a ReLU can be masked: ReLU maps NaN
    // to 0 in the CPU kernels, so the loss would stay finite).
    for (_, var) in model.named_vars() {
        let nan = Tensor::full(f32::NAN, var.as_tensor().shape(), &dev).unwrap();
        var.set(&nan).unwrap();
    }
    let mut t = Trainer::new(model, train_cfg(2)).unwrap();
    let err = t.run_epoch(&x, None, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("diverged in epoch 1"), "{err}");
    assert_eq!(t.progress.epoch, 0, "a diverged epoch does not count");
}

/// A resume file whose best-epoch parameters do not fit the model is refused when it is
/// loaded, naming the tensor and both shapes, not when the resumed run ends and restores
/// its best epoch.
#[test]
fn a_misshapen_best_tensor_is_refused_at_resume() {
    let dev = Device::Cpu;
    let model = Model::new(
        config(ModelKind::Vae, Likelihood::Bernoulli),
        Init::Torch,
        6,
        &dev,
    )
    .unwrap();
    let mut t = Trainer::new(model, train_cfg(2)).unwrap();
    let mut best = t.model.snapshot().unwrap();
    let names: Vec<String> = t.model.named_vars().into_iter().map(|(n, _)| n).collect();
    let wrong = names.iter().position(|n| n == "decoder.0.bias").unwrap();
    best[wrong] = Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap();
    t.best = Some(best);
    let dir = tempfile::tempdir().unwrap();
    let last = dir.path().join("last.safetensors");
    checkpoint::save_trainer(&last, &t, &meta(&t)).unwrap();

    let err = checkpoint::load_trainer(&last, &dev, None)
        .err()
        .expect("a misshapen best.* tensor must be refused at load")
        .to_string();
    assert!(
        err.contains("last.safetensors") && err.contains("best.decoder.0.bias"),
        "{err}"
    );
    assert!(err.contains("[3]") && err.contains("[64]"), "{err}");
}
