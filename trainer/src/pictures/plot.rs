//! Loss curves of a training run as a PNG: total loss (train and validation)
//! on top, the reconstruction and KL terms below, each panel with its own scale; and
//! the [`Chart`] they are drawn with, which the latent maps and the rate-distortion
//! plot use too.

use std::path::Path;

use super::canvas::Canvas;
use super::PictureError;
use crate::train::EpochMetrics;

/// How a curve's points are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Joined by a 2-pixel line.
    Line,
    /// Joined by a line, each point a 5x5 square.
    LinePoints,
    /// Each point a `n x n` square, nothing joined (a scatter plot).
    Dots(i64),
}

/// A named curve.
#[derive(Clone, Debug)]
pub struct Series {
    /// Its legend entry (empty: none).
    pub name: String,
    /// RGB colour.
    pub color: [u8; 3],
    /// `(x, y)` points; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
    /// How to draw them.
    pub mark: Mark,
}

/// A vertical line across a chart at `x`, labelled at its top.
#[derive(Clone, Debug)]
pub struct Marker {
    /// Where.
    pub x: f64,
    /// Its label.
    pub label: String,
    /// RGB colour.
    pub color: [u8; 3],
}

/// One set of axes with its curves.
#[derive(Clone, Debug, Default)]
pub struct Chart {
    /// Drawn above the axes.
    pub title: String,
    /// Drawn under the x axis (empty: none).
    pub x_label: String,
    /// A logarithmic x axis (ticks at 1, 2, 5 times powers of ten); points at x <= 0
    /// are skipped.
    pub log_x: bool,
    /// Whole-number x tick labels (epochs).
    pub whole_x: bool,
    /// The curves.
    pub series: Vec<Series>,
    /// Vertical markers.
    pub markers: Vec<Marker>,
    /// Where the legend's top-left corner goes, relative to the axes' top-right corner
    /// (default: 150 pixels in, 8 down).
    pub legend_at: Option<(i64, i64)>,
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

/// Draws `chart` on `cv` with its axes filling `(x0, y0, w, h)`; tick labels go left of
/// and under that box, the title above it.
pub fn draw_chart(cv: &mut Canvas, (x0, y0, w, h): (i64, i64, i64, i64), chart: &Chart) {
    let tx = |x: f64| if chart.log_x { x.log10() } else { x };
    let all: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .chain(chart.markers.iter().map(|m| (m.x, f64::NAN)))
        .filter(|p| !chart.log_x || p.0 > 0.0)
        .collect();
    cv.text(x0, y0 - 14, &chart.title, [0, 0, 0]);
    if all.iter().all(|p| !p.1.is_finite()) {
        return;
    }
    let (mut xmin, mut xmax) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut ymin, mut ymax) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in &all {
        xmin = xmin.min(tx(x));
        xmax = xmax.max(tx(x));
        if y.is_finite() {
            ymin = ymin.min(y);
            ymax = ymax.max(y);
        }
    }
    if chart.log_x {
        xmin = xmin.floor();
        xmax = xmax.ceil();
    }
    if xmax <= xmin {
        xmax = xmin + 1.0;
    }
    let span = (ymax - ymin).max(1e-9);
    ymin -= 0.05 * span;
    ymax += 0.05 * span;
    let px = |x: f64| x0 + ((tx(x) - xmin) / (xmax - xmin) * w as f64).round() as i64;
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
    }
    let x_ticks: Vec<f64> = if chart.log_x {
        (xmin as i32..=xmax as i32)
            .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
            .filter(|&x| x.log10() <= xmax + 1e-9)
            .collect()
    } else {
        (0..=4)
            .map(|t| xmin + (xmax - xmin) * t as f64 / 4.0)
            .collect()
    };
    for x in x_ticks {
        let label = if chart.whole_x || chart.log_x {
            format!("{x:.0}")
        } else {
            fmt_tick(x)
        };
        cv.line((px(x), y0), (px(x), y0 + h), [235, 235, 235], 1);
        cv.text(
            px(x) - 4 * label.len() as i64,
            y0 + h + 6,
            &label,
            [60, 60, 60],
        );
    }
    cv.text(
        x0 + w / 2 - 4 * chart.x_label.len() as i64,
        y0 + h + 20,
        &chart.x_label,
        [0, 0, 0],
    );
    cv.line((x0, y0), (x0, y0 + h), [0, 0, 0], 1);
    cv.line((x0, y0 + h), (x0 + w, y0 + h), [0, 0, 0], 1);
    for (i, m) in chart.markers.iter().enumerate() {
        let x = px(m.x);
        for y in (y0..y0 + h).step_by(6) {
            cv.line((x, y), (x, (y + 3).min(y0 + h)), m.color, 1);
        }
        cv.text(
            x - 8 * m.label.len() as i64 - 4,
            y0 + 4 + 12 * i as i64,
            &m.label,
            m.color,
        );
    }
    let (lx, ly) = chart.legend_at.unwrap_or((-150, 8));
    let mut entry = 0;
    for s in chart.series.iter().filter(|s| !s.points.is_empty()) {
        let pts: Vec<(i64, i64)> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite() && (!chart.log_x || p.0 > 0.0))
            .map(|&(x, y)| (px(x), py(y)))
            .collect();
        if !matches!(s.mark, Mark::Dots(_)) {
            for seg in pts.windows(2) {
                cv.line(seg[0], seg[1], s.color, 2);
            }
        }
        let dot = match s.mark {
            Mark::Dots(n) => n,
            Mark::LinePoints => 5,
            Mark::Line => i64::from(pts.len() == 1) * 5,
        };
        if dot > 0 {
            for &(x, y) in &pts {
                cv.rect(x - dot / 2, y - dot / 2, dot, dot, s.color);
            }
        }
        if !s.name.is_empty() {
            let (ex, ey) = (x0 + w + lx, y0 + ly + 14 * entry);
            cv.rect(ex, ey, 16, 8, s.color);
            cv.text(ex + 22, ey, &s.name, [0, 0, 0]);
            entry += 1;
        }
    }
}

