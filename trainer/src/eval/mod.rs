//! Evaluation: the negative ELBO, the importance-weighted bound (IWAE, Burda et
//! al. 2015) as the NLL estimate, reconstruction errors, anomaly scores and their
//! AUROCs against held-out classes and simulated sensor faults.

use candle_core::Tensor;
use serde::Serialize;
use serde_json::json;
use tinyvae_datasets::corrupt::{corrupt_dataset, Corruption};
use tinyvae_datasets::metrics::auroc;
use tinyvae_datasets::rng::SeededRng;
use tinyvae_datasets::{DataError, Dataset};

use crate::model::{loss, Model, ModelKind};
use crate::tensor::ToTensor;
use crate::train::eps_tensor;

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The data does not have what the evaluation needs (e.g. the class).
    #[error(transparent)]
    Data(#[from] DataError),
}

/// Rows decoded at once when estimating bounds (bounds memory: rows x pixels floats).
const ROWS_PER_CHUNK: usize = 4096;

/// Per-image bound estimates, in nats.
#[derive(Clone, Debug, Default)]
pub struct Bounds {
    /// Negative ELBO: minus the mean of the `k` log importance weights.
    pub neg_elbo: Vec<f64>,
    /// NLL estimate: minus the `k`-sample importance-weighted bound
    /// `log (1/k) sum_i p(x, z_i) / q(z_i | x)`.
    pub nll: Vec<f64>,
}

/// Running `log sum exp` and plain sum of one image's log weights.
#[derive(Clone, Copy)]
struct Acc {
    max: f64,
    sum_exp: f64,
    sum: f64,
}

impl Acc {
    fn push(&mut self, w: f64) {
        if w > self.max {
            self.sum_exp = self.sum_exp * (self.max - w).exp() + 1.0;
            self.max = w;
        } else {
            self.sum_exp += (w - self.max).exp();
        }
        self.sum += w;
    }
}

fn repeat_rows(t: &Tensor, s: usize) -> candle_core::Result<Tensor> {
    let (b, d) = t.dims2()?;
    t.unsqueeze(1)?
        .broadcast_as((b, s, d))?
        .contiguous()?
        .reshape((b * s, d))
}

/// Estimates both bounds with the same `k` samples per image. Because the ELBO
/// estimate is the mean of the very log weights whose log-mean-exp is the IWAE
/// bound, `nll <= neg_elbo` holds for every image (Jensen), not only on average.
/// `data` is `(N, D)` in `[0, 1]`; VAE only.
pub fn bounds(model: &Model, data: &Tensor, k: usize, seed: u64) -> candle_core::Result<Bounds> {
    if model.config.kind != ModelKind::Vae {
        candle_core::bail!("likelihood bounds need a VAE");
    }
    let k = k.max(1);
    let n = data.dim(0)?;
    let imgs_per_batch = (ROWS_PER_CHUNK / k).max(1);
    let chunk = k.min(ROWS_PER_CHUNK);
    let mut rng = SeededRng::stream(seed, "iwae", 0);
    let mut out = Bounds::default();
    let mut start = 0;
    while start < n {
        let b = imgs_per_batch.min(n - start);
        let x = data.narrow(0, start, b)?;
        let (mu, logvar) = model.encode(&x)?;
        let mut acc = vec![
            Acc {
                max: f64::NEG_INFINITY,
                sum_exp: 0.0,
                sum: 0.0
            };
            b
        ];
        let mut done = 0;
        while done < k {
            let s = chunk.min(k - done);
            let mu_r = repeat_rows(&mu, s)?;
            let lv_r = repeat_rows(&logvar, s)?;
            let x_r = repeat_rows(&x, s)?;
            let eps = eps_tensor(&mut rng, b * s, model.config.latent, model.device())?;
            let z = (&mu_r + (lv_r.affine(0.5, 0.0)?.exp()? * &eps)?)?;
            let logpx =
                loss::recon_nll(&model.decode(&z)?, &x_r, model.config.likelihood)?.neg()?;
            let w = ((logpx + loss::log_prior(&z)?)? - loss::log_posterior(&eps, &lv_r)?)?;
            let w: Vec<f32> = w.to_vec1()?;
            for (i, a) in acc.iter_mut().enumerate() {
                for &wi in &w[i * s..(i + 1) * s] {
                    a.push(f64::from(wi));
                }
            }
            done += s;
        }
        let lnk = (k as f64).ln();
        for a in acc {
            out.nll.push(-(a.max + a.sum_exp.ln() - lnk));
            out.neg_elbo.push(-a.sum / k as f64);
        }
        start += b;
    }
    Ok(out)
}

