//! The serial protocol between the host (`tinyvae serial`) and the device.
//!
//! Every message is a [`Request`] (host to device) or a [`Response`] (device to host),
//! serialized with postcard, followed by a CRC-32 (iSCSI polynomial) of those bytes, COBS
//! encoded so that the frame holds no zero byte, and terminated by one `0x00`:
//!
//! ```text
//! frame = COBS( postcard(message) ++ crc32_le(postcard(message)) ) ++ [0x00]
//! ```
//!
//! COBS lets a receiver that joins mid-stream resynchronise at the next zero; the CRC
//! catches the bit errors a UART makes. The device answers every frame, well formed or
//! not, with exactly one response frame ([`Response::Error`] for a bad one), so the host
//! can always pair requests and responses one to one.
//!
//! Sizes are bounded by constants ([`MAX_PIXELS`], [`MAX_LATENT`], [`MAX_FRAME`]) so
//! both sides can use fixed buffers; anything larger is an error, never an overflow.

use crc::{Crc, NoTable, CRC_32_ISCSI};
use heapless::Vec;
use serde::{Deserialize, Serialize};

use crate::code::Code;
use crate::detect::{DetectorParams, Term};
use crate::fixed::Q16;

/// The largest image (in pixels) a message may carry: 32x32.
pub const MAX_PIXELS: usize = 1024;
/// The largest latent dimension a message may carry.
pub const MAX_LATENT: usize = 32;
/// The longest model name the device reports.
pub const MAX_NAME: usize = 24;
/// The largest serialized message plus its CRC, before COBS.
pub const MAX_PAYLOAD: usize = 1400;
/// The largest frame on the wire: COBS adds one byte per 254 plus one, and the
/// terminating zero adds one more.
pub const MAX_FRAME: usize = MAX_PAYLOAD + MAX_PAYLOAD / 254 + 2;
/// Version of this protocol; bumped on any incompatible change (10: the
/// threshold-only calibration, [`Request::CalibrateThreshold`]).
pub const PROTOCOL_VERSION: u16 = 10;

/// The CRC used on every frame (and the model hash).
///
/// Computed bit by bit, without the crate's 1 KiB lookup table: that table was 3% of
/// the firmware's code budget on the Cortex-M3, and the bitwise CRC of the largest
/// frame costs about a millisecond, next to the 120 ms the UART takes to carry it.
pub const FRAME_CRC: Crc<u32, NoTable> = Crc::<u32, NoTable>::new(&CRC_32_ISCSI);

/// A pixel buffer of at most [`MAX_PIXELS`] bytes (0 = black, 255 = white).
pub type Pixels = Vec<u8, MAX_PIXELS>;
/// A latent vector of at most [`MAX_LATENT`] Q16 values.
pub type Latent = Vec<Q16, MAX_LATENT>;

/// What the host asks of the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Describe the model and the firmware.
    Info,
    /// Run the encoder and score the image for anomaly.
    Encode {
        /// The image, row major, exactly the model's input size.
        image: Pixels,
    },
    /// Encode, then decode mu: the reconstruction and its score.
    Reconstruct {
        /// The image, row major, exactly the model's input size.
        image: Pixels,
    },
    /// Decode a latent vector into an image.
    Decode {
        /// The latent vector, exactly the model's latent size.
        z: Latent,
    },
    /// Draw z ~ N(0, temperature^2 I) from the seeded generator and decode it.
    Generate {
        /// Seed of the device's Gaussian generator.
        seed: u64,
        /// Standard deviation of the prior sample, Q16 (1.0 = the prior itself).
        temperature: Q16,
    },
    /// Replace the anomaly threshold (Q16 score units) until reset.
    SetThreshold {
        /// New threshold; scores above it are anomalous.
        threshold: Q16,
    },
    /// Report the request counters.
    Stats,
    /// Encode, then decode mu: the image as the model would have drawn it, with what
    /// the model never saw (a sensor fault) mostly gone. Reconstruct without the score.
    Denoise {
        /// The image, row major, exactly the model's input size.
        image: Pixels,
    },
    /// Encode, then pack mu into `bits` bits per dimension (see [`crate::code`]): the
    /// few bytes a thin link can carry instead of the image.
    Compress {
        /// The image, row major, exactly the model's input size.
        image: Pixels,
        /// Bits per latent dimension, [`crate::code::MIN_CODE_BITS`] to
        /// [`crate::code::MAX_CODE_BITS`].
        bits: u8,
    },
    /// Take the next `frames` images scored (`Encode`, `Reconstruct`) as normal and set
    /// the fault detector's parameters and threshold from them (see
    /// [`crate::detect::Calibrator`]); they stay in force until reset. At least
    /// [`crate::detect::MIN_CALIBRATION_FRAMES`] are taken; 0 cancels a calibration
    /// under way and keeps the detector in force.
    Calibrate {
        /// Clean frames to calibrate on.
        frames: u16,
    },
    /// Report the fault detector in force and the calibration's progress.
    Detector,
    /// As [`Request::Calibrate`], but the next `frames` images set only the threshold:
    /// the terms of the detector in force stay (see
    /// [`crate::detect::Calibrator::start_threshold`]). For a board whose sensor is
    /// the training data's kind, where the exported terms find more than terms fitted
    /// on the board's own few frames. With no detector in force it fits the terms too.
    /// Answered with [`Response::Calibrating`]. (Protocol version 10.)
    CalibrateThreshold {
        /// Clean frames to set the threshold on.
        frames: u16,
    },
}

