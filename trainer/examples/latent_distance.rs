//! The measurement behind the latent rows of "What the last six kinds need"
//! (BENCHMARKS.md): does the latent mean `mu` know what the sixteen terms miss? Each
//! candidate is a 17th term beside the shipped sixteen (standardized by its own tail on
//! the fitting frames, the largest kept; `common::with_extra_term`): the distance from
//! a frame's `mu` to the nearest training frame's (or the mean of the five nearest),
//! to the nearest of k-means prototypes of them (what a board could store), and the
//! norm of `mu` (the prior's view).
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example latent_distance -- CHECKPOINT
//! ```

mod common;

use std::path::Path;

use anyhow::{anyhow, Result};
use candle_core::Device;
use tinyvae_trainer::eval::encode_means;

/// Squared Euclidean distance.
fn distance2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The root of the mean squared distance from `v` to its `k` nearest `points`.
fn nearest(points: &[Vec<f32>], v: &[f32], k: usize) -> f64 {
    let mut d: Vec<f32> = points.iter().map(|p| distance2(p, v)).collect();
    d.sort_by(f32::total_cmp);
    f64::from(d[..k].iter().sum::<f32>() / k as f32).sqrt()
}

/// `k` prototypes of `data` by Lloyd's k-means (`iterations` rounds), started from
/// every `len / k`-th point so that the result is deterministic.
fn kmeans(data: &[Vec<f32>], k: usize, iterations: usize) -> Vec<Vec<f32>> {
    let mut centres: Vec<Vec<f32>> = (0..k).map(|i| data[i * data.len() / k].clone()).collect();
    for _ in 0..iterations {
        let mut sums = vec![vec![0f32; data[0].len()]; k];
        let mut counts = vec![0usize; k];
        for v in data {
            let j = (0..k)
                .min_by(|&a, &b| distance2(&centres[a], v).total_cmp(&distance2(&centres[b], v)))
                .unwrap_or(0);
            counts[j] += 1;
            sums[j].iter_mut().zip(v).for_each(|(s, x)| *s += x);
        }
        for (centre, (sum, &n)) in centres.iter_mut().zip(sums.iter().zip(&counts)) {
            if n > 0 {
                *centre = sum.iter().map(|s| s / n as f32).collect();
            }
        }
    }
    centres
}

fn main() -> Result<()> {
    let (checkpoint, train, scored) = common::score_detect_frames("latent_distance")?;
    let model = tinyvae_trainer::checkpoint::load(Path::new(&checkpoint), &Device::Cpu)
        .map_err(|e| anyhow!("{checkpoint}: {e}"))?
        .model;
    let latent = model.config.latent;
    let rows = |m: Vec<f32>| m.chunks(latent).map(<[f32]>::to_vec).collect::<Vec<_>>();
    let train_mu = rows(encode_means(&model, &train)?);
    let mus: Vec<Vec<Vec<f32>>> = scored
        .iter()
        .map(|s| Ok(rows(encode_means(&model, &s.frames)?)))
        .collect::<Result<_>>()?;
    let shipped = common::shipped_scores(&scored);
    common::print_extra_term_header(&scored, &shipped, &[]);
    let row = |name: &str, term: &dyn Fn(&[f32]) -> f64| {
        let extra: Vec<Vec<f64>> = mus
            .iter()
            .map(|m| m.iter().map(|v| term(v)).collect())
            .collect();
        let scores = common::with_extra_term(&shipped, &extra);
        println!("| {name} | {}", common::summary_row(&scored, &scores));
    };
    row("distance to the nearest training mu", &|v| {
        nearest(&train_mu, v, 1)
    });
    row("distance to the 5 nearest training mu", &|v| {
        nearest(&train_mu, v, 5)
    });
    for k in [64, 256] {
        let prototypes = kmeans(&train_mu, k, 10);
        row(
            &format!("distance to the nearest of {k} k-means prototypes"),
            &|v| nearest(&prototypes, v, 1),
        );
    }
    row("norm of mu", &|v| {
        f64::from(v.iter().map(|x| x * x).sum::<f32>()).sqrt()
    });
    Ok(())
}
