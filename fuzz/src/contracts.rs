//! The documented contracts, as checks that panic when one does not hold.

use std::fmt::Debug;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tinyvae_datasets::idx::{self, IMAGES_MAGIC, LABELS_MAGIC};
use tinyvae_shared::detect::{
    scale_from_units, Calibrator, Term, TermParams, DETECTOR_SECTION_LEN,
    DETECTOR_SECTION_LEN_15_TERMS, DETECTOR_SECTION_LEN_16_TERMS,
    DETECTOR_SECTION_LEN_16_TERMS_SEEN, DETECTOR_SECTION_LEN_CENTRED, DETECTOR_SECTION_LEN_SEEN,
    MIN_CALIBRATION_FRAMES,
};
use tinyvae_shared::fixed::Q16_ONE;
use tinyvae_shared::model::{Model, ModelError, MAX_LAYERS};
use tinyvae_shared::model_file;
use tinyvae_shared::pipeline::{self, InferError, Workspace};
use tinyvae_shared::protocol::{
    decode_frame, encode_frame, FrameError, FrameEvent, FrameReader, Request, Response,
    ScoreReport, FRAME_CRC, MAX_FRAME, MAX_LATENT, MAX_PAYLOAD, MAX_PIXELS,
};
use tinyvae_shared::score;

use crate::reference::{units, Unit};
use crate::repair;

/// A frame of `message`, terminator included; panics when it does not fit.
pub fn frame<T: Serialize>(message: &T) -> Vec<u8> {
    let mut scratch = [0u8; MAX_PAYLOAD];
    let mut out = [0u8; MAX_FRAME];
    let n = encode_frame(message, &mut scratch, &mut out).expect("a message that fits a frame");
    out[..n].to_vec()
}

/// `frame_decode`: the reader splits the line as documented ([`crate::reference`]),
/// and every frame body it yields decodes (as a request and as a response) to a typed
/// error or to a message that survives re-encoding. A body whose CRC is repaired
/// never fails on COBS or CRC.
pub fn check_line(line: &[u8]) {
    let expected = units(line);
    let mut reader = FrameReader::new();
    let mut got = Vec::new();
    for (i, &byte) in line.iter().enumerate() {
        match reader.push(byte) {
            FrameEvent::Pending => {}
            FrameEvent::Overflow => got.push(Unit::Overflow { at: i }),
            FrameEvent::Frame(n) => {
                let body = reader.body_mut(n).to_vec();
                let start = i - n;
                assert_eq!(
                    body,
                    line[start..i],
                    "the reader's body is the line's bytes"
                );
                got.push(Unit::Frame(&line[start..i]));
            }
        }
    }
    assert_eq!(got, expected, "the reader's frames");
    for unit in expected {
        let Unit::Frame(body) = unit else { continue };
        let _ = check_body::<Request>(body);
        let _ = check_body::<Response>(body);
        if let Some(fixed) = repair::frame_body(body) {
            for e in [
                check_body::<Request>(&fixed).err(),
                check_body::<Response>(&fixed).err(),
            ]
            .into_iter()
            .flatten()
            {
                assert!(
                    matches!(
                        e,
                        FrameError::BadMessage | FrameError::TrailingBytes | FrameError::TooLong
                    ),
                    "a repaired body fails only in its message: {e:?}"
                );
            }
        }
    }
}

/// Decodes one frame body as a `T` and checks the result: the error fits the body,
/// and a decoded message encodes into a frame that decodes back to it.
pub fn check_body<T>(body: &[u8]) -> Result<T, FrameError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let mut buf = body.to_vec();
    let decoded = decode_frame::<T>(&mut buf);
    match &decoded {
        Ok(message) => {
            let again = frame(message);
            assert_eq!(again.last(), Some(&0), "a frame ends with its terminator");
            let n = again.len() - 1;
            assert!(!again[..n].contains(&0), "a frame body holds no zero");
            let mut again = again[..n].to_vec();
            assert_eq!(
                decode_frame::<T>(&mut again).as_ref(),
                Ok(message),
                "decode(encode(m)) == m"
            );
        }
        Err(FrameError::Empty) => assert!(body.is_empty()),
        Err(FrameError::TooLong) => assert!(body.len() > MAX_FRAME),
        Err(FrameError::BufferTooSmall) => panic!("decoding reported a buffer too small"),
        Err(_) => assert!(!body.is_empty() && body.len() <= MAX_FRAME),
    }
    decoded
}

