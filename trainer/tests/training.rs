//! Training, checkpoints and bounds on a few hundred real digits with small models.

mod common;

use candle_core::{Device, Tensor};
use tinyvae_datasets::metrics::auroc;
use tinyvae_trainer::checkpoint::{self, CheckpointMeta, DataInfo};
use tinyvae_trainer::eval::{bounds, relative_reconstruction_errors};
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

/// A Bernoulli VAE on the CPU with the tests' small architecture.
fn bernoulli_vae(seed: u64) -> Model {
    Model::new(
        config(ModelKind::Vae, Likelihood::Bernoulli),
        Init::Torch,
        seed,
        &Device::Cpu,
    )
    .unwrap()
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
        ..TrainConfig::default()
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
        let before = evaluate(&model, &xv, 256, 1.0, 0, 1).unwrap().loss;
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
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "last.safetensors")
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");

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
    // Saved again (a fresh metadata map), the same bytes.
    let again = dir.path().join("again.safetensors");
    checkpoint::save_model(&again, &resumed.model, &meta(&resumed)).unwrap();
    assert_eq!(std::fs::read(&mp).unwrap(), std::fs::read(&again).unwrap());
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

/// `layers` applied to `x` in f64, written out here so that the tests check the
/// library's candle and fixed-point paths against arithmetic of their own.
fn dense(layers: &[tinyvae_trainer::FloatLayer], x: &[f64]) -> Vec<f64> {
    let mut h = x.to_vec();
    for l in layers {
        h = (0..l.out_dim)
            .map(|o| {
                let v = f64::from(l.bias[o])
                    + (0..l.in_dim)
                        .map(|i| f64::from(l.weight[o * l.in_dim + i]) * h[i])
                        .sum::<f64>();
                if l.relu {
                    v.max(0.0)
                } else {
                    v
                }
            })
            .collect();
    }
    h
}

/// `-log p(x | logits)` under a Bernoulli likelihood, in f64.
fn bce(logits: &[f64], x: &[f64]) -> f64 {
    logits
        .iter()
        .zip(x)
        .map(|(&l, &x)| l.max(0.0) - x * l + (-l.abs()).exp().ln_1p())
        .sum()
}

/// `KL(N(mu, exp(logvar)) || N(0, I))` in closed form.
fn kl_closed_form(mu: &[f64], logvar: &[f64]) -> f64 {
    mu.iter()
        .zip(logvar)
        .map(|(&m, &v)| 0.5 * (m * m + v.exp() - 1.0 - v))
        .sum()
}

fn mean_and_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// The bounds' negative ELBO is `E_q[-log p(x|z)] + KL(q || p)`. Its KL part is not
/// computed in closed form there (it is the mean of `log q(z|x) - log p(z)` over the
/// samples), so this test estimates the reconstruction term with noise of its own, adds
/// the closed-form KL of the encoder's outputs, and requires the two to agree within
/// four standard errors of both Monte Carlo estimates. A missing or halved KL part
/// moves the difference by the whole or half KL (tens of standard errors).
#[test]
fn iwae_and_elbo_bounds() {
    let data = common::mnist_train(300);
    let dev = Device::Cpu;
    let x = data.to_tensor(&dev).unwrap();
    let mut t = Trainer::new(bernoulli_vae(4), train_cfg(2)).unwrap();
    while !t.finished() {
        t.run_epoch(&x, None, &mut |_| {}).unwrap();
    }
    let (n, k, m) = (40, 256, 256);
    let sub = x.narrow(0, 0, n).unwrap();
    let b = bounds(&t.model, &sub, k, 9).unwrap();
    assert_eq!(b.nll.len(), n);
    for (nll, ne) in b.nll.iter().zip(&b.neg_elbo) {
        assert!(nll.is_finite() && ne.is_finite());
        assert!(
            nll <= ne,
            "IWAE NLL estimate {nll} above the negative ELBO {ne}"
        );
    }

    let (enc, dec) = (
        t.model.encoder_layers().unwrap(),
        t.model.decoder_layers().unwrap(),
    );
    let latent = t.model.config.latent;
    let mut rng = tinyvae_datasets::rng::SeededRng::stream(123, "test-elbo", 0);
    let (mut gap, mut var_gap, mut kl_sum) = (0.0, 0.0, 0.0);
    for (i, &neg_elbo) in b.neg_elbo.iter().enumerate() {
        let xi: Vec<f64> = data.image_f32(i).iter().map(|&p| f64::from(p)).collect();
        let head = dense(&enc, &xi);
        let (mu, logvar) = head.split_at(latent);
        let kl = kl_closed_form(mu, logvar);
        // Per sample: the reconstruction term, and the negative log weight whose mean
        // over k samples is the bounds' estimate (for its variance).
        let (mut recon, mut neg_log_w) = (Vec::new(), Vec::new());
        for _ in 0..m {
            let eps: Vec<f64> = (0..latent).map(|_| rng.normal()).collect();
            let z: Vec<f64> = (0..latent)
                .map(|j| mu[j] + (0.5 * logvar[j]).exp() * eps[j])
                .collect();
            let r = bce(&dense(&dec, &z), &xi);
            let log_q_minus_log_p: f64 = (0..latent)
                .map(|j| 0.5 * (z[j] * z[j] - eps[j] * eps[j] - logvar[j]))
                .sum();
            recon.push(r);
            neg_log_w.push(r + log_q_minus_log_p);
        }
        let (r_mean, r_var) = mean_and_var(&recon);
        let (_, w_var) = mean_and_var(&neg_log_w);
        gap += neg_elbo - (r_mean + kl);
        var_gap += w_var / k as f64 + r_var / m as f64;
        kl_sum += kl;
    }
    let (gap, se, kl) = (gap / n as f64, var_gap.sqrt() / n as f64, kl_sum / n as f64);
    println!(
        "bounds: negative ELBO - (reconstruction + closed-form KL) = {gap:.4} nats per \
         image, standard error {se:.4}; mean KL {kl:.3}"
    );
    assert!(
        gap.abs() <= 4.0 * se,
        "the bounds' negative ELBO is off by {gap:.4} nats per image (standard error \
         {se:.4}, KL {kl:.3}): its KL part is wrong"
    );
    assert!(
        0.5 * kl > 20.0 * se,
        "the check must be able to see half the KL ({kl:.3} vs standard error {se:.4})"
    );

    // More samples tighten the bound on average; with one sample the two coincide.
    let b1 = bounds(&t.model, &sub, 1, 9).unwrap();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&b.nll) < mean(&b1.nll));
    for (a, c) in b1.nll.iter().zip(&b1.neg_elbo) {
        assert!((a - c).abs() < 1e-6);
    }
}

