//! The fault head: training repeats bit for bit, a saved head reads back, a bad file is
//! named, and the int8 head (the device's code) follows the float one, which catches a
//! weight laid out in the wrong order (a convolution's taps, the hidden layer's
//! channels-last columns).

use std::path::{Path, PathBuf};

use tinyvae_datasets::corrupt::corrupt_with;
use tinyvae_datasets::Dataset;
use tinyvae_trainer::fault_head::{self, FaultHead, FaultHeadParams};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// 300 training frames.
fn frames() -> Dataset {
    let (train, _) = tinyvae_datasets::load_train_test(&root().join("data/mnist-10k"), (28, 28), 0)
        .expect("the bundled digits");
    train.subset(&(0..300).collect::<Vec<_>>())
}

fn small() -> FaultHeadParams {
    FaultHeadParams {
        epochs: 1,
        copies: 1,
        ..FaultHeadParams::default()
    }
}

#[test]
fn training_repeats_and_a_saved_head_reads_back() {
    let d = frames();
    let a = fault_head::train(&d, &small()).unwrap();
    let b = fault_head::train(&d, &small()).unwrap();
    let (sa, sb) = (a.scores(&d).unwrap(), b.scores(&d).unwrap());
    assert_eq!(sa, sb, "same seeds, same bits");
    let untrained = FaultHead::new(FaultHeadParams::default().classes())
        .unwrap()
        .scores(&d)
        .unwrap();
    assert_ne!(sa, untrained, "training moved the weights");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("head.safetensors");
    a.save(&path).unwrap();
    assert_eq!(FaultHead::load(&path).unwrap().scores(&d).unwrap(), sa);
}

#[test]
fn a_file_that_is_not_a_head_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-head.safetensors");
    std::fs::write(&path, b"not safetensors").unwrap();
    let err = FaultHead::load(&path).err().expect("refused").to_string();
    assert!(err.contains("not-a-head.safetensors"), "{err}");
}

#[test]
fn emphasis_on_a_held_out_kind_is_refused() {
    let params = FaultHeadParams {
        emphasis: vec![tinyvae_datasets::corrupt::Corruption::ALL
            .into_iter()
            .find(|k| k.held_out())
            .unwrap()],
        ..small()
    };
    let err = fault_head::train(&frames(), &params)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("held out"), "{err}");
}

#[test]
fn int8_head_follows_the_float_one() {
    let d = frames();
    let head = fault_head::train(&d, &small()).unwrap();
    let faulted = corrupt_with(&d, &fault_head::fault_classes(), 9);
    let layers = fault_head::quantize(&head, &[&d, &faulted]).unwrap();
    for set in [&d, &faulted] {
        let float = head.scores(set).unwrap();
        let int8 = fault_head::int8_scores(&layers, set).unwrap();
        let mean = float.iter().sum::<f64>() / float.len() as f64;
        let spread =
            (float.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / float.len() as f64).sqrt();
        let error = float
            .iter()
            .zip(&int8)
            .map(|(f, q)| (f - q).abs())
            .sum::<f64>()
            / float.len() as f64;
        assert!(spread > 0.05, "the scores vary ({spread})");
        assert!(
            error < 0.1 * spread,
            "int8 error {error} against a spread of {spread}"
        );
    }
}

