//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tinyvae_datasets::{load_split, Dataset, Split};

/// The bundled 10k-image MNIST subset.
pub fn mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist-10k")
}

/// The first `n` training images of the bundled data.
pub fn mnist_train(n: usize) -> Dataset {
    load_split(&mnist_dir(), Split::Train, (28, 28))
        .expect("bundled data")
        .take(n)
}
