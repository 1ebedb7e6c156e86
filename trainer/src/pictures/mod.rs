//! Pictures of what a model learned: samples from the prior, reconstructions,
//! latent interpolations and traversals (as image tiles for
//! [`tinyvae_datasets::grid`]); and the loss curves of a run ([`plot`], drawn on a
//! [`canvas`]).

pub mod canvas;
pub mod plot;

use candle_core::Tensor;

use crate::model::Model;
use tinyvae_datasets::rng::SeededRng;

/// Why a picture could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Writing the PNG failed.
    #[error("{}: cannot write image: {source}", path.display())]
    Write {
        /// The output path.
        path: std::path::PathBuf,
        /// The encoder's error.
        source: image::ImageError,
    },
    /// Nothing to draw.
    #[error("nothing to draw: {0}")]
    Empty(String),
    /// Writing a grid failed.
    #[error(transparent)]
    Grid(#[from] tinyvae_datasets::grid::GridError),
}

fn rows_of(t: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    t.to_vec2()
}

/// `n` images decoded from `z ~ N(0, I)` (seeded), as decoder means.
pub fn sample(model: &Model, n: usize, seed: u64) -> candle_core::Result<Vec<Vec<f32>>> {
    let l = model.config.latent;
    let mut rng = SeededRng::stream(seed, "sample", 0);
    let z = Tensor::from_vec(rng.normals(n * l), (n, l), model.device())?;
    rows_of(&model.decode_mean(&z)?)
}

/// Reconstructions (through `z = mu`) of the rows of `x`.
pub fn reconstruct(model: &Model, x: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    let (mu, _) = model.encode(x)?;
    rows_of(&model.decode_mean(&mu)?)
}

/// `steps` images decoded along the straight line between the latent means of
/// `a` and `b` (both ends included).
pub fn interpolate(
    model: &Model,
    a: &[f32],
    b: &[f32],
    steps: usize,
) -> candle_core::Result<Vec<Vec<f32>>> {
    let d = a.len();
    let mut v = a.to_vec();
    v.extend_from_slice(b);
    let x = Tensor::from_vec(v, (2, d), model.device())?;
    let (mu, _) = model.encode(&x)?;
    let mu: Vec<Vec<f32>> = mu.to_vec2()?;
    let l = model.config.latent;
    let steps = steps.max(2);
    let mut z = Vec::with_capacity(steps * l);
    for s in 0..steps {
        let t = s as f32 / (steps - 1) as f32;
        z.extend((0..l).map(|j| (1.0 - t) * mu[0][j] + t * mu[1][j]));
    }
    rows_of(&model.decode_mean(&Tensor::from_vec(z, (steps, l), model.device())?)?)
}

/// Images decoded from the latent mean of `x` with dimension `dim` set to each of `values`.
pub fn traverse(
    model: &Model,
    x: &[f32],
    dim: usize,
    values: &[f32],
) -> candle_core::Result<Vec<Vec<f32>>> {
    let xt = Tensor::from_vec(x.to_vec(), (1, x.len()), model.device())?;
    let (mu, _) = model.encode(&xt)?;
    let mu: Vec<f32> = mu.flatten_all()?.to_vec1()?;
    let l = model.config.latent;
    if dim >= l {
        candle_core::bail!("latent dimension {dim} out of range (latent size {l})");
    }
    let mut z = Vec::with_capacity(values.len() * l);
    for &v in values {
        let mut m = mu.clone();
        m[dim] = v;
        z.extend(m);
    }
    rows_of(&model.decode_mean(&Tensor::from_vec(z, (values.len(), l), model.device())?)?)
}
