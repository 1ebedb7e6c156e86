//! `docs/protocol.md` held to the code: the document is the serial protocol's
//! specification for people who do not write Rust, and
//! `clients/python/tinyvae_client.py` is a second implementation written from it alone.
//!
//! * [`doc_examples_are_the_bytes_the_code_sends`]: every worked example in the document
//!   (message, CRC and frame bytes) is what `tinyvae_shared::protocol` produces today,
//!   so the document cannot go stale silently.
//! * [`python_client_frames_like_the_code`]: the Python client frames every request
//!   exactly like the code, and reads every kind of response frame the code writes
//!   (edge values, COBS blocks of 254, every error code, the document's examples) into
//!   the same values. No emulator: it runs wherever python3 does.
//! * [`python_client_talks_to_the_emulated_m3`]: the Python client against the real
//!   firmware in QEMU: info, encodes of test digits, generations and a calibration of
//!   the fault detector, each answer equal bit for bit to the host's run of the same
//!   shared code. On the Cortex-M3 only (the
//!   board's own core): the protocol does not depend on the core, and
//!   `firmware_qemu.rs` checks every core's answers through the Rust client.
//!
//! The Python client prints each response as one line of JSON in serde's external
//! tagging (`{"Encoded": {...}}`, `{"Error": "BadCrc"}`), which these tests read back
//! into [`Response`] with `serde_json`, so every field is compared.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde::Serialize;
use tinyvae_datasets::rng::SeededRng;
use tinyvae_e2e::harness::{boot, model_image, test_images, workspace_root, Core, Device};
use tinyvae_shared::code::MAX_CODE_BYTES;
use tinyvae_shared::detect::{Calibrator, DetectorParams, Term, TermParams, TERMS};
use tinyvae_shared::fixed::Q16_ONE;
use tinyvae_shared::model::Model;
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::protocol::{
    decode_frame, encode_frame, Compressed, Denoised, DetectorReport, DetectorState, DeviceInfo,
    Encoded, ErrorCode, Generated, Reconstructed, Request, Response, ScoreReport, Stats, FRAME_CRC,
    MAX_FRAME, MAX_LATENT, MAX_PAYLOAD, MAX_PIXELS, PROTOCOL_VERSION,
};

/// The specification, relative to the workspace root.
const DOC: &str = "docs/protocol.md";
/// The Python client, relative to the workspace root.
const CLIENT: &str = "clients/python/tinyvae_client.py";

/// The message of each example in the document, by name.
fn doc_examples() -> Vec<(&'static str, Box<dyn ErasedMessage>)> {
    vec![
        ("info-request", Box::new(Request::Info)),
        ("info-response", Box::new(Response::Info(example_info()))),
        (
            "encode-request",
            Box::new(Request::Encode {
                image: [0, 0, 255, 128].into_iter().collect(),
            }),
        ),
        (
            "error-response",
            Box::new(Response::Error(ErrorCode::WrongImageSize {
                expected: 784,
                got: 4,
            })),
        ),
        (
            "compress-request",
            Box::new(Request::Compress {
                image: [0, 0, 255, 128].into_iter().collect(),
                bits: 4,
            }),
        ),
        (
            "compressed-response",
            Box::new(Response::Compressed(Compressed {
                code: [0x8f, 0x3c].into_iter().collect(),
                bits: 4,
                instructions: 300_000,
            })),
        ),
        (
            "generate-request",
            Box::new(Request::Generate {
                seed: 42,
                temperature: 3 * Q16_ONE / 4,
            }),
        ),
        (
            "encoded-response",
            Box::new(Response::Encoded(example_encoded())),
        ),
        (
            "calibrate-request",
            Box::new(Request::Calibrate { frames: 200 }),
        ),
        (
            "calibrating-response",
            Box::new(Response::Calibrating { frames: 200 }),
        ),
        ("detector-request", Box::new(Request::Detector)),
        (
            "detector-response",
            Box::new(Response::Detector(example_detector_state())),
        ),
    ]
}

