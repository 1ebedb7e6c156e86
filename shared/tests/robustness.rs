//! Any byte string given to the protocol decoder or the model validator yields a value
//! or a typed error: never a panic, never an out-of-bounds read.
//!
//! 100,000 purely random strings and 100,000 mutations of valid frames go to the frame
//! decoder (as requests and as responses), and every single-bit flip of each valid
//! frame; 100,000 mutations and truncations of a valid model image go to the validator.
//! Every corrupted frame or model that differs from the original must be rejected (the
//! CRC-32 misses one random corruption in 2^32). proptest adds shrinking cases on top.

use proptest::prelude::*;
use tinyvae_shared::model::Model;
use tinyvae_shared::protocol::{
    decode_frame, encode_frame, FrameEvent, FrameReader, Pixels, Request, Response, MAX_FRAME,
    MAX_PAYLOAD,
};
use tinyvae_shared::rng::Rng;
use tinyvae_shared::testing::{synthetic_model, SyntheticShape};

const CASES: usize = 100_000;

/// Small enough that 100,000 CRC checks of the image stay fast, with every part of
/// the layout present (two layers per network, a partial channel group).
const SMALL: SyntheticShape = SyntheticShape {
    width: 7,
    height: 5,
    hidden: 10,
    latent: 3,
};

fn random_bytes(rng: &mut Rng, max_len: usize) -> Vec<u8> {
    let len = rng.next_u32() as usize % (max_len + 1);
    (0..len).map(|_| rng.next_u32() as u8).collect()
}

/// Flips, replaces, inserts, deletes or truncates a few bytes.
fn mutate(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let edits = 1 + rng.next_u32() % 4;
    for _ in 0..edits {
        let pos = if bytes.is_empty() {
            0
        } else {
            rng.next_u32() as usize % bytes.len()
        };
        match rng.next_u32() % 5 {
            0 if !bytes.is_empty() => bytes[pos] ^= 1 << (rng.next_u32() % 8),
            1 if !bytes.is_empty() => bytes[pos] = rng.next_u32() as u8,
            2 => bytes.insert(pos, rng.next_u32() as u8),
            3 if !bytes.is_empty() => {
                bytes.remove(pos);
            }
            _ => bytes.truncate(pos),
        }
    }
    bytes
}

fn decode_both(body: &[u8]) -> (bool, bool) {
    let mut a = body.to_vec();
    let mut b = body.to_vec();
    (
        decode_frame::<Request>(&mut a).is_ok(),
        decode_frame::<Response>(&mut b).is_ok(),
    )
}

fn valid_frames() -> Vec<Vec<u8>> {
    let image: Pixels = (0..784u32).map(|i| (i * 7 % 256) as u8).collect();
    let requests = [
        Request::Info,
        Request::Encode {
            image: image.clone(),
        },
        Request::Reconstruct { image },
        Request::Decode {
            z: (0..16).map(|i| i << 12).collect(),
        },
        Request::Generate {
            seed: 99,
            temperature: 1 << 16,
        },
        Request::SetThreshold { threshold: 12345 },
        Request::Stats,
    ];
    requests
        .iter()
        .map(|r| {
            let mut scratch = [0u8; MAX_PAYLOAD];
            let mut out = [0u8; MAX_FRAME];
            let n = encode_frame(r, &mut scratch, &mut out).expect("fits");
            out[..n - 1].to_vec()
        })
        .collect()
}

#[test]
fn random_byte_strings_never_panic_the_frame_decoder() {
    let mut rng = Rng::new(2024);
    let mut accepted = 0;
    for _ in 0..CASES {
        let bytes = random_bytes(&mut rng, 1600);
        let (req, resp) = decode_both(&bytes);
        accepted += usize::from(req) + usize::from(resp);
    }
    println!("{CASES} random strings: {accepted} decoded as messages, the rest typed errors");
}

/// Decodes `body` as a request, and says whether it decoded although it differs from
/// `original`: COBS is one-to-one, so different bytes that still decode mean a changed
/// payload the CRC let through.
fn corruption_accepted(body: &[u8], original: &[u8]) -> bool {
    let mut copy = body.to_vec();
    decode_frame::<Request>(&mut copy).is_ok() && body != original
}

