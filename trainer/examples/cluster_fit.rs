//! The measurement behind "Terms fitted per kind of digit" (BENCHMARKS.md): the
//! frame-only terms (where the ink sits, how much, how bright, how wide, how soft:
//! holes, cuts, centroid, ink, bright, mid-tones, block, extent, ends, softness,
//! dimmest) vary more between digits than within one, so a global fit judges a frame
//! against every digit at once. Here each is fitted per cluster of the latent mean
//! `mu` (k-means of the training frames' `mu`, a frame judged by its nearest
//! prototype's fit): a frame must look like the digits the encoder puts it among. A
//! generic change, decided before it was measured; the variant kept is chosen on the
//! tuned kinds (fewest below 90% recall, then their mean recall), not the held-out ones.
//!
//! The threshold is still the 10th largest of the 1,002 fitting frames' scores, so a
//! fit on the training frames (which the model saw) cannot lower the false positives'
//! control, only the shape of the score.
//!
//! ```sh
//! TINYVAE_BOUND_SPLITS=5 cargo run --release -p tinyvae-trainer --example cluster_fit -- \
//!     models/tinyvae-mnist.checkpoint.safetensors models/fault-head.safetensors
//! ```

mod common;

use anyhow::{anyhow, Result};
use tinyvae_shared::detect::{DetectorParams, RawTerms, Term};
use tinyvae_shared::fixed::q16_to_f64;
use tinyvae_trainer::detector::{fit, fit_seen, FitOptions};
use tinyvae_trainer::eval::encode_means;

/// The terms that read the frame alone (every term but the reconstruction's, the ELBO,
/// the model's set of neighbourhoods and the head).
fn frame_terms() -> Vec<Term> {
    Term::ALL
        .into_iter()
        .filter(|t| {
            !matches!(
                t,
                Term::Elbo | Term::MissingInk | Term::ExcessInk | Term::Unseen | Term::Head
            )
        })
        .collect()
}

/// Where a variant's per-cluster fits come from.
#[derive(Clone, Copy)]
enum Source {
    /// The 7,996 training frames.
    Training,
    /// The 1,002 fitting frames (about a hundred a cluster at ten).
    Fitting,
}

/// A frame's score: the largest standardized term, each from its cluster's fit where
/// `per_cluster` holds the term, the global fit otherwise.
fn score(
    raw: &RawTerms,
    global: &DetectorParams,
    local: &DetectorParams,
    per_cluster: &[Term],
) -> f64 {
    Term::ALL
        .iter()
        .map(|&t| {
            let params = if per_cluster.contains(&t) {
                local
            } else {
                global
            };
            q16_to_f64(params.terms[t as usize].z(raw[t as usize]))
        })
        .fold(0.0, f64::max)
}

/// Each `mu` row's nearest prototype.
fn clusters(prototypes: &[Vec<f32>], mu: &[Vec<f32>]) -> Vec<usize> {
    mu.iter()
        .map(|v| common::nearest_prototype(prototypes, v))
        .collect()
}

fn main() -> Result<()> {
    let usage = "cluster_fit CHECKPOINT HEAD.safetensors";
    let (model, head) = common::model_and_head(usage)?;
    let splits = common::bound_splits()?;
    let latent = model.config.latent;
    let rows = |m: Vec<f32>| m.chunks(latent).map(<[f32]>::to_vec).collect::<Vec<_>>();
    let mut cache = None;
    for seed in 0..splits {
        std::env::set_var("TINYVAE_SPLIT_SEED", seed.to_string());
        let (_, train, scored) = common::score_detect_frames(usage)?;
        if cache.is_none() {
            let seen = fit_seen(&train);
            let train_terms = common::score_frames(&model, None, train.clone(), &seen)?.terms;
            let train_mu = rows(encode_means(&model, &train)?);
            cache = Some((common::int8_head(&head, &train)?, train_terms, train_mu));
        }
        let (layers, train_terms, train_mu) = cache.as_ref().ok_or_else(|| anyhow!("no cache"))?;
        let head_scores = common::int8_head_scores(&scored, layers)?;
        let mus = scored
            .iter()
            .map(|s| Ok(rows(encode_means(&model, &s.frames)?)))
            .collect::<Result<Vec<_>>>()?;
        let shipped = common::shipped_with_head_scores(&scored, &head_scores);
        println!("\nsplit {seed}:");
        common::print_shipped_with_head_row("per-cluster fit", &scored, &shipped);
        let global = fit(&scored[0].terms, FitOptions::default());
        let frame_terms = frame_terms();
        for (k, source, per_cluster, what) in [
            (10, Source::Training, &frame_terms[..], "frame terms"),
            (10, Source::Fitting, &frame_terms[..], "frame terms"),
            (10, Source::Fitting, &Term::ALL[..16], "all sixteen terms"),
            (4, Source::Training, &frame_terms[..], "frame terms"),
            (16, Source::Training, &frame_terms[..], "frame terms"),
        ] {
            let prototypes = common::kmeans(train_mu, k, 10);
            let (source_terms, source_mu, name) = match source {
                Source::Training => (train_terms, train_mu, "training"),
                Source::Fitting => (&scored[0].terms, &mus[0], "fitting"),
            };
            let source_cluster = clusters(&prototypes, source_mu);
            let local: Vec<DetectorParams> = (0..k)
                .map(|c| {
                    let members: Vec<RawTerms> = source_terms
                        .iter()
                        .zip(&source_cluster)
                        .filter(|&(_, &j)| j == c)
                        .map(|(r, _)| *r)
                        .collect();
                    fit(&members, FitOptions::default())
                })
                .collect();
            let scores: Vec<Vec<f64>> = scored
                .iter()
                .zip(&mus)
                .map(|(s, mu)| {
                    s.terms
                        .iter()
                        .zip(clusters(&prototypes, mu))
                        .map(|(raw, c)| score(raw, &global, &local[c], per_cluster))
                        .collect()
                })
                .collect();
            let scores = common::with_shipped_head(&scores, &head_scores);
            println!(
                "| {k} clusters, {what} on the {name} frames | {} | {}",
                common::tuned_recall(&scored, &scores),
                common::summary_row(&scored, &scores)
            );
        }
    }
    Ok(())
}