#[test]
fn anomaly_score_is_neg_elbo_at_the_mean() {
    let dev = Device::Cpu;
    let m = bernoulli_vae(8);
    // An untrained head puts mu and logvar near 0, where the KL is below the
    // tolerance; a head bias of 1 makes it several nats, so a missing KL fails.
    for (name, var) in m.named_vars() {
        if name == "encoder.1.bias" {
            var.set(&var.as_tensor().ones_like().unwrap()).unwrap();
        }
    }
    let data = common::mnist_train(3);
    let x = data.to_tensor(&dev).unwrap();
    let s: Vec<f32> = loss::anomaly_score(&m, &x).unwrap().to_vec1().unwrap();
    // Recompute by hand from the float layers.
    let (enc, dec) = (m.encoder_layers().unwrap(), m.decoder_layers().unwrap());
    for (i, &si) in s.iter().enumerate() {
        let xi: Vec<f64> = data.image_f32(i).iter().map(|&p| f64::from(p)).collect();
        let e = dense(&enc, &xi);
        let (mu, lv) = e.split_at(8);
        let bce = bce(&dense(&dec, mu), &xi);
        let kl = kl_closed_form(mu, lv);
        // f32 against f64 over 784 pixels; tight enough that a missing KL term fails.
        let tolerance = 1e-4 * (bce + kl) + 1e-3;
        assert!(
            (f64::from(si) - (bce + kl)).abs() <= tolerance,
            "image {i}: score {si} vs reconstruction {bce} + KL {kl}"
        );
        assert!(
            kl > 5.0 * tolerance,
            "image {i}: KL {kl} too small to check"
        );
        println!(
            "anomaly score check: image {i}: gap {:.2e}, tolerance {tolerance:.2e}, KL {kl:.3}",
            (f64::from(si) - (bce + kl)).abs()
        );
    }
    let _ = Tensor::zeros(1, candle_core::DType::F32, &dev).unwrap();
    assert_eq!(auroc(&[0.0, 1.0], &[false, true]), Some(1.0));
}

/// The one-class table's score, recomputed by hand from the float layers: the squared
/// error of the decoded mean code over the energy of the image and of the
/// reconstruction, plus one. Dropping either energy, or the square, fails it.
#[test]
fn relative_reconstruction_error_by_hand() {
    let dev = Device::Cpu;
    let m = bernoulli_vae(9);
    let data = common::mnist_train(3);
    let x = data.to_tensor(&dev).unwrap();
    let got = relative_reconstruction_errors(&m, &x).unwrap();
    let (enc, dec) = (m.encoder_layers().unwrap(), m.decoder_layers().unwrap());
    for (i, &g) in got.iter().enumerate() {
        let xi: Vec<f64> = data.image_f32(i).iter().map(|&p| f64::from(p)).collect();
        let e = dense(&enc, &xi);
        let xhat: Vec<f64> = dense(&dec, &e[..8])
            .iter()
            .map(|&l| 1.0 / (1.0 + (-l).exp()))
            .collect();
        let error: f64 = xi.iter().zip(&xhat).map(|(a, b)| (a - b).powi(2)).sum();
        let energy: f64 =
            xi.iter().map(|a| a * a).sum::<f64>() + xhat.iter().map(|b| b * b).sum::<f64>() + 1.0;
        let want = error / energy;
        assert!(
            (g - want).abs() <= 1e-4 * want,
            "image {i}: relative error {g} vs {want} by hand"
        );
        // The untrained model's reconstruction is grey everywhere: its energy is of the
        // order of the image's, so leaving either out moves the score by far more.
        assert!(want > 0.1 && want < 1.0, "image {i}: {want}");
    }
}

/// A loss that turns NaN stops the epoch with an error naming it, instead of
/// finishing it and handing NaN weights to the checkpoint.
#[test]
fn a_diverged_epoch_is_an_error() {
    let data = common::mnist_train(64);
    let dev = Device::Cpu;
    let x = data.to_tensor(&dev).unwrap();
    let model = bernoulli_vae(1);
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
    let model = bernoulli_vae(6);
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
