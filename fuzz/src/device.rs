//! `request_handler`: the firmware app's whole request loop, on the board stand-ins of
//! `tinyvae_app::testing`, against a plain reference of what it must answer.
//!
//! The input's first byte holds flags (bit 0: repair every frame's CRC, so the fuzzer
//! reaches the request decoder and the requests; bit 1: run without a model; bit 2:
//! run the small model of [`small_model`] instead of the embedded one; bit 3: with bit
//! 2, the small model carries a fault detector of its own), the rest is the line. The
//! app is polled until the line is drained, then once more, when it must be idle. Its
//! output must be one valid response frame per unit of the line
//! ([`crate::reference`]), each the response the reference computes with the host's
//! pipeline, bit for bit, and its counters must match the reference's. The reference
//! keeps the fault detector's state as the device must: a calibration under way (the
//! host's [`Calibrator`], the very code the device runs) takes each scored frame after
//! it is judged by the detector in force, and the last one puts the calibrated
//! parameters in force in place of the model's.

use std::sync::OnceLock;

use tinyvae_app::testing::{self, Memory, STEP};
use tinyvae_app::{App, Buffers, Footprint, MODEL_IMAGE};
use tinyvae_shared::detect::{Calibrator, DetectorParams};
use tinyvae_shared::fixed::Q16;
use tinyvae_shared::model::Model;
use tinyvae_shared::pipeline::{self, InferError, Workspace};
use tinyvae_shared::protocol::{
    decode_frame, encode_frame, Compressed, Denoised, DetectorState, DeviceInfo, Encoded,
    ErrorCode, Generated, Reconstructed, Request, Response, Stats, MAX_FRAME, MAX_PAYLOAD,
    PROTOCOL_VERSION,
};

use crate::reference::{units, Unit};
use crate::{repair, seeds};

/// The embedded model, parsed once.
fn model() -> &'static Model<'static> {
    static MODEL: OnceLock<Model<'static>> = OnceLock::new();
    MODEL.get_or_init(|| Model::parse(MODEL_IMAGE).expect("the embedded model parses"))
}

/// What the device must do, written plainly.
struct Reference<'m> {
    model: Option<&'m Model<'m>>,
    threshold: Q16,
    /// The parameters the last finished calibration set (`None`: none has finished).
    calibrated: Option<DetectorParams>,
    /// The calibration under way (idle when none is).
    calibrator: Calibrator,
    stats: Stats,
    workspace: Workspace,
    /// Screens the device must have flushed (boot screen included).
    flushes: usize,
}

fn u16_of(v: usize) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

impl<'m> Reference<'m> {
    fn new(model: Option<&'m Model<'m>>) -> Self {
        Self {
            model,
            threshold: model.map_or(0, |m| m.threshold),
            calibrated: None,
            calibrator: Calibrator::idle(),
            stats: Stats::default(),
            workspace: Workspace::new(),
            flushes: 1,
        }
    }

    /// The response to one unit of the line. `firmware_version` is taken from the
    /// app's own answer (it is the app crate's version).
    fn answer(&mut self, unit: Unit<'_>, firmware_version: &str) -> Response {
        self.stats.frames = self.stats.frames.wrapping_add(1);
        let mut response = match unit {
            Unit::Overflow { .. } => Response::Error(ErrorCode::FrameTooLong),
            Unit::Frame(body) => match decode_frame::<Request>(&mut body.to_vec()) {
                Ok(request) => self.serve(request, firmware_version),
                Err(e) => Response::Error(e.into()),
            },
        };
        let mut scratch = [0u8; MAX_PAYLOAD];
        let mut out = [0u8; MAX_FRAME];
        if encode_frame(&response, &mut scratch, &mut out).is_err() {
            response = Response::Error(ErrorCode::ResponseTooLarge);
        }
        if matches!(response, Response::Error(_)) {
            self.stats.errors = self.stats.errors.wrapping_add(1);
        }
        response
    }

    fn count(&mut self, instructions: u64) {
        self.stats.instructions = self.stats.instructions.wrapping_add(instructions);
        self.flushes += 1;
    }

    /// The fault detector in force: the last calibration's, or the model's own.
    fn detector(&self) -> Option<DetectorParams> {
        self.calibrated
            .or_else(|| self.model.and_then(Model::detector))
    }

    /// `Calibrate`: starts over on `frames` frames (at least the minimum; 0 cancels),
    /// with or without a model (without one, no frame is ever scored, so it never ends).
    fn calibrate(&mut self, frames: u16) -> Response {
        Response::Calibrating {
            frames: self.calibrator.start(frames),
        }
    }

    /// `CalibrateThreshold`: as [`Self::calibrate`], keeping the detector in force's
    /// terms (fitting them too when none is in force).
    fn calibrate_threshold(&mut self, frames: u16) -> Response {
        let in_force = self.detector();
        Response::Calibrating {
            frames: self.calibrator.start_threshold(frames, in_force),
        }
    }

