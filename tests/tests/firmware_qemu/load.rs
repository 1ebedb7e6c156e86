//! The device under load: thousands of frames, most of them bad, each answered exactly
//! once, with the device's counters equal to the host's own count.
//!
//! A host twin of the request server ([`Twin`]) works out each frame's reply from the
//! frame's bytes alone: the shared frame decoder for what arrives, the shared pipeline
//! for what a good request computes. The device must send exactly that reply (only the
//! instruction counts are the device's own), within [`REQUEST_TIMEOUT`], for every
//! frame; at the end nothing more may arrive, and its `Stats` must equal the twin's.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use tinyvae_e2e::harness::{boot, elf_footprint, firmware_elf, test_digits, Core, REQUEST_TIMEOUT};
use tinyvae_shared::detect::{Calibrator, DetectorParams};
use tinyvae_shared::fixed::{Q16, Q16_ONE};
use tinyvae_shared::model::Model;
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::protocol::{
    decode_frame, encode_frame, Compressed, Denoised, DetectorState, DeviceInfo, Encoded,
    ErrorCode, Generated, Reconstructed, Request, Response, Stats, FRAME_CRC, MAX_FRAME,
    MAX_LATENT, MAX_PAYLOAD, MAX_PIXELS,
};
use tinyvae_shared::rng::Rng;

/// The host's account of what the device must answer and count.
struct Twin<'m> {
    model: Model<'m>,
    ws: Workspace,
    /// The device's first `Info` (what every later one repeats, but for the threshold
    /// in force and the stack mark).
    boot_info: DeviceInfo,
    threshold: Q16,
    /// The fault detector in force, and the calibration under way.
    detector: Option<DetectorParams>,
    calibrator: Option<Calibrator>,
    stats: Stats,
    /// The highest stack mark any `Info` reported so far.
    high_water: u32,
}

impl<'m> Twin<'m> {
    fn new(model: Model<'m>, boot_info: DeviceInfo, boot_stats: Stats) -> Self {
        Self {
            threshold: boot_info.threshold,
            high_water: boot_info.stack_high_water,
            detector: model.detector(),
            calibrator: None,
            model,
            ws: Workspace::new(),
            boot_info,
            stats: boot_stats,
        }
    }

    /// The reply the device owes to a frame whose body (the bytes before its zero) is
    /// `body`, with zero instruction counts, and the count of it as the device keeps
    /// it: every frame, each error, each image scored or generated.
    fn expect(&mut self, body: &[u8]) -> Response {
        self.stats.frames += 1;
        let response = if body.len() > MAX_FRAME {
            Response::Error(ErrorCode::FrameTooLong)
        } else {
            match decode_frame::<Request>(&mut body.to_vec()) {
                Ok(request) => self.serve(request),
                Err(e) => Response::Error(e.into()),
            }
        };
        if matches!(response, Response::Error(_)) {
            self.stats.errors += 1;
        }
        response
    }

    /// Keeps `calibrator` (started on `frames`; none when 0 cancelled it) and answers.
    fn calibrating(&mut self, calibrator: Calibrator, frames: u16) -> Response {
        self.calibrator = (frames > 0).then_some(calibrator);
        Response::Calibrating { frames }
    }

