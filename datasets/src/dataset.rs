//! [`Dataset`]: same-sized grayscale images with optional labels, and the loaders
//! that pick the right reader for a `--data` path.
//!
//! A [`Dataset`] keeps the raw `u8` pixels (what the microcontroller consumes);
//! the float view used for training is always `byte / 255` in `[0, 1]`.

use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::rng::SeededRng;
use crate::{folder, idx};

/// A set of same-sized grayscale images with optional class labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Row-major pixels of all images, `len() * width * height` bytes.
    pub pixels: Vec<u8>,
    /// One label per image (an index into `class_names`), when known.
    pub labels: Option<Vec<u32>>,
    /// Names of the classes: digits for MNIST, sub-folder names for image folders.
    pub class_names: Vec<String>,
    /// Where the data came from, for checkpoint metadata and messages.
    pub source: String,
}

impl Dataset {
    /// Pixels per image.
    pub fn image_len(&self) -> usize {
        self.width * self.height
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len().checked_div(self.image_len()).unwrap_or(0)
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Raw bytes of image `i`.
    pub fn image_u8(&self, i: usize) -> &[u8] {
        let d = self.image_len();
        &self.pixels[i * d..(i + 1) * d]
    }

    /// Image `i` as floats in `[0, 1]`.
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        self.image_u8(i)
            .iter()
            .map(|&b| f32::from(b) / 255.0)
            .collect()
    }

    /// Label of image `i`, if labelled.
    pub fn label(&self, i: usize) -> Option<u32> {
        self.labels.as_ref().and_then(|l| l.get(i).copied())
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            pixels.extend_from_slice(self.image_u8(i));
        }
        Dataset {
            width: self.width,
            height: self.height,
            pixels,
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
            class_names: self.class_names.clone(),
            source: self.source.clone(),
        }
    }

    /// The first `n` images (all when `n >= len`).
    pub fn take(&self, n: usize) -> Dataset {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.subset(&idx)
    }

    /// Index of the class called `name` (e.g. "3").
    pub fn class_index(&self, name: &str) -> Result<u32, DataError> {
        self.class_names
            .iter()
            .position(|c| c == name)
            .map(|p| p as u32)
            .ok_or_else(|| DataError::NoSuchClass {
                class: name.to_string(),
                available: self.class_names.join(", "),
            })
    }

    /// Only the images of class `class` (one-class training).
    pub fn filter_class(&self, class: u32) -> Result<Dataset, DataError> {
        let labels = self.labels.as_ref().ok_or_else(|| DataError::Unlabelled {
            source_name: self.source.clone(),
        })?;
        let idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        if idx.is_empty() {
            return Err(DataError::Empty {
                path: PathBuf::from(format!("{} (class {class})", self.source)),
            });
        }
        Ok(self.subset(&idx))
    }

    /// A seeded random split: `(rest, held_out)` with `round(len * frac)` images held out.
    pub fn split(&self, frac: f64, seed: u64) -> (Dataset, Dataset) {
        let n = self.len();
        let n_out = ((n as f64) * frac.clamp(0.0, 1.0)).round() as usize;
        let perm = SeededRng::stream(seed, "split", 0).permutation(n);
        let (out, rest) = perm.split_at(n_out.min(n));
        let mut out = out.to_vec();
        let mut rest = rest.to_vec();
        out.sort_unstable();
        rest.sort_unstable();
        (self.subset(&rest), self.subset(&out))
    }

    /// All images as `byte / 255` in `[0, 1]`, image after image: the training view.
    pub fn to_unit_f32(&self) -> Vec<f32> {
        self.pixels.iter().map(|&b| f32::from(b) / 255.0).collect()
    }
}

/// Which half of a dataset directory to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// `train-*` files, or a `train/` image folder.
    Train,
    /// `t10k-*` / `test-*` files, or a `test/` image folder.
    Test,
}

/// Finds the IDX image and label files of `split` in `dir`, accepting the MNIST
/// names with or without `.gz` and with `-idx3-ubyte` or `.idx3-ubyte`.
pub fn find_idx_files(dir: &Path, split: Split) -> Option<(PathBuf, Option<PathBuf>)> {
    let prefixes: &[&str] = match split {
        Split::Train => &["train"],
        Split::Test => &["t10k", "test"],
    };
    let find = |prefix: &str, kind: &str, rank: u8| -> Option<PathBuf> {
        for sep in ["-", "."] {
            for ext in ["", ".gz"] {
                let p = dir.join(format!("{prefix}-{kind}{sep}idx{rank}-ubyte{ext}"));
                if p.is_file() {
                    return Some(p);
                }
            }
        }
        None
    };
    prefixes
        .iter()
        .find_map(|p| find(p, "images", 3).map(|img| (img, find(p, "labels", 1))))
}