/// The document's `Encoded` example: a 2-dimensional model's answer with the fault
/// detector's verdict (illustrative figures).
fn example_encoded() -> Encoded {
    Encoded {
        mu: [Q16_ONE, -Q16_ONE / 2].into_iter().collect(),
        logvar: [-2 * Q16_ONE, 0].into_iter().collect(),
        score: ScoreReport {
            reconstruction: 100 * Q16_ONE + Q16_ONE / 4,
            kl: 5 * Q16_ONE,
            score: 105 * Q16_ONE + Q16_ONE / 4,
            threshold: 120 * Q16_ONE + Q16_ONE / 2,
            anomalous: false,
            detector: Some(DetectorReport {
                score: 3 * Q16_ONE + Q16_ONE / 2,
                threshold: 3 * Q16_ONE / 2,
                fired: Term::MissingInk,
                anomalous: true,
            }),
        },
        instructions: 1_234_567,
    }
}

/// The document's `Detector` answer: no detector in force, a calibration under way
/// with 150 frames to go.
fn example_detector_state() -> DetectorState {
    DetectorState {
        params: None,
        calibration_left: 150,
    }
}

/// The device description of the document's `Info` example (illustrative figures, not
/// a particular build's).
fn example_info() -> DeviceInfo {
    DeviceInfo {
        protocol_version: PROTOCOL_VERSION,
        firmware_version: "0.1.0".try_into().expect("short"),
        model_name: "tinyvae-mnist".try_into().expect("short"),
        model_hash: 0x9e37_79b9,
        input_width: 28,
        input_height: 28,
        latent: 16,
        parameters: 103_424,
        threshold: 120 * Q16_ONE + Q16_ONE / 2,
        flash_used: 45_312,
        ram_static: 9_216,
        stack_high_water: 2_104,
    }
}

/// A message of either direction, so the examples can sit in one list.
trait ErasedMessage {
    /// The postcard bytes of the message.
    fn postcard(&self) -> Vec<u8>;
    /// The complete frame, with its terminating zero.
    fn frame(&self) -> Vec<u8>;
}

impl<T: Serialize> ErasedMessage for T {
    fn postcard(&self) -> Vec<u8> {
        let mut buf = [0u8; MAX_PAYLOAD];
        postcard::to_slice(self, &mut buf)
            .expect("the message fits a payload")
            .to_vec()
    }

    fn frame(&self) -> Vec<u8> {
        frame_of(self)
    }
}

/// The frame `tinyvae_shared::protocol` sends for `message`, terminator included.
fn frame_of<T: Serialize>(message: &T) -> Vec<u8> {
    let mut scratch = [0u8; MAX_PAYLOAD];
    let mut out = [0u8; MAX_FRAME];
    let n = encode_frame(message, &mut scratch, &mut out).expect("the message fits a frame");
    out[..n].to_vec()
}