    /// `Detector`: the detector in force and the frames the calibration still needs.
    fn detector_state(&self) -> Response {
        Response::Detector(DetectorState {
            params: self.detector(),
            calibration_left: self.calibrator.remaining(),
        })
    }

    fn serve(&mut self, request: Request, firmware_version: &str) -> Response {
        let Some(model) = self.model else {
            return match request {
                Request::Info => Response::Info(self.info(firmware_version)),
                Request::Stats => Response::Stats(self.stats),
                Request::SetThreshold { threshold } => {
                    self.threshold = threshold;
                    Response::ThresholdSet { threshold }
                }
                Request::Encode { image }
                | Request::Reconstruct { image }
                | Request::Denoise { image }
                | Request::Compress { image, .. } => Response::Error(ErrorCode::WrongImageSize {
                    expected: 0,
                    got: u16_of(image.len()),
                }),
                Request::Decode { z } => Response::Error(ErrorCode::WrongLatentSize {
                    expected: 0,
                    got: u16_of(z.len()),
                }),
                Request::Generate { .. } => Response::Error(ErrorCode::WrongLatentSize {
                    expected: 0,
                    got: 0,
                }),
                Request::Calibrate { frames } => self.calibrate(frames),
                Request::CalibrateThreshold { frames } => self.calibrate_threshold(frames),
                Request::Detector => self.detector_state(),
            };
        };
        let ws = &mut self.workspace;
        let refused = |e: InferError| Response::Error(e.into());
        match request {
            Request::Info => Response::Info(self.info(firmware_version)),
            Request::Stats => Response::Stats(self.stats),
            Request::SetThreshold { threshold } => {
                self.threshold = threshold;
                Response::ThresholdSet { threshold }
            }
            Request::Encode { image } => self.score(model, &image, false),
            Request::Reconstruct { image } => self.score(model, &image, true),
            Request::Decode { z } => match pipeline::decode(model, ws, &z) {
                Ok(image) => self.generated(z, image),
                Err(e) => refused(e),
            },
            Request::Generate { seed, temperature } => {
                match pipeline::generate(model, ws, seed, temperature) {
                    Ok((z, image)) => self.generated(z, image),
                    Err(e) => refused(e),
                }
            }
            Request::Denoise { image } => match pipeline::denoise(model, ws, &image) {
                Ok(image) => {
                    self.count(STEP);
                    self.stats.denoised = self.stats.denoised.wrapping_add(1);
                    Response::Denoised(Denoised {
                        image,
                        instructions: STEP,
                    })
                }
                Err(e) => refused(e),
            },
            Request::Compress { image, bits } => {
                match pipeline::compress(model, ws, &image, bits) {
                    Ok(code) => {
                        self.count(STEP);
                        self.stats.compressed = self.stats.compressed.wrapping_add(1);
                        Response::Compressed(Compressed {
                            code,
                            bits,
                            instructions: STEP,
                        })
                    }
                    Err(e) => refused(e),
                }
            }
            Request::Calibrate { frames } => self.calibrate(frames),
            Request::CalibrateThreshold { frames } => self.calibrate_threshold(frames),
            Request::Detector => self.detector_state(),
        }
    }

    fn score(&mut self, model: &Model<'_>, image: &[u8], reconstruct: bool) -> Response {
        let detector = self.detector();
        let scored = match pipeline::score_image_with(
            model,
            &mut self.workspace,
            image,
            self.threshold,
            detector.as_ref(),
        ) {
            Ok(scored) => scored,
            Err(e) => return Response::Error(e.into()),
        };
        // The verdict is the detector's when there is one, the negative ELBO's otherwise.
        assert_eq!(
            scored.score.detector,
            detector.map(|d| d.report(&scored.terms)),
            "the score carries the detector's verdict on the frame's terms"
        );
        self.count(STEP);
        self.stats.scored = self.stats.scored.wrapping_add(1);
        let flagged = match scored.score.detector {
            Some(verdict) => verdict.anomalous,
            None => scored.score.anomalous,
        };
        if flagged {
            self.stats.anomalies = self.stats.anomalies.wrapping_add(1);
        }
        // The frame is taken by the calibration under way after it has been judged; the
        // last one puts the calibrated detector in force.
        if let Some(params) = self.calibrator.add(&scored.terms) {
            self.calibrated = Some(params);
        }
        if reconstruct {
            Response::Reconstructed(Reconstructed {
                image: scored.reconstruction,
                score: scored.score,
                instructions: STEP,
            })
        } else {
            Response::Encoded(Encoded {
                mu: scored.posterior.mu,
                logvar: scored.posterior.logvar,
                score: scored.score,
                instructions: STEP,
            })
        }
    }

