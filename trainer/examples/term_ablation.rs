//! Does every side of every term earn its share of the 1%? The frame's score is the
//! largest of some twenty-five standardized term sides, each of which widens the
//! clean frames' maximum and so raises the threshold. Each row turns one side off
//! (its scale 0, as the model image would carry it), refits nothing else, sets the
//! threshold again at the 10th largest fitting score and reports which kinds' recall
//! moves by a point or more (`*` held out). A side whose removal lowers no tuned kind
//! would be budget given back to all the others. Float, the frames and fit of
//! `tinyvae detect` (`TINYVAE_SPLIT_SEED` picks another split).
//!
//! ```sh
//! cargo run --release -p tinyvae-trainer --example term_ablation -- CHECKPOINT
//! ```

mod common;

use anyhow::Result;
use tinyvae_shared::detect::{DetectorParams, Term};
use tinyvae_trainer::detector::{fit, FitOptions};

/// Each kind's recall at the 10th largest fitting score, and the false positives.
fn recalls(scores: &[Vec<f64>]) -> (Vec<f64>, f64) {
    let t = common::one_percent_threshold(&scores[0]);
    let rate = |s: &[f64]| s.iter().filter(|&&v| v > t).count() as f64 / s.len() as f64;
    let kinds = scores[2..].iter().map(|s| 100.0 * rate(s)).collect();
    (kinds, 100.0 * rate(&scores[1]))
}

fn main() -> Result<()> {
    let (_, _, scored) = common::score_detect_frames("term_ablation")?;
    let shipped = fit(&scored[0].terms, FitOptions::default());
    let (base, base_fp) = recalls(&common::scores_with(&scored, &shipped));
    let name = |i: usize| {
        scored[2 + i].kind.map_or(String::new(), |k| {
            format!("{}{}", k.name(), if k.held_out() { "*" } else { "" })
        })
    };
    println!("| side turned off | false positives | kinds that lose a point or more | kinds that gain a point or more |\n|---|---|---|---|");
    println!("| none (shipped) | {base_fp:.2}% | | |");
    for term in Term::ALL {
        for upper in [true, false] {
            if !is_on(&shipped, term, upper) {
                continue;
            }
            let params = without(&shipped, &[(term, upper)]);
            let (kinds, fp) = recalls(&common::scores_with(&scored, &params));
            let moved = |sign: f64| -> String {
                kinds
                    .iter()
                    .zip(&base)
                    .enumerate()
                    .filter(|(_, (r, b))| sign * (*r - *b) >= 1.0)
                    .map(|(i, (r, b))| format!("{} {b:.1} → {r:.1}%", name(i)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            println!(
                "| {} {} | {fp:.2}% | {} | {} |",
                term.name(),
                if upper { "high" } else { "low" },
                moved(-1.0),
                moved(1.0)
            );
        }
    }
    let off = greedy(&scored, &shipped, &base);
    println!(
        "\nTurned off together (greedy, tuned kinds only): {}",
        off.iter()
            .map(|&(t, upper)| format!("{} {}", t.name(), if upper { "high" } else { "low" }))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("\n| split | false positives: shipped / sides off | kinds below 90%: shipped / sides off | mean recall | which (sides off) |\n|---|---|---|---|---|");
    for seed in 0..5 {
        std::env::set_var("TINYVAE_SPLIT_SEED", seed.to_string());
        let (_, _, scored) = common::score_detect_frames("term_ablation")?;
        let shipped = fit(&scored[0].terms, FitOptions::default());
        let pruned = without(&shipped, &off);
        let a = common::summary_row(&scored, &common::scores_with(&scored, &shipped));
        let b = common::summary_row(&scored, &common::scores_with(&scored, &pruned));
        // summary_row: pooled | fp | mean | below | which |
        let cells = |r: &str| r.split(" | ").map(str::to_string).collect::<Vec<_>>();
        let (a, b) = (cells(&a), cells(&b));
        println!(
            "| {seed} | {} / {} | {} / {} | {} / {} | {}",
            a[1], b[1], a[3], b[3], a[2], b[2], b[4]
        );
    }
    Ok(())
}

/// Whether `params` reads the upper (or lower) side of `term` (its scale is not 0).
fn is_on(params: &DetectorParams, term: Term, upper: bool) -> bool {
    let side = params.terms[term as usize];
    (if upper {
        side.scale_high
    } else {
        side.scale_low
    }) != 0
}

/// `params` with the sides `off` turned off (scale 0).
fn without(params: &DetectorParams, off: &[(Term, bool)]) -> DetectorParams {
    let mut p = *params;
    for &(term, upper) in off {
        let side = &mut p.terms[term as usize];
        if upper {
            side.scale_high = 0;
        } else {
            side.scale_low = 0;
        }
    }
    p
}

/// Sides turned off one at a time: each round turns off the side that raises the
/// tuned kinds' mean recall most (or keeps it) while no tuned kind loses half a point
/// or more against the detector before it; the search ends when no side qualifies.
fn greedy(scored: &[common::Scored], shipped: &DetectorParams, base: &[f64]) -> Vec<(Term, bool)> {
    let tuned: Vec<bool> = scored[2..]
        .iter()
        .map(|s| s.kind.is_some_and(|k| !k.held_out()))
        .collect();
    let mean = |r: &[f64]| {
        r.iter()
            .zip(&tuned)
            .filter(|(_, &t)| t)
            .map(|(v, _)| v)
            .sum::<f64>()
            / tuned.iter().filter(|&&t| t).count() as f64
    };
    let mut off: Vec<(Term, bool)> = Vec::new();
    let mut current = base.to_vec();
    loop {
        let mut best: Option<((Term, bool), Vec<f64>, f64)> = None;
        for term in Term::ALL {
            for upper in [true, false] {
                if !is_on(shipped, term, upper) || off.contains(&(term, upper)) {
                    continue;
                }
                let mut trial = off.clone();
                trial.push((term, upper));
                let (kinds, _) = recalls(&common::scores_with(scored, &without(shipped, &trial)));
                let loses = kinds
                    .iter()
                    .zip(&current)
                    .zip(&tuned)
                    .any(|((k, c), &t)| t && k - c <= -0.5);
                let gain = mean(&kinds) - mean(&current);
                if !loses && gain >= 0.0 && best.as_ref().is_none_or(|b| gain > b.2) {
                    best = Some(((term, upper), kinds, gain));
                }
            }
        }
        match best {
            Some((side, kinds, _)) => {
                off.push(side);
                current = kinds;
            }
            None => return off,
        }
    }
}
