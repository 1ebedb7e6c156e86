//! The latent space as a picture: the test set's codes as a scatter coloured by class,
//! and the decoder's output over a grid of the same plane (the figure of Kingma and
//! Welling 2014). Drawn for a VAE beside an AE, it shows why the prior matters: the VAE
//! fills its plane, so every grid point decodes to a digit, while the AE's codes leave
//! holes that decode to blurs.
//!
//! Codes wider than two dimensions are shown in the plane of their two principal
//! components (fitted on the codes of the images shown), and the grid is decoded from
//! that plane mapped back into the latent space.

use std::path::Path;

use serde::Serialize;

use crate::eval::{decode_means, encode_means};
use crate::model::{Model, ModelKind};
use crate::pca::{Pca, PcaError};
use crate::pictures::canvas::Canvas;
use crate::pictures::plot::{draw_chart, save, Chart, Mark, Series};
use crate::pictures::PictureError;
use tinyvae_datasets::Dataset;

/// Why a latent map could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LatentMapError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The projection failed.
    #[error(transparent)]
    Pca(#[from] PcaError),
    /// The latent is not two-dimensional and no projection was asked for.
    #[error("the model's latent has {0} dimensions: a latent map plots 2; pass --project to show the first two principal components of wider codes")]
    NotTwoD(usize),
    /// A one-dimensional latent has no plane to show.
    #[error("the model's latent has 1 dimension: a latent map needs at least 2")]
    OneD,
    /// No images, or a grid of fewer than 2 points a side.
    #[error("nothing to draw: {0}")]
    Empty(String),
    /// The model's input size is not the data's.
    #[error("the model takes {model} pixels, the images have {data}")]
    InputSize {
        /// Pixels the model takes.
        model: usize,
        /// Pixels per image.
        data: usize,
    },
    /// Drawing failed.
    #[error(transparent)]
    Picture(#[from] PictureError),
}

/// What `tinyvae latent-map` draws.
#[derive(Clone, Debug, Serialize)]
pub struct LatentMapOptions {
    /// Grid points a side of the decoded manifold.
    pub grid: usize,
    /// Allow latents wider than 2, shown in their first two principal components.
    pub project: bool,
}

impl Default for LatentMapOptions {
    /// A 16 x 16 grid: 448 pixels of 28 x 28 digits, the width of the scatter.
    fn default() -> Self {
        Self {
            grid: 16,
            project: false,
        }
    }
}

/// One model's map.
#[derive(Clone, Debug)]
pub struct LatentMap {
    /// Shown above it.
    pub title: String,
    /// The model's kind.
    pub kind: ModelKind,
    /// Each shown image's position in the plane.
    pub points: Vec<(f64, f64)>,
    /// Their classes, when known.
    pub labels: Option<Vec<u32>>,
    /// Whether the plane is a PCA projection of wider codes.
    pub projected: bool,
    /// Grid values along the horizontal axis (ascending).
    pub grid_x: Vec<f64>,
    /// Grid values along the vertical axis (ascending; the top row of tiles is the
    /// largest).
    pub grid_y: Vec<f64>,
    /// Decoded images in `[0, 1]`, row after row from the top-left.
    pub tiles: Vec<Vec<f32>>,
    /// Image width and height.
    pub size: (usize, usize),
}

/// The standard normal quantile `Phi^-1(p)` for `p` in (0, 1), by bisection on
/// `Phi(x) = erfc(-x / sqrt 2) / 2` to 1e-12: exact enough to place grid points,
/// with no tabled rational approximation to check.
pub fn normal_quantile(p: f64) -> f64 {
    let cdf = |x: f64| 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    while hi - lo > 1e-12 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// `n` evenly spaced values from `lo` to `hi`, ends included.
fn span(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
        .collect()
}

/// Builds `model`'s map of `test`.
///
/// The grid: for a VAE with a 2-D latent, `Phi^-1((i + 1/2) / n)` on each axis, points
/// equally likely under the prior (as in Kingma and Welling's figure); for an AE, or a
/// projection, `n` evenly spaced values from the smallest to the largest code shown on
/// each axis, since there is no prior to follow.
pub fn latent_map(
    model: &Model,
    test: &Dataset,
    opts: &LatentMapOptions,
    title: &str,
) -> Result<LatentMap, LatentMapError> {
    let latent = model.config.latent;
    let projected = match latent {
        0 | 1 => return Err(LatentMapError::OneD),
        2 => false,
        l if !opts.project => return Err(LatentMapError::NotTwoD(l)),
        _ => true,
    };
    if test.is_empty() {
        return Err(LatentMapError::Empty("no test images".into()));
    }
    if opts.grid < 2 {
        return Err(LatentMapError::Empty(format!(
            "a grid of {} points a side (at least 2)",
            opts.grid
        )));
    }
    let pixels = model.config.width * model.config.height;
    if pixels != test.image_len() {
        return Err(LatentMapError::InputSize {
            model: pixels,
            data: test.image_len(),
        });
    }
    let mu = encode_means(model, test)?;
    let (plane, pca) = if projected {
        let pca = Pca::fit(&mu, latent, 2)?;
        (pca.project(&mu, 2)?, Some(pca))
    } else {
        (mu.iter().map(|&v| f64::from(v)).collect(), None)
    };
    let points: Vec<(f64, f64)> = plane.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let n = opts.grid;
    let range = |axis: usize| {
        plane
            .iter()
            .skip(axis)
            .step_by(2)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    };
    let (grid_x, grid_y) = if model.config.kind == ModelKind::Vae && !projected {
        let q: Vec<f64> = (0..n)
            .map(|i| normal_quantile((i as f64 + 0.5) / n as f64))
            .collect();
        (q.clone(), q)
    } else {
        let ((x0, x1), (y0, y1)) = (range(0), range(1));
        (span(x0, x1, n), span(y0, y1, n))
    };
    let mut z = Vec::with_capacity(n * n * latent);
    for &y in grid_y.iter().rev() {
        for &x in &grid_x {
            match &pca {
                Some(p) => z.extend(p.reconstruct(&[x, y]).iter().map(|&v| v as f32)),
                None => z.extend([x as f32, y as f32]),
            }
        }
    }
    let images = decode_means(model, &z)?;
    Ok(LatentMap {
        title: title.into(),
        kind: model.config.kind,
        points,
        labels: test.labels.clone(),
        projected,
        grid_x,
        grid_y,
        tiles: images.chunks_exact(pixels).map(<[f32]>::to_vec).collect(),
        size: (model.config.width, model.config.height),
    })
}

/// Ten distinct colours (matplotlib's "tab10"), one per digit.
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Draws `maps` side by side to `path`: each a scatter of its codes (coloured by
/// class, one legend for all) above its decoded grid.
pub fn draw_latent_maps(
    path: &Path,
    maps: &[LatentMap],
    class_names: &[String],
) -> Result<(), PictureError> {
    let Some(first) = maps.first() else {
        return Err(PictureError::Empty("no latent maps".into()));
    };
    let (w, h) = first.size;
    let n = first.grid_x.len();
    let manifold = (n * w) as i64;
    let block = manifold.max(460) + 110;
    let (chart_top, chart_h) = (56, 420);
    let grid_top = chart_top + chart_h + 50;
    let height = grid_top + (n * h) as i64 + 60;
    let mut cv = Canvas::new(
        (block * maps.len() as i64 + 20) as u32,
        height.max(1) as u32,
    );
    for (m, map) in maps.iter().enumerate() {
        let bx = 20 + block * m as i64;
        cv.text(bx, 8, &map.title, [0, 0, 0]);
        let classes = class_names.len().max(1);
        let mut series: Vec<Series> = (0..classes)
            .map(|c| Series {
                name: String::new(),
                color: PALETTE[c % PALETTE.len()],
                points: Vec::new(),
                mark: Mark::Dots(3),
            })
            .collect();
        for (i, &p) in map.points.iter().enumerate() {
            let c = map
                .labels
                .as_ref()
                .and_then(|l| l.get(i))
                .map_or(0, |&l| l as usize);
            if let Some(s) = series.get_mut(c) {
                s.points.push(p);
            }
        }
        let (xl, what) = if map.projected {
            ("PC 1 of mu (horizontal) / PC 2 (vertical)", "PCA of mu")
        } else {
            ("z1 (horizontal) / z2 (vertical)", "mu")
        };
        let chart = Chart {
            title: format!("{what} of {} test images", map.points.len()),
            x_label: xl.into(),
            series,
            ..Chart::default()
        };
        draw_chart(&mut cv, (bx + 70, chart_top, block - 110, chart_h), &chart);
        let gx = bx + 70 + (block - 110 - manifold) / 2;
        let caption = match (map.kind, map.projected) {
            (ModelKind::Vae, false) => "decoded at z = Phi^-1((i + 1/2) / n) per axis".into(),
            _ => format!(
                "decoded over the codes' range [{:.1}, {:.1}] x [{:.1}, {:.1}]",
                map.grid_x.first().copied().unwrap_or(0.0),
                map.grid_x.last().copied().unwrap_or(0.0),
                map.grid_y.first().copied().unwrap_or(0.0),
                map.grid_y.last().copied().unwrap_or(0.0)
            ),
        };
        cv.text(gx, grid_top - 14, &caption, [0, 0, 0]);
        for (t, tile) in map.tiles.iter().enumerate() {
            let (ty, tx) = ((t / n * h) as i64, (t % n * w) as i64);
            for (p, &v) in tile.iter().enumerate() {
                let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                cv.dot(
                    gx + tx + (p % w) as i64,
                    grid_top + ty + (p / w) as i64,
                    [g; 3],
                );
            }
        }
    }
    let ly = height - 24;
    cv.text(20, ly, "class:", [0, 0, 0]);
    for (c, name) in class_names.iter().enumerate() {
        let x = 80 + 60 * c as i64;
        cv.rect(x, ly, 12, 8, PALETTE[c % PALETTE.len()]);
        cv.text(x + 16, ly, name, [0, 0, 0]);
    }
    save(&cv, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles() {
        assert!(normal_quantile(0.5).abs() < 1e-9);
        assert!((normal_quantile(0.975) - 1.959_963_985).abs() < 1e-6);
        assert!((normal_quantile(0.025) + 1.959_963_985).abs() < 1e-6);
        assert!((normal_quantile(0.841_344_746) - 1.0).abs() < 1e-6);
    }
}