/// Anomaly score ([`loss::anomaly_score`]) of every row of `data`.
pub fn anomaly_scores(model: &Model, data: &Tensor) -> candle_core::Result<Vec<f64>> {
    per_row(data, |x| loss::anomaly_score(model, x))
}

/// The reconstruction term at `z = mu` ([`loss::recon_nll`] of the decoded mean code)
/// of every row of `data`: the anomaly score without its KL term.
pub fn reconstruction_scores(model: &Model, data: &Tensor) -> candle_core::Result<Vec<f64>> {
    per_row(data, |x| {
        let (mu, _) = model.encode(x)?;
        loss::recon_nll(&model.decode(&mu)?, x, model.config.likelihood)
    })
}

/// The reconstruction's squared error at `z = mu` relative to the energy of the image
/// and of its reconstruction: `sum (x - x̂)^2 / (sum x^2 + sum x̂^2 + 1)`, pixels in
/// `[0, 1]` (the 1, one full-scale pixel, keeps a blank image with a blank
/// reconstruction at 0 rather than 0/0).
///
/// Why relative: the plain error is small for any image with little ink, so a model of
/// one digit ranks a thin digit of another class (a 1, a 7) as normal because it costs
/// few squared pixels to draw, whatever it looks like. Dividing by the energy of both
/// images makes the error scale-free: the share of the ink the model got wrong. The
/// one-class table ranks by it (BENCHMARKS.md, "One-class anomaly detection").
pub fn relative_reconstruction_errors(
    model: &Model,
    data: &Tensor,
) -> candle_core::Result<Vec<f64>> {
    per_row(data, |x| {
        let (mu, _) = model.encode(x)?;
        let xhat = model.decode_mean(&mu)?;
        let error = (x - &xhat)?.sqr()?.sum(1)?;
        let energy = ((x.sqr()?.sum(1)? + xhat.sqr()?.sum(1)?)? + 1.0)?;
        error / energy
    })
}

/// `score` (a `(B, D) -> (B,)` function) of every row of `data`, 1,024 rows at a time.
fn per_row(
    data: &Tensor,
    score: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Vec<f64>> {
    let n = data.dim(0)?;
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let len = 1024.min(n - start);
        let s: Vec<f32> = score(&data.narrow(0, start, len)?)?.to_vec1()?;
        out.extend(s.into_iter().map(f64::from));
        start += len;
    }
    Ok(out)
}

/// Rows encoded or decoded at once by [`encode_means`] and [`decode_means`].
const ROWS_PER_BATCH: usize = 1024;

/// The encoder's `mu` (an AE's code) of every image of `data`: `len * latent` values,
/// image after image. The frozen features of `tinyvae probe`, `latent-map` and
/// `compress`.
pub fn encode_means(model: &Model, data: &Dataset) -> candle_core::Result<Vec<f32>> {
    let x = data.to_tensor(model.device())?;
    let n = data.len();
    let mut out = Vec::with_capacity(n * model.config.latent);
    let mut start = 0;
    while start < n {
        let len = ROWS_PER_BATCH.min(n - start);
        let (mu, _) = model.encode(&x.narrow(0, start, len)?)?;
        out.extend(mu.flatten_all()?.to_vec1::<f32>()?);
        start += len;
    }
    Ok(out)
}