/// Reads one split from `path`: an IDX images file, a directory of IDX files,
/// or a folder of images (with `train/` and `test/` sub-folders, or not).
/// Folder images are made grayscale and resized to `size` (width, height).
pub fn load_split(path: &Path, split: Split, size: (usize, usize)) -> Result<Dataset, DataError> {
    if !path.exists() {
        return Err(DataError::NotFound {
            path: path.to_path_buf(),
        });
    }
    if path.is_file() {
        let labels = idx::sibling_labels(path);
        return idx::load_pair(path, labels.as_deref());
    }
    if let Some((img, lab)) = find_idx_files(path, split) {
        return idx::load_pair(&img, lab.as_deref());
    }
    let sub = path.join(match split {
        Split::Train => "train",
        Split::Test => "test",
    });
    if sub.is_dir() {
        return folder::load(&sub, size.0, size.1);
    }
    if idx::looks_like_idx_dir(path) {
        return Err(DataError::MissingSplit {
            dir: path.to_path_buf(),
            split: format!("{split:?}").to_lowercase(),
        });
    }
    folder::load(path, size.0, size.1)
}

/// Train and test sets from one `--data` path. When the path holds no separate
/// test split (a plain image folder), a seeded 20% is held out as the test set.
pub fn load_train_test(
    path: &Path,
    size: (usize, usize),
    seed: u64,
) -> Result<(Dataset, Dataset), DataError> {
    let train = load_split(path, Split::Train, size)?;
    let has_test = path.is_dir()
        && (find_idx_files(path, Split::Test).is_some() || path.join("test").is_dir());
    if has_test {
        let test = load_split(path, Split::Test, size)?;
        if (test.width, test.height) != (train.width, train.height) {
            return Err(DataError::WrongDims {
                path: path.to_path_buf(),
                detail: format!(
                    "train images are {}x{} but test images are {}x{}",
                    train.width, train.height, test.width, test.height
                ),
            });
        }
        Ok((train, test))
    } else {
        Ok(train.split(0.2, seed))
    }
}

/// Only the test split of `path` (its test files or `test/` folder, else the seeded 20%
/// of [`load_train_test`]), checked to be `size` (width, height): the images a model of
/// that size is evaluated, exported or demonstrated on.
pub fn load_test(path: &Path, size: (usize, usize), seed: u64) -> Result<Dataset, DataError> {
    let has_test = path.is_dir()
        && (find_idx_files(path, Split::Test).is_some() || path.join("test").is_dir());
    let ds = if has_test {
        load_split(path, Split::Test, size)?
    } else {
        load_train_test(path, size, seed)?.1
    };
    if (ds.width, ds.height) != size {
        return Err(DataError::WrongDims {
            path: path.to_path_buf(),
            detail: format!(
                "images are {}x{} but the model expects {}x{}",
                ds.width, ds.height, size.0, size.1
            ),
        });
    }
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> Dataset {
        Dataset {
            width: 2,
            height: 2,
            pixels: (0..n * 4).map(|i| i as u8).collect(),
            labels: Some((0..n as u32).map(|i| i % 3).collect()),
            class_names: vec!["a".into(), "b".into(), "c".into()],
            source: "toy".into(),
        }
    }

    #[test]
    fn split_is_seeded_and_disjoint() {
        let d = toy(30);
        let (a, b) = d.split(0.2, 9);
        assert_eq!((a.len(), b.len()), (24, 6));
        assert_eq!(d.split(0.2, 9), (a.clone(), b.clone()));
        for i in 0..b.len() {
            assert!((0..a.len()).all(|j| a.image_u8(j) != b.image_u8(i)));
        }
    }

    #[test]
    fn filter_class_keeps_only_that_class() {
        let d = toy(30).filter_class(1).unwrap();
        assert_eq!(d.len(), 10);
        assert!(d.labels.unwrap().iter().all(|&l| l == 1));
        assert!(toy(3).class_index("z").is_err());
    }
}