/// What the device answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Info`].
    Info(DeviceInfo),
    /// Answer to [`Request::Encode`].
    Encoded(Encoded),
    /// Answer to [`Request::Reconstruct`].
    Reconstructed(Reconstructed),
    /// Answer to [`Request::Decode`] and [`Request::Generate`].
    Generated(Generated),
    /// Answer to [`Request::SetThreshold`]: the threshold now in force.
    ThresholdSet {
        /// The threshold now in force.
        threshold: Q16,
    },
    /// Answer to [`Request::Stats`].
    Stats(Stats),
    /// The request could not be served.
    Error(ErrorCode),
    /// Answer to [`Request::Denoise`].
    Denoised(Denoised),
    /// Answer to [`Request::Compress`].
    Compressed(Compressed),
    /// Answer to [`Request::Calibrate`]: the frames the calibration will take (0: none,
    /// it was cancelled).
    Calibrating {
        /// Frames the calibration takes.
        frames: u16,
    },
    /// Answer to [`Request::Detector`].
    Detector(DetectorState),
}

/// The fault detector in force and the calibration's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorState {
    /// The parameters in force: the model's, or the last calibration's (`None`: the
    /// model has no detector and the device has not been calibrated).
    pub params: Option<DetectorParams>,
    /// Frames the calibration under way still needs (0: none under way).
    pub calibration_left: u16,
}

/// The device's description of itself and its model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// [`PROTOCOL_VERSION`] of the firmware.
    pub protocol_version: u16,
    /// Firmware version (semver string of the firmware crate).
    pub firmware_version: heapless::String<16>,
    /// The model's name.
    pub model_name: heapless::String<MAX_NAME>,
    /// CRC-32 of the model image in flash (the same as the host computes).
    pub model_hash: u32,
    /// Input width in pixels.
    pub input_width: u16,
    /// Input height in pixels.
    pub input_height: u16,
    /// Latent dimension.
    pub latent: u16,
    /// Weights of the VAE (encoder and decoder; biases and the fault head not counted).
    pub parameters: u32,
    /// The anomaly threshold in force, Q16.
    pub threshold: Q16,
    /// Flash used by the firmware image, in bytes.
    pub flash_used: u32,
    /// Static RAM (data + bss) in bytes.
    pub ram_static: u32,
    /// Most stack used so far, in bytes (measured by painting).
    pub stack_high_water: u32,
}

/// The encoder's output and the anomaly verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encoded {
    /// Posterior mean, Q16.
    pub mu: Latent,
    /// Posterior log-variance, Q16.
    pub logvar: Latent,
    /// The score's parts and verdict.
    pub score: ScoreReport,
    /// Instructions the device spent on the request.
    pub instructions: u64,
}

/// The decoder's output for the posterior mean, with the score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconstructed {
    /// The reconstruction, row major.
    pub image: Pixels,
    /// The score's parts and verdict.
    pub score: ScoreReport,
    /// Instructions the device spent on the request.
    pub instructions: u64,
}

