//! Data loading errors: each names the file and says what was wrong with it.

use std::path::PathBuf;

/// Why a data file or folder could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The path does not exist.
    #[error("{}: no such file or directory", path.display())]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// Reading failed at the OS level.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file starts like gzip but does not decompress.
    #[error("{}: bad gzip data: {source}", path.display())]
    Gzip {
        /// The file being read.
        path: PathBuf,
        /// The decompressor's error.
        source: std::io::Error,
    },
    /// The IDX magic number is not the expected one.
    #[error("{}: bad IDX magic number 0x{found:08x} (expected 0x{expected:08x}, {what})", path.display())]
    BadMagic {
        /// The file being read.
        path: PathBuf,
        /// The magic number found.
        found: u32,
        /// The magic number expected.
        expected: u32,
        /// What kind of file was expected.
        what: &'static str,
    },
    /// The file ends before the data its header announces.
    #[error("{}: truncated: header announces {expected} bytes of data, file has {actual}", path.display())]
    Truncated {
        /// The file being read.
        path: PathBuf,
        /// Bytes the header announces (or the header size).
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// The file has more bytes than its header announces.
    #[error("{}: {extra} unexpected bytes after the data the header announces", path.display())]
    TrailingBytes {
        /// The file being read.
        path: PathBuf,
        /// Number of extra bytes.
        extra: usize,
    },
    /// Dimensions are zero, absurd or inconsistent.
    #[error("{}: wrong dimensions: {detail}", path.display())]
    WrongDims {
        /// The file being read.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The image and label files disagree on the number of records.
    #[error("{} holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },
    /// An image file could not be decoded.
    #[error("{}: unreadable image: {source}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        source: image::ImageError,
    },
    /// A folder or class holds no images.
    #[error("{}: no images found", path.display())]
    Empty {
        /// The folder.
        path: PathBuf,
    },
    /// A directory looks like an IDX dataset but lacks the requested split.
    #[error("{}: no {split} IDX files (expected e.g. {split}-images-idx3-ubyte.gz)", dir.display())]
    MissingSplit {
        /// The directory.
        dir: PathBuf,
        /// "train" or "test".
        split: String,
    },
    /// `--normal-class` names a class the data does not have.
    #[error("no class named {class:?} (classes: {available})")]
    NoSuchClass {
        /// The requested class.
        class: String,
        /// The classes present.
        available: String,
    },
    /// A class filter was asked for on data without labels.
    #[error("{source_name}: the data has no labels, so it cannot be filtered by class")]
    Unlabelled {
        /// The data's source.
        source_name: String,
    },
}
