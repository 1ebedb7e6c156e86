//! The model image: round trip, and a named error for each kind of damage.

use tinyvae_shared::fault_head::HeadBuffers;
use tinyvae_shared::model::{Model, ModelError, FORMAT_VERSION, HEADER_LEN};
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::protocol::FRAME_CRC;
use tinyvae_shared::quantize::LayerBytes;
use tinyvae_shared::testing::{synthetic_head, synthetic_model, SyntheticShape};

fn image() -> Vec<u8> {
    synthetic_model(9, SyntheticShape::default())
        .to_bytes()
        .expect("valid")
}

/// Rewrites the trailing CRC so that a deliberate edit reaches the field checks.
fn reseal(bytes: &mut [u8]) {
    let body = bytes.len() - 4;
    let crc = FRAME_CRC.checksum(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn round_trip_keeps_every_field() {
    let spec = synthetic_model(9, SyntheticShape::default());
    let bytes = spec.to_bytes().expect("valid");
    let model = Model::parse(&bytes).expect("parses");
    assert_eq!(model.name(), "synthetic-9");
    assert_eq!(
        (model.input_width, model.input_height, model.latent),
        (28, 28, 16)
    );
    assert_eq!(model.threshold, spec.threshold);
    assert_eq!(model.encoder.len(), 2);
    assert_eq!(model.decoder.len(), 2);
    assert_eq!(model.parameters(), 784 * 64 + 64 * 32 + 16 * 64 + 64 * 784);
    for (layer, spec) in model.encoder.iter().zip(&spec.encoder) {
        for j in [0, 1, layer.out_dim - 1] {
            assert_eq!(layer.bias(j), spec.bias[j]);
            assert_eq!(layer.multiplier(j), spec.multiplier[j]);
            for i in [0, layer.in_dim / 2, layer.in_dim - 1] {
                assert_eq!(layer.weight(j, i), spec.weight[j * layer.in_dim + i]);
            }
        }
    }
    assert_eq!(model.hash, FRAME_CRC.checksum(&bytes[..bytes.len() - 4]));
    println!("synthetic 784-64-16 model image: {} bytes", bytes.len());
}

#[test]
fn a_fault_head_round_trips_and_a_bad_one_is_named() {
    let mut spec = synthetic_model(9, SyntheticShape::default());
    let plain = spec.to_bytes().expect("valid");
    assert!(Model::parse(&plain).unwrap().fault_head().is_none());
    assert_eq!(plain[7], 0);
    let head = synthetic_head(5, 16, 32);
    spec.head = Some(head.clone());
    let bytes = spec.to_bytes().expect("valid with a head");
    assert_eq!(bytes[7], 4);
    let model = Model::parse(&bytes).expect("parses");
    let from_image = model.fault_head().expect("the head reads back");
    let layers = head.each_ref().map(LayerBytes::new);
    let [a, b, c, d] = layers.each_ref().map(LayerBytes::view);
    let direct = tinyvae_shared::fault_head::FaultHead::new([a, b, c, d]).unwrap();
    let img: Vec<u8> = (0..784).map(|i| ((i * 37) % 256) as u8).collect();
    let (mut one, mut two) = (HeadBuffers::new(), HeadBuffers::new());
    assert_eq!(
        from_image.score(&img, &mut one.scratch()),
        direct.score(&img, &mut two.scratch())
    );
    assert_eq!(
        from_image.macs(),
        784 * 9 * 16 + 196 * 144 * 32 + 1568 * 8 + 8 * 5
    );

    // Layers that do not chain are refused at export.
    let mut wrong = head.clone();
    wrong.swap(2, 3);
    spec.head = Some(wrong);
    let err = spec.to_bytes().unwrap_err().to_string();
    assert!(err.contains("fault head"), "{err}");

    // A head on a model of other frames than 28x28 is refused.
    let mut small = synthetic_model(
        9,
        SyntheticShape {
            width: 14,
            height: 14,
            ..SyntheticShape::default()
        },
    );
    small.head = Some(head.clone());
    let err = small.to_bytes().unwrap_err().to_string();
    assert!(err.contains("28x28"), "{err}");

    // A head byte other than 0 or 4, and a head section cut short, are named.
    let mut bad = bytes.clone();
    bad[7] = 3;
    reseal(&mut bad);
    assert!(Model::parse(&bad)
        .unwrap_err()
        .to_string()
        .contains("fault head layers"));
    let mut bad = plain.clone();
    bad[7] = 4;
    reseal(&mut bad);
    assert!(Model::parse(&bad)
        .unwrap_err()
        .to_string()
        .contains("fault head"));
}

#[test]
fn damage_is_named() {
    let good = image();

    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(Model::parse(&bad).unwrap_err(), ModelError::BadMagic);

    let mut bad = good.clone();
    bad[4..6].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_eq!(
        Model::parse(&bad).unwrap_err(),
        ModelError::UnsupportedVersion(FORMAT_VERSION + 1)
    );

    let truncated = &good[..good.len() / 2];
    assert!(matches!(
        Model::parse(truncated).unwrap_err(),
        ModelError::LengthMismatch { .. }
    ));
    assert!(matches!(
        Model::parse(&good[..10]).unwrap_err(),
        ModelError::Truncated { part: "header", .. }
    ));

    let mut bad = good.clone();
    bad[HEADER_LEN + 100] ^= 1;
    assert!(matches!(
        Model::parse(&bad).unwrap_err(),
        ModelError::BadCrc { .. }
    ));

    // A layer that does not take the previous stage's outputs.
    let mut bad = good.clone();
    bad[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&783u16.to_le_bytes());
    reseal(&mut bad);
    assert!(matches!(
        Model::parse(&bad).unwrap_err(),
        ModelError::ShapeMismatch {
            network: "encoder",
            layer: 0,
            expected: 784,
            got: 783
        }
    ));

    // An out-of-range layer kind.
    let mut bad = good.clone();
    bad[HEADER_LEN + 4] = 9;
    reseal(&mut bad);
    assert!(matches!(
        Model::parse(&bad).unwrap_err(),
        ModelError::InvalidField {
            field: "layer kind",
            ..
        }
    ));

    // A logit table entry beyond +-64.0: the reconstruction term's 32-bit sums would
    // not be exact. The tables end the image, before the CRC.
    let mut bad = good.clone();
    let last_logit = bad.len() - 4 - 4;
    bad[last_logit..last_logit + 4].copy_from_slice(&((64 << 16) + 1i32).to_le_bytes());
    reseal(&mut bad);
    assert!(matches!(
        Model::parse(&bad).unwrap_err(),
        ModelError::InvalidField {
            field: "output tables",
            ..
        }
    ));
    let mut edge = good.clone();
    edge[last_logit..last_logit + 4].copy_from_slice(&(-(64i32 << 16)).to_le_bytes());
    reseal(&mut edge);
    assert!(Model::parse(&edge).is_ok(), "exactly -64.0 is allowed");

    // A latent size beyond what the protocol carries.
    let mut bad = good.clone();
    bad[12..14].copy_from_slice(&64u16.to_le_bytes());
    reseal(&mut bad);
    assert!(matches!(
        Model::parse(&bad).unwrap_err(),
        ModelError::InvalidField {
            field: "latent",
            ..
        }
    ));
}

#[test]
fn inference_is_deterministic_and_checks_sizes() {
    let bytes = image();
    let model = Model::parse(&bytes).expect("parses");
    let mut ws = Workspace::new();
    let digit: Vec<u8> = (0..784)
        .map(|i| if (i / 28 + i % 28) % 5 == 0 { 255 } else { 0 })
        .collect();
    let a = pipeline::score_image(&model, &mut ws, &digit, model.threshold).expect("runs");
    let b = pipeline::score_image(&model, &mut ws, &digit, model.threshold).expect("runs");
    assert_eq!(a, b);
    assert_eq!(a.reconstruction.len(), 784);
    assert!(a.score.kl >= 0);
    let (z1, img1) = pipeline::generate(&model, &mut ws, 42, 1 << 16).expect("runs");
    let (z2, img2) = pipeline::generate(&model, &mut ws, 42, 1 << 16).expect("runs");
    let (z3, _) = pipeline::generate(&model, &mut ws, 43, 1 << 16).expect("runs");
    assert_eq!((z1.clone(), img1), (z2, img2));
    assert_ne!(z1, z3);
    assert_eq!(
        pipeline::encode(&model, &mut ws, &digit[..100]).unwrap_err(),
        pipeline::InferError::WrongImageSize {
            expected: 784,
            got: 100
        }
    );
    assert_eq!(
        pipeline::decode(&model, &mut ws, &[0; 3]).unwrap_err(),
        pipeline::InferError::WrongLatentSize {
            expected: 16,
            got: 3
        }
    );
}

/// Denoise is the reconstruction of the score's path, and Compress packs the encoder's
/// mu: the firmware answers both from these, so the e2e suite compares against them.
#[test]
fn denoise_and_compress_reuse_the_scoring_path() {
    let bytes = image();
    let model = Model::parse(&bytes).expect("parses");
    let mut ws = Workspace::new();
    let digit: Vec<u8> = (0..784).map(|i| ((i * 37) % 256) as u8).collect();
    let scored = pipeline::score_image(&model, &mut ws, &digit, model.threshold).expect("runs");
    let cleaned = pipeline::denoise(&model, &mut ws, &digit).expect("denoises");
    assert_eq!(cleaned, scored.reconstruction);
    for bits in [1, 4, 8] {
        let code = pipeline::compress(&model, &mut ws, &digit, bits).expect("compresses");
        let want = tinyvae_shared::code::pack(&scored.posterior.mu, bits).expect("packs");
        assert_eq!(code, want, "{bits} bits");
        assert_eq!(code.len(), (model.latent * bits as usize).div_ceil(8));
    }
    for bits in [0, 9, 255] {
        assert_eq!(
            pipeline::compress(&model, &mut ws, &digit, bits),
            Err(pipeline::InferError::WrongCodeBits { got: bits })
        );
    }
    assert_eq!(
        pipeline::denoise(&model, &mut ws, &digit[..5]),
        Err(pipeline::InferError::WrongImageSize {
            expected: 784,
            got: 5
        })
    );
    assert_eq!(
        tinyvae_shared::protocol::ErrorCode::from(pipeline::InferError::WrongCodeBits { got: 9 }),
        tinyvae_shared::protocol::ErrorCode::WrongCodeBits {
            min: 1,
            max: 8,
            got: 9
        }
    );
}