/// A decoded latent vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    /// The latent vector that was decoded, Q16.
    pub z: Latent,
    /// The decoded image, row major.
    pub image: Pixels,
    /// Instructions the device spent on the request.
    pub instructions: u64,
}

/// The decoder's output for the posterior mean, without the score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denoised {
    /// decoder(mu), row major.
    pub image: Pixels,
    /// Instructions the device spent on the request.
    pub instructions: u64,
}

/// The posterior mean packed into a latent code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compressed {
    /// `ceil(latent * bits / 8)` bytes, levels most significant bit first (see
    /// [`crate::code::pack`]).
    pub code: Code,
    /// Bits per dimension the code uses (the request's).
    pub bits: u8,
    /// Instructions the device spent on the request.
    pub instructions: u64,
}

/// An anomaly score, its two terms, and the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ScoreReport {
    /// Reconstruction term (nats for Bernoulli models), Q16.
    pub reconstruction: Q16,
    /// KL(q(z|x) || N(0, I)) in nats, Q16.
    pub kl: Q16,
    /// reconstruction + kl, saturating, Q16.
    pub score: Q16,
    /// The threshold the verdict used, Q16.
    pub threshold: Q16,
    /// True when `score > threshold`.
    pub anomalous: bool,
    /// The fault detector's verdict (`None` when the device has no detector).
    pub detector: Option<DetectorReport>,
}

impl ScoreReport {
    /// The frame's verdict: the fault detector's when the device has one, the
    /// negative ELBO's against its threshold otherwise.
    pub fn flagged(&self) -> bool {
        self.detector.map_or(self.anomalous, |d| d.anomalous)
    }
}

/// The fault detector's verdict on one frame (see [`crate::detect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorReport {
    /// The largest standardized term, Q16.
    pub score: Q16,
    /// The detector's threshold, Q16.
    pub threshold: Q16,
    /// The term that gave `score`.
    pub fired: Term,
    /// True when `score > threshold`.
    pub anomalous: bool,
}

/// Request counters since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Stats {
    /// Frames received, good or bad.
    pub frames: u32,
    /// Frames answered with an error.
    pub errors: u32,
    /// Images scored (encode and reconstruct).
    pub scored: u32,
    /// Images found anomalous.
    pub anomalies: u32,
    /// Images generated or decoded.
    pub generated: u32,
    /// Images denoised.
    pub denoised: u32,
    /// Images compressed.
    pub compressed: u32,
    /// Instructions spent serving requests.
    pub instructions: u64,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The frame was longer than [`MAX_FRAME`].
    FrameTooLong,
    /// The frame was not valid COBS.
    BadCobs,
    /// The frame's CRC did not match.
    BadCrc,
    /// The payload was not a valid [`Request`].
    BadMessage,
    /// Bytes were left over after the message.
    TrailingBytes,
    /// The frame was empty.
    EmptyFrame,
    /// The image did not have the model's input size.
    WrongImageSize {
        /// Pixels the model takes.
        expected: u16,
        /// Pixels received.
        got: u16,
    },
    /// The latent vector did not have the model's latent size.
    WrongLatentSize {
        /// Latent size of the model.
        expected: u16,
        /// Values received.
        got: u16,
    },
    /// A response did not fit in a frame (a firmware bug; reported, not hidden).
    ResponseTooLarge,
    /// A `Compress` asked for a bit depth outside `min..=max`.
    WrongCodeBits {
        /// The fewest bits per dimension ([`crate::code::MIN_CODE_BITS`]).
        min: u8,
        /// The most bits per dimension ([`crate::code::MAX_CODE_BITS`]).
        max: u8,
        /// Bits asked for.
        got: u8,
    },
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The output buffer is too small for the frame.
    #[error("frame buffer too small")]
    BufferTooSmall,
    /// The frame is longer than [`MAX_FRAME`].
    #[error("frame longer than {MAX_FRAME} bytes")]
    TooLong,
    /// The frame is not valid COBS.
    #[error("frame is not valid COBS")]
    BadCobs,
    /// The CRC does not match.
    #[error("frame CRC mismatch")]
    BadCrc,
    /// The payload does not deserialize to the expected message.
    #[error("frame payload is not a valid message")]
    BadMessage,
    /// Bytes remained after the message.
    #[error("trailing bytes after the message")]
    TrailingBytes,
    /// The frame held no bytes.
    #[error("empty frame")]
    Empty,
}

