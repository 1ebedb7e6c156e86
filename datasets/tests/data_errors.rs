//! Every data-loading failure names the file and says what was wrong.

mod common;

use std::path::Path;

use common::{gz, idx_bytes};
use tinyvae_datasets::{folder, idx, load_split, load_train_test, DataError, Split};

const IMG: u32 = 0x0000_0803;
const LAB: u32 = 0x0000_0801;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn load_images(
    bytes: &[u8],
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Result<tinyvae_datasets::Dataset, DataError>,
) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x-images-idx3-ubyte", bytes);
    let r = idx::load_pair(&p, None);
    (dir, p, r)
}

fn assert_names_file(e: &DataError, p: &Path) {
    let msg = e.to_string();
    assert!(
        msg.contains(&p.display().to_string()),
        "{msg:?} should name {}",
        p.display()
    );
}

#[test]
fn reads_plain_and_gzipped_idx_alike() {
    let dir = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
    let raw = idx_bytes(IMG, &[2, 3, 4], &payload);
    let a = write(dir.path(), "a-images-idx3-ubyte", &raw);
    let b = write(dir.path(), "b-images-idx3-ubyte.gz", &gz(&raw));
    let la = write(dir.path(), "labels", &idx_bytes(LAB, &[2], &[7, 1]));
    let da = idx::load_pair(&a, Some(&la)).unwrap();
    let db = idx::load_pair(&b, Some(&la)).unwrap();
    assert_eq!(da.pixels, db.pixels);
    assert_eq!((da.len(), da.width, da.height), (2, 4, 3));
    assert_eq!(da.labels, Some(vec![7, 1]));
    assert_eq!(da.image_f32(1)[0], 12.0 / 255.0);
}

#[test]
fn bad_magic() {
    let (_d, p, r) = load_images(&idx_bytes(0x0000_0801, &[1, 1, 1], &[0]));
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::BadMagic { found: 0x801, .. }), "{e}");
    assert_names_file(&e, &p);
}

#[test]
fn truncated_header_and_data() {
    let (_d, p, r) = load_images(&[0, 0, 8, 3, 0, 0]);
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    assert_names_file(&e, &p);
    let (_d, p, r) = load_images(&idx_bytes(IMG, &[2, 28, 28], &[0; 784 + 10]));
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Truncated {
                expected: 1568,
                actual: 794,
                ..
            }
        ),
        "{e}"
    );
    assert_names_file(&e, &p);
}

#[test]
fn wrong_dims_and_trailing_bytes() {
    let (_d, p, r) = load_images(&idx_bytes(IMG, &[1, 0, 28], &[]));
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::WrongDims { .. }), "{e}");
    assert_names_file(&e, &p);
    let (_d, _p, r) = load_images(&idx_bytes(IMG, &[0, 28, 28], &[]));
    assert!(matches!(r.unwrap_err(), DataError::Empty { .. }));
    let (_d, p, r) = load_images(&idx_bytes(IMG, &[1, 2, 2], &[0; 5]));
    let e = r.unwrap_err();
    assert!(
        matches!(e, DataError::TrailingBytes { extra: 1, .. }),
        "{e}"
    );
    assert_names_file(&e, &p);
    let (_d, _p, r) = load_images(&idx_bytes(IMG, &[u32::MAX, u32::MAX, u32::MAX], &[]));
    assert!(matches!(
        r.unwrap_err(),
        DataError::WrongDims { .. } | DataError::Truncated { .. }
    ));
}

#[test]
fn label_image_count_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let i = write(dir.path(), "i", &idx_bytes(IMG, &[3, 1, 1], &[1, 2, 3]));
    let l = write(dir.path(), "l", &idx_bytes(LAB, &[2], &[1, 2]));
    let e = idx::load_pair(&i, Some(&l)).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{e}"
    );
    assert_names_file(&e, &i);
    assert_names_file(&e, &l);
}

#[test]
fn missing_file_and_missing_split() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("train-images-idx3-ubyte.gz");
    let e = idx::load_pair(&p, None).unwrap_err();
    assert!(matches!(e, DataError::NotFound { .. }), "{e}");
    assert_names_file(&e, &p);
    let e = load_split(&dir.path().join("nope"), Split::Train, (28, 28)).unwrap_err();
    assert!(matches!(e, DataError::NotFound { .. }), "{e}");
    // An IDX directory without test files says so instead of reading it as an image folder.
    write(
        dir.path(),
        "t10k-labels-idx1-ubyte",
        &idx_bytes(LAB, &[1], &[1]),
    );
    let e = load_split(dir.path(), Split::Test, (28, 28)).unwrap_err();
    assert!(matches!(e, DataError::MissingSplit { .. }), "{e}");
}

#[test]
fn bad_gzip() {
    let raw = idx_bytes(IMG, &[1, 2, 2], &[1, 2, 3, 4]);
    let mut bytes = gz(&raw);
    let n = bytes.len();
    bytes.truncate(n - 12); // cut the stream short
    let (_d, p, r) = load_images(&bytes);
    let e = r.unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e}");
    assert_names_file(&e, &p);
    let (_d, _p, r) = load_images(&[0x1f, 0x8b, 0xff, 0x00, 0x12]);
    assert!(matches!(r.unwrap_err(), DataError::Gzip { .. }));
}

fn png(path: &Path, w: u32, h: u32, v: u8) {
    image::RgbImage::from_pixel(w, h, image::Rgb([v, v, v]))
        .save(path)
        .unwrap();
}

#[test]
fn image_folder_with_classes_resizes_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    for (c, v) in [("cat", 10u8), ("dog", 200u8)] {
        std::fs::create_dir(dir.path().join(c)).unwrap();
        png(&dir.path().join(c).join("a.png"), 40, 30, v);
        image::RgbImage::from_pixel(8, 8, image::Rgb([v, v, v]))
            .save(dir.path().join(c).join("b.bmp"))
            .unwrap();
        std::fs::write(dir.path().join(c).join("notes.txt"), "ignored").unwrap();
    }
    let d = folder::load(dir.path(), 28, 28).unwrap();
    assert_eq!((d.len(), d.width, d.height), (4, 28, 28));
    assert_eq!(d.labels, Some(vec![0, 0, 1, 1]));
    assert_eq!(d.class_names, vec!["cat", "dog"]);
    assert!(d.image_u8(3).iter().all(|&p| p == 200));
    assert_eq!(
        d.filter_class(d.class_index("dog").unwrap()).unwrap().len(),
        2
    );
    // No test split in a plain folder: a seeded 20% is held out.
    let (tr, te) = load_train_test(dir.path(), (28, 28), 1).unwrap();
    assert_eq!((tr.len(), te.len()), (3, 1));
}

#[test]
fn unreadable_image_and_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really a png").unwrap();
    let e = folder::load(dir.path(), 28, 28).unwrap_err();
    assert!(matches!(e, DataError::Image { .. }), "{e}");
    assert_names_file(&e, &bad);
    let empty = tempfile::tempdir().unwrap();
    let e = folder::load(empty.path(), 28, 28).unwrap_err();
    assert!(matches!(e, DataError::Empty { .. }), "{e}");
}

#[test]
fn bundled_mnist_subset_loads() {
    let dir = common::mnist_dir();
    let train = load_split(&dir, Split::Train, (28, 28)).unwrap();
    let test = load_split(&dir, Split::Test, (28, 28)).unwrap();
    assert_eq!((train.len(), test.len()), (7996, 2004));
    assert_eq!(train.class_names.len(), 10);
    let e = train.class_index("x").unwrap_err();
    assert!(matches!(e, DataError::NoSuchClass { .. }));
}