#[test]
fn synthetic_slots_get_a_class_of_their_own() {
    let d = frames();
    let params = FaultHeadParams {
        synthetic: 4,
        ..small()
    };
    let tuned = fault_head::fault_classes().len() as u32;
    assert_eq!(params.classes(), tuned as usize + 2);
    let without = FaultHeadParams {
        synthetic: 0,
        ..small()
    };
    assert_eq!(without.classes(), tuned as usize + 1);
    let (faulted, classes) = &fault_head::faulted_copies(&d, &params).unwrap()[0];
    let turn = tuned as usize + params.emphasis.len() + params.synthetic;
    let synthetic: Vec<usize> = (0..d.len()).filter(|&i| classes[i] == tuned + 1).collect();
    // Four slots of every turn, the rest the tuned kinds' classes.
    assert_eq!(
        synthetic.len(),
        (0..d.len()).filter(|i| i % turn >= turn - 4).count()
    );
    assert!(classes.iter().all(|&c| (1..=tuned + 1).contains(&c)));
    // Each synthetic frame is damaged: it differs from every clean frame of the copy's
    // order (a reordered copy: compare against the set).
    for &i in &synthetic {
        let img = faulted.image_u8(i);
        assert!(
            (0..d.len()).all(|j| d.image_u8(j) != img),
            "frame {i} is clean"
        );
        // Copy 0 keeps the frames' order: frame i damaged as documented (seed 3, the
        // next frame as the partner), not left with a fault kind's bytes.
        let mut rng = tinyvae_datasets::rng::SeededRng::stream(3, "synthetic-anomaly", i as u64);
        let expected = tinyvae_datasets::synthetic::anomaly(
            d.image_u8(i),
            d.image_u8((i + 1) % d.len()),
            28,
            28,
            &mut rng,
        );
        assert_eq!(img, &expected[..], "frame {i}");
    }
    let head = fault_head::train(&d, &params).unwrap();
    assert_eq!(head.classes(), tuned as usize + 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("head.safetensors");
    head.save(&path).unwrap();
    assert_eq!(
        FaultHead::load(&path).unwrap().classes(),
        tuned as usize + 2
    );
}

#[test]
fn the_committed_head_reads_back_with_its_class_count() {
    let head = FaultHead::load(&root().join("models/fault-head.safetensors")).unwrap();
    assert_eq!(head.classes(), fault_head::fault_classes().len() + 1);
    assert!(FaultHead::new(1).is_err() && FaultHead::new(33).is_err());
}

#[test]
fn jitter_moves_each_frame_by_at_most_a_pixel_and_keeps_its_ink() {
    let d = frames();
    // Copy 0 is the frames themselves.
    assert_eq!(fault_head::jittered(&d, 0), d);
    let moved = fault_head::jittered(&d, 1);
    assert_eq!(moved, fault_head::jittered(&d, 1), "seeded");
    assert_ne!(
        moved,
        fault_head::jittered(&d, 2),
        "each copy its own moves"
    );
    let mut shifts = std::collections::BTreeSet::new();
    for i in 0..d.len() {
        let (src, img) = (d.image_u8(i), moved.image_u8(i));
        // Exactly one of the nine moves maps the frame onto its copy.
        let found: Vec<(isize, isize)> = (-1..=1)
            .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
            .filter(|&(dx, dy)| {
                (0..28isize).all(|y| {
                    (0..28isize).all(|x| {
                        let (sx, sy) = (x - dx, y - dy);
                        let want = if (0..28).contains(&sx) && (0..28).contains(&sy) {
                            src[(sy * 28 + sx) as usize]
                        } else {
                            0
                        };
                        img[(y * 28 + x) as usize] == want
                    })
                })
            })
            .collect();
        assert_eq!(found.len(), 1, "frame {i} is not a move of at most a pixel");
        // A digit whose border is blank (almost every one) keeps all its ink.
        let border = (0..28)
            .any(|k| src[k] > 0 || src[27 * 28 + k] > 0 || src[k * 28] > 0 || src[k * 28 + 27] > 0);
        if !border {
            assert_eq!(
                img.iter().map(|&p| u32::from(p)).sum::<u32>(),
                src.iter().map(|&p| u32::from(p)).sum::<u32>(),
                "frame {i} lost ink"
            );
        }
        shifts.insert(found[0]);
    }
    // All nine moves occur among 300 frames (a jitter stuck at 0 fails here).
    assert_eq!(shifts.len(), 9, "{shifts:?}");
}
