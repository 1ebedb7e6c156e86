//! Linear and nearest-neighbour probes: how much of the digit's identity a frozen
//! encoder's `mu` carries, measured with few labels (the semi-supervised setting of
//! Kingma et al. 2014), beside the same classifiers on raw pixels and on PCA features
//! of the latent's width.
//!
//! The classifiers are this module's own small code. Multinomial logistic regression is
//! a convex problem that full-batch Nesterov gradient descent solves in a few dozen
//! lines on nalgebra's matrix products; the Rust crates that offer it (linfa-logistic
//! and friends) would bring ndarray and an optimizer framework into the workspace for
//! one function, and their stopping rules would be another thing to pin. k-nearest
//! neighbours is a distance matrix and a vote.

use nalgebra::DMatrix;
use serde::Serialize;

use crate::eval::encode_means;
use crate::model::{Model, ModelKind};
use crate::pca::{Pca, PcaError};
use tinyvae_datasets::rng::SeededRng;
use tinyvae_datasets::Dataset;

/// Why a probe could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// PCA failed.
    #[error(transparent)]
    Pca(#[from] PcaError),
    /// The data set has no labels.
    #[error("{0}: the probe needs labelled images, and this data set has no labels")]
    Unlabelled(String),
    /// A label budget of zero.
    #[error("a label budget must be at least 1 image")]
    NoLabels,
    /// Features and labels disagree in number, or are empty.
    #[error("{what}: {got} values are not {rows} rows of {dim} features")]
    Shape {
        /// Which set.
        what: &'static str,
        /// Values given.
        got: usize,
        /// Rows expected.
        rows: usize,
        /// Features per row.
        dim: usize,
    },
    /// The model's input size is not the data's.
    #[error("the model takes {model} pixels, the images have {data}")]
    InputSize {
        /// Pixels the model takes.
        model: usize,
        /// Pixels per image.
        data: usize,
    },
}

/// Settings of multinomial logistic regression.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LogisticOptions {
    /// L2 weight on the weights (not the biases), added to the mean cross-entropy as
    /// `l2 / 2 * |W|^2`.
    pub l2: f64,
    /// Gradient steps at most.
    pub iterations: usize,
}

impl Default for LogisticOptions {
    /// `l2 = 1e-2`: on standardized features it keeps the 100-label fits (separable in
    /// 784 pixels) from growing without bound; 300 steps of accelerated descent reach
    /// the optimum to well under 0.1% test error for every feature set here.
    fn default() -> Self {
        Self {
            l2: 1e-2,
            iterations: 300,
        }
    }
}

/// A fitted multinomial logistic regression on standardized features.
#[derive(Clone, Debug)]
pub struct Logistic {
    mean: Vec<f64>,
    scale: Vec<f64>,
    /// `(dim + 1) x classes`, the last row the biases.
    weights: DMatrix<f64>,
}

/// Rows `x` (row-major, `dim` a row) standardized with `mean`/`scale`, with a column
/// of ones appended for the bias.
fn design(x: &[f32], dim: usize, mean: &[f64], scale: &[f64]) -> DMatrix<f64> {
    let n = x.len() / dim.max(1);
    DMatrix::from_row_iterator(
        n,
        dim + 1,
        x.chunks_exact(dim.max(1)).flat_map(|r| {
            r.iter()
                .zip(mean.iter().zip(scale))
                .map(|(&v, (m, s))| (f64::from(v) - m) / s)
                .chain(std::iter::once(1.0))
        }),
    )
}

fn check_shape(what: &'static str, x: &[f32], rows: usize, dim: usize) -> Result<(), ProbeError> {
    if dim == 0 || rows == 0 || x.len() != rows * dim {
        return Err(ProbeError::Shape {
            what,
            got: x.len(),
            rows,
            dim,
        });
    }
    Ok(())
}