/// Saves `cv` as a PNG at `path`, creating its folder.
pub fn save(cv: &Canvas, path: &Path) -> Result<(), PictureError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    cv.img.save(path).map_err(|source| PictureError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// A line series of one metric over the epochs.
fn curve(name: &str, color: [u8; 3], points: Vec<(f64, f64)>) -> Series {
    Series {
        name: name.into(),
        color,
        points,
        mark: Mark::Line,
    }
}

/// A panel of epoch curves.
fn panel(cv: &mut Canvas, rect: (i64, i64, i64, i64), title: &str, series: Vec<Series>) {
    let chart = Chart {
        title: title.into(),
        whole_x: true,
        series,
        ..Chart::default()
    };
    draw_chart(cv, rect, &chart);
}

/// Draws the curves of `history` to `path`.
pub fn loss_curves(path: &Path, history: &[EpochMetrics], title: &str) -> Result<(), PictureError> {
    let mut cv = Canvas::new(900, 640);
    cv.text(20, 8, title, [0, 0, 0]);
    let ep = |m: &EpochMetrics| m.epoch as f64;
    let top = vec![
        curve(
            "train loss",
            [31, 119, 180],
            history.iter().map(|m| (ep(m), m.train.loss)).collect(),
        ),
        curve(
            "val loss",
            [214, 39, 40],
            history
                .iter()
                .filter_map(|m| m.val.map(|v| (ep(m), v.loss)))
                .collect(),
        ),
    ];
    panel(
        &mut cv,
        (90, 44, 780, 230),
        "loss per image (nats) vs epoch",
        top,
    );
    let bottom = vec![
        curve(
            "train recon",
            [44, 160, 44],
            history.iter().map(|m| (ep(m), m.train.recon)).collect(),
        ),
        curve(
            "val recon",
            [148, 103, 189],
            history
                .iter()
                .filter_map(|m| m.val.map(|v| (ep(m), v.recon)))
                .collect(),
        ),
    ];
    panel(&mut cv, (90, 320, 370, 270), "reconstruction", bottom);
    let kl = vec![
        curve(
            "train KL",
            [255, 127, 14],
            history.iter().map(|m| (ep(m), m.train.kl)).collect(),
        ),
        curve(
            "val KL",
            [140, 86, 75],
            history
                .iter()
                .filter_map(|m| m.val.map(|v| (ep(m), v.kl)))
                .collect(),
        ),
    ];
    panel(&mut cv, (540, 320, 330, 270), "KL", kl);
    save(&cv, path)
}