impl From<FrameError> for ErrorCode {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::BufferTooSmall => ErrorCode::ResponseTooLarge,
            FrameError::TooLong => ErrorCode::FrameTooLong,
            FrameError::BadCobs => ErrorCode::BadCobs,
            FrameError::BadCrc => ErrorCode::BadCrc,
            FrameError::BadMessage => ErrorCode::BadMessage,
            FrameError::TrailingBytes => ErrorCode::TrailingBytes,
            FrameError::Empty => ErrorCode::EmptyFrame,
        }
    }
}

/// Encodes `message` as a complete frame (with the trailing zero) into `out`, using
/// `scratch` for the un-stuffed payload. Returns the frame's length.
pub fn encode_frame<T: Serialize>(
    message: &T,
    scratch: &mut [u8],
    out: &mut [u8],
) -> Result<usize, FrameError> {
    let body = postcard::to_slice(message, scratch)
        .map_err(|_| FrameError::BufferTooSmall)?
        .len();
    let crc = FRAME_CRC.checksum(&scratch[..body]).to_le_bytes();
    let payload = scratch
        .get_mut(..body + 4)
        .ok_or(FrameError::BufferTooSmall)?;
    payload[body..].copy_from_slice(&crc);
    let payload = &*payload;
    let n = cobs::try_encode(payload, out).map_err(|_| FrameError::BufferTooSmall)?;
    let terminator = out.get_mut(n).ok_or(FrameError::BufferTooSmall)?;
    *terminator = 0;
    Ok(n + 1)
}

/// Decodes one frame's body (the bytes between zeros, without the terminator) in place.
///
/// Every input yields a message or a [`FrameError`]; none panics.
pub fn decode_frame<'a, T: Deserialize<'a>>(body: &'a mut [u8]) -> Result<T, FrameError> {
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLong);
    }
    let n = cobs::decode_in_place(body).map_err(|_| FrameError::BadCobs)?;
    let payload: &'a [u8] = &body[..n];
    if payload.len() < 4 {
        return Err(FrameError::BadCrc);
    }
    let (data, crc_bytes) = payload.split_at(payload.len() - 4);
    let expected = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
    if FRAME_CRC.checksum(data) != expected {
        return Err(FrameError::BadCrc);
    }
    let (message, rest) = postcard::take_from_bytes(data).map_err(|_| FrameError::BadMessage)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes);
    }
    Ok(message)
}

/// What [`FrameReader::push`] found after a byte.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent {
    /// More bytes are needed.
    Pending,
    /// A frame body of this many bytes is ready in [`FrameReader::body_mut`].
    Frame(usize),
    /// The frame grew past [`MAX_FRAME`]; its bytes up to the next zero are dropped.
    Overflow,
}