    fn serve(&mut self, request: Request) -> Response {
        let (model, ws) = (&self.model, &mut self.ws);
        match request {
            Request::Info => Response::Info(DeviceInfo {
                threshold: self.threshold,
                ..self.boot_info.clone()
            }),
            Request::Stats => Response::Stats(self.stats),
            Request::SetThreshold { threshold } => {
                self.threshold = threshold;
                Response::ThresholdSet { threshold }
            }
            Request::Encode { image } => self.score(&image, false),
            Request::Reconstruct { image } => self.score(&image, true),
            Request::Calibrate { frames } => {
                let mut calibrator = Calibrator::idle();
                let frames = calibrator.start(frames);
                self.calibrating(calibrator, frames)
            }
            Request::CalibrateThreshold { frames } => {
                let mut calibrator = Calibrator::idle();
                let frames = calibrator.start_threshold(frames, self.detector);
                self.calibrating(calibrator, frames)
            }
            Request::Detector => Response::Detector(DetectorState {
                params: self.detector,
                calibration_left: self.calibrator.as_ref().map_or(0, Calibrator::remaining),
            }),
            Request::Denoise { image } => match pipeline::denoise(model, ws, &image) {
                Ok(image) => {
                    self.stats.denoised += 1;
                    Response::Denoised(Denoised {
                        image,
                        instructions: 0,
                    })
                }
                Err(e) => Response::Error(e.into()),
            },
            Request::Compress { image, bits } => {
                match pipeline::compress(model, ws, &image, bits) {
                    Ok(code) => {
                        self.stats.compressed += 1;
                        Response::Compressed(Compressed {
                            code,
                            bits,
                            instructions: 0,
                        })
                    }
                    Err(e) => Response::Error(e.into()),
                }
            }
            Request::Decode { z } => match pipeline::decode(model, ws, &z) {
                Ok(image) => {
                    self.stats.generated += 1;
                    Response::Generated(Generated {
                        z,
                        image,
                        instructions: 0,
                    })
                }
                Err(e) => Response::Error(e.into()),
            },
            Request::Generate { seed, temperature } => {
                match pipeline::generate(model, ws, seed, temperature) {
                    Ok((z, image)) => {
                        self.stats.generated += 1;
                        Response::Generated(Generated {
                            z,
                            image,
                            instructions: 0,
                        })
                    }
                    Err(e) => Response::Error(e.into()),
                }
            }
        }
    }

    /// Encode (or Reconstruct): the same score either way, a different reply.
    fn score(&mut self, image: &[u8], reconstruct: bool) -> Response {
        let detector = self.detector.as_ref();
        let scored = match pipeline::score_image_with(
            &self.model,
            &mut self.ws,
            image,
            self.threshold,
            detector,
        ) {
            Ok(scored) => scored,
            Err(e) => return Response::Error(e.into()),
        };
        self.stats.scored += 1;
        // The detector's verdict when there is one, the ELBO's otherwise.
        let flagged = scored
            .score
            .detector
            .map_or(scored.score.anomalous, |d| d.anomalous);
        self.stats.anomalies += u32::from(flagged);
        if let Some(params) = self.calibrator.as_mut().and_then(|c| c.add(&scored.terms)) {
            self.detector = Some(params);
            self.calibrator = None;
        }
        if reconstruct {
            Response::Reconstructed(Reconstructed {
                image: scored.reconstruction,
                score: scored.score,
                instructions: 0,
            })
        } else {
            Response::Encoded(Encoded {
                mu: scored.posterior.mu,
                logvar: scored.posterior.logvar,
                score: scored.score,
                instructions: 0,
            })
        }
    }

    /// `want` with the parts only the device knows taken from `got` (instruction
    /// counts, added to the twin's total; the stack mark, which may only grow and must
    /// stay below `stack_region`).
    fn complete(&mut self, want: Response, got: &Response, stack_region: u32) -> Response {
        let mut want = want;
        match (&mut want, got) {
            (Response::Encoded(w), Response::Encoded(g)) => w.instructions = g.instructions,
            (Response::Reconstructed(w), Response::Reconstructed(g)) => {
                w.instructions = g.instructions
            }
            (Response::Generated(w), Response::Generated(g)) => w.instructions = g.instructions,
            (Response::Denoised(w), Response::Denoised(g)) => w.instructions = g.instructions,
            (Response::Compressed(w), Response::Compressed(g)) => w.instructions = g.instructions,
            (Response::Info(w), Response::Info(g)) => {
                assert!(
                    g.stack_high_water >= self.high_water && g.stack_high_water < stack_region,
                    "stack mark {} after {} (region {stack_region})",
                    g.stack_high_water,
                    self.high_water
                );
                self.high_water = g.stack_high_water;
                w.stack_high_water = g.stack_high_water;
            }
            _ => {}
        }
        if let Response::Encoded(Encoded { instructions, .. })
        | Response::Reconstructed(Reconstructed { instructions, .. })
        | Response::Generated(Generated { instructions, .. })
        | Response::Denoised(Denoised { instructions, .. })
        | Response::Compressed(Compressed { instructions, .. }) = &want
        {
            assert!(*instructions > 0, "no instructions counted");
            self.stats.instructions += instructions;
        }
        want
    }
}

