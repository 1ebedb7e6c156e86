//! Principal component analysis: the linear baseline the latent code is measured
//! against (features of the same width for `tinyvae probe`, a 2-D projection for
//! `tinyvae latent-map`, a transform coder for `tinyvae compress`).
//!
//! The components are the eigenvectors of the sample covariance, found by nalgebra's
//! `SymmetricEigen` on the `d x d` matrix. For MNIST's 784 pixels that is a 784 x 784
//! problem, solved in about a second, and exact: no randomized or iterative method
//! whose tolerance would need a test of its own.

use nalgebra::{DMatrix, SymmetricEigen};

/// Why PCA could not be fitted or applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PcaError {
    /// Fewer than two rows: no covariance.
    #[error("PCA needs at least 2 rows, got {0}")]
    TooFewRows(usize),
    /// The data is not a whole number of rows of the stated width.
    #[error("{len} values are not a whole number of rows of {dim}")]
    Shape {
        /// Values given.
        len: usize,
        /// Row width.
        dim: usize,
    },
    /// More components asked for than the data has dimensions.
    #[error("asked for {k} components of {dim}-dimensional data (1 to {dim})")]
    Components {
        /// Components asked for.
        k: usize,
        /// Row width.
        dim: usize,
    },
    /// A value is NaN or infinite.
    #[error("the data holds a value that is not finite")]
    NotFinite,
}

/// A fitted PCA: the mean and the leading components, largest variance first.
#[derive(Clone, Debug)]
pub struct Pca {
    /// Mean of the rows it was fitted on.
    pub mean: Vec<f64>,
    /// `k x d`: row `i` is component `i` (unit length).
    pub components: DMatrix<f64>,
    /// Variance along each component (its eigenvalue), descending.
    pub variances: Vec<f64>,
}

impl Pca {
    /// Fits the `k` leading components of `rows` (row-major, `dim` values a row).
    /// Each component's sign is fixed so its largest entry is positive: the same data
    /// always gives the same basis.
    pub fn fit(rows: &[f32], dim: usize, k: usize) -> Result<Pca, PcaError> {
        if dim == 0 || !rows.len().is_multiple_of(dim) {
            return Err(PcaError::Shape {
                len: rows.len(),
                dim,
            });
        }
        if k == 0 || k > dim {
            return Err(PcaError::Components { k, dim });
        }
        let n = rows.len() / dim;
        if n < 2 {
            return Err(PcaError::TooFewRows(n));
        }
        if rows.iter().any(|v| !v.is_finite()) {
            return Err(PcaError::NotFinite);
        }
        let x = DMatrix::from_row_iterator(n, dim, rows.iter().map(|&v| f64::from(v)));
        let mean: Vec<f64> = x.row_mean().iter().copied().collect();
        let mut centred = x;
        for mut row in centred.row_iter_mut() {
            for (v, m) in row.iter_mut().zip(&mean) {
                *v -= m;
            }
        }
        let cov = centred.tr_mul(&centred) / (n as f64 - 1.0);
        let eig = SymmetricEigen::new(cov);
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let mut components = DMatrix::zeros(k, dim);
        let mut variances = Vec::with_capacity(k);
        for (i, &j) in order.iter().take(k).enumerate() {
            let v = eig.eigenvectors.column(j);
            let peak = v
                .iter()
                .copied()
                .fold(0.0f64, |p, x| if x.abs() > p.abs() { x } else { p });
            let sign = if peak < 0.0 { -1.0 } else { 1.0 };
            for (c, &x) in v.iter().enumerate() {
                components[(i, c)] = sign * x;
            }
            // Rounding can leave the smallest eigenvalues a hair below zero.
            variances.push(eig.eigenvalues[j].max(0.0));
        }
        Ok(Pca {
            mean,
            components,
            variances,
        })
    }

    /// Input dimensions.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Components kept.
    pub fn width(&self) -> usize {
        self.components.nrows()
    }

    /// The first `k` coefficients of every row of `rows` (`n * k` values, row after
    /// row); `k` is capped at [`Pca::width`].
    pub fn project(&self, rows: &[f32], k: usize) -> Result<Vec<f64>, PcaError> {
        let d = self.dim();
        if !rows.len().is_multiple_of(d) {
            return Err(PcaError::Shape {
                len: rows.len(),
                dim: d,
            });
        }
        let n = rows.len() / d;
        let k = k.min(self.width());
        let x = DMatrix::from_row_iterator(
            n,
            d,
            rows.chunks_exact(d)
                .flat_map(|r| r.iter().zip(&self.mean).map(|(&v, m)| f64::from(v) - m)),
        );
        let c = self.components.rows(0, k);
        let coef = x * c.transpose();
        Ok(coef
            .row_iter()
            .flat_map(|r| r.iter().copied().collect::<Vec<_>>())
            .collect())
    }