/// `model_image`: [`check_image`] on the bytes as they are and with their length and
/// CRC repaired.
pub fn check_model_image(bytes: &[u8]) {
    check_image(bytes);
    if let Some(fixed) = repair::model_image(bytes) {
        check_image(&fixed);
    }
}

/// `Model::parse` never panics; its errors say what the bytes hold; a model it accepts
/// has in-range sizes and chained layers, a detector section that reads back into the
/// same bytes, and inference on it runs, is deterministic, refuses wrong sizes, and
/// agrees with itself (the reconstruction is decode(mu), a generated image is decode(z)
/// of the prior sample, the score is the sum of its terms, the fault detector's verdict
/// is the model's detector's on the frame's terms, and a calibration on the frame
/// gives a detector that can judge it).
pub fn check_image(bytes: &[u8]) {
    let model = match Model::parse(bytes) {
        Ok(model) => model,
        Err(ModelError::LengthMismatch { declared, actual }) => {
            assert_eq!(actual, bytes.len());
            assert_ne!(declared, actual);
            return;
        }
        Err(ModelError::BadCrc { stored, computed }) => {
            assert_ne!(stored, computed);
            assert_eq!(computed, FRAME_CRC.checksum(&bytes[..bytes.len() - 4]));
            return;
        }
        Err(_) => return,
    };
    let body = bytes.len() - 4;
    assert_eq!(model.bytes(), bytes);
    assert_eq!(model.hash, FRAME_CRC.checksum(&bytes[..body]));
    assert_eq!(model.hash.to_le_bytes(), bytes[body..]);
    let pixels = model.pixels();
    assert!((1..=MAX_PIXELS).contains(&pixels));
    assert!((1..=MAX_LATENT).contains(&model.latent));
    assert!((1..=MAX_LAYERS).contains(&model.encoder.len()));
    assert!((1..=MAX_LAYERS).contains(&model.decoder.len()));
    for (layers, first_in, last_out) in [
        (&model.encoder, pixels, 2 * model.latent),
        (&model.decoder, model.latent, pixels),
    ] {
        assert_eq!(layers[0].in_dim, first_in);
        assert_eq!(layers[layers.len() - 1].out_dim, last_out);
        for pair in layers.windows(2) {
            assert_eq!(pair[0].out_dim, pair[1].in_dim, "layers chain");
        }
    }
    assert!(model.name().len() <= tinyvae_shared::protocol::MAX_NAME);
    let detector = model.detector();
    // Without a fault head (header byte 7: 0) the detector section is the last thing
    // before the trailer; a head's section follows it (checked by `Model::parse`).
    if let (Some(params), 0) = (&detector, bytes[7]) {
        // Its length is the header's word at offset 60 (a 15-term section from an
        // older image loads with the `dimmest` term off).
        let len = u32::from_le_bytes([bytes[60], bytes[61], bytes[62], bytes[63]]) as usize;
        let section = &bytes[body - len..body];
        if len == DETECTOR_SECTION_LEN || len == DETECTOR_SECTION_LEN_SEEN {
            // The parameters first; a longer section carries the seen set after them.
            assert_eq!(
                params.to_le_bytes().as_slice(),
                &section[..DETECTOR_SECTION_LEN],
                "the detector section round-trips"
            );
            assert_eq!(
                model.seen().map(|seen| seen.as_bytes()),
                (len == DETECTOR_SECTION_LEN_SEEN).then(|| &section[DETECTOR_SECTION_LEN..]),
                "the seen set is the section's tail"
            );
        } else if len == DETECTOR_SECTION_LEN_16_TERMS || len == DETECTOR_SECTION_LEN_16_TERMS_SEEN
        {
            // A protocol 8 section: sixteen terms with edges, `head` off.
            assert_eq!(
                &params.to_le_bytes()[..DETECTOR_SECTION_LEN_16_TERMS],
                &section[..DETECTOR_SECTION_LEN_16_TERMS],
                "a sixteen-term section reads as written"
            );
            assert_eq!(params.terms[Term::Head as usize], Default::default());
        } else {
            // An older section: a centre and two scales per term (whole raw units), both
            // edges at the centre.
            assert!(
                len == DETECTOR_SECTION_LEN_CENTRED || len == DETECTOR_SECTION_LEN_15_TERMS,
                "detector section of {len} bytes"
            );
            assert_eq!(&params.threshold.to_le_bytes(), &section[..4]);
            for (t, w) in params.terms.iter().zip(section[4..].chunks_exact(12)) {
                let word = |i: usize| i32::from_le_bytes([w[i], w[i + 1], w[i + 2], w[i + 3]]);
                let (high, low) = (scale_from_units(word(4)), scale_from_units(word(8)));
                assert_eq!(*t, TermParams::centred(word(0), high, low));
            }
            if len == DETECTOR_SECTION_LEN_15_TERMS {
                assert_eq!(params.terms[Term::Dimmest as usize], Default::default());
            }
        }
    }

    // An image drawn from the bytes, and a seed and temperature.
    let image: Vec<u8> = bytes.iter().cycle().skip(7).take(pixels).copied().collect();
    let seed = u64::from(model.hash) << 7 | bytes.len() as u64;
    let temperature = (model.hash >> 8) as i32;
    let mut ws = Workspace::new();
    let scored = pipeline::score_image(&model, &mut ws, &image, model.threshold)
        .expect("an image of the model's size scores");
    assert_eq!(scored.reconstruction.len(), pixels);
    assert_eq!(scored.posterior.mu.len(), model.latent);
    assert_eq!(scored.posterior.logvar.len(), model.latent);
    let s = scored.score;
    assert_eq!(
        s,
        ScoreReport {
            detector: detector.map(|d| d.report(&scored.terms)),
            ..score::report(s.reconstruction, s.kl, model.threshold)
        }
    );
    assert_eq!(
        pipeline::detector_terms(&model, &mut ws, &image),
        Ok(scored.terms),
        "the detector's terms are the score's"
    );
    assert_eq!(
        scored.terms[Term::Elbo as usize],
        tinyvae_shared::detect::elbo_term(s.score),
        "the ELBO term is the score"
    );
    let without = pipeline::score_image_with(&model, &mut ws, &image, model.threshold, None)
        .expect("an image of the model's size scores");
    assert_eq!(without.score.detector, None, "no detector, no verdict");
    assert_eq!(
        without.terms, scored.terms,
        "the terms do not depend on the detector"
    );
    // A calibration on this frame alone (the fewest frames it takes) ends with the
    // last of them, with a threshold of at least 1.0, and judges the frame normal or
    // not without a panic.
    let mut calibrator = Calibrator::new(MIN_CALIBRATION_FRAMES);
    let fitted = (0..MIN_CALIBRATION_FRAMES)
        .map(|_| calibrator.add(&scored.terms))
        .last()
        .flatten()
        .expect("a calibration ends with its last frame");
    assert!(fitted.threshold >= Q16_ONE);
    let judged = pipeline::score_image_with(&model, &mut ws, &image, 0, Some(&fitted))
        .expect("an image of the model's size scores");
    assert_eq!(judged.score.detector, Some(fitted.report(&scored.terms)));
    assert!(
        !fitted.detect(&scored.terms).anomalous,
        "the frame a detector was calibrated on alone is normal to it"
    );
    assert_eq!(
        pipeline::score_image(&model, &mut ws, &image, model.threshold).as_ref(),
        Ok(&scored),
        "inference is deterministic"
    );
    assert_eq!(
        pipeline::decode(&model, &mut ws, &scored.posterior.mu).as_ref(),
        Ok(&scored.reconstruction),
        "the reconstruction is decode(mu)"
    );
    assert_eq!(
        pipeline::score_image(&model, &mut ws, &image[1..], 0).err(),
        Some(InferError::WrongImageSize {
            expected: pixels,
            got: pixels - 1
        })
    );
    assert_eq!(
        pipeline::decode(&model, &mut ws, &scored.posterior.mu[1..]).err(),
        Some(InferError::WrongLatentSize {
            expected: model.latent,
            got: model.latent - 1
        })
    );
    let (z, generated) =
        pipeline::generate(&model, &mut ws, seed, temperature).expect("generation runs");
    assert_eq!(z, pipeline::prior_sample(model.latent, seed, temperature));
    assert_eq!(generated.len(), pixels);
    assert_eq!(pipeline::decode(&model, &mut ws, &z), Ok(generated));
}