/// What a generated frame must get, by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// This error.
    Error(ErrorCode),
    /// An answer, not an error.
    Answer,
    /// Whatever the frame's bytes decode to (random bytes, cut frames).
    Decoded,
}

/// One frame to send: its bytes (exactly one zero, at the end), a name for its kind,
/// and what it must get.
struct Frame {
    bytes: Vec<u8>,
    kind: &'static str,
    expect: Expect,
}

/// A request as a complete frame.
fn framed(request: &Request) -> Vec<u8> {
    let mut scratch = [0u8; MAX_PAYLOAD];
    let mut out = [0u8; MAX_FRAME];
    let n = encode_frame(request, &mut scratch, &mut out).expect("the request fits a frame");
    out[..n].to_vec()
}

/// A request's postcard bytes, without CRC.
fn serialized(request: &Request) -> Vec<u8> {
    let mut buf = [0u8; MAX_PAYLOAD];
    postcard::to_slice(request, &mut buf)
        .expect("the request fits")
        .to_vec()
}

/// Payload bytes (not necessarily a valid message) and a CRC as a frame.
fn framed_with_crc(payload: &[u8], crc: u32) -> Vec<u8> {
    let mut payload = payload.to_vec();
    payload.extend_from_slice(&crc.to_le_bytes());
    let mut frame = vec![0u8; payload.len() + payload.len() / 254 + 2];
    let n = cobs::encode(&payload, &mut frame);
    frame.truncate(n);
    frame.push(0);
    frame
}

/// Payload bytes (not necessarily a valid message) as a frame with a correct CRC.
fn framed_payload(payload: &[u8]) -> Vec<u8> {
    framed_with_crc(payload, FRAME_CRC.checksum(payload))
}

/// The postcard (varint) encoding of `v`.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// `n` bytes from 1 to 255 (none ends a frame).
fn nonzero_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| 1 + (rng.next_u32() % 255) as u8).collect()
}

/// A value of `pool` or, one time in `pool.len() + 1`, a random one.
fn edge_or_random<T: Copy>(rng: &mut Rng, pool: &[T], random: impl FnOnce(&mut Rng) -> T) -> T {
    let i = rng.next_u32() as usize % (pool.len() + 1);
    pool.get(i).copied().unwrap_or_else(|| random(rng))
}

/// How many variants `Request` has (`Info` to `CalibrateThreshold`): tags from here on
/// are unknown.
const REQUEST_TAGS: u64 = 12;

/// The kinds of frame the load test sends, and how often (per 100 frames): about
/// three in four are bad, the rest good requests whose answers are checked.
const KINDS: [(&str, usize); 20] = [
    ("noise", 18),
    ("cut frame", 8),
    ("bad CRC", 10),
    ("empty", 4),
    ("oversized", 1),
    ("merged", 4),
    ("wrong image size", 6),
    ("wrong latent size", 5),
    ("over capacity", 1),
    ("unknown tag", 5),
    ("trailing bytes", 5),
    ("cut message", 5),
    ("generate", 10),
    ("decode", 5),
    ("encode", 3),
    ("set threshold", 3),
    ("info", 3),
    ("stats", 2),
    ("calibrate", 1),
    ("detector", 1),
];

/// Draws the frames of the load test.
struct FrameSource<'a> {
    rng: Rng,
    pixels: usize,
    latent: usize,
    images: &'a [Vec<u8>],
}

