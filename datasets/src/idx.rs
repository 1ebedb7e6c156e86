//! The IDX format of the MNIST distribution: a big-endian magic number
//! `0x0000_08_NN` (unsigned bytes, `NN` dimensions), `NN` big-endian u32 sizes,
//! then the bytes. Files are read whole and gunzipped when they start with the
//! gzip magic, whatever their name.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::dataset::Dataset;
use crate::error::DataError;

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads a file, gunzipping it when it starts with the gzip magic bytes.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::Gzip {
                path: path.to_path_buf(),
                source: e,
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX byte buffer with the given magic: returns the dimensions and the data.
pub fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    what: &'static str,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header,
            actual: bytes.len(),
        });
    }
    let found = be(0);
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected: magic,
            what,
        });
    }
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header,
            actual: bytes.len(),
        });
    }
    let dims: Vec<usize> = (0..ndim).map(|i| be(4 + 4 * i) as usize).collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::WrongDims {
            path: path.to_path_buf(),
            detail: format!("{dims:?} overflows"),
        })?;
    let data = &bytes[header..];
    if data.len() < count {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: count,
            actual: data.len(),
        });
    }
    if data.len() > count {
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            extra: data.len() - count,
        });
    }
    Ok((dims, data))
}

/// Reads an images file and, when given, its labels file.
pub fn load_pair(images: &Path, labels: Option<&Path>) -> Result<Dataset, DataError> {
    let bytes = read_maybe_gz(images)?;
    let label_bytes = labels.map(read_maybe_gz).transpose()?;
    let labels = labels.zip(label_bytes.as_deref());
    pair_from_bytes(images, &bytes, labels)
}

/// Builds a data set from the (gunzipped) bytes of an images file and, when given, of
/// its labels file; the paths only name the files in errors. Every input gives a data
/// set whose sizes agree or a [`DataError`], never a panic.
pub fn pair_from_bytes(
    images: &Path,
    bytes: &[u8],
    labels: Option<(&Path, &[u8])>,
) -> Result<Dataset, DataError> {
    let (dims, data) = parse(images, bytes, IMAGES_MAGIC, "images, 3 dimensions")?;
    let (n, h, w) = (dims[0], dims[1], dims[2]);
    if n == 0 {
        return Err(DataError::Empty {
            path: images.to_path_buf(),
        });
    }
    if h == 0 || w == 0 || h > 4096 || w > 4096 {
        return Err(DataError::WrongDims {
            path: images.to_path_buf(),
            detail: format!("image size {w}x{h} (each side must be 1..=4096)"),
        });
    }
    let pixels = data.to_vec();
    let labels = match labels {
        None => None,
        Some((lp, lbytes)) => {
            let (ldims, ldata) = parse(lp, lbytes, LABELS_MAGIC, "labels, 1 dimension")?;
            if ldims[0] != n {
                return Err(DataError::CountMismatch {
                    images_path: images.to_path_buf(),
                    labels_path: lp.to_path_buf(),
                    images: n,
                    labels: ldims[0],
                });
            }
            Some(ldata.iter().map(|&b| u32::from(b)).collect::<Vec<u32>>())
        }
    };
    let classes = labels
        .as_ref()
        .and_then(|l| l.iter().max().copied())
        .map_or(0, |m| m.max(9) + 1);
    Ok(Dataset {
        width: w,
        height: h,
        pixels,
        labels,
        class_names: (0..classes).map(|c| c.to_string()).collect(),
        source: images.display().to_string(),
    })
}

/// The labels file that belongs to an images file (`…-images-idx3…` →
/// `…-labels-idx1…`), when it exists.
pub fn sibling_labels(images: &Path) -> Option<PathBuf> {
    let name = images.file_name()?.to_str()?;
    let lname = name.replace("images", "labels").replace("idx3", "idx1");
    let p = images.with_file_name(lname);
    (p != images && p.is_file()).then_some(p)
}

/// True when the directory holds any file named like an IDX file.
pub fn looks_like_idx_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten().any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.contains("idx3-ubyte") || n.contains("idx1-ubyte"))
            })
        })
        .unwrap_or(false)
}
