//! Loss curves of a training run as a PNG: total loss (train and validation)
//! on top, the reconstruction and KL terms below, each panel with its own scale.

use std::path::Path;

use super::canvas::Canvas;
use super::PictureError;
use crate::train::EpochMetrics;

/// A named curve.
struct Series<'a> {
    name: &'a str,
    color: [u8; 3],
    points: Vec<(f64, f64)>,
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn panel(cv: &mut Canvas, (x0, y0, w, h): (i64, i64, i64, i64), title: &str, series: &[Series]) {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|p| p.1.is_finite())
        .collect();
    cv.text(x0, y0 - 14, title, [0, 0, 0]);
    if all.is_empty() {
        return;
    }
    let (mut xmin, mut xmax) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut ymin, mut ymax) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in &all {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if xmax <= xmin {
        xmax = xmin + 1.0;
    }
    let span = (ymax - ymin).max(1e-9);
    ymin -= 0.05 * span;
    ymax += 0.05 * span;
    let px = |x: f64| x0 + ((x - xmin) / (xmax - xmin) * w as f64).round() as i64;
    let py = |y: f64| y0 + h - ((y - ymin) / (ymax - ymin) * h as f64).round() as i64;
    for t in 0..=4 {
        let y = ymin + (ymax - ymin) * t as f64 / 4.0;
        cv.line((x0, py(y)), (x0 + w, py(y)), [225, 225, 225], 1);
        cv.text(
            x0 - 60,
            py(y) - 4,
            &format!("{:>7}", fmt_tick(y)),
            [60, 60, 60],
        );
        let x = xmin + (xmax - xmin) * t as f64 / 4.0;
        cv.text(px(x) - 8, y0 + h + 6, &format!("{x:.0}"), [60, 60, 60]);
    }
    cv.line((x0, y0), (x0, y0 + h), [0, 0, 0], 1);
    cv.line((x0, y0 + h), (x0 + w, y0 + h), [0, 0, 0], 1);
    for (i, s) in series.iter().filter(|s| !s.points.is_empty()).enumerate() {
        let pts: Vec<(i64, i64)> = s
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(x, y)| (px(x), py(y)))
            .collect();
        for seg in pts.windows(2) {
            cv.line(seg[0], seg[1], s.color, 2);
        }
        if pts.len() == 1 {
            cv.rect(pts[0].0 - 2, pts[0].1 - 2, 5, 5, s.color);
        }
        let lx = x0 + w - 150;
        let ly = y0 + 8 + 14 * i as i64;
        cv.rect(lx, ly, 16, 8, s.color);
        cv.text(lx + 22, ly, s.name, [0, 0, 0]);
    }
}

/// Draws the curves of `history` to `path`.
pub fn loss_curves(path: &Path, history: &[EpochMetrics], title: &str) -> Result<(), PictureError> {
    let mut cv = Canvas::new(900, 640);
    cv.text(20, 8, title, [0, 0, 0]);
    let ep = |m: &EpochMetrics| m.epoch as f64;
    let top = [
        Series {
            name: "train loss",
            color: [31, 119, 180],
            points: history.iter().map(|m| (ep(m), m.train.loss)).collect(),
        },
        Series {
            name: "val loss",
            color: [214, 39, 40],
            points: history
                .iter()
                .filter_map(|m| m.val.map(|v| (ep(m), v.loss)))
                .collect(),
        },
    ];
    panel(
        &mut cv,
        (90, 44, 780, 230),
        "loss per image (nats) vs epoch",
        &top,
    );
    let bottom = [
        Series {
            name: "train recon",
            color: [44, 160, 44],
            points: history.iter().map(|m| (ep(m), m.train.recon)).collect(),
        },
        Series {
            name: "val recon",
            color: [148, 103, 189],
            points: history
                .iter()
                .filter_map(|m| m.val.map(|v| (ep(m), v.recon)))
                .collect(),
        },
    ];
    panel(&mut cv, (90, 320, 370, 270), "reconstruction", &bottom);
    let kl = [
        Series {
            name: "train KL",
            color: [255, 127, 14],
            points: history.iter().map(|m| (ep(m), m.train.kl)).collect(),
        },
        Series {
            name: "val KL",
            color: [140, 86, 75],
            points: history
                .iter()
                .filter_map(|m| m.val.map(|v| (ep(m), v.kl)))
                .collect(),
        },
    ];
    panel(&mut cv, (540, 320, 330, 270), "KL", &kl);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    cv.img.save(path).map_err(|source| PictureError::Write {
        path: path.to_path_buf(),
        source,
    })
}