impl FrameSource<'_> {
    fn u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.next_u32() as usize % n
    }

    fn q16(&mut self) -> Q16 {
        self.rng.next_u32() as Q16
    }

    fn image(&mut self) -> Vec<u8> {
        let i = self.below(self.images.len());
        self.images[i].clone()
    }

    /// A latent vector of `n` values: edges and random ones.
    fn latent_of(&mut self, n: usize) -> Vec<Q16> {
        (0..n)
            .map(|_| {
                edge_or_random(
                    &mut self.rng,
                    &[0, i32::MIN, i32::MAX, -Q16_ONE, 4 * Q16_ONE],
                    |r| (r.next_u32() as Q16) >> (r.next_u32() % 16),
                )
            })
            .collect()
    }

    /// A small valid request (for cutting and merging).
    fn small_request(&mut self) -> Request {
        match self.below(4) {
            0 => Request::Info,
            1 => Request::Generate {
                seed: u64::from(self.u32()) << 32 | u64::from(self.u32()),
                temperature: Q16_ONE,
            },
            2 => Request::Decode {
                z: self.latent_of(self.latent).into_iter().collect(),
            },
            _ => Request::SetThreshold {
                threshold: self.q16(),
            },
        }
    }

    /// The next frame: one of [`KINDS`], by weight.
    fn next(&mut self) -> Frame {
        let mut roll = self.below(KINDS.iter().map(|&(_, w)| w).sum());
        let kind = KINDS
            .iter()
            .find(|&&(_, weight)| {
                let hit = roll < weight;
                roll = roll.saturating_sub(weight);
                hit
            })
            .map_or("stats", |&(kind, _)| kind);
        let (bytes, expect) = match kind {
            // Line noise: 1 to 64 random bytes, then a zero.
            "noise" => {
                let n = 1 + self.below(64);
                let mut f = nonzero_bytes(&mut self.rng, n);
                f.push(0);
                (f, Expect::Decoded)
            }
            // A valid frame cut short (at least one byte kept, so it is not empty).
            "cut frame" => {
                let request = self.small_request();
                let frame = framed(&request);
                let keep = 1 + self.below(frame.len() - 2);
                let mut f = frame[..keep].to_vec();
                f.push(0);
                (f, Expect::Decoded)
            }
            // A valid message with one bit of its CRC flipped.
            "bad CRC" => {
                let payload = serialized(&self.small_request());
                let crc = FRAME_CRC.checksum(&payload) ^ (1 << (self.u32() % 32));
                (
                    framed_with_crc(&payload, crc),
                    Expect::Error(ErrorCode::BadCrc),
                )
            }
            // A lone terminator.
            "empty" => (vec![0], Expect::Error(ErrorCode::EmptyFrame)),
            // Longer than any frame (and the exact edges: MAX_FRAME fits the reader).
            "oversized" => {
                let n = edge_or_random(&mut self.rng, &[MAX_FRAME, MAX_FRAME + 1], |r| {
                    MAX_FRAME + 1 + r.next_u32() as usize % 600
                });
                let mut f = nonzero_bytes(&mut self.rng, n);
                f.push(0);
                let expect = if n > MAX_FRAME {
                    Expect::Error(ErrorCode::FrameTooLong)
                } else {
                    Expect::Decoded
                };
                (f, expect)
            }
            // A frame's tail without its zero, run into a whole valid frame: one frame.
            "merged" => {
                let first = framed(&self.small_request());
                let start = self.below(first.len() - 1);
                let mut f = first[start..first.len() - 1].to_vec();
                f.extend(framed(&self.small_request()));
                (f, Expect::Decoded)
            }
            "wrong image size" => {
                let pixels = self.pixels;
                let n = if self.below(4) == 0 {
                    edge_or_random(&mut self.rng, &[pixels - 1, pixels + 1, MAX_PIXELS], |r| {
                        r.next_u32() as usize % MAX_PIXELS
                    })
                } else {
                    self.below(17)
                };
                let n = if n == pixels { pixels - 1 } else { n };
                let image = (0..n).map(|i| i as u8).collect();
                let request = if self.below(2) == 0 {
                    Request::Encode { image }
                } else {
                    Request::Reconstruct { image }
                };
                let expect = Expect::Error(ErrorCode::WrongImageSize {
                    expected: pixels as u16,
                    got: n as u16,
                });
                (framed(&request), expect)
            }
            "wrong latent size" => {
                let latent = self.latent;
                let n = edge_or_random(
                    &mut self.rng,
                    &[0, latent - 1, latent + 1, MAX_LATENT],
                    |r| r.next_u32() as usize % (MAX_LATENT + 1),
                );
                let n = if n == latent { latent + 1 } else { n };
                let z = self.latent_of(n).into_iter().collect();
                let expect = Expect::Error(ErrorCode::WrongLatentSize {
                    expected: latent as u16,
                    got: n as u16,
                });
                (framed(&Request::Decode { z }), expect)
            }
            // More values than a message may carry: a latent of MAX_LATENT + 1 (or an
            // image of MAX_PIXELS + 1, one time in four: it is a long frame).
            "over capacity" => {
                let mut payload = Vec::new();
                if self.below(4) == 0 {
                    payload.extend(varint(1)); // Encode
                    payload.extend(varint(MAX_PIXELS as u64 + 1));
                    payload.extend(nonzero_bytes(&mut self.rng, MAX_PIXELS + 1));
                } else {
                    payload.extend(varint(3)); // Decode
                    payload.extend(varint(MAX_LATENT as u64 + 1));
                    for _ in 0..=MAX_LATENT {
                        payload.extend(varint(u64::from(self.u32() % 1000)));
                    }
                }
                (
                    framed_payload(&payload),
                    Expect::Error(ErrorCode::BadMessage),
                )
            }
            // A request tag past the last variant (one- and multi-byte varints).
            "unknown tag" => {
                let tag = edge_or_random(
                    &mut self.rng,
                    &[
                        REQUEST_TAGS,
                        REQUEST_TAGS + 1,
                        127,
                        128,
                        255,
                        u64::from(u32::MAX),
                    ],
                    |r| REQUEST_TAGS + u64::from(r.next_u32() % 1000),
                );
                let mut payload = varint(tag);
                let extra = self.below(8);
                payload.extend(nonzero_bytes(&mut self.rng, extra));
                (
                    framed_payload(&payload),
                    Expect::Error(ErrorCode::BadMessage),
                )
            }
            // A whole message, then bytes it does not take (CRC over all of them).
            "trailing bytes" => {
                let mut payload = serialized(&self.small_request());
                let extra = 1 + self.below(4);
                payload.extend(nonzero_bytes(&mut self.rng, extra));
                (
                    framed_payload(&payload),
                    Expect::Error(ErrorCode::TrailingBytes),
                )
            }
            // A message cut short but with a correct CRC: fields missing.
            "cut message" => {
                let request = match self.below(3) {
                    0 => Request::Generate {
                        seed: u64::MAX,
                        temperature: i32::MIN,
                    },
                    1 => Request::SetThreshold {
                        threshold: i32::MIN,
                    },
                    _ => Request::Decode {
                        z: self.latent_of(self.latent).into_iter().collect(),
                    },
                };
                let payload = serialized(&request);
                let keep = 1 + self.below(payload.len() - 1);
                (
                    framed_payload(&payload[..keep]),
                    Expect::Error(ErrorCode::BadMessage),
                )
            }
            // Seeds and temperatures at their edges, and random ones.
            "generate" => {
                let seed = edge_or_random(
                    &mut self.rng,
                    &[0, 1, u64::MAX, u64::MAX - 1, 1 << 63],
                    |r| u64::from(r.next_u32()) << 32 | u64::from(r.next_u32()),
                );
                let temperature = edge_or_random(
                    &mut self.rng,
                    &[0, 1, -1, Q16_ONE, -Q16_ONE, 8 * Q16_ONE, i32::MAX, i32::MIN],
                    |r| (r.next_u32() as Q16) >> 12,
                );
                (
                    framed(&Request::Generate { seed, temperature }),
                    Expect::Answer,
                )
            }
            "decode" => {
                let z = self.latent_of(self.latent).into_iter().collect();
                (framed(&Request::Decode { z }), Expect::Answer)
            }
            "encode" => {
                let image = self.image().into_iter().collect();
                let mut expect = Expect::Answer;
                let request = match self.below(6) {
                    0 => Request::Reconstruct { image },
                    1 => Request::Denoise { image },
                    2 => {
                        // Bit depths 0 to 9: the edges are refused with WrongCodeBits.
                        let bits = self.below(10) as u8;
                        if !(1..=8).contains(&bits) {
                            expect = Expect::Error(ErrorCode::WrongCodeBits {
                                min: 1,
                                max: 8,
                                got: bits,
                            });
                        }
                        Request::Compress { image, bits }
                    }
                    _ => Request::Encode { image },
                };
                (framed(&request), expect)
            }
            "set threshold" => {
                let threshold = edge_or_random(
                    &mut self.rng,
                    &[i32::MIN, -1, 0, 300 << 16, i32::MAX],
                    |r| (r.next_u32() as Q16) >> 4,
                );
                (framed(&Request::SetThreshold { threshold }), Expect::Answer)
            }
            "info" => (framed(&Request::Info), Expect::Answer),
            "stats" => (framed(&Request::Stats), Expect::Answer),
            // Short calibrations, so that some finish during the run; 0 cancels. Half
            // of them set the threshold alone.
            "calibrate" => {
                let frames = edge_or_random(&mut self.rng, &[0, 1, 4, 5, u16::MAX], |r| {
                    (r.next_u32() % 12) as u16
                });
                let request = if self.rng.next_u32().is_multiple_of(2) {
                    Request::Calibrate { frames }
                } else {
                    Request::CalibrateThreshold { frames }
                };
                (framed(&request), Expect::Answer)
            }
            "detector" => (framed(&Request::Detector), Expect::Answer),
            other => unreachable!("no frame kind {other}"),
        };
        Frame {
            bytes,
            kind,
            expect,
        }
    }
}

