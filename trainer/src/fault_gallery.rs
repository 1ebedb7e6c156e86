//! A picture of every simulated sensor fault ([`Corruption::ALL`]): one column per kind,
//! grouped by [`Family`] (in [`Family::ALL`] order) and labelled with its name (held-out kinds marked `*`), and per
//! test digit a row of the clean digit and a row of its faulted copies at each severity
//! asked for. Beside it, the table of the kinds as markdown. No model is involved: this
//! is what the detectors are asked to flag.

use std::path::Path;

use tinyvae_datasets::corrupt::{other_index, Corruption, Family};
use tinyvae_datasets::rng::SeededRng;
use tinyvae_datasets::Dataset;

use crate::pictures::canvas::Canvas;
use crate::pictures::plot::save;
use crate::pictures::PictureError;

/// Settings of [`gallery`].
#[derive(Clone, Debug)]
pub struct GalleryOptions {
    /// Seed of the faults: digit `j` of kind `k` draws from `(seed, "faults-<k>", j)`,
    /// the same draws at every severity.
    pub seed: u64,
    /// Test digits shown (the first ones of the set).
    pub digits: usize,
    /// Severities of the faulted rows (1 = each kind's default).
    pub severities: Vec<f64>,
}

impl Default for GalleryOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            digits: 4,
            severities: vec![1.0],
        }
    }
}

/// One row of the picture.
#[derive(Clone, Debug, PartialEq)]
pub struct GalleryRow {
    /// What the row shows: `clean`, or the severity as `x0.5`.
    pub label: String,
    /// One image per kind, in [`Gallery::kinds`] order (`width x height` bytes each).
    pub tiles: Vec<Vec<u8>>,
}

/// The faulted digits of [`gallery`].
#[derive(Clone, Debug, PartialEq)]
pub struct Gallery {
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// The columns' kinds: [`Corruption::ALL`] family by family ([`Family::ALL`] order).
    pub kinds: Vec<Corruption>,
    /// Per digit: the clean row, then one row per severity.
    pub rows: Vec<GalleryRow>,
    /// Rows per digit (1 + the number of severities).
    pub rows_per_digit: usize,
    /// The key printed under the picture.
    pub note: String,
}

/// Every kind applied to the first `opts.digits` images of `test` at each of
/// `opts.severities`; each digit's `other` frame (torn, overlay) is the test image after
/// it.
pub fn gallery(test: &Dataset, opts: &GalleryOptions) -> Result<Gallery, PictureError> {
    if test.is_empty() || opts.digits == 0 {
        return Err(PictureError::Empty("no test images".into()));
    }
    if opts.severities.is_empty() {
        return Err(PictureError::Empty("no severities".into()));
    }
    let (w, h) = (test.width, test.height);
    let kinds: Vec<Corruption> = Family::ALL
        .iter()
        .flat_map(|&f| Corruption::ALL.into_iter().filter(move |k| k.family() == f))
        .collect();
    let mut rows = Vec::new();
    let n = test.len();
    for j in 0..opts.digits.min(n) {
        let (img, other) = (test.image_u8(j), test.image_u8(other_index(j, n)));
        rows.push(GalleryRow {
            label: "clean".into(),
            tiles: vec![img.to_vec(); kinds.len()],
        });
        for &s in &opts.severities {
            let tiles = kinds
                .iter()
                .map(|k| {
                    let purpose = format!("faults-{}", k.name());
                    let mut rng = SeededRng::stream(opts.seed, &purpose, j as u64);
                    k.apply_at(img, other, w, h, s, &mut rng)
                })
                .collect();
            rows.push(GalleryRow {
                label: format!("x{s}"),
                tiles,
            });
        }
    }
    Ok(Gallery {
        width: w,
        height: h,
        kinds,
        rows,
        rows_per_digit: 1 + opts.severities.len(),
        note: "* held out from detector tuning.  Rows: a clean test digit, then its faulted \
               copies at each severity (x1 = the kind's default)."
            .into(),
    })
}

/// Layout of [`draw`]: every length in pixels of the picture.
struct Layout {
    /// Magnification of the images.
    scale: usize,
    /// Width of a column (an image, or a label if wider, plus the gap).
    pitch: usize,
    /// Extra gap between families and between digits.
    group_gap: usize,
    /// Left margin (row labels).
    left: usize,
    /// Top of the first row of images (family and kind labels above).
    top: usize,
}

impl Layout {
    fn new(gallery: &Gallery, scale: usize) -> Self {
        let scale = scale.max(1);
        // Kind names go on two lines split at the first '-', held-out ones with a '*'.
        let longest = gallery
            .kinds
            .iter()
            .flat_map(|k| label_lines(*k))
            .map(|l| l.len() * 8)
            .max()
            .unwrap_or(0);
        Self {
            scale,
            pitch: (gallery.width * scale).max(longest) + 6,
            group_gap: 10,
            left: 56,
            top: 48,
        }
    }

    /// Left edge of column `c` (its image centred in the pitch).
    fn column_x(&self, kinds: &[Corruption], c: usize) -> usize {
        let families = kinds[..=c]
            .windows(2)
            .filter(|p| p[0].family() != p[1].family())
            .count();
        self.left + c * self.pitch + families * self.group_gap
    }

    /// Top edge of row `r`.
    fn row_y(&self, gallery: &Gallery, r: usize) -> usize {
        let digit = r / gallery.rows_per_digit.max(1);
        self.top + r * (gallery.height * self.scale + 4) + digit * self.group_gap
    }
}