/// Row-wise softmax in place.
fn softmax_rows(m: &mut DMatrix<f64>) {
    for mut row in m.row_iter_mut() {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}

impl Logistic {
    /// Fits `classes`-way logistic regression to `x` (`labels.len()` rows of `dim`).
    ///
    /// Features are standardized (training mean and standard deviation; constant
    /// features are left centred), so one step size suits every feature set. The
    /// objective is smooth and convex with gradient Lipschitz constant at most
    /// `L = |X|_2^2 / (2 n) + l2` (the softmax's Hessian is bounded by 1/2), so Nesterov's
    /// accelerated gradient with step `1 / L` converges without a line search; `|X|_2`
    /// comes from 30 rounds of power iteration, padded by 10%.
    pub fn fit(
        x: &[f32],
        dim: usize,
        labels: &[u32],
        classes: usize,
        opts: &LogisticOptions,
    ) -> Result<Logistic, ProbeError> {
        let n = labels.len();
        check_shape("training features", x, n, dim)?;
        let mut mean = vec![0.0; dim];
        let mut sq = vec![0.0; dim];
        for r in x.chunks_exact(dim) {
            for (j, &v) in r.iter().enumerate() {
                mean[j] += f64::from(v);
                sq[j] += f64::from(v) * f64::from(v);
            }
        }
        let nf = n as f64;
        let scale: Vec<f64> = mean
            .iter_mut()
            .zip(&sq)
            .map(|(m, s)| {
                *m /= nf;
                let var = (s / nf - *m * *m).max(0.0);
                if var > 1e-12 {
                    var.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let a = design(x, dim, &mean, &scale);
        let mut y = DMatrix::zeros(n, classes);
        for (i, &l) in labels.iter().enumerate() {
            if let Some(v) = y.get_mut((i, l as usize)) {
                *v = 1.0;
            }
        }
        // Power iteration for the largest eigenvalue of A^T A.
        let mut v = nalgebra::DVector::from_element(dim + 1, 1.0);
        let mut top = 1.0;
        for _ in 0..30 {
            let w = a.tr_mul(&(&a * &v));
            top = w.norm();
            if top == 0.0 {
                break;
            }
            v = w / top;
        }
        let lipschitz = 1.1 * top / (2.0 * nf) + opts.l2;
        let step = 1.0 / lipschitz.max(1e-12);
        let mut mask = DMatrix::from_element(dim + 1, classes, opts.l2);
        mask.row_mut(dim).fill(0.0);
        let mut w = DMatrix::<f64>::zeros(dim + 1, classes);
        let mut prev = w.clone();
        for t in 0..opts.iterations {
            let momentum = t as f64 / (t as f64 + 3.0);
            let look = &w + (&w - &prev) * momentum;
            let mut p = &a * &look;
            softmax_rows(&mut p);
            let grad = a.tr_mul(&(p - &y)) / nf + look.component_mul(&mask);
            prev = std::mem::replace(&mut w, look - grad * step);
        }
        Ok(Logistic {
            mean,
            scale,
            weights: w,
        })
    }

    /// The most probable class of each row of `x`.
    pub fn predict(&self, x: &[f32]) -> Vec<u32> {
        let dim = self.mean.len();
        let scores = design(x, dim, &self.mean, &self.scale) * &self.weights;
        scores
            .row_iter()
            .map(|r| {
                let mut best = 0;
                for (j, v) in r.iter().enumerate() {
                    if *v > r[best] {
                        best = j;
                    }
                }
                best as u32
            })
            .collect()
    }
}

/// Plain k-nearest-neighbour classification under Euclidean distance: each row of
/// `test` gets the majority label of its `k` nearest rows of `train` (ties go to the
/// tied class with the nearest member). Distances come from `|a|^2 - 2 a.b + |b|^2`
/// with one matrix product per block of test rows.
pub fn knn_predict(
    train: &[f32],
    labels: &[u32],
    test: &[f32],
    dim: usize,
    k: usize,
    classes: usize,
) -> Result<Vec<u32>, ProbeError> {
    check_shape("training features", train, labels.len(), dim)?;
    if dim == 0 || !test.len().is_multiple_of(dim) {
        return Err(ProbeError::Shape {
            what: "test features",
            got: test.len(),
            rows: test.len() / dim.max(1),
            dim,
        });
    }
    let k = k.clamp(1, labels.len());
    let n = labels.len();
    let tr = DMatrix::from_row_iterator(n, dim, train.iter().map(|&v| f64::from(v)));
    let tr_norm: Vec<f64> = tr.row_iter().map(|r| r.norm_squared()).collect();
    let mut out = Vec::with_capacity(test.len() / dim);
    for block in test.chunks(512 * dim) {
        let m = block.len() / dim;
        let te = DMatrix::from_row_iterator(m, dim, block.iter().map(|&v| f64::from(v)));
        let dots = &te * tr.transpose();
        for (i, row) in dots.row_iter().enumerate() {
            let te_norm = te.row(i).norm_squared();
            // The k nearest so far, sorted by distance.
            let mut best: Vec<(f64, u32)> = Vec::with_capacity(k + 1);
            for (j, &dot) in row.iter().enumerate() {
                let d = te_norm - 2.0 * dot + tr_norm[j];
                if best.len() < k || d < best[best.len() - 1].0 {
                    let at = best.partition_point(|b| b.0 <= d);
                    best.insert(at, (d, labels[j]));
                    best.truncate(k);
                }
            }
            let mut votes = vec![0usize; classes];
            for &(_, l) in &best {
                if let Some(v) = votes.get_mut(l as usize) {
                    *v += 1;
                }
            }
            let top = votes.iter().copied().max().unwrap_or(0);
            let pick = best
                .iter()
                .find(|b| votes.get(b.1 as usize) == Some(&top))
                .map_or(0, |b| b.1);
            out.push(pick);
        }
    }
    Ok(out)
}

/// Fraction of `pred` that differs from `truth`.
pub fn error_rate(pred: &[u32], truth: &[u32]) -> f64 {
    let wrong = pred.iter().zip(truth).filter(|(a, b)| a != b).count();
    wrong as f64 / truth.len().max(1) as f64
}

/// A seeded, class-balanced choice of `n` of the images labelled `labels`: each
/// class's images in a seeded order, taken round-robin over the classes (so 100 labels
/// of 10 classes are 10 per class), all of them when `n >= labels.len()`. Sorted.
pub fn balanced_subset(labels: &[u32], classes: usize, n: usize, seed: u64) -> Vec<usize> {
    if n >= labels.len() {
        return (0..labels.len()).collect();
    }
    let mut per: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(v) = per.get_mut(l as usize) {
            v.push(i);
        }
    }
    for (c, v) in per.iter_mut().enumerate() {
        SeededRng::stream(seed, "probe-labels", c as u64).shuffle(v);
    }
    let mut out = Vec::with_capacity(n);
    let mut round = 0;
    while out.len() < n {
        let before = out.len();
        for v in &per {
            if out.len() < n {
                if let Some(&i) = v.get(round) {
                    out.push(i);
                }
            }
        }
        if out.len() == before {
            break;
        }
        round += 1;
    }
    out.sort_unstable();
    out
}

/// What `tinyvae probe` runs.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeOptions {
    /// Label budgets (images with labels the classifiers see); `usize::MAX` or any
    /// number over the training set's size means all of them.
    pub labels: Vec<usize>,
    /// Neighbours of kNN. Fixed, not tuned: with 100 labels a validation split would
    /// leave too few to choose from, and 5 is the customary default.
    pub k: usize,
    /// The logistic regression's settings.
    pub logistic: LogisticOptions,
    /// Seed of the labelled subsets.
    pub seed: u64,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            labels: vec![100, 1000, usize::MAX],
            k: 5,
            logistic: LogisticOptions::default(),
            seed: 0,
        }
    }
}