/// Whether `response` is what `expect` asks for.
fn fits(expect: Expect, response: &Response) -> bool {
    match (expect, response) {
        (Expect::Error(code), Response::Error(got)) => code == *got,
        (Expect::Answer, response) => !matches!(response, Response::Error(_)),
        (Expect::Decoded, _) => true,
        _ => false,
    }
}

/// The images the load test encodes: test digits if the model takes their size,
/// seeded noise, flat black and white.
fn load_images(model: &Model<'_>) -> Vec<Vec<u8>> {
    let pixels = model.pixels();
    let mut images = Vec::new();
    let digits = test_digits();
    if digits.width * digits.height == pixels {
        images.extend((0..20).map(|i| digits.image_u8(i).to_vec()));
    }
    let mut rng = Rng::new(0x10ad);
    images.extend((0..4).map(|_| (0..pixels).map(|_| rng.next_u32() as u8).collect()));
    images.extend([vec![0; pixels], vec![255; pixels]]);
    images
}

/// Frames the load test sends.
const FRAMES: usize = 10_000;
/// Frames sent ahead of the oldest reply: the line never idles while a reply travels,
/// which takes the test from about 80 s to 45 s a core (8 ahead: 55 s), and the device
/// sees requests queue up behind the one it serves.
const WINDOW: usize = 16;
/// Bytes sent ahead, at most (plus one frame): with the replies to [`WINDOW`] frames
/// (about 1 KiB each at most) far below a pty's 64 KiB of buffering either way, QEMU and the
/// test cannot both be blocked writing.
const WINDOW_BYTES: usize = 4096;