/// The decoder's mean image (in `[0, 1]`) of every latent vector in `z` (row after
/// row, `latent` values each): `rows * pixels` values.
pub fn decode_means(model: &Model, z: &[f32]) -> candle_core::Result<Vec<f32>> {
    let l = model.config.latent;
    if l == 0 || !z.len().is_multiple_of(l) {
        candle_core::bail!("{} latent values are not rows of {l}", z.len());
    }
    let mut out = Vec::with_capacity(z.len() / l * model.config.width * model.config.height);
    for chunk in z.chunks(ROWS_PER_BATCH * l) {
        let t = Tensor::from_vec(chunk.to_vec(), (chunk.len() / l, l), model.device())?;
        out.extend(model.decode_mean(&t)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// Reconstruction quality at `z = mu`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ReconError {
    /// Likelihood term (BCE or SSE) per image, nats.
    pub nll_per_image: f64,
    /// Mean squared error per pixel, images in [0, 1].
    pub mse_per_pixel: f64,
}

/// Reconstruction errors of `data` through the means (no sampling).
pub fn recon_error(model: &Model, data: &Tensor) -> candle_core::Result<ReconError> {
    let (n, d) = data.dims2()?;
    let (mut nll, mut sse) = (0.0f64, 0.0f64);
    let mut start = 0;
    while start < n {
        let len = 1024.min(n - start);
        let x = data.narrow(0, start, len)?;
        let (mu, _) = model.encode(&x)?;
        let logits = model.decode(&mu)?;
        nll += f64::from(
            loss::recon_nll(&logits, &x, model.config.likelihood)?
                .sum_all()?
                .to_scalar::<f32>()?,
        );
        let mean = candle_nn::ops::sigmoid(&logits)?;
        sse += f64::from((mean - &x)?.sqr()?.sum_all()?.to_scalar::<f32>()?);
        start += len;
    }
    let n = n.max(1) as f64;
    Ok(ReconError {
        nll_per_image: nll / n,
        mse_per_pixel: sse / (n * d as f64),
    })
}

/// One-class and corruption AUROCs of `model` on `test` (labels needed for the
/// one-class part; `normal` = the normal class index).
pub fn anomaly_report(
    model: &Model,
    test: &Dataset,
    normal: Option<u32>,
    seed: u64,
) -> Result<serde_json::Value, EvalError> {
    let device = model.device();
    let mut report = serde_json::Map::new();
    let scores = anomaly_scores(model, &test.to_tensor(device)?)?;
    let clean = match (normal, &test.labels) {
        (Some(c), Some(labels)) => {
            let positive: Vec<bool> = labels.iter().map(|&l| l != c).collect();
            report.insert("one_class_auroc".into(), json!(auroc(&scores, &positive)));
            report.insert(
                "normal_class".into(),
                json!(test.class_names.get(c as usize)),
            );
            test.filter_class(c)?
        }
        _ => test.clone(),
    };
    let clean_scores = if clean.len() == test.len() {
        scores
    } else {
        anomaly_scores(model, &clean.to_tensor(device)?)?
    };
    let (bad, kinds) = corrupt_dataset(&clean, seed);
    let bad_scores = anomaly_scores(model, &bad.to_tensor(device)?)?;
    let mut all = clean_scores.clone();
    all.extend(&bad_scores);
    let mut pos = vec![false; clean_scores.len()];
    pos.extend(vec![true; bad_scores.len()]);
    report.insert("corruption_auroc".into(), json!(auroc(&all, &pos)));
    let mut per = serde_json::Map::new();
    for kind in Corruption::ALL {
        let mut s = clean_scores.clone();
        let mut p = vec![false; s.len()];
        for (i, k) in kinds.iter().enumerate() {
            if *k == kind {
                s.push(bad_scores[i]);
                p.push(true);
            }
        }
        per.insert(kind.name().into(), json!(auroc(&s, &p)));
    }
    report.insert("corruption_auroc_by_kind".into(), per.into());
    Ok(report.into())
}