/// One feature set, training and test rows.
#[derive(Clone, Debug)]
pub struct FeatureSet {
    /// Its name in the table ("VAE mu", "pixels", "PCA-16").
    pub name: String,
    /// Features per image.
    pub dim: usize,
    /// Training rows.
    pub train: Vec<f32>,
    /// Test rows.
    pub test: Vec<f32>,
}

/// One classifier on one feature set with one label budget.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeResult {
    /// Feature set name.
    pub features: String,
    /// Features per image.
    pub width: usize,
    /// "logistic" or "knn".
    pub classifier: String,
    /// Labelled training images used.
    pub labels: usize,
    /// Test error, fraction.
    pub test_error: f64,
}

/// The probe's findings.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeReport {
    /// Training images (the pool labels are drawn from; PCA is fitted on all of them).
    pub train_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Settings.
    pub options: ProbeOptions,
    /// One entry per feature set, classifier and budget.
    pub results: Vec<ProbeResult>,
}

/// Runs both classifiers on every feature set at every label budget.
pub fn probe_features(
    sets: &[FeatureSet],
    train_labels: &[u32],
    test_labels: &[u32],
    classes: usize,
    opts: &ProbeOptions,
) -> Result<Vec<ProbeResult>, ProbeError> {
    let mut out = Vec::new();
    for &budget in &opts.labels {
        if budget == 0 {
            return Err(ProbeError::NoLabels);
        }
        let idx = balanced_subset(train_labels, classes, budget, opts.seed);
        let y: Vec<u32> = idx.iter().map(|&i| train_labels[i]).collect();
        for set in sets {
            check_shape("training features", &set.train, train_labels.len(), set.dim)?;
            check_shape("test features", &set.test, test_labels.len(), set.dim)?;
            let x: Vec<f32> = idx
                .iter()
                .flat_map(|&i| set.train[i * set.dim..(i + 1) * set.dim].iter().copied())
                .collect();
            let lr = Logistic::fit(&x, set.dim, &y, classes, &opts.logistic)?;
            let knn = knn_predict(&x, &y, &set.test, set.dim, opts.k, classes)?;
            for (name, pred) in [("logistic", lr.predict(&set.test)), ("knn", knn)] {
                out.push(ProbeResult {
                    features: set.name.clone(),
                    width: set.dim,
                    classifier: name.into(),
                    labels: idx.len(),
                    test_error: error_rate(&pred, test_labels),
                });
            }
        }
    }
    Ok(out)
}

