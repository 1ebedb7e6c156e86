//! Image grids as PNG: samples, reconstructions, interpolations, device output. One
//! renderer for the trainer's pictures and the device link's, so every grid tinyvae
//! writes looks the same.

use std::path::{Path, PathBuf};

/// How a grid is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridLayout {
    /// Tiles per row (fewer when there are fewer tiles).
    pub columns: usize,
    /// Each image pixel becomes a `scale` x `scale` square.
    pub scale: usize,
    /// Grey pixels between tiles and around the grid.
    pub gap: usize,
}

impl Default for GridLayout {
    /// Eight columns, 3x magnification, 2-pixel gaps.
    fn default() -> Self {
        Self {
            columns: 8,
            scale: 3,
            gap: 2,
        }
    }
}

/// Why a grid could not be written.
#[derive(Debug, thiserror::Error)]
pub enum GridError {
    /// No tiles, or no columns.
    #[error("{}: nothing to draw (no images or no columns)", path.display())]
    Empty {
        /// The output path.
        path: PathBuf,
    },
    /// The PNG could not be written.
    #[error("{}: cannot write image: {source}", path.display())]
    Write {
        /// The output path.
        path: PathBuf,
        /// The encoder's error.
        source: image::ImageError,
    },
}

/// Floats in `[0, 1]` (clamped) as 8-bit pixels, `round(255 v)`.
pub fn unit_to_pixels(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}

/// Lays `tiles` (each `w` x `h` 8-bit pixels, row major; missing pixels draw black) out
/// as a grid on a grey background.
pub fn grid_image(
    tiles: &[impl AsRef<[u8]>],
    w: usize,
    h: usize,
    layout: GridLayout,
) -> image::GrayImage {
    let columns = layout.columns.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(columns);
    let (scale, gap) = (layout.scale.max(1), layout.gap);
    let (tw, th) = (w * scale, h * scale);
    let (gw, gh) = (columns * (tw + gap) + gap, rows * (th + gap) + gap);
    let mut img = image::GrayImage::from_pixel(gw as u32, gh as u32, image::Luma([96]));
    for (t, tile) in tiles.iter().enumerate() {
        let (r, c) = (t / columns, t % columns);
        let (x0, y0) = (gap + c * (tw + gap), gap + r * (th + gap));
        for y in 0..th {
            for x in 0..tw {
                let p = tile
                    .as_ref()
                    .get((y / scale) * w + x / scale)
                    .copied()
                    .unwrap_or(0);
                img.put_pixel((x0 + x) as u32, (y0 + y) as u32, image::Luma([p]));
            }
        }
    }
    img
}

/// [`grid_image`] saved as a PNG at `path` (its folder is created).
pub fn save_grid(
    path: &Path,
    tiles: &[impl AsRef<[u8]>],
    w: usize,
    h: usize,
    layout: GridLayout,
) -> Result<(), GridError> {
    if tiles.is_empty() || layout.columns == 0 {
        return Err(GridError::Empty {
            path: path.to_path_buf(),
        });
    }
    let write_err = |source| GridError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| write_err(image::ImageError::IoError(e)))?;
    }
    grid_image(tiles, w, h, layout)
        .save(path)
        .map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_land_in_their_cells() {
        let tiles = [vec![255u8; 4], vec![0u8; 4], vec![128u8; 4]];
        let layout = GridLayout {
            columns: 2,
            scale: 2,
            gap: 1,
        };
        let img = grid_image(&tiles, 2, 2, layout);
        // 2 columns of 4 pixels + 3 gaps; 2 rows.
        assert_eq!(img.dimensions(), (11, 11));
        assert_eq!(img.get_pixel(0, 0).0, [96]);
        assert_eq!(img.get_pixel(1, 1).0, [255]);
        assert_eq!(img.get_pixel(6, 1).0, [0]);
        assert_eq!(img.get_pixel(1, 6).0, [128]);
        // The empty fourth cell stays background.
        assert_eq!(img.get_pixel(6, 6).0, [96]);
    }

    #[test]
    fn unit_floats_round_and_clamp() {
        assert_eq!(
            unit_to_pixels(&[-1.0, 0.0, 0.5, 1.0, 2.0]),
            [0, 0, 128, 255, 255]
        );
    }
}
