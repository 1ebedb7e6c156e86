//! # tinyvae-datasets
//!
//! The host's images, with no machine learning in them: what the trainer trains on, the
//! device link streams to a board and the tests feed the firmware. Kept apart from the
//! trainer so that the device link and the end-to-end tests load digits and fault them
//! without compiling candle.
//!
//! Modules:
//! * [`dataset`] — [`Dataset`] (raw `u8` pixels, labels, class names), seeded splits,
//!   and the loaders that pick the reader for a `--data` path.
//! * [`idx`] — IDX files (MNIST layout, gzipped or not).
//! * [`folder`] — folders of PNG/JPEG/BMP images (class sub-folders are labels).
//! * [`corrupt`] — seeded, simulated sensor faults.
//! * [`demo_frames`] — the clean and faulted digits a board's stand-alone demo carries.
//! * [`rng`] — [`rng::SeededRng`], the host's seeded generator (splits, shuffles, faults,
//!   and the trainer's weights and noise).
//! * [`grid`] — image grids as PNG.
//! * [`metrics`] — AUROC, how well scores separate normal from anomalous images.
//! * [`error`] — [`DataError`], which names the file and what was wrong with it.

pub mod corrupt;
pub mod dataset;
pub mod demo_frames;
pub mod error;
pub mod folder;
pub mod grid;
pub mod idx;
pub mod metrics;
pub mod rng;
pub mod synthetic;

pub use dataset::{find_idx_files, load_split, load_test, load_train_test, Dataset, Split};
pub use error::DataError;