/// Fails naming how many cases in `accepted` got through and the first few.
fn assert_none_accepted(accepted: &[usize], what: &str) {
    assert!(
        accepted.is_empty(),
        "{} {what}, first cases {:?}",
        accepted.len(),
        &accepted[..accepted.len().min(10)]
    );
}

#[test]
fn mutated_frames_never_panic_and_the_crc_rejects_every_change() {
    let frames = valid_frames();
    let mut rng = Rng::new(77);
    let mut unchanged = 0;
    let mut accepted = Vec::new();
    for i in 0..CASES {
        let original = &frames[i % frames.len()];
        let bytes = mutate(&mut rng, original);
        let _ = decode_both(&bytes);
        unchanged += usize::from(&bytes == original);
        if corruption_accepted(&bytes, original) {
            accepted.push(i);
        }
    }
    println!(
        "{CASES} mutated frames ({unchanged} edits cancelled out): {} corrupted ones decoded",
        accepted.len()
    );
    // CRC-32 lets a random corruption through with probability 2^-32: over 100,000
    // cases, one acceptance would be a one-in-40,000 event, so any is a defect.
    assert_none_accepted(&accepted, "corrupted frames decoded");
}

#[test]
fn every_single_bit_flip_of_a_frame_is_rejected() {
    let mut flips = 0;
    for original in valid_frames() {
        for bit in 0..original.len() * 8 {
            let mut bytes = original.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            flips += 1;
            assert!(
                !corruption_accepted(&bytes, &original),
                "flipping bit {bit} of a {}-byte frame went unnoticed",
                original.len()
            );
        }
    }
    println!("{flips} single-bit flips, all rejected");
}

#[test]
fn frame_reader_survives_any_stream() {
    let mut rng = Rng::new(5);
    let mut reader = FrameReader::new();
    let mut frames = 0;
    for _ in 0..CASES / 10 {
        for byte in random_bytes(&mut rng, 3000) {
            if let FrameEvent::Frame(n) = reader.push(byte) {
                frames += 1;
                let body = reader.body_mut(n);
                let _ = decode_frame::<Request>(body);
            }
        }
    }
    println!("frame reader: {frames} frames delimited from random streams");
}

#[test]
fn mutated_and_truncated_models_are_typed_errors() {
    let bytes = synthetic_model(3, SMALL).to_bytes().expect("valid");
    let mut rng = Rng::new(123);
    let mut unchanged = 0;
    let mut accepted = Vec::new();
    for i in 0..CASES {
        let candidate = if i % 4 == 0 {
            let cut = rng.next_u32() as usize % bytes.len();
            bytes[..cut].to_vec()
        } else {
            mutate(&mut rng, &bytes[..])
        };
        if candidate == bytes {
            unchanged += 1;
        } else if Model::parse(&candidate).is_ok() {
            accepted.push(i);
        }
    }
    println!(
        "{CASES} mutated/truncated models ({unchanged} edits cancelled out): {} corrupted ones accepted",
        accepted.len()
    );
    // The image's CRC-32 (and the length fields) must reject every one.
    assert_none_accepted(&accepted, "corrupted models accepted");
}

#[test]
fn mutations_behind_a_fixed_crc_hit_the_field_checks() {
    // Corrupt fields and then repair the CRC, so the validator's own checks (not the CRC)
    // must reject or accept the result without panicking.
    let bytes = synthetic_model(4, SMALL).to_bytes().expect("valid");
    let crc = tinyvae_shared::protocol::FRAME_CRC;
    let mut rng = Rng::new(321);
    for _ in 0..CASES {
        let mut candidate = bytes.clone();
        let pos = rng.next_u32() as usize % (candidate.len() - 4);
        candidate[pos] = rng.next_u32() as u8;
        let body = candidate.len() - 4;
        let sum = crc.checksum(&candidate[..body]);
        candidate[body..].copy_from_slice(&sum.to_le_bytes());
        if let Ok(model) = Model::parse(&candidate) {
            // Whatever parses must be runnable without panicking.
            let mut ws = tinyvae_shared::pipeline::Workspace::new();
            let image = vec![200u8; model.pixels()];
            let _ = tinyvae_shared::pipeline::score_image(&model, &mut ws, &image, 0);
        };
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn proptest_frames(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = decode_both(&bytes);
    }

    #[test]
    fn proptest_models(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
        prop_assert!(Model::parse(&bytes).is_err());
    }
}