/// A kind's column label, one or two lines.
fn label_lines(kind: Corruption) -> Vec<String> {
    let star = if kind.held_out() { "*" } else { "" };
    match kind.name().split_once('-') {
        Some((a, b)) => vec![format!("{a}-"), format!("{b}{star}")],
        None => vec![format!("{}{star}", kind.name())],
    }
}

/// The gallery as a picture: family names over their columns, kind names, row labels,
/// the images at `scale`, and a key at the bottom.
pub fn draw(gallery: &Gallery, scale: usize) -> Canvas {
    let lay = Layout::new(gallery, scale);
    let kinds = &gallery.kinds;
    let cols = kinds.len();
    let (tw, th) = (gallery.width * lay.scale, gallery.height * lay.scale);
    let right = if cols == 0 {
        lay.left
    } else {
        lay.column_x(kinds, cols - 1) + lay.pitch
    };
    let bottom = if gallery.rows.is_empty() {
        lay.top
    } else {
        lay.row_y(gallery, gallery.rows.len() - 1) + th
    };
    let mut cv = Canvas::new((right + 10) as u32, (bottom + 30) as u32);
    let black = [0, 0, 0];
    // Family names centred over their columns, with a rule under each.
    for family in Family::ALL {
        let members: Vec<usize> = (0..cols).filter(|&c| kinds[c].family() == family).collect();
        let (Some(&first), Some(&last)) = (members.first(), members.last()) else {
            continue;
        };
        let (x0, x1) = (
            lay.column_x(kinds, first),
            lay.column_x(kinds, last) + lay.pitch - 6,
        );
        let name = family.name();
        let tx = (x0 + x1) / 2 - (name.len() * 8).min(x1 - x0) / 2;
        cv.text(tx as i64, 4, name, black);
        cv.rect(x0 as i64, 15, (x1 - x0) as i64, 1, [120, 120, 120]);
    }
    // Kind names, centred over the images.
    for (c, &kind) in kinds.iter().enumerate() {
        let centre = lay.column_x(kinds, c) + (lay.pitch - 6) / 2;
        let colour = if kind.held_out() {
            [180, 30, 30]
        } else {
            black
        };
        for (l, line) in label_lines(kind).iter().enumerate() {
            let x = centre as i64 - (line.len() * 4) as i64;
            cv.text(x, 20 + 11 * l as i64, line, colour);
        }
    }
    for (r, row) in gallery.rows.iter().enumerate() {
        let y0 = lay.row_y(gallery, r);
        cv.text(6, (y0 + th / 2 - 4) as i64, &row.label, black);
        for (c, tile) in row.tiles.iter().enumerate() {
            let x0 = lay.column_x(kinds, c) + (lay.pitch - 6 - tw) / 2;
            for y in 0..th {
                for x in 0..tw {
                    let p = tile
                        .get((y / lay.scale) * gallery.width + x / lay.scale)
                        .copied()
                        .unwrap_or(0);
                    cv.dot((x0 + x) as i64, (y0 + y) as i64, [p; 3]);
                }
            }
        }
    }
    cv.text(lay.left as i64, (bottom + 12) as i64, &gallery.note, black);
    cv
}

/// [`draw`] saved as a PNG at `path` (its folder is created).
pub fn save_gallery(path: &Path, gallery: &Gallery, scale: usize) -> Result<(), PictureError> {
    save(&draw(gallery, scale), path)
}

/// Every kind as a markdown table: name, family, whether held out, what it does at its
/// default severity.
pub fn kinds_markdown() -> String {
    let mut out =
        String::from("| kind | family | held out | default severity |\n|---|---|---|---|\n");
    for k in Corruption::ALL {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            k.name(),
            k.family().name(),
            if k.held_out() { "yes" } else { "" },
            k.description()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(n: usize) -> Dataset {
        let mut pixels = Vec::new();
        for i in 0..n {
            let mut img = vec![0u8; 28 * 28];
            for y in 6..22 {
                for x in 8 + i..16 + i {
                    img[y * 28 + x] = 220;
                }
            }
            pixels.extend(img);
        }
        Dataset {
            width: 28,
            height: 28,
            pixels,
            labels: None,
            class_names: Vec::new(),
            source: "toy".into(),
        }
    }

    #[test]
    fn rows_and_columns() {
        let opts = GalleryOptions {
            digits: 3,
            severities: vec![0.5, 1.0, 2.0],
            ..GalleryOptions::default()
        };
        let g = gallery(&digits(5), &opts).unwrap();
        assert_eq!(g.rows.len(), 3 * 4);
        assert_eq!(g.rows_per_digit, 4);
        assert!(g
            .rows
            .iter()
            .all(|r| r.tiles.len() == Corruption::ALL.len()));
        assert_eq!(g.rows[0].label, "clean");
        assert_eq!(g.rows[2].label, "x1");
        // The x1 row is the kinds' default.
        let d = digits(5);
        let noise = Corruption::Noise.apply(
            d.image_u8(0),
            d.image_u8(1),
            28,
            28,
            &mut SeededRng::stream(0, "faults-noise", 0),
        );
        assert_eq!(g.kinds[0], Corruption::Noise);
        assert_eq!(g.kinds.len(), Corruption::ALL.len());
        assert_eq!(g.rows[2].tiles[0], noise);
        let cv = draw(&g, 3);
        assert!(cv.img.width() > 22 * 84 && cv.img.height() > 12 * 84);
        assert!(gallery(
            &digits(2),
            &GalleryOptions {
                severities: vec![],
                ..opts
            }
        )
        .is_err());
    }

    #[test]
    fn the_table_lists_every_kind() {
        let t = kinds_markdown();
        assert_eq!(t.lines().count(), 2 + Corruption::ALL.len());
        assert!(t.contains("| torn | geometric | yes |"), "{t}");
    }
}