/// Bytes as the document writes them: lowercase hex pairs, sixteen to a line.
fn hex_lines(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| line.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>())
        .map(|line| line.join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Bytes as one hex string, for the Python client's command line.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of the code block that follows the marker `<!-- example: {name} -->` in
/// `doc`, or `None` if there is no such marker.
fn doc_block(doc: &str, name: &str) -> Option<Vec<u8>> {
    let marker = format!("<!-- example: {name} -->");
    let after = &doc[doc.find(&marker)? + marker.len()..];
    let mut lines = after.lines().skip_while(|l| l.trim().is_empty());
    let fence = lines.next()?;
    assert!(
        fence.starts_with("```"),
        "{DOC}: the marker {marker} must be followed by a code block"
    );
    let bytes = lines
        .take_while(|l| !l.starts_with("```"))
        .flat_map(str::split_whitespace)
        .map(|pair| {
            u8::from_str_radix(pair, 16)
                .unwrap_or_else(|_| panic!("{DOC}: {name}: `{pair}` is not a hex byte"))
        })
        .collect();
    Some(bytes)
}

#[test]
fn doc_examples_are_the_bytes_the_code_sends() {
    let path = workspace_root().join(DOC);
    let doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut stale = Vec::new();
    for (name, message) in doc_examples() {
        let postcard = message.postcard();
        let crc = FRAME_CRC.checksum(&postcard).to_le_bytes().to_vec();
        let frame = message.frame();
        for (part, want) in [("message", postcard), ("crc", crc), ("frame", frame)] {
            let block = format!("{name} {part}");
            match doc_block(&doc, &block) {
                Some(got) if got == want => {}
                got => stale.push(format!(
                    "{} `{block}`; the code produces:\n<!-- example: {block} -->\n```text\n{}\n```",
                    if got.is_some() { "stale" } else { "missing" },
                    hex_lines(&want)
                )),
            }
        }
    }
    assert!(
        stale.is_empty(),
        "{DOC} does not show what the code sends:\n\n{}",
        stale.join("\n\n")
    );
}

/// Runs the Python client with `args` (from the workspace root) and returns its output;
/// panics with a clear message when python3 is missing.
fn python_client(args: &[&str]) -> Output {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`python3 --version` failed ({}): the Python client tests need a working python3",
            out.status
        ),
        Err(e) => panic!(
            "python3 is missing ({e}): the tests of {CLIENT} run it with python3 (Debian/Ubuntu: \
             apt-get install python3; pyserial is optional)"
        ),
    });
    let root = workspace_root();
    let out = Command::new("python3")
        .arg(root.join(CLIENT))
        .args(args)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("running python3 {CLIENT}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        let mut command = args.join(" ");
        if command.chars().count() > 100 {
            command = command.chars().take(100).chain("...".chars()).collect();
        }
        eprintln!("[{CLIENT} {command}]\n{}", stderr.trim_end());
    }
    out
}

/// The lines the client printed, after checking it exited with `status`.
fn stdout_lines(out: &Output, status: i32, what: &str) -> Vec<String> {
    assert_eq!(
        out.status.code(),
        Some(status),
        "{what}: the Python client exited with {} (expected {status}); stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .expect("the client prints UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A response the client printed, read back as a [`Response`].
fn parse_response(line: &str, what: &str) -> Response {
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!("{what}: the Python client printed `{line}`, not a response: {e}")
    })
}

/// The first message built by `make(attempt)` whose payload (postcard bytes and CRC) is
/// exactly `len` bytes with no zero among them, so that COBS codes it as 254-byte blocks
/// ending flush with the frame (the case with no final code byte).
fn flush_cobs_message<T: Serialize>(len: usize, make: impl Fn(u64) -> T) -> T {
    (0..1000)
        .map(make)
        .find(|message| {
            let mut payload = message.postcard();
            payload.extend(FRAME_CRC.checksum(&payload).to_le_bytes());
            payload.len() == len && !payload.contains(&0)
        })
        .expect("a zero-free payload of that length within 1000 tries")
}

/// Detector parameters at the edges: every term's values cycle through the `i32`
/// extremes and the small values whose varints change length.
fn edge_detector_params() -> DetectorParams {
    let values = [i32::MIN, i32::MAX, -1, 0, 1, 63, -64, 64, Q16_ONE, -Q16_ONE];
    let mut params = DetectorParams {
        threshold: i32::MAX,
        ..DetectorParams::default()
    };
    for (i, term) in params.terms.iter_mut().enumerate() {
        *term = TermParams {
            high: values[(4 * i) % values.len()],
            scale_high: values[(4 * i + 1) % values.len()],
            low: values[(4 * i + 2) % values.len()],
            scale_low: values[(4 * i + 3) % values.len()],
        };
    }
    params
}

/// `n` pixels, none zero, drawn from `seed`.
fn nonzero_pixels(n: usize, seed: u64) -> tinyvae_shared::protocol::Pixels {
    let mut rng = SeededRng::new(seed);
    (0..n).map(|_| (rng.next_u64() % 255) as u8 + 1).collect()
}