/// Splits a fuzz input into an images file and, after the last labels magic past the
/// first four bytes, a labels file.
pub fn split_idx(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    let magic = LABELS_MAGIC.to_be_bytes();
    let at = data
        .windows(4)
        .rposition(|w| w == magic)
        .filter(|&i| i >= 4);
    match at {
        Some(i) => (&data[..i], Some(&data[i..])),
        None => (data, None),
    }
}

/// `idx_parse`: `idx::parse` never panics and what it accepts is exactly the header's
/// dimensions and their product of bytes after it; a data set built from an images
/// file (and a labels file) has as many pixels as its sizes say and one label per image.
pub fn check_idx(data: &[u8]) {
    let path = Path::new("fuzz.idx");
    for (magic, ndim) in [(IMAGES_MAGIC, 3usize), (LABELS_MAGIC, 1)] {
        let Ok((dims, payload)) = idx::parse(path, data, magic, "fuzz") else {
            continue;
        };
        assert_eq!(data[..4], magic.to_be_bytes());
        assert_eq!(dims.len(), ndim);
        let header = 4 + 4 * ndim;
        for (i, &d) in dims.iter().enumerate() {
            let at = 4 + 4 * i;
            let field = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            assert_eq!(d, field as usize);
        }
        assert_eq!(dims.iter().product::<usize>(), payload.len());
        assert_eq!(payload, &data[header..]);
    }
    let (images, labels) = split_idx(data);
    let labels_path = Path::new("fuzz-labels.idx");
    let Ok(set) = idx::pair_from_bytes(path, images, labels.map(|l| (labels_path, l))) else {
        return;
    };
    assert!(set.width >= 1 && set.height >= 1 && set.width <= 4096 && set.height <= 4096);
    assert!(!set.is_empty());
    assert_eq!(set.pixels.len(), set.len() * set.width * set.height);
    match (&set.labels, labels) {
        (None, None) => assert!(set.class_names.is_empty()),
        (Some(l), Some(_)) => {
            assert_eq!(l.len(), set.len());
            assert!(l.iter().all(|&c| (c as usize) < set.class_names.len()));
        }
        (got, given) => panic!("labels {got:?} from a labels file {given:?}"),
    }
}

/// `checkpoint_load`, device model files: `model_file::from_bytes` never panics; what
/// it accepts is a valid model image (the bytes themselves for a bare image), and its
/// image and metadata survive being written and read back.
pub fn check_model_file(data: &[u8]) {
    let path = Path::new("fuzz.safetensors");
    let Ok(file) = model_file::from_bytes(path, data.to_vec()) else {
        return;
    };
    assert!(file.model().is_ok(), "a loaded model parses");
    if data.starts_with(&tinyvae_shared::model::MAGIC) {
        assert_eq!(file.image, data);
        assert!(file.metadata.is_empty());
    }
    let bytes =
        model_file::to_bytes(&file.image, file.metadata.clone()).expect("a loaded file saves");
    let again = model_file::from_bytes(path, bytes).expect("a saved file loads");
    assert_eq!(again.image, file.image);
    assert_eq!(again.metadata, file.metadata);
}