    fn generated(
        &mut self,
        z: tinyvae_shared::protocol::Latent,
        image: tinyvae_shared::protocol::Pixels,
    ) -> Response {
        self.count(STEP);
        self.stats.generated = self.stats.generated.wrapping_add(1);
        Response::Generated(Generated {
            z,
            image,
            instructions: STEP,
        })
    }

    fn info(&self, firmware_version: &str) -> DeviceInfo {
        let m = self.model;
        let mut version = heapless::String::new();
        version
            .push_str(firmware_version)
            .expect("the app's version fits");
        let mut name = heapless::String::new();
        name.push_str(m.map_or("", |m| m.name()))
            .expect("a model name fits");
        DeviceInfo {
            protocol_version: PROTOCOL_VERSION,
            firmware_version: version,
            model_name: name,
            model_hash: m.map_or(0, |m| m.hash),
            input_width: u16_of(m.map_or(0, |m| m.input_width)),
            input_height: u16_of(m.map_or(0, |m| m.input_height)),
            latent: u16_of(m.map_or(0, |m| m.latent)),
            parameters: m.map_or(0, |m| m.parameters() as u32),
            threshold: self.threshold,
            flash_used: Memory.flash_used(),
            ram_static: Memory.ram_static(),
            stack_high_water: Memory.stack_high_water(),
        }
    }
}

/// A 6x6-pixel synthetic model (hidden 10, latent 3): the same request loop and the
/// same kernels' remainder paths with a few hundred multiply-accumulates a request
/// instead of the embedded model's 100,000, so the fuzzer gets through far more inputs.
/// `with_detector`: the same model with a detector section ([`seeds::detector_params`]),
/// so the model's own detector is in force until a calibration replaces it.
fn small_model(with_detector: bool) -> &'static Model<'static> {
    use tinyvae_shared::testing::{synthetic_model, SyntheticShape};
    static BYTES: [OnceLock<Vec<u8>>; 2] = [OnceLock::new(), OnceLock::new()];
    static MODELS: [OnceLock<Model<'static>>; 2] = [OnceLock::new(), OnceLock::new()];
    let i = usize::from(with_detector);
    MODELS[i].get_or_init(|| {
        let shape = SyntheticShape {
            width: 6,
            height: 6,
            hidden: 10,
            latent: 3,
        };
        let bytes = BYTES[i].get_or_init(|| {
            let mut spec = synthetic_model(7, shape);
            spec.detector = with_detector.then(seeds::detector_params);
            spec.to_bytes().expect("the synthetic model validates")
        });
        let model = Model::parse(bytes).expect("the small model parses");
        assert_eq!(model.detector().is_some(), with_detector);
        model
    })
}

/// Runs the app on `data` (flags byte, then the line) and checks every reply.
pub fn check_request_handler(data: &[u8]) {
    let Some((&flags, line)) = data.split_first() else {
        return;
    };
    let line = if flags & 1 != 0 {
        repair::line(line)
    } else {
        line.to_vec()
    };
    let model = match (flags & 2 != 0, flags & 4 != 0) {
        (true, _) => None,
        (false, false) => Some(model()),
        (false, true) => Some(small_model(flags & 8 != 0)),
    };

    let mut buffers = Box::new(Buffers::new());
    let mut app = App::new(model.cloned(), &mut buffers, testing::parts());
    app.parts_mut().serial.input.extend(&line);
    let mut polls = 0;
    while !app.parts().serial.input.is_empty() {
        assert!(app.poll(), "bytes waiting but none taken");
        polls += 1;
        assert!(polls <= line.len(), "every poll takes a byte");
    }
    assert!(!app.poll(), "idle once the line is drained");

    let output = std::mem::take(&mut app.parts_mut().serial.output);
    let mut bodies: Vec<&[u8]> = output.split(|&b| b == 0).collect();
    assert_eq!(
        bodies.pop(),
        Some(&[][..]),
        "the output ends with a terminator"
    );
    let replies: Vec<Response> = bodies
        .iter()
        .map(|body| decode_frame(&mut body.to_vec()).expect("the app sends valid frames"))
        .collect();
    let expected = units(&line);
    assert_eq!(replies.len(), expected.len(), "one reply per frame");

    let mut reference = Reference::new(model);
    for (unit, reply) in expected.into_iter().zip(&replies) {
        let version = match reply {
            Response::Info(info) => info.firmware_version.as_str(),
            _ => "",
        };
        let want = reference.answer(unit, version);
        assert_eq!(reply, &want, "the reply to {unit:?}");
    }
    assert_eq!(app.stats(), reference.stats, "the app's counters");
    assert_eq!(
        app.parts().display.flushes,
        reference.flushes,
        "screens shown"
    );
}
