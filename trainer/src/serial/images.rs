//! Reading image sets for the device: IDX files (gzip or plain, as MNIST ships them)
//! and folders of PNG/JPEG/BMP files.
//!
//! The trainer's data module has its own loaders for training; this one stays
//! dependency-light and returns raw `u8` pixels, which is all the device takes.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::DataError;

/// Images of one size, row major, 0 = black, 255 = white.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The images, each `width * height` bytes.
    pub images: Vec<Vec<u8>>,
    /// A name per image (file name, or `#index` for IDX records).
    pub names: Vec<String>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Keeps only the first `n` images.
    pub fn truncate(&mut self, n: usize) {
        self.images.truncate(n);
        self.names.truncate(n);
    }
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Read {
        path: path.to_owned(),
        source,
    }
}

/// The whole file, gunzipped when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(read_err(path))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(read_err(path))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX header: checks the `u8` type code and the rank, returns the
/// dimensions and the offset of the data.
fn idx_dims(bytes: &[u8], rank: u8, path: &Path) -> Result<(Vec<usize>, usize), DataError> {
    let bad = |reason: String| DataError::BadIdx {
        path: path.to_owned(),
        reason,
    };
    let header = bytes
        .get(..4)
        .ok_or_else(|| bad("shorter than its header".into()))?;
    if header[0] != 0 || header[1] != 0 || header[2] != 0x08 {
        return Err(bad(format!("magic {header:02x?} is not an unsigned-byte IDX file")));
    }
    if header[3] != rank {
        return Err(bad(format!("rank {} (expected {rank})", header[3])));
    }
    let data_at = 4 + 4 * rank as usize;
    let dims: Vec<usize> = bytes
        .get(4..data_at)
        .ok_or_else(|| bad("truncated dimensions".into()))?
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let total = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad("dimensions overflow".into()))?;
    if bytes.len() - data_at < total {
        return Err(bad(format!(
            "holds {} data bytes, dimensions {dims:?} need {total}",
            bytes.len() - data_at
        )));
    }
    Ok((dims, data_at))
}

/// Reads an IDX image file (magic `0x00000803`), gzip or plain.
pub fn read_idx_images(path: &Path) -> Result<ImageSet, DataError> {
    let bytes = read_maybe_gz(path)?;
    let (dims, at) = idx_dims(&bytes, 3, path)?;
    let (count, height, width) = (dims[0], dims[1], dims[2]);
    let size = width * height;
    let images = if size == 0 {
        vec![Vec::new(); count]
    } else {
        bytes[at..at + count * size]
            .chunks_exact(size)
            .map(<[u8]>::to_vec)
            .collect()
    };
    Ok(ImageSet {
        width,
        height,
        images,
        names: (0..count).map(|i| format!("#{i}")).collect(),
    })
}

/// Reads an IDX label file (magic `0x00000801`), gzip or plain.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gz(path)?;
    let (dims, at) = idx_dims(&bytes, 1, path)?;
    Ok(bytes[at..at + dims[0]].to_vec())
}

/// Reads every PNG, JPEG and BMP file in `dir` (sorted by name) as 8-bit grey.
/// All must have the same size.
pub fn read_folder(dir: &Path) -> Result<ImageSet, DataError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg" | "bmp"))
        })
        .collect();
    paths.sort();
    let mut set = ImageSet {
        width: 0,
        height: 0,
        images: Vec::with_capacity(paths.len()),
        names: Vec::with_capacity(paths.len()),
    };
    for path in paths {
        let img = image::open(&path)
            .map_err(|e| DataError::BadImage {
                path: path.clone(),
                reason: e.to_string(),
            })?
            .into_luma8();
        let (w, h) = (img.width() as usize, img.height() as usize);
        if set.images.is_empty() {
            (set.width, set.height) = (w, h);
        } else if (w, h) != (set.width, set.height) {
            return Err(DataError::BadImage {
                path,
                reason: format!("{w}x{h}, the first image is {}x{}", set.width, set.height),
            });
        }
        set.names.push(
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        set.images.push(img.into_raw());
    }
    if set.images.is_empty() {
        return Err(DataError::Empty(dir.to_owned()));
    }
    Ok(set)
}

/// Reads a folder of images or an IDX image file.
pub fn load_images(path: &Path) -> Result<ImageSet, DataError> {
    if path.is_dir() {
        read_folder(path)
    } else {
        read_idx_images(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_gzip_idx() {
        let dir = std::env::temp_dir().join(format!("tinyvae-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let mut idx = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        idx.extend(1..=12u8);
        let plain = dir.join("images.idx");
        std::fs::write(&plain, &idx).expect("write");
        let gz = dir.join("images.idx.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &idx).expect("gzip");
        std::fs::write(&gz, enc.finish().expect("gzip")).expect("write");
        for path in [&plain, &gz] {
            let set = load_images(path).expect("reads");
            assert_eq!((set.width, set.height, set.len()), (3, 2, 2));
            assert_eq!(set.images[1], vec![7, 8, 9, 10, 11, 12]);
        }
        std::fs::write(&plain, &idx[..20]).expect("write");
        assert!(matches!(load_images(&plain), Err(DataError::BadIdx { .. })));
        let labels = dir.join("labels.idx");
        std::fs::write(&labels, [0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]).expect("write");
        assert_eq!(read_idx_labels(&labels).expect("labels"), vec![7, 8, 9]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