    /// The point of input space with coefficients `coef` on the first `coef.len()`
    /// components (at most [`Pca::width`] are used).
    pub fn reconstruct(&self, coef: &[f64]) -> Vec<f64> {
        let mut out = self.mean.clone();
        for (i, &a) in coef.iter().take(self.width()).enumerate() {
            for (o, &c) in out.iter_mut().zip(self.components.row(i).iter()) {
                *o += a * c;
            }
        }
        out
    }

    /// [`Pca::reconstruct`] of many rows at once (one matrix product): `coef` holds
    /// rows of `k` coefficients; returns rows of [`Pca::dim`] values.
    pub fn reconstruct_all(&self, coef: &[f64], k: usize) -> Result<Vec<f64>, PcaError> {
        let k = k.min(self.width());
        if k == 0 || !coef.len().is_multiple_of(k) {
            return Err(PcaError::Shape {
                len: coef.len(),
                dim: k,
            });
        }
        let a = DMatrix::from_row_slice(coef.len() / k, k, coef);
        let x = a * self.components.rows(0, k);
        Ok(x.row_iter()
            .flat_map(|r| {
                r.iter()
                    .zip(&self.mean)
                    .map(|(v, m)| v + m)
                    .collect::<Vec<_>>()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyvae_datasets::rng::SeededRng;

    /// Samples of a 3-D Gaussian with a known covariance: standard deviations 5, 2 and
    /// 0.5 along an orthonormal basis that is not the axes. PCA must find that basis
    /// (up to sign) and those variances.
    #[test]
    fn recovers_a_known_covariance() {
        let s = 1.0 / 2f64.sqrt();
        let t = 1.0 / 3f64.sqrt();
        let basis = [[t, t, t], [s, -s, 0.0], [s * t, s * t, -2.0 * s * t]];
        let sd = [5.0, 2.0, 0.5];
        let mut rng = SeededRng::new(7);
        let mut rows = Vec::new();
        for _ in 0..20_000 {
            let a: Vec<f64> = sd.iter().map(|s| s * rng.normal()).collect();
            for (c, offset) in [1.0, -2.0, 3.0].iter().enumerate() {
                let v: f64 = a.iter().zip(&basis).map(|(a, b)| a * b[c]).sum();
                rows.push((v + offset) as f32);
            }
        }
        let pca = Pca::fit(&rows, 3, 3).unwrap();
        for (m, want) in pca.mean.iter().zip([1.0, -2.0, 3.0]) {
            assert!((m - want).abs() < 0.1, "mean {m} vs {want}");
        }
        for (i, (b, s)) in basis.iter().zip(sd).enumerate() {
            let dot: f64 = b
                .iter()
                .enumerate()
                .map(|(c, x)| pca.components[(i, c)] * x)
                .sum();
            assert!(dot.abs() > 0.999, "component {i}: |cos| {}", dot.abs());
            let want = s * s;
            assert!(
                (pca.variances[i] - want).abs() < 0.05 * want,
                "variance {i}: {} vs {want}",
                pca.variances[i]
            );
        }
        // Projecting and reconstructing with every component is the identity.
        let coef = pca.project(&rows[..3], 3).unwrap();
        for (r, x) in pca.reconstruct(&coef).iter().zip(&rows[..3]) {
            assert!((r - f64::from(*x)).abs() < 1e-4);
        }
    }

    #[test]
    fn refuses_bad_shapes() {
        assert_eq!(
            Pca::fit(&[1.0; 7], 3, 1).unwrap_err(),
            PcaError::Shape { len: 7, dim: 3 }
        );
        assert_eq!(
            Pca::fit(&[1.0; 6], 3, 4).unwrap_err(),
            PcaError::Components { k: 4, dim: 3 }
        );
        assert_eq!(
            Pca::fit(&[1.0; 3], 3, 1).unwrap_err(),
            PcaError::TooFewRows(1)
        );
        assert_eq!(
            Pca::fit(&[1.0, f32::NAN, 0.0, 1.0], 2, 1).unwrap_err(),
            PcaError::NotFinite
        );
    }
}
