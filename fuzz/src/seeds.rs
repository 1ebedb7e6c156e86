//! The seed corpus, drawn deterministically: `cargo run --features checkpoint
//! --example seeds` (in `fuzz/`) writes it to `fuzz/corpus/<target>/`.

use std::collections::HashMap;

use tinyvae_datasets::idx::{IMAGES_MAGIC, LABELS_MAGIC};
use tinyvae_shared::detect::{scale_from_units, DetectorParams, Term, TermParams, SEEN_LEN};
use tinyvae_shared::fixed::Q16_ONE;
use tinyvae_shared::model::{Likelihood, ModelSpec};
use tinyvae_shared::model_file;
use tinyvae_shared::protocol::{
    DetectorReport, DetectorState, DeviceInfo, Encoded, ErrorCode, Generated, Latent, Pixels,
    Reconstructed, Request, Response, ScoreReport, Stats, MAX_FRAME, PROTOCOL_VERSION,
};
use tinyvae_shared::rng::Rng;
use tinyvae_shared::testing::{synthetic_model, SyntheticShape};

use crate::contracts::frame;

/// One seed file: its target, its name and its bytes.
pub struct Seed {
    /// The fuzz target whose corpus holds it.
    pub target: &'static str,
    /// File name.
    pub name: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

fn seed(target: &'static str, name: impl Into<String>, bytes: Vec<u8>) -> Seed {
    Seed {
        target,
        name: name.into(),
        bytes,
    }
}

/// A 28x28 ring with seeded noise: a digit-like image for the real model.
pub fn ring(seed: u64, side: usize) -> Pixels {
    let mut rng = Rng::new(seed);
    let (c, r2) = (side as i64 / 2, (side as i64 / 2).pow(2));
    (0..side * side)
        .map(|i| {
            let (x, y) = ((i % side) as i64, (i / side) as i64);
            let d = (x - c).pow(2) + (y - c).pow(2);
            if d * 4 > r2 && d * 2 < r2 {
                200 + (rng.next_u32() % 56) as u8
            } else {
                (rng.next_u32() % 30) as u8
            }
        })
        .collect()
}

/// One request of each kind, for a model of `side` x `side` pixels and `latent` values.
pub fn requests(side: usize, latent: usize) -> Vec<(&'static str, Request)> {
    let z: Latent = (0..latent as i32).map(|i| (i - 3) * Q16_ONE / 3).collect();
    vec![
        ("info", Request::Info),
        ("stats", Request::Stats),
        ("set-threshold", Request::SetThreshold { threshold: 5 }),
        (
            "encode",
            Request::Encode {
                image: ring(1, side),
            },
        ),
        (
            "reconstruct",
            Request::Reconstruct {
                image: ring(2, side),
            },
        ),
        ("decode", Request::Decode { z }),
        (
            "generate",
            Request::Generate {
                seed: 7,
                temperature: Q16_ONE,
            },
        ),
        (
            "denoise",
            Request::Denoise {
                image: ring(3, side),
            },
        ),
        (
            "compress",
            Request::Compress {
                image: ring(4, side),
                bits: 4,
            },
        ),
        ("calibrate", Request::Calibrate { frames: 4 }),
        ("detector", Request::Detector),
        (
            "calibrate-threshold",
            Request::CalibrateThreshold { frames: 4 },
        ),
    ]
}

/// A calibration from start to end: `Calibrate` on the fewest frames, the state, four
/// scored frames (two encodes, two reconstructions) and a failed one (it does not
/// count), the state again, a frame judged by the calibrated detector, then a cancel,
/// a restart and the state; then a threshold-only calibration on four frames, the
/// state and a frame judged by it.
fn calibration(side: usize) -> Vec<Request> {
    let image = |seed| ring(seed, side);
    vec![
        Request::Calibrate { frames: 1 },
        Request::Detector,
        Request::Encode { image: image(10) },
        Request::Reconstruct { image: image(11) },
        Request::Encode {
            image: ring(12, side + 1),
        },
        Request::Encode { image: image(13) },
        Request::Reconstruct { image: image(14) },
        Request::Detector,
        Request::Encode { image: image(15) },
        Request::Calibrate { frames: 0 },
        Request::Calibrate { frames: 200 },
        Request::Detector,
        Request::Stats,
        // The threshold alone, keeping the calibrated terms.
        Request::CalibrateThreshold { frames: 4 },
        Request::Encode { image: image(16) },
        Request::Reconstruct { image: image(17) },
        Request::Encode { image: image(18) },
        Request::Encode { image: image(19) },
        Request::Detector,
        Request::Encode { image: image(20) },
    ]
}

/// Detector parameters for the seeds and the small model of `request_handler`: every
/// term on (two-sided terms on both sides), threshold 1.5.
pub fn detector_params() -> DetectorParams {
    let mut params = DetectorParams {
        threshold: 3 * Q16_ONE / 2,
        ..DetectorParams::default()
    };
    for (term, p) in Term::ALL.into_iter().zip(params.terms.iter_mut()) {
        let scale = scale_from_units(term.min_scale() * 4);
        // The ELBO term is in 1/256 nat: 100 nats.
        let centre = if term == Term::Elbo { 100 << 8 } else { 10 };
        *p = TermParams::centred(centre, scale, if term.two_sided() { scale } else { 0 });
    }
    params
}

/// Responses of the kinds the host decodes.
fn responses() -> Vec<(&'static str, Response)> {
    let score = ScoreReport {
        reconstruction: 90 * Q16_ONE,
        kl: 12 * Q16_ONE,
        score: 102 * Q16_ONE,
        threshold: 300 * Q16_ONE,
        anomalous: false,
        detector: None,
    };
    let judged = ScoreReport {
        detector: Some(DetectorReport {
            score: 5 * Q16_ONE / 2,
            threshold: 3 * Q16_ONE / 2,
            fired: Term::Holes,
            anomalous: true,
        }),
        ..score
    };
    let mut info = DeviceInfo {
        protocol_version: PROTOCOL_VERSION,
        firmware_version: heapless::String::new(),
        model_name: heapless::String::new(),
        model_hash: 0x1234_5678,
        input_width: 28,
        input_height: 28,
        latent: 16,
        parameters: 102_400,
        threshold: 300 * Q16_ONE,
        flash_used: 150_000,
        ram_static: 15_000,
        stack_high_water: 4_000,
    };
    let _ = info.firmware_version.push_str("0.1.0");
    let _ = info.model_name.push_str("tinyvae-mnist");
    vec![
        ("info", Response::Info(info)),
        (
            "encoded",
            Response::Encoded(Encoded {
                mu: (0..16).map(|i| i * 1000).collect(),
                logvar: (0..16).map(|i| -i * 1000).collect(),
                score,
                instructions: 123_456,
            }),
        ),
        (
            "generated",
            Response::Generated(Generated {
                z: (0..16).map(|i| i * 999).collect(),
                image: ring(3, 28),
                instructions: 99_999,
            }),
        ),
        (
            "reconstructed-detector",
            Response::Reconstructed(Reconstructed {
                image: ring(4, 28),
                score: judged,
                instructions: 150_000,
            }),
        ),
        ("stats", Response::Stats(Stats::default())),
        (
            "error",
            Response::Error(ErrorCode::WrongImageSize {
                expected: 784,
                got: 3,
            }),
        ),
        ("calibrating", Response::Calibrating { frames: 200 }),
        (
            "detector",
            Response::Detector(DetectorState {
                params: Some(detector_params()),
                calibration_left: 37,
            }),
        ),
        (
            "detector-none",
            Response::Detector(DetectorState {
                params: None,
                calibration_left: 0,
            }),
        ),
    ]
}

/// Every request frame in one line, then a frame of garbage and an over-long one.
fn session(side: usize, latent: usize) -> Vec<u8> {
    let mut line: Vec<u8> = requests(side, latent)
        .iter()
        .flat_map(|(_, r)| frame(r))
        .collect();
    line.extend_from_slice(&[1, 2, 3, 0]);
    line.extend(std::iter::repeat_n(7, MAX_FRAME + 3));
    line.push(0);
    line.extend(frame(&Request::Stats));
    line
}

/// The small synthetic models: both likelihoods, two shapes.
pub fn small_models() -> Vec<(&'static str, ModelSpec)> {
    let tiny = SyntheticShape {
        width: 4,
        height: 4,
        hidden: 8,
        latent: 2,
    };
    let small = SyntheticShape {
        width: 8,
        height: 6,
        hidden: 12,
        latent: 4,
    };
    let mut gaussian = synthetic_model(2, tiny);
    gaussian.likelihood = Likelihood::Gaussian;
    let mut detector = synthetic_model(4, small);
    detector.detector = Some(detector_params());
    // With the `unseen` term's set: every other neighbourhood seen.
    let mut seen = detector.clone();
    seen.seen = Some((0..SEEN_LEN).map(|i| 0x55 << (i % 2)).collect());
    vec![
        ("tiny-bernoulli", synthetic_model(1, tiny)),
        ("tiny-gaussian", gaussian),
        ("small", synthetic_model(3, small)),
        ("small-detector", detector),
        ("small-detector-seen", seen),
    ]
}

fn idx_file(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// The seeds of every target but `checkpoint_load`'s trainer checkpoints.
pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    for (name, request) in requests(28, 16) {
        out.push(seed(
            "frame_decode",
            format!("request-{name}"),
            frame(&request),
        ));
    }
    for (name, response) in responses() {
        out.push(seed(
            "frame_decode",
            format!("response-{name}"),
            frame(&response),
        ));
    }
    out.push(seed("frame_decode", "session", session(28, 16)));

    // request_handler: flags byte (bit 0 repairs CRCs, bit 1 drops the model, bit 2
    // runs the small model, bit 3 gives it a detector), then the line.
    for (name, request) in requests(28, 16) {
        let mut bytes = vec![0];
        bytes.extend(frame(&request));
        out.push(seed("request_handler", name, bytes));
    }
    for (name, request) in requests(6, 3) {
        let mut bytes = vec![4];
        bytes.extend(frame(&request));
        out.push(seed("request_handler", format!("small-{name}"), bytes));
    }
    for (name, flags, side, latent) in [
        ("session", 0, 28, 16),
        ("session-repaired", 1, 28, 16),
        ("session-no-model", 2, 28, 16),
        ("small-session", 4, 6, 3),
    ] {
        let mut bytes = vec![flags];
        bytes.extend(session(side, latent));
        out.push(seed("request_handler", name, bytes));
    }
    for (name, flags, side) in [
        ("calibration", 0, 28),
        ("calibration-no-model", 2, 28),
        ("small-calibration", 4, 6),
        ("small-detector-calibration", 4 | 8, 6),
    ] {
        let mut bytes = vec![flags];
        bytes.extend(calibration(side).iter().flat_map(frame));
        out.push(seed("request_handler", name, bytes));
    }

    for (name, spec) in small_models() {
        let image = spec.to_bytes().expect("a synthetic model serializes");
        out.push(seed("model_image", name, image.clone()));
        if name == "tiny-bernoulli" {
            out.push(seed("checkpoint_load", "device-bare", image.clone()));
            let metadata = HashMap::from([
                ("format".to_string(), model_file::FORMAT.to_string()),
                ("architecture".to_string(), "synthetic".to_string()),
            ]);
            let file = model_file::to_bytes(&image, metadata).expect("a model file");
            out.extend(header_seed("checkpoint_load", "device-file", file));
        }
    }

    let pixels: Vec<u8> = (0..3).flat_map(|i| ring(i, 4)).collect();
    let images = idx_file(IMAGES_MAGIC, &[3, 4, 4], &pixels);
    let labels = idx_file(LABELS_MAGIC, &[3], &[0, 7, 9]);
    out.push(seed("idx_parse", "images", images.clone()));
    out.push(seed("idx_parse", "labels", labels.clone()));
    out.push(seed(
        "idx_parse",
        "images-labels",
        [images, labels].concat(),
    ));
    out
}

/// Seeds of the safetensors file at `path`: the file, and its header and data
/// without the length prefix (see [`crate::repair::safetensors`]).
pub fn file_seeds(target: &'static str, name: &str, path: &std::path::Path) -> Vec<Seed> {
    let bytes = std::fs::read(path).expect("a seed file written just now");
    header_seed(target, name, bytes)
}

/// A safetensors file as two seeds: the file, and `<name>-header`, the file without
/// its length prefix.
fn header_seed(target: &'static str, name: &str, file: Vec<u8>) -> Vec<Seed> {
    let file = sorted_header(&file);
    let header = crate::repair::unwrap_safetensors(&file).expect("a safetensors file");
    vec![
        seed(target, format!("{name}-header"), header),
        seed(target, name, file),
    ]
}

/// A safetensors file with its header's keys sorted: writers put the metadata in hash
/// map order, which changes from run to run; sorted, the seeds are the same each time.
/// The data starts where the header's declared length ends: the writer pads the header
/// with spaces after its JSON, which belong to the header, not the data. The sorted
/// header is padded the same way (to a multiple of 8 bytes) but with the spaces inside
/// its JSON object, so that its `-header` seed (see [`crate::repair::safetensors`],
/// which ends the header where the JSON ends) repairs into the same file.
fn sorted_header(file: &[u8]) -> Vec<u8> {
    let len = u64::from_le_bytes(file[..8].try_into().expect("a length prefix"));
    let end = 8 + usize::try_from(len).expect("a header length");
    let mut header: serde_json::Value =
        serde_json::from_slice(&file[8..end]).expect("a JSON header");
    header.sort_all_objects();
    let mut text = serde_json::to_vec(&header).expect("JSON");
    let close = text.pop().expect("a JSON object");
    while !(text.len() + 1).is_multiple_of(8) {
        text.push(b' ');
    }
    text.push(close);
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&file[end..]);
    out
}
