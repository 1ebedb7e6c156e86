//! The measurement behind "Tails of their own shape" (BENCHMARKS.md): each side of each
//! term is standardized as an exponential tail beyond its edge (the clean 90%
//! quantile; value = excess / mean excess, e-folds of clean probability). A term whose
//! clean tail is heavier than exponential gives clean frames more e-folds than their
//! probability says, so it spends more than its share of the 1% false-positive budget;
//! a lighter tail, less. Fitting each tail's shape too (a generalized Pareto
//! distribution, Pickands 1975, by probability-weighted moments, Hosking & Wallis
//! 1987) makes a term's value -ln of its fitted tail probability whatever the shape:
//! every term then spends the budget alike. Chosen without looking at any fault kind;
//! judged like the shipped detector (threshold the 10th largest fitting score).
//!
//! ```sh
//! TINYVAE_SPLIT_SEED=S cargo run --release -p tinyvae-trainer --example tail_shape -- \
//!     models/tinyvae-mnist.checkpoint.safetensors models/fault-head.safetensors
//! ```

mod common;

use anyhow::Result;
use tinyvae_shared::detect::{Term, TERMS};
use tinyvae_trainer::detector::{fit, FitOptions};

/// A value beyond a bounded tail's end (a clean frame never reaches it).
const BEYOND_END: f64 = 50.0;
/// Fewest exceedances a shape is fitted from; fewer keep the exponential.
const FEWEST: usize = 20;

/// One side's tail: excesses `y` beyond the edge have probability
/// `(1 + shape y / scale)^(-1 / shape)` (the exponential at shape 0).
#[derive(Clone, Copy, Debug)]
struct Tail {
    shape: f64,
    scale: f64,
}

impl Tail {
    /// The generalized Pareto fit of `excesses` (all positive) by probability-weighted
    /// moments, its shape clamped to +-`most`; `None` below [`FEWEST`] excesses.
    fn fit(excesses: &[f64], most: f64) -> Option<Self> {
        if excesses.len() < FEWEST {
            return None;
        }
        let mut y = excesses.to_vec();
        y.sort_by(f64::total_cmp);
        let n = y.len() as f64;
        let a0 = y.iter().sum::<f64>() / n;
        let a1 = y
            .iter()
            .enumerate()
            .map(|(i, v)| (1.0 - (i as f64 + 0.65) / n) * v)
            .sum::<f64>()
            / n;
        let d = a0 - 2.0 * a1;
        if d <= 0.0 || a0 <= 0.0 {
            return None;
        }
        let shape = (2.0 - a0 / d).clamp(-most, most);
        // The scale that keeps the mean excess a0 at the clamped shape.
        let scale = a0 * (1.0 - shape);
        Some(Self { shape, scale })
    }

    /// -ln of the tail probability of an excess `y` (e-folds, as the shipped value).
    fn value(&self, y: f64) -> f64 {
        if self.shape.abs() < 1e-9 {
            return y / self.scale;
        }
        let t = 1.0 + self.shape * y / self.scale;
        if t <= 0.0 {
            BEYOND_END
        } else {
            (t.ln() / self.shape).min(BEYOND_END)
        }
    }
}

/// One side of a term: its edge, the shipped exponential's scale, which way it points
/// (+1 above the edge, -1 below) and the fitted tail (`None`: the exponential).
#[derive(Clone, Copy)]
struct Side {
    edge: f64,
    scale: f64,
    sign: f64,
    tail: Option<Tail>,
}

/// Raw values of every frame of a set, the head's margin last.
type Raw = Vec<[f64; TERMS]>;

/// Each frame's score: its largest value.
fn scores(values: &[[f64; TERMS]]) -> Vec<f64> {
    values
        .iter()
        .map(|z| z.iter().fold(0.0f64, |a, &b| a.max(b)))
        .collect()
}

