//! Writing the files the commands produce, with errors that name the file.

use std::path::Path;

use anyhow::{Context, Result};
use tinyvae_datasets::grid::{save_grid, unit_to_pixels, GridLayout};

/// Writes `bytes` to `path` atomically (see `tinyvae_shared::model_file::write_atomic`).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    tinyvae_shared::model_file::write_atomic(path, bytes)
        .map_err(|(p, e)| anyhow::Error::new(e).context(format!("cannot write {}", p.display())))
}

/// Saves float tiles (each `w*h` values in `[0, 1]`) as a PNG grid.
pub fn save_unit_grid(
    path: &Path,
    tiles: &[Vec<f32>],
    columns: usize,
    (w, h): (usize, usize),
    scale: usize,
) -> Result<()> {
    let pixels: Vec<Vec<u8>> = tiles.iter().map(|t| unit_to_pixels(t)).collect();
    let layout = GridLayout {
        columns,
        scale,
        ..GridLayout::default()
    };
    save_grid(path, &pixels, w, h, layout).with_context(|| format!("drawing {}", path.display()))
}
