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

/// The root of the mean squared distance from `v` to its `k` nearest `points`.
fn nearest(points: &[Vec<f32>], v: &[f32], k: usize) -> f64 {
    let mut d: Vec<f32> = points.iter().map(|p| common::distance2(p, v)).collect();
    d.sort_by(f32::total_cmp);
    f64::from(d[..k].iter().sum::<f32>() / k as f32).sqrt()
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
        let prototypes = common::kmeans(&train_mu, k, 10);
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