fn main() -> Result<()> {
    let usage = "tail_shape CHECKPOINT HEAD.safetensors";
    let (_, _, scored, layers) = common::detect_frames_and_head(usage)?;
    let options = FitOptions::default();
    let params = fit(&scored[0].terms, options);
    let raw: Vec<Raw> = scored
        .iter()
        .map(|set| -> Result<Raw> {
            let margins = tinyvae_trainer::fault_head::int8_scores(&layers, &set.frames)?;
            Ok(set
                .terms
                .iter()
                .zip(&margins)
                .map(|(r, &m)| {
                    let mut v = [0.0; TERMS];
                    for t in 0..TERMS {
                        v[t] = if t == Term::Head as usize {
                            m
                        } else {
                            f64::from(r[t])
                        };
                    }
                    v
                })
                .collect())
        })
        .collect::<Result<_>>()?;
    let (head_edge, head_excess) = common::upper_tail(
        &raw[0]
            .iter()
            .map(|v| v[Term::Head as usize])
            .collect::<Vec<_>>(),
    );

    // Each term's sides: (edge, the shipped exponential's scale, the sign of the side).
    let sides = |t: usize| -> Vec<(f64, f64, f64)> {
        if t == Term::Head as usize {
            return vec![(head_edge, head_excess / options.head_weight, 1.0)];
        }
        let p = params.terms[t];
        let mut s = Vec::new();
        if p.scale_high > 0 {
            s.push((f64::from(p.high), f64::from(p.scale_high) / 256.0, 1.0));
        }
        if p.scale_low > 0 {
            s.push((f64::from(p.low), f64::from(p.scale_low) / 256.0, -1.0));
        }
        s
    };
    for most in [0.0, 0.25, 0.5, 1.0] {
        // The fitted tails, on the fitting frames' excesses.
        let tails: Vec<Vec<Side>> = (0..TERMS)
            .map(|t| {
                sides(t)
                    .into_iter()
                    .map(|(edge, scale, sign)| {
                        let excesses: Vec<f64> = raw[0]
                            .iter()
                            .map(|v| sign * (v[t] - edge))
                            .filter(|&y| y > 0.0)
                            .collect();
                        // The head's weight divides its scale: keep it so.
                        let tail = Tail::fit(&excesses, most).map(|mut tl| {
                            if t == Term::Head as usize {
                                tl.scale /= options.head_weight;
                            }
                            tl
                        });
                        Side {
                            edge,
                            scale,
                            sign,
                            tail,
                        }
                    })
                    .collect()
            })
            .collect();
        if most == 0.5 {
            let shapes: Vec<String> = Term::ALL
                .iter()
                .zip(&tails)
                .map(|(term, s)| {
                    let v: Vec<String> = s
                        .iter()
                        .map(|side| {
                            let (sign, tl) = (side.sign, side.tail);
                            let side = if sign > 0.0 { "+" } else { "-" };
                            tl.map_or(format!("{side}exp"), |tl| format!("{side}{:.2}", tl.shape))
                        })
                        .collect();
                    format!("{} {}", term.name(), v.join("/"))
                })
                .collect();
            println!("shapes (largest 0.5): {}", shapes.join(", "));
        }
        let values = |set: &Raw, shaped: bool| -> Vec<[f64; TERMS]> {
            set.iter()
                .map(|v| {
                    let mut z = [0.0f64; TERMS];
                    for t in 0..TERMS {
                        for side in &tails[t] {
                            let y = side.sign * (v[t] - side.edge);
                            if y <= 0.0 {
                                continue;
                            }
                            let value = match (shaped, side.tail) {
                                (true, Some(tl)) => tl.value(y),
                                _ => y / side.scale,
                            };
                            z[t] = z[t].max(value);
                        }
                    }
                    z
                })
                .collect()
        };
        for shaped in [false, true] {
            if !shaped && most > 0.0 {
                continue;
            }
            let all: Vec<Vec<f64>> = raw.iter().map(|set| scores(&values(set, shaped))).collect();
            let threshold = common::one_percent_threshold(&all[0]);
            let rate = |s: &[f64]| {
                s.iter().filter(|&&v| v > threshold).count() as f64 / s.len() as f64 * 100.0
            };
            let mut held = Vec::new();
            let mut below = Vec::new();
            let mut tuned_below = 0;
            for (set, s) in scored[2..].iter().zip(&all[2..]) {
                let Some(kind) = set.kind else { continue };
                let r = rate(s);
                if kind.held_out() {
                    held.push(format!("{r:.1}"));
                }
                if r < 90.0 {
                    tuned_below += usize::from(!kind.held_out());
                    let mark = if kind.held_out() { "*" } else { "" };
                    below.push(format!("{}{mark} {r:.1}%", kind.name()));
                }
            }
            let name = if shaped {
                format!("shape within +-{most}")
            } else {
                "exponential (shipped)".into()
            };
            println!(
                "| {name} | {:.2}% | {tuned_below} | {} | {} |",
                rate(&all[1]),
                held.join(" / "),
                below.join(", ")
            );
        }
    }
    Ok(())
}