#[test]
fn python_client_frames_like_the_code() {
    // Requests: the client's frame of each (given as JSON) must be the code's, byte
    // for byte.
    let mut requests = vec![
        Request::Info,
        Request::Stats,
        Request::Encode {
            image: (0..784u32).map(|i| (i * 7 % 256) as u8).collect(),
        },
        Request::Encode {
            image: nonzero_pixels(MAX_PIXELS, 1),
        },
        Request::Reconstruct {
            image: Default::default(),
        },
        Request::Decode {
            z: [i32::MIN, i32::MAX, -1, 0, 1, 63, -64, 64, Q16_ONE]
                .into_iter()
                .collect(),
        },
        Request::Generate {
            seed: u64::MAX,
            temperature: -3 * Q16_ONE / 2,
        },
        Request::Generate {
            seed: 0,
            temperature: 0,
        },
        Request::SetThreshold {
            threshold: i32::MIN,
        },
        Request::Denoise {
            image: nonzero_pixels(784, 4),
        },
        Request::Compress {
            image: nonzero_pixels(784, 5),
            bits: 1,
        },
        Request::Compress {
            image: Default::default(),
            bits: u8::MAX,
        },
        Request::Calibrate { frames: 200 },
        Request::Calibrate { frames: 0 },
        Request::Calibrate { frames: u16::MAX },
        Request::Detector,
        Request::CalibrateThreshold { frames: 200 },
        Request::CalibrateThreshold { frames: 0 },
    ];
    // A zero right after a full COBS block: payload byte 254 is pixel 251.
    let mut image = nonzero_pixels(300, 3);
    image[251] = 0;
    requests.push(Request::Encode { image });
    // 1 + 2 + 247 + 4 = 254 bytes: one full COBS block and no final code byte.
    requests.push(flush_cobs_message(254, |seed| Request::Encode {
        image: nonzero_pixels(247, seed),
    }));
    let json: Vec<String> = requests
        .iter()
        .map(|r| serde_json::to_string(r).expect("JSON"))
        .collect();
    let mut args = vec!["frame"];
    args.extend(json.iter().map(String::as_str));
    let lines = stdout_lines(&python_client(&args), 0, "frame");
    assert_eq!(lines.len(), requests.len(), "one frame per request");
    for ((request, line), json) in requests.iter().zip(&lines).zip(&json) {
        assert_eq!(
            *line,
            hex(&frame_of(request)),
            "the Python client's frame of {json}"
        );
    }

    // Responses: the client's reading of each frame must be the message the code framed.
    let score = ScoreReport {
        reconstruction: i32::MAX,
        kl: i32::MIN,
        score: -1,
        threshold: 0,
        anomalous: true,
        detector: None,
    };
    let extremes: tinyvae_shared::protocol::Latent =
        (0..MAX_LATENT as i32).map(|i| i32::MIN + i).collect();
    let mut responses = vec![
        Response::Info(example_info()),
        Response::Info(DeviceInfo {
            protocol_version: u16::MAX,
            firmware_version: "0123456789abcdef".try_into().expect("16 bytes"),
            model_name: "naïve-ünïcode-24-byte".try_into().expect("24 bytes"),
            model_hash: u32::MAX,
            input_width: 0,
            input_height: 128,
            latent: 16_384,
            parameters: 0,
            threshold: i32::MIN,
            flash_used: u32::MAX,
            ram_static: 1 << 28,
            stack_high_water: 127,
        }),
        Response::Encoded(Encoded {
            mu: extremes.clone(),
            logvar: extremes.iter().map(|v| !v).collect(),
            score,
            instructions: u64::MAX,
        }),
        Response::Reconstructed(Reconstructed {
            image: nonzero_pixels(MAX_PIXELS, 2),
            score: ScoreReport::default(),
            instructions: 0,
        }),
        Response::Generated(Generated {
            z: extremes,
            image: (0..MAX_PIXELS).map(|i| (i % 3 * 127) as u8).collect(),
            instructions: 1 << 35,
        }),
        Response::ThresholdSet { threshold: -1 },
        Response::Stats(Stats {
            frames: u32::MAX,
            errors: 1,
            scored: 128,
            anomalies: 0,
            generated: 300,
            denoised: 7,
            compressed: u32::MAX,
            instructions: u64::MAX - 1,
        }),
        Response::Denoised(Denoised {
            image: nonzero_pixels(784, 6),
            instructions: 1 << 20,
        }),
        Response::Compressed(Compressed {
            code: (0..MAX_CODE_BYTES).map(|i| (i * 37 % 256) as u8).collect(),
            bits: 8,
            instructions: 0,
        }),
        Response::Compressed(Compressed {
            code: [0xA5, 0x00].into_iter().collect(),
            bits: 1,
            instructions: u64::MAX,
        }),
        Response::Encoded(Encoded {
            mu: Default::default(),
            logvar: [i32::MAX].into_iter().collect(),
            score: ScoreReport {
                reconstruction: i32::MIN,
                kl: i32::MAX,
                score: i32::MAX,
                threshold: i32::MIN,
                anomalous: true,
                detector: Some(DetectorReport {
                    score: i32::MAX,
                    threshold: i32::MIN,
                    fired: Term::Softness,
                    anomalous: true,
                }),
            },
            instructions: 0,
        }),
        Response::Calibrating { frames: 0 },
        Response::Calibrating { frames: 200 },
        Response::Calibrating { frames: u16::MAX },
        Response::Detector(DetectorState {
            params: None,
            calibration_left: 0,
        }),
        Response::Detector(DetectorState {
            params: Some(edge_detector_params()),
            calibration_left: u16::MAX,
        }),
        Response::Detector(DetectorState {
            params: Some(DetectorParams::default()),
            calibration_left: 1,
        }),
    ];
    // Every term, as the one that fired (its index is its place in Term::ALL).
    responses.extend(Term::ALL.into_iter().enumerate().map(|(i, fired)| {
        Response::Reconstructed(Reconstructed {
            image: Default::default(),
            score: ScoreReport {
                detector: Some(DetectorReport {
                    score: i as i32 - 7,
                    threshold: Q16_ONE,
                    fired,
                    anomalous: i % 2 == 0,
                }),
                ..ScoreReport::default()
            },
            instructions: i as u64,
        })
    }));
    // 1 + 2 + 490 + 10 (the score: 5 bytes, then the detector's tag and 4 bytes) + 1 + 4
    // = 508: two full COBS blocks, flush. (Without a detector the score would hold the
    // zero of its `None`.)
    responses.push(flush_cobs_message(508, |seed| {
        Response::Reconstructed(Reconstructed {
            image: nonzero_pixels(490, seed),
            score: ScoreReport {
                reconstruction: 1,
                kl: 2,
                score: 3,
                threshold: -1,
                anomalous: true,
                detector: Some(DetectorReport {
                    score: 1,
                    threshold: 2,
                    fired: Term::Cuts,
                    anomalous: true,
                }),
            },
            instructions: 5,
        })
    }));
    responses.extend(
        [
            ErrorCode::FrameTooLong,
            ErrorCode::BadCobs,
            ErrorCode::BadCrc,
            ErrorCode::BadMessage,
            ErrorCode::TrailingBytes,
            ErrorCode::EmptyFrame,
            ErrorCode::WrongImageSize {
                expected: 784,
                got: 4,
            },
            ErrorCode::WrongLatentSize {
                expected: u16::MAX,
                got: 0,
            },
            ErrorCode::ResponseTooLarge,
            ErrorCode::WrongCodeBits {
                min: 1,
                max: 8,
                got: 255,
            },
        ]
        .map(Response::Error),
    );
    let frames: Vec<String> = responses.iter().map(|r| hex(&frame_of(r))).collect();
    // The document's own response frames, as the document writes them.
    let doc = std::fs::read_to_string(workspace_root().join(DOC)).expect("the document");
    let doc_responses = [
        ("info-response frame", Response::Info(example_info())),
        (
            "error-response frame",
            Response::Error(ErrorCode::WrongImageSize {
                expected: 784,
                got: 4,
            }),
        ),
        (
            "encoded-response frame",
            Response::Encoded(example_encoded()),
        ),
        (
            "calibrating-response frame",
            Response::Calibrating { frames: 200 },
        ),
        (
            "detector-response frame",
            Response::Detector(example_detector_state()),
        ),
    ];
    let doc_frames: Vec<String> = doc_responses
        .iter()
        .map(|(name, _)| hex(&doc_block(&doc, name).expect("the document's example")))
        .collect();
    let doc_responses: Vec<Response> = doc_responses.into_iter().map(|(_, r)| r).collect();
    let mut args = vec!["unframe"];
    args.extend(frames.iter().chain(&doc_frames).map(String::as_str));
    let lines = stdout_lines(&python_client(&args), 0, "unframe");
    assert_eq!(
        lines.len(),
        responses.len() + doc_responses.len(),
        "one response per frame"
    );
    for (want, line) in responses.iter().chain(&doc_responses).zip(&lines) {
        assert_eq!(
            parse_response(line, "unframe"),
            *want,
            "the Python client's reading of the frame of {want:?}"
        );
    }

    // A flipped bit, a cut frame, an unknown variant, an unknown term, an option tag
    // other than 0 or 1 and a byte after the message are refused, with the error the
    // code reports for them.
    let full = frame_of(&Response::Info(example_info()));
    let mut flipped = full.clone();
    flipped[10] ^= 0x01;
    let cut = full[..2].to_vec();
    let unknown = {
        let message = [11u8]; // Response has variants 0 to 10
        let mut payload = message.to_vec();
        payload.extend(FRAME_CRC.checksum(&message).to_le_bytes());
        let mut out = vec![0u8; 16];
        let n = cobs::try_encode(&payload, &mut out).expect("fits");
        out.truncate(n);
        out
    };
    // An Encoded with empty vectors and a zero score, then its detector's tag and
    // verdict with `fired` set to `term`; and one whose tag is `tag`.
    let with_detector = |tag: u8, term: u8| {
        let mut message = vec![1, 0, 0, 0, 0, 0, 0, 0, tag, 2, 2, term, 1, 0];
        message.extend(FRAME_CRC.checksum(&message).to_le_bytes());
        let mut out = vec![0u8; 64];
        let n = cobs::try_encode(&message, &mut out).expect("fits");
        out.truncate(n);
        out
    };
    let unknown_term = with_detector(1, TERMS as u8);
    let bad_option = with_detector(2, 0);
    let mut trailing = Response::ThresholdSet { threshold: 5 }.postcard();
    trailing.push(0x2a);
    trailing.extend(FRAME_CRC.checksum(&trailing).to_le_bytes());
    let mut stuffed = vec![0u8; MAX_FRAME];
    let n = cobs::try_encode(&trailing, &mut stuffed).expect("fits");
    stuffed.truncate(n);
    for (what, bytes) in [
        ("a flipped bit", flipped),
        ("a cut frame", cut),
        ("an unknown variant", unknown),
        ("an unknown term", unknown_term),
        ("an option tag of 2", bad_option),
        ("a trailing byte", stuffed),
    ] {
        let body = bytes.strip_suffix(&[0]).unwrap_or(&bytes);
        let code = match decode_frame::<Response>(&mut body.to_vec()) {
            Err(e) => format!("{:?}", ErrorCode::from(e)),
            Ok(r) => panic!("{what}: the code reads it as {r:?}"),
        };
        let out = python_client(&["unframe", &hex(&bytes)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(1) && stderr.contains(&code),
            "{what}: the Python client exited with {} and said `{}` (expected status 1 and \
             {code}, the code's error)",
            out.status,
            stderr.trim()
        );
    }
}

/// Images for the device test (digits, faulted digits and a flat white image), written
/// as raw pixel files under `dir`.
fn image_files(dir: &Path, width: usize, height: usize) -> Vec<(PathBuf, Vec<u8>)> {
    std::fs::create_dir_all(dir).expect("image folder");
    test_images(width, height, 0..6, 6..9, &[255])
        .into_iter()
        .map(|(name, pixels)| {
            let name: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let path = dir.join(format!("{name}.raw"));
            std::fs::write(&path, &pixels).expect("image file");
            (path, pixels)
        })
        .collect()
}

#[test]
fn python_client_talks_to_the_emulated_m3() {
    // The harness's client has seen the device answer; it is closed here, as `tinyvae
    // emulate` does, because it holds the pty exclusively (QEMU notices the next opener
    // within about a second; the timeouts allow for that).
    let Device {
        emulator,
        client,
        info: boot_info,
    } = boot(Core::M3);
    drop(client);
    let model = Model::parse(model_image()).expect("the test model parses");
    let mut ws = Workspace::new();
    let pty = emulator.pty_path().display().to_string();
    let timeout = "60";

    // Info, once through plain os.open + termios and once however the client prefers
    // (pyserial when installed).
    for io in [&["--raw-tty"][..], &[][..]] {
        let mut args = vec!["--port", &pty, "--timeout", timeout, "-v"];
        args.extend(io);
        args.push("info");
        let lines = stdout_lines(&python_client(&args), 0, "info");
        assert_eq!(lines.len(), 1, "info prints one response: {lines:?}");
        let Response::Info(info) = parse_response(&lines[0], "info") else {
            panic!("info answered {}", lines[0]);
        };
        assert!(info.stack_high_water >= boot_info.stack_high_water);
        assert_eq!(
            DeviceInfo {
                stack_high_water: boot_info.stack_high_water,
                ..info
            },
            boot_info,
            "the Python client's Info vs the Rust client's"
        );
    }

    // Encodes: mu, logvar and the score equal the host's, bit for bit; a short image
    // earns the device's WrongImageSize error (and exit status 2).
    let dir = workspace_root().join(format!("target/e2e-python/{}", std::process::id()));
    let images = image_files(&dir, model.input_width, model.input_height);
    let short = dir.join("short.raw");
    std::fs::write(&short, [0u8; 10]).expect("short image");
    let paths: Vec<String> = images
        .iter()
        .map(|(p, _)| p.display().to_string())
        .chain([short.display().to_string()])
        .collect();
    let mut args = vec!["--port", pty.as_str(), "--timeout", timeout, "encode"];
    args.extend(paths.iter().map(String::as_str));
    let lines = stdout_lines(&python_client(&args), 2, "encode");
    assert_eq!(lines.len(), images.len() + 1, "one response per image");
    for ((path, pixels), line) in images.iter().zip(&lines) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let want = pipeline::score_image(&model, &mut ws, pixels, model.threshold)
            .expect("host scores the image");
        let Response::Encoded(got) = parse_response(line, "encode") else {
            panic!("{name}: the device answered {line}");
        };
        assert_eq!(got.mu, want.posterior.mu, "{name}: mu");
        assert_eq!(got.logvar, want.posterior.logvar, "{name}: logvar");
        assert_eq!(got.score, want.score, "{name}: score");
        assert!(got.instructions > 0, "{name}: no instructions counted");
    }
    assert_eq!(
        parse_response(&lines[images.len()], "encode"),
        Response::Error(ErrorCode::WrongImageSize {
            expected: model.pixels() as u16,
            got: 10,
        }),
        "a 10-pixel image"
    );

    // Generations: the latent sample and the image equal the host's for each seed and
    // temperature (the client takes the temperature as a real number).
    for (seeds, temperature, q16) in [
        (&["0", "42", "18446744073709551615"][..], "1.0", Q16_ONE),
        (&["7"][..], "0.5", Q16_ONE / 2),
        (&["9"][..], "0", 0),
    ] {
        let mut args = vec![
            "--port",
            pty.as_str(),
            "--timeout",
            timeout,
            "generate",
            "--temperature",
            temperature,
        ];
        args.extend(seeds);
        let lines = stdout_lines(&python_client(&args), 0, "generate");
        assert_eq!(lines.len(), seeds.len(), "one response per seed");
        for (seed, line) in seeds.iter().zip(&lines) {
            let seed: u64 = seed.parse().expect("a seed");
            let (z, image) =
                pipeline::generate(&model, &mut ws, seed, q16).expect("host generates");
            let Response::Generated(got) = parse_response(line, "generate") else {
                panic!("seed {seed}: the device answered {line}");
            };
            assert_eq!(got.z, z, "seed {seed} at {temperature}: latent sample");
            assert_eq!(got.image, image, "seed {seed} at {temperature}: image");
        }
    }

    // Calibration: the device takes the next four encodes as normal (each judged by the
    // model's own detector meanwhile) and then reports, and judges by, the parameters
    // the host's calibrator fits on the same frames; a cancel keeps them in force.
    let one = |args: &[&str], what: &str| -> Response {
        let mut all = vec!["--port", pty.as_str(), "--timeout", timeout];
        all.extend(args);
        let lines = stdout_lines(&python_client(&all), 0, what);
        assert_eq!(lines.len(), 1, "{what} prints one response: {lines:?}");
        parse_response(&lines[0], what)
    };
    let state = |params: Option<DetectorParams>, left: u16| {
        Response::Detector(DetectorState {
            params,
            calibration_left: left,
        })
    };
    let frames = 4;
    assert_eq!(
        one(&["calibrate", "--frames", "1"], "calibrate"),
        Response::Calibrating { frames },
        "a calibration takes at least MIN_CALIBRATION_FRAMES"
    );
    assert_eq!(
        one(&["detector"], "detector"),
        state(model.detector(), frames),
        "before the calibration's frames"
    );
    let calibration = &images[..usize::from(frames)];
    let mut args = vec!["--port", pty.as_str(), "--timeout", timeout, "encode"];
    args.extend(paths[..calibration.len()].iter().map(String::as_str));
    let lines = stdout_lines(&python_client(&args), 0, "calibration encodes");
    assert_eq!(lines.len(), calibration.len(), "one response per image");
    let mut calibrator = Calibrator::new(frames);
    let mut fitted = None;
    for ((path, pixels), line) in calibration.iter().zip(&lines) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let want = pipeline::score_image(&model, &mut ws, pixels, model.threshold)
            .expect("host scores the image");
        let Response::Encoded(got) = parse_response(line, "calibration encode") else {
            panic!("{name}: the device answered {line}");
        };
        assert_eq!(got.score, want.score, "{name} under calibration: score");
        fitted = calibrator.add(&want.terms).or(fitted);
    }
    let fitted = fitted.expect("the host's calibration ends with the last frame");
    assert_eq!(
        one(&["detector"], "detector"),
        state(Some(fitted), 0),
        "the calibrated detector"
    );
    let (path, pixels) = &images[usize::from(frames)];
    let want = pipeline::score_image_with(&model, &mut ws, pixels, model.threshold, Some(&fitted))
        .expect("host scores the image");
    let Response::Encoded(got) = one(&["encode", &path.display().to_string()], "encode") else {
        panic!("an encode after the calibration got no Encoded");
    };
    assert_eq!(got.score, want.score, "judged by the calibrated detector");
    assert_eq!(
        one(&["calibrate", "--frames", "0"], "cancel"),
        Response::Calibrating { frames: 0 },
    );
    assert_eq!(
        one(&["detector"], "detector"),
        state(Some(fitted), 0),
        "a cancel keeps the detector in force"
    );
    let _ = std::fs::remove_dir_all(&dir);
    drop(emulator);
}