/// The probe of `model`: its encoder's `mu` (or an AE's code), the raw pixels, and
/// PCA features of the latent's width fitted on every training image (unsupervised, as
/// the model was), each classified with logistic regression and kNN.
pub fn probe_model(
    model: &Model,
    train: &Dataset,
    test: &Dataset,
    opts: &ProbeOptions,
) -> Result<ProbeReport, ProbeError> {
    let labels = |d: &Dataset| {
        d.labels
            .clone()
            .ok_or_else(|| ProbeError::Unlabelled(d.source.clone()))
    };
    let (train_labels, test_labels) = (labels(train)?, labels(test)?);
    let pixels = model.config.width * model.config.height;
    if pixels != train.image_len() {
        return Err(ProbeError::InputSize {
            model: pixels,
            data: train.image_len(),
        });
    }
    let latent = model.config.latent;
    let (train_px, test_px) = (train.to_unit_f32(), test.to_unit_f32());
    let pca = Pca::fit(&train_px, pixels, latent)?;
    let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let code_name = match model.config.kind {
        ModelKind::Vae => "VAE mu",
        ModelKind::Ae => "AE code",
    };
    let sets = [
        FeatureSet {
            name: code_name.into(),
            dim: latent,
            train: encode_means(model, train)?,
            test: encode_means(model, test)?,
        },
        FeatureSet {
            name: format!("PCA-{latent}"),
            dim: latent,
            train: f32s(pca.project(&train_px, latent)?),
            test: f32s(pca.project(&test_px, latent)?),
        },
        FeatureSet {
            name: "pixels".into(),
            dim: pixels,
            train: train_px,
            test: test_px,
        },
    ];
    let classes = train.class_names.len().max(
        train_labels
            .iter()
            .chain(&test_labels)
            .map(|&l| l as usize + 1)
            .max()
            .unwrap_or(0),
    );
    let results = probe_features(&sets, &train_labels, &test_labels, classes, opts)?;
    Ok(ProbeReport {
        train_images: train.len(),
        test_images: test.len(),
        options: opts.clone(),
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated Gaussian blobs in 2-D: `n` points per class.
    fn blobs(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
        let centres = [(0.0, 0.0), (6.0, 0.0), (0.0, 6.0)];
        let mut rng = SeededRng::new(seed);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..n * 3 {
            let c = i % 3;
            x.push((centres[c].0 + 0.5 * rng.normal()) as f32);
            x.push((centres[c].1 + 0.5 * rng.normal()) as f32);
            y.push(c as u32);
        }
        (x, y)
    }

    #[test]
    fn logistic_separates_separable_data() {
        let (x, y) = blobs(50, 1);
        let (tx, ty) = blobs(100, 2);
        let m = Logistic::fit(&x, 2, &y, 3, &LogisticOptions::default()).unwrap();
        assert_eq!(error_rate(&m.predict(&tx), &ty), 0.0);
    }

    /// Labels that depend on the first feature only, with a second feature of a far
    /// larger scale that is pure noise: the standardized fit must still find the rule.
    #[test]
    fn logistic_finds_a_threshold_among_noise() {
        let mut rng = SeededRng::new(3);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..400 {
            let a = rng.normal();
            x.push(a as f32);
            x.push((1000.0 * rng.normal()) as f32);
            y.push(u32::from(a > 0.3));
        }
        let m = Logistic::fit(&x[..600], 2, &y[..300], 2, &LogisticOptions::default()).unwrap();
        let err = error_rate(&m.predict(&x[600..]), &y[300..]);
        // Unstandardized, the noise would take the whole step size and leave the rule
        // unlearned (about 40% error).
        assert!(err < 0.1, "error {err}");
    }

    #[test]
    fn knn_votes_the_nearest() {
        let (x, y) = blobs(30, 4);
        let (tx, ty) = blobs(50, 5);
        let pred = knn_predict(&x, &y, &tx, 2, 5, 3).unwrap();
        assert_eq!(error_rate(&pred, &ty), 0.0);
        // One neighbour: a point sitting on a training point takes its label, even
        // against a majority of class 1 a little further away.
        let train = [0.0, 0.0, 1.0, 0.0, 1.1, 0.0, 1.2, 0.0];
        let labels = [2, 1, 1, 1];
        assert_eq!(
            knn_predict(&train, &labels, &[0.0, 0.0], 2, 1, 3).unwrap(),
            [2]
        );
        assert_eq!(
            knn_predict(&train, &labels, &[0.0, 0.0], 2, 3, 3).unwrap(),
            [1]
        );
        // A tie (one vote each) goes to the nearer class.
        assert_eq!(
            knn_predict(&train[..4], &labels[..2], &[0.4, 0.0], 2, 2, 3).unwrap(),
            [2]
        );
    }

    #[test]
    fn subsets_are_balanced_and_seeded() {
        let labels: Vec<u32> = (0..1000).map(|i| (i * 7 % 10) as u32).collect();
        let a = balanced_subset(&labels, 10, 100, 1);
        assert_eq!(a.len(), 100);
        for c in 0..10 {
            assert_eq!(a.iter().filter(|&&i| labels[i] == c).count(), 10);
        }
        assert_eq!(a, balanced_subset(&labels, 10, 100, 1));
        assert_ne!(a, balanced_subset(&labels, 10, 100, 2));
        assert_eq!(balanced_subset(&labels, 10, usize::MAX, 1).len(), 1000);
    }

    #[test]
    fn refuses_mismatched_shapes() {
        assert!(matches!(
            Logistic::fit(&[1.0; 5], 2, &[0, 1], 2, &LogisticOptions::default()),
            Err(ProbeError::Shape { .. })
        ));
        assert!(matches!(
            knn_predict(&[1.0; 4], &[0, 1], &[1.0; 3], 2, 1, 2),
            Err(ProbeError::Shape { .. })
        ));
        let sets = [FeatureSet {
            name: "x".into(),
            dim: 1,
            train: vec![0.0, 1.0],
            test: vec![0.0],
        }];
        let opts = ProbeOptions {
            labels: vec![0],
            ..ProbeOptions::default()
        };
        assert!(matches!(
            probe_features(&sets, &[0, 1], &[0], 2, &opts),
            Err(ProbeError::NoLabels)
        ));
    }
}