/// [`FRAMES`] frames (random bytes, cut, merged, oversized and empty frames, bad CRCs,
/// well-formed requests the model cannot take, and good requests interleaved), sent
/// up to [`WINDOW`] ahead of the oldest reply: each must get its one reply, in order,
/// within [`REQUEST_TIMEOUT`], and that reply must be the twin's. Then the line must
/// stay quiet, the device's `Stats` must equal the twin's count, and the stack mark
/// must stay inside its region.
pub fn the_device_under_load_answers_every_frame(core: Core) {
    let started = Instant::now();
    let mut device = boot(core);
    let model = Model::parse(tinyvae_e2e::harness::model_image()).expect("the test model parses");
    let stack_region = elf_footprint(firmware_elf(core)).stack_region();
    let boot_stats = device.client.stats().expect("stats at boot");
    assert_eq!(
        (boot_stats.frames, boot_stats.errors),
        (2, 0),
        "counters at boot (the boot Info and this Stats)"
    );
    let images = load_images(&model);
    let mut source = FrameSource {
        rng: Rng::new(0x10ad_u64 ^ core as u64),
        pixels: model.pixels(),
        latent: model.latent,
        images: &images,
    };
    let mut twin = Twin::new(model.clone(), device.info.clone(), boot_stats);
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut in_flight: VecDeque<(usize, Frame)> = VecDeque::new();
    let (mut sent, mut bytes_in_flight) = (0, 0);
    while sent < FRAMES || !in_flight.is_empty() {
        if sent < FRAMES && in_flight.len() < WINDOW && bytes_in_flight < WINDOW_BYTES {
            let frame = source.next();
            let last = frame.bytes.len() - 1;
            assert!(
                !frame.bytes[..last].contains(&0) && frame.bytes[last] == 0,
                "frame {sent} ({}) must hold one zero, at its end",
                frame.kind
            );
            device.client.send_raw(&frame.bytes).expect("send a frame");
            bytes_in_flight += frame.bytes.len();
            in_flight.push_back((sent, frame));
            sent += 1;
            continue;
        }
        let Some((i, frame)) = in_flight.pop_front() else {
            break;
        };
        bytes_in_flight -= frame.bytes.len();
        let body = &frame.bytes[..frame.bytes.len() - 1];
        let got = device
            .client
            .read_response(Instant::now() + REQUEST_TIMEOUT)
            .unwrap_or_else(|e| {
                panic!(
                    "frame {i} ({}, {} bytes) got no reply: {e}",
                    frame.kind,
                    frame.bytes.len()
                )
            });
        let want = twin.expect(body);
        assert!(
            fits(frame.expect, &want),
            "the test's own frame {i} ({}) should get {:?}, the host says {want:?}",
            frame.kind,
            frame.expect
        );
        let want = twin.complete(want, &got, stack_region);
        assert_eq!(
            got,
            want,
            "frame {i} ({}, {} bytes)",
            frame.kind,
            frame.bytes.len()
        );
        let outcome = match &got {
            Response::Error(code) => format!("{code:?}")
                .split([' ', '{'])
                .next()
                .unwrap_or_default()
                .to_owned(),
            _ => "answered".to_owned(),
        };
        *tally
            .entry(format!("{:<18} {outcome}", frame.kind))
            .or_default() += 1;
    }
    // Exactly one reply each: nothing more arrives.
    let extra = device
        .client
        .drain(Duration::from_millis(500), Duration::from_secs(10))
        .expect("drain");
    assert_eq!(extra, 0, "bytes beyond one reply per frame");
    let stats = device.client.stats().expect("stats after the load");
    twin.stats.frames += 1;
    assert_eq!(
        stats, twin.stats,
        "the device's counters against the host's count"
    );
    let info = device.client.info().expect("Info after the load");
    assert!(
        info.stack_high_water >= twin.high_water && info.stack_high_water < stack_region,
        "stack mark {} after {} (region {stack_region})",
        info.stack_high_water,
        twin.high_water
    );
    eprintln!(
        "{core:?} under load: {FRAMES} frames in {:.1} s; {stats:?}; stack high-water mark \
         {} B of {stack_region} B\n{}",
        started.elapsed().as_secs_f64(),
        info.stack_high_water,
        tally
            .iter()
            .map(|(k, n)| format!("  {k:<40} {n:>5}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