/// Collects bytes from a serial line into frame bodies, with no allocation.
///
/// An over-long frame is reported once ([`FrameEvent::Overflow`]) and its remaining
/// bytes are skipped up to the next zero, so one bad frame gets exactly one error reply
/// and the reader then resynchronises.
pub struct FrameReader {
    buf: [u8; MAX_FRAME],
    len: usize,
    overflowed: bool,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameReader {
    /// An empty reader.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_FRAME],
            len: 0,
            overflowed: false,
        }
    }

    /// Feeds one byte from the line.
    pub fn push(&mut self, byte: u8) -> FrameEvent {
        if byte == 0 {
            let n = self.len;
            let overflowed = self.overflowed;
            self.len = 0;
            self.overflowed = false;
            return if overflowed {
                FrameEvent::Pending
            } else {
                FrameEvent::Frame(n)
            };
        }
        if self.overflowed {
            return FrameEvent::Pending;
        }
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
                FrameEvent::Pending
            }
            None => {
                self.overflowed = true;
                self.len = 0;
                FrameEvent::Overflow
            }
        }
    }

    /// The body of the frame last reported by [`FrameEvent::Frame`], `n` bytes long.
    pub fn body_mut(&mut self, n: usize) -> &mut [u8] {
        let n = n.min(self.buf.len());
        &mut self.buf[..n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T>(message: &T) -> T
    where
        T: Serialize + for<'de> Deserialize<'de>,
    {
        let mut scratch = [0u8; MAX_PAYLOAD];
        let mut out = [0u8; MAX_FRAME];
        let n = encode_frame(message, &mut scratch, &mut out).expect("frame fits");
        assert_eq!(out[n - 1], 0);
        assert!(!out[..n - 1].contains(&0));
        decode_frame(&mut out[..n - 1]).expect("frame decodes")
    }

    #[test]
    fn requests_round_trip() {
        let image: Pixels = (0..784u32).map(|i| (i % 256) as u8).collect();
        let z: Latent = (0..16).map(|i| i * 1000 - 5000).collect();
        for request in [
            Request::Info,
            Request::Encode {
                image: image.clone(),
            },
            Request::Reconstruct {
                image: image.clone(),
            },
            Request::Decode { z },
            Request::Generate {
                seed: u64::MAX,
                temperature: 1 << 16,
            },
            Request::SetThreshold { threshold: -7 },
            Request::Stats,
            Request::Denoise {
                image: image.clone(),
            },
            Request::Compress { image, bits: 8 },
            Request::Calibrate { frames: 200 },
            Request::Detector,
            Request::CalibrateThreshold { frames: 1000 },
        ] {
            assert_eq!(roundtrip(&request), request);
        }
    }

    #[test]
    fn largest_response_fits_a_frame() {
        let image: Pixels = (0..MAX_PIXELS).map(|i| (i % 251) as u8 + 1).collect();
        let z: Latent = (0..MAX_LATENT).map(|_| i32::MIN).collect();
        let response = Response::Generated(Generated {
            z,
            image,
            instructions: u64::MAX,
        });
        assert_eq!(roundtrip(&response), response);
        let encoded = Response::Encoded(Encoded {
            mu: (0..MAX_LATENT).map(|_| i32::MIN).collect(),
            logvar: (0..MAX_LATENT).map(|_| i32::MIN).collect(),
            score: ScoreReport {
                reconstruction: i32::MIN,
                kl: i32::MIN,
                score: i32::MIN,
                threshold: i32::MIN,
                anomalous: true,
                detector: Some(DetectorReport {
                    score: i32::MIN,
                    threshold: i32::MIN,
                    fired: Term::Softness,
                    anomalous: true,
                }),
            },
            instructions: u64::MAX,
        });
        assert_eq!(roundtrip(&encoded), encoded);
        let mut params = DetectorParams::default();
        for t in &mut params.terms {
            *t = crate::detect::TermParams {
                high: i32::MIN,
                scale_high: i32::MIN,
                low: i32::MIN,
                scale_low: i32::MIN,
            };
        }
        let state = Response::Detector(DetectorState {
            params: Some(params),
            calibration_left: u16::MAX,
        });
        assert_eq!(roundtrip(&state), state);
    }

    #[test]
    fn corrupted_frames_are_typed_errors() {
        let mut scratch = [0u8; MAX_PAYLOAD];
        let mut out = [0u8; MAX_FRAME];
        let n = encode_frame(&Request::Stats, &mut scratch, &mut out).expect("fits");
        let mut bad = out;
        bad[1] ^= 0x40;
        assert_eq!(
            decode_frame::<Request>(&mut bad[..n - 1]),
            Err(FrameError::BadCrc)
        );
        assert_eq!(decode_frame::<Request>(&mut []), Err(FrameError::Empty));
    }

    #[test]
    fn reader_reports_overflow_once_then_resyncs() {
        let mut reader = FrameReader::new();
        let mut overflows = 0;
        for _ in 0..MAX_FRAME + 10 {
            if reader.push(7) == FrameEvent::Overflow {
                overflows += 1;
            }
        }
        assert_eq!(overflows, 1);
        assert_eq!(reader.push(0), FrameEvent::Pending);
        assert_eq!(reader.push(5), FrameEvent::Pending);
        assert_eq!(reader.push(0), FrameEvent::Frame(1));
    }
}
