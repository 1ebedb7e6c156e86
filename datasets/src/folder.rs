//! Folders of images (PNG, JPEG, BMP). Sub-folders are classes, named by their
//! folder names in sorted order; images directly in the folder are unlabelled.
//! Every image is made grayscale and resized to the model's input size, so any
//! camera or scanner output can be fed to the same model.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::dataset::Dataset;
use crate::error::DataError;

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .is_some_and(|e| matches!(e.as_str(), "png" | "jpg" | "jpeg" | "bmp"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| DataError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        v.push(e.path());
    }
    v.sort();
    Ok(v)
}

/// Decodes one image file into `width*height` grayscale bytes.
pub fn load_image(path: &Path, width: usize, height: usize) -> Result<Vec<u8>, DataError> {
    let img = image::ImageReader::open(path)
        .map_err(|e| DataError::Io {
            path: path.to_path_buf(),
            source: e,
        })?
        .with_guessed_format()
        .map_err(|e| DataError::Io {
            path: path.to_path_buf(),
            source: e,
        })?
        .decode()
        .map_err(|e| DataError::Image {
            path: path.to_path_buf(),
            source: e,
        })?;
    let mut g = img.to_luma8();
    if (g.width() as usize, g.height() as usize) != (width, height) {
        g = image::imageops::resize(&g, width as u32, height as u32, FilterType::Triangle);
    }
    Ok(g.into_raw())
}

/// Loads every image under `dir` (one level of class sub-folders).
pub fn load(dir: &Path, width: usize, height: usize) -> Result<Dataset, DataError> {
    if width == 0 || height == 0 {
        return Err(DataError::WrongDims {
            path: dir.to_path_buf(),
            detail: format!("target size {width}x{height}"),
        });
    }
    let entries = sorted_entries(dir)?;
    let class_dirs: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut class_names = Vec::new();
    for p in entries.iter().filter(|p| p.is_file() && is_image(p)) {
        pixels.extend(load_image(p, width, height)?);
    }
    let loose = pixels.len() / (width * height);
    for (c, cd) in class_dirs.iter().enumerate() {
        class_names.push(
            cd.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| c.to_string()),
        );
        for p in sorted_entries(cd)?
            .iter()
            .filter(|p| p.is_file() && is_image(p))
        {
            pixels.extend(load_image(p, width, height)?);
            labels.push(c as u32);
        }
    }
    let n = pixels.len() / (width * height);
    if n == 0 {
        return Err(DataError::Empty {
            path: dir.to_path_buf(),
        });
    }
    // Labels only make sense when every image has one.
    let labels = (loose == 0 && !class_names.is_empty()).then_some(labels);
    Ok(Dataset {
        width,
        height,
        pixels,
        labels,
        class_names: if loose == 0 { class_names } else { Vec::new() },
        source: dir.display().to_string(),
    })
}
