//! tinyvae's board-independent firmware: the request server, the screens, the idle
//! latent walk, the counters and the memory report.
//!
//! It knows no chip. A board crate (`firmware/boards/*`) hands it four things through
//! traits, so the same code runs on every board and in host unit tests:
//!
//! * the serial line: [`embedded_io::Read`] + [`embedded_io::ReadReady`] +
//!   [`embedded_io::Write`];
//! * the display: an embedded-graphics `DrawTarget<Color = Gray4>` with a
//!   [`Display::flush`];
//! * the instruction counter: [`InstructionCounter`];
//! * the memory figures for `Info`: [`Footprint`].
//!
//! The line carries nothing but frames. Every frame the reader completes (every zero
//! byte ends one) gets exactly one response frame: the answer, or
//! [`Response::Error`] for a frame that does not decode, a request the model cannot
//! take, or an over-long frame (reported once, as soon as it overflows; its bytes up to
//! the next zero are then skipped). The screen is updated before the response is sent,
//! so a screendump taken after a reply shows that reply's screen.
#![cfg_attr(not(test), no_std)]

pub mod idle;
mod log;
pub mod rx;
#[cfg(feature = "testing")]
pub mod testing;
pub mod walk;

use embedded_graphics::pixelcolor::Gray4;
use embedded_graphics::prelude::DrawTarget;
use embedded_io::{Read, ReadReady, Write};
use tinyvae_screens as screen;
use tinyvae_shared::detect::{Calibrator, DetectorParams};
use tinyvae_shared::fixed::{Q16, Q16_ONE};
use tinyvae_shared::model::Model;
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::protocol::{
    decode_frame, encode_frame, Compressed, Denoised, DetectorState, DeviceInfo, Encoded,
    ErrorCode, FrameEvent, FrameReader, Generated, Reconstructed, Request, Response, Stats,
    MAX_FRAME, MAX_PAYLOAD, PROTOCOL_VERSION,
};

use crate::idle::{DemoStep, Idle, IdleScreen};

/// Four-byte alignment for the model image: the M4 kernel reads weights with `LDRD`
/// and the M0 reads the per-channel parameters as words only from aligned bytes (on
/// an unaligned image both fall back to slower loops, with the same bits).
#[repr(C, align(4))]
struct Aligned<T: ?Sized>(T);

static ALIGNED_MODEL: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.bin")));

/// The model image, validated by build.rs, for the board to put in flash (4-byte
/// aligned).
pub static MODEL_IMAGE: &[u8] = &ALIGNED_MODEL.0;

/// Instructions without a byte on the line before the idle screens start (see
/// [`idle`]): three seconds on a 50 MHz part, one to two under QEMU (~100 million a
/// second when idle).
pub const IDLE_AFTER: u64 = 150_000_000;
/// Instructions from the end of one walk frame to the start of the next: a slow walk
/// of a few frames a second (a frame itself costs ~0.6 million: decode, draw, flush).
pub const WALK_FRAME_EVERY: u64 = 20_000_000;
/// Bytes taken from the line per read: small, so that a request's reply is never held
/// back behind a long read, and big enough to drain a UART FIFO in one call.
const READ_CHUNK: usize = 16;

/// The display: a 16-grey embedded-graphics target that shows what was drawn only
/// when flushed (the app draws a whole screen, then flushes once).
pub trait Display: DrawTarget<Color = Gray4> {
    /// Sends what was drawn to the panel.
    fn flush(&mut self);
}

/// The clock the instruction counts come from (SysTick under QEMU's `-icount`, a cycle
/// counter on real parts).
pub trait InstructionCounter {
    /// Instructions (or cycles) since boot; only differences matter.
    fn now(&mut self) -> u64;
    /// Restarts the measurement, so the same work reads back the same count whatever
    /// ran before it.
    fn start_measurement(&mut self);
    /// Instructions since [`InstructionCounter::start_measurement`].
    fn measured(&mut self) -> u64;
    /// Spends a moment doing nothing, without touching a peripheral: the idle loop's
    /// pause between two polls of the line.
    fn pause(&mut self);
}

/// The memory figures `Info` reports; the board reads them from its linker symbols.
pub trait Footprint {
    /// Flash used by the image: code, read-only data (the model included) and the
    /// initial values of .data.
    fn flash_used(&self) -> u32;
    /// Static RAM (.data + .bss + .uninit) in bytes.
    fn ram_static(&self) -> u32;
    /// Most stack used since boot, in bytes.
    fn stack_high_water(&self) -> u32;
}

/// The buffers too large for the stack: the board puts one in a static (.bss) and
/// hands it over once.
pub struct Buffers {
    /// Collects frame bodies from the line.
    reader: FrameReader,
    /// Inference scratch.
    workspace: Workspace,
    /// Un-stuffed response payload.
    scratch: [u8; MAX_PAYLOAD],
    /// Response frame.
    out: [u8; MAX_FRAME],
    /// The calibration under way (idle when none is): the next scored frames feed it.
    /// Here rather than in [`App`]: idle is all zeros, so in a static it costs no code
    /// to set up.
    calibrator: Calibrator,
}

impl Buffers {
    /// Zeroed buffers (a `const fn`, so a static of them lives in .bss).
    pub const fn new() -> Self {
        Self {
            reader: FrameReader::new(),
            workspace: Workspace::new(),
            scratch: [0; MAX_PAYLOAD],
            out: [0; MAX_FRAME],
            calibrator: Calibrator::idle(),
        }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

/// The board's parts the app drives.
pub struct Parts<S, D, C, F> {
    /// The protocol's serial line.
    pub serial: S,
    /// The display.
    pub display: D,
    /// The instruction counter.
    pub counter: C,
    /// The memory report.
    pub footprint: F,
}

/// The firmware's state.
pub struct App<'a, S, D, C, F> {
    model: Option<Model<'a>>,
    threshold: Q16,
    /// The detector the last calibration set (`None`: the model's is in force). The
    /// model's is read from flash when needed rather than copied here at boot: the
    /// copy cost more flash than the read costs instructions.
    calibrated: Option<DetectorParams>,
    stats: Stats,
    buffers: &'a mut Buffers,
    parts: Parts<S, D, C, F>,
    /// The idle screens (none without a model).
    idle: Option<Idle>,
    /// When the last byte arrived or the last reply left, in instructions.
    last_activity: u64,
    /// When the idle screen may draw its next frame.
    next_idle_frame: u64,
}

// `Info` carries the firmware version in 16 bytes.
const _: () = assert!(env!("CARGO_PKG_VERSION").len() <= 16);

/// Clips a size to the protocol's u16 fields.
fn u16_of(v: usize) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

impl<'a, S, D, C, F> App<'a, S, D, C, F>
where
    S: Read + ReadReady + Write,
    D: Display,
    C: InstructionCounter,
    F: Footprint,
{
    /// Takes the board's parts and the parsed model (`None` if it failed to parse: the
    /// build validated it, but a failure is served as error replies, not a panic),
    /// and shows the boot screen.
    pub fn new(
        model: Option<Model<'a>>,
        buffers: &'a mut Buffers,
        parts: Parts<S, D, C, F>,
    ) -> Self {
        let threshold = model.as_ref().map_or(0, |m| m.threshold);
        let idle = model
            .as_ref()
            .map(|m| Idle::new(m.latent, m.input_width, m.input_height));
        let mut app = Self {
            model,
            threshold,
            calibrated: None,
            stats: Stats::default(),
            buffers,
            parts,
            idle,
            last_activity: 0,
            next_idle_frame: 0,
        };
        app.show_boot();
        app.last_activity = app.parts.counter.now();
        log::info!("tinyvae up");
        app
    }

    /// The board's parts (for tests and board code that inspects them).
    pub fn parts(&self) -> &Parts<S, D, C, F> {
        &self.parts
    }

    /// The board's parts, mutably.
    pub fn parts_mut(&mut self) -> &mut Parts<S, D, C, F> {
        &mut self.parts
    }

    /// The counters since boot.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn show_boot(&mut self) {
        draw_boot_screen(&mut self.parts.display, self.model.as_ref());
        self.parts.display.flush();
    }

    /// The idle screen being shown when the line is quiet (`None` without a model).
    pub fn idle_screen(&self) -> Option<IdleScreen> {
        self.idle.as_ref().map(Idle::screen)
    }

    /// Switches to the next idle screen and shows it at the next [`App::poll`], even
    /// if the host spoke a moment ago: what a board's button does.
    pub fn next_idle_screen(&mut self) {
        if let Some(idle) = &mut self.idle {
            idle.next_screen();
            self.last_activity = self.parts.counter.now().wrapping_sub(IDLE_AFTER);
            self.next_idle_frame = 0;
        }
    }

    /// Serves the line forever, showing the idle screens when it is quiet.
    pub fn run(&mut self) -> ! {
        loop {
            self.poll();
        }
    }

    /// One turn of the main loop: serves the bytes waiting on the line, or (after
    /// [`IDLE_AFTER`] without any) draws the idle screen's next frame when it is due,
    /// or pauses. Returns whether it took bytes from the line.
    pub fn poll(&mut self) -> bool {
        // A line that reports an error has nothing to read: the CRC catches whatever
        // the error damaged.
        if self.parts.serial.read_ready().unwrap_or(false) {
            let mut chunk = [0u8; READ_CHUNK];
            let n = self.parts.serial.read(&mut chunk).unwrap_or(0);
            for &byte in chunk.iter().take(n) {
                self.on_byte(byte);
            }
            self.last_activity = self.parts.counter.now();
            if let Some(idle) = &mut self.idle {
                idle.restart_demo();
            }
            return n > 0;
        }
        let now = self.parts.counter.now();
        if now.wrapping_sub(self.last_activity) >= IDLE_AFTER && now >= self.next_idle_frame {
            self.idle_frame();
            let every = self
                .idle
                .as_ref()
                .map_or(WALK_FRAME_EVERY, Idle::frame_every);
            self.next_idle_frame = self.parts.counter.now().saturating_add(every);
        } else {
            self.parts.counter.pause();
        }
        false
    }

    fn on_byte(&mut self, byte: u8) {
        match self.buffers.reader.push(byte) {
            FrameEvent::Pending => {}
            FrameEvent::Overflow => {
                self.stats.frames = self.stats.frames.wrapping_add(1);
                // A local, not `&Response::Error(..)`: a promoted constant would put a
                // whole `Response` (1,176 bytes, nearly all zeros) in flash.
                let response = Response::Error(ErrorCode::FrameTooLong);
                self.reply(&response);
            }
            FrameEvent::Frame(n) => {
                self.stats.frames = self.stats.frames.wrapping_add(1);
                let decoded = decode_frame::<Request>(self.buffers.reader.body_mut(n));
                let response = match decoded {
                    Ok(request) => self.serve(request),
                    Err(e) => Response::Error(e.into()),
                };
                self.reply(&response);
            }
        }
    }

    /// Encodes and sends one response frame.
    fn reply(&mut self, response: &Response) {
        let Buffers { scratch, out, .. } = &mut *self.buffers;
        let (frame_len, is_error) = match encode_frame(response, scratch, out) {
            Ok(n) => (n, matches!(response, Response::Error(_))),
            // A response that does not fit is a firmware bug: say so rather than
            // leave the host waiting. The error frame is a few bytes and always fits.
            Err(_) => {
                let too_large = Response::Error(ErrorCode::ResponseTooLarge);
                (encode_frame(&too_large, scratch, out).unwrap_or(0), true)
            }
        };
        if is_error {
            self.stats.errors = self.stats.errors.wrapping_add(1);
        }
        // A line that fails to send has no one to tell: the host times out instead.
        let _ = self
            .parts
            .serial
            .write_all(&out[..frame_len.min(out.len())]);
        let _ = self.parts.serial.flush();
        self.last_activity = self.parts.counter.now();
    }

    /// Runs `work` as one measured window and returns its result with the count. The
    /// window covers the pipeline call only: no frame decoding, drawing, UART or log.
    fn measure<T>(counter: &mut C, work: impl FnOnce() -> T) -> (T, u64) {
        counter.start_measurement();
        let result = work();
        let instructions = counter.measured();
        (result, instructions)
    }

    /// Answers one request.
    fn serve(&mut self, request: Request) -> Response {
        match request {
            Request::Info => Response::Info(self.info()),
            Request::Stats => Response::Stats(self.stats),
            Request::SetThreshold { threshold } => {
                self.threshold = threshold;
                Response::ThresholdSet { threshold }
            }
            Request::Calibrate { frames } => {
                let frames = self.buffers.calibrator.start(frames);
                Response::Calibrating { frames }
            }
            Request::CalibrateThreshold { frames } => self.calibrate_threshold(frames),
            Request::Detector => Response::Detector(DetectorState {
                params: self.detector(),
                calibration_left: self.buffers.calibrator.remaining(),
            }),
            Request::Encode { image } => self.score(&image, false),
            Request::Reconstruct { image } => self.score(&image, true),
            Request::Denoise { image } => self.transform(&image, None),
            Request::Compress { image, bits } => self.transform(&image, Some(bits)),
            Request::Decode { z } => {
                let Some(model) = &self.model else {
                    return no_model_latent(z.len());
                };
                let workspace = &mut self.buffers.workspace;
                let (result, instructions) = Self::measure(&mut self.parts.counter, || {
                    pipeline::decode(model, workspace, &z)
                });
                let image = match result {
                    Ok(image) => image,
                    Err(e) => return Response::Error(e.into()),
                };
                log::info!("decode: {=u64} instructions", instructions);
                count_generated(&mut self.stats, instructions);
                let (w, h) = (model.input_width, model.input_height);
                screen::draw_decoded(&mut self.parts.display, &image, w, h);
                self.parts.display.flush();
                Response::Generated(Generated {
                    z,
                    image,
                    instructions,
                })
            }
            Request::Generate { seed, temperature } => {
                let Some(model) = &self.model else {
                    return no_model_latent(0);
                };
                let workspace = &mut self.buffers.workspace;
                let (result, instructions) = Self::measure(&mut self.parts.counter, || {
                    pipeline::generate(model, workspace, seed, temperature)
                });
                let (z, image) = match result {
                    Ok(generated) => generated,
                    Err(e) => return Response::Error(e.into()),
                };
                log::info!("generate: {=u64} instructions", instructions);
                count_generated(&mut self.stats, instructions);
                let (w, h) = (model.input_width, model.input_height);
                screen::draw_generated(&mut self.parts.display, &image, w, h, seed);
                self.parts.display.flush();
                Response::Generated(Generated {
                    z,
                    image,
                    instructions,
                })
            }
        }
    }

    /// Denoise (`bits` is `None`: decoder(mu), shown beside the input) and Compress
    /// (mu packed at `bits` bits per dimension, shown beside the image). One function
    /// for both: they share everything but the pipeline call, the counter and the
    /// screen, and as one they cost about 400 bytes less flash.
    fn transform(&mut self, image: &[u8], bits: Option<u8>) -> Response {
        let Some(model) = &self.model else {
            return no_model_image(image.len());
        };
        let workspace = &mut self.buffers.workspace;
        let (result, instructions) = Self::measure(&mut self.parts.counter, || match bits {
            None => pipeline::denoise(model, workspace, image).map(|image| {
                Response::Denoised(Denoised {
                    image,
                    instructions: 0,
                })
            }),
            Some(bits) => pipeline::compress(model, workspace, image, bits).map(|code| {
                Response::Compressed(Compressed {
                    code,
                    bits,
                    instructions: 0,
                })
            }),
        });
        let mut response = match result {
            Ok(response) => response,
            Err(e) => return Response::Error(e.into()),
        };
        log::info!("denoise or compress: {=u64} instructions", instructions);
        self.stats.instructions = self.stats.instructions.wrapping_add(instructions);
        let (w, h) = (model.input_width, model.input_height);
        let display = &mut self.parts.display;
        match &mut response {
            Response::Denoised(d) => {
                d.instructions = instructions;
                self.stats.denoised = self.stats.denoised.wrapping_add(1);
                screen::draw_denoised(display, image, &d.image, w, h);
            }
            Response::Compressed(c) => {
                c.instructions = instructions;
                self.stats.compressed = self.stats.compressed.wrapping_add(1);
                screen::draw_compressed(display, image, w, h, &c.code);
            }
            // Only the two above are made here.
            _ => {}
        }
        display.flush();
        response
    }

    /// Encode and Reconstruct: both run the encoder and the decoder (the score needs
    /// the reconstruction), and differ only in what they send back.
    fn score(&mut self, image: &[u8], reconstruct: bool) -> Response {
        let Some(model) = &self.model else {
            return no_model_image(image.len());
        };
        let detector = self.detector();
        let (workspace, threshold) = (&mut self.buffers.workspace, self.threshold);
        let (result, instructions) = Self::measure(&mut self.parts.counter, || {
            pipeline::score_image_with(model, workspace, image, threshold, detector.as_ref())
        });
        let scored = match result {
            Ok(scored) => scored,
            Err(e) => return Response::Error(e.into()),
        };
        log::info!("encode: {=u64} instructions", instructions);
        self.stats.instructions = self.stats.instructions.wrapping_add(instructions);
        self.stats.scored = self.stats.scored.wrapping_add(1);
        if scored.score.flagged() {
            self.stats.anomalies = self.stats.anomalies.wrapping_add(1);
        }
        // A frame under calibration is judged by the detector in force before it, then
        // taken as normal; the last one puts the calibrated detector in force.
        if let Some(params) = self.buffers.calibrator.add(&scored.terms) {
            self.calibrated = Some(params);
        }
        let (w, h) = (model.input_width, model.input_height);
        screen::draw_scored(
            &mut self.parts.display,
            image,
            &scored.reconstruction,
            w,
            h,
            &scored.score,
        );
        self.parts.display.flush();
        if reconstruct {
            Response::Reconstructed(Reconstructed {
                image: scored.reconstruction,
                score: scored.score,
                instructions,
            })
        } else {
            Response::Encoded(Encoded {
                mu: scored.posterior.mu,
                logvar: scored.posterior.logvar,
                score: scored.score,
                instructions,
            })
        }
    }

    /// `CalibrateThreshold`: a threshold-only calibration from the detector in force.
    /// Out of line: the detector (276 bytes) is copied on this frame, which must not
    /// sit in `serve`'s frame under every encode (it took the M4's stack within 20
    /// bytes of the RAM budget).
    #[inline(never)]
    fn calibrate_threshold(&mut self, frames: u16) -> Response {
        let in_force = self.detector();
        let frames = self.buffers.calibrator.start_threshold(frames, in_force);
        Response::Calibrating { frames }
    }

    /// The fault detector in force: the last calibration's, or the model's.
    #[inline(never)] // one copy for the requests that need it
    fn detector(&self) -> Option<DetectorParams> {
        self.calibrated
            .or_else(|| self.model.as_ref().and_then(Model::detector))
    }

    fn info(&self) -> DeviceInfo {
        // The crate's version fits the field (checked at build time beside `u16_of`);
        // one that did not would be sent empty rather than cut.
        let firmware_version = env!("CARGO_PKG_VERSION").try_into().unwrap_or_default();
        let mut model_name = heapless::String::new();
        if let Some(m) = &self.model {
            let _ = model_name.push_str(m.name());
        }
        let model = self.model.as_ref();
        let footprint = &self.parts.footprint;
        DeviceInfo {
            protocol_version: PROTOCOL_VERSION,
            firmware_version,
            model_name,
            model_hash: model.map_or(0, |m| m.hash),
            input_width: u16_of(model.map_or(0, |m| m.input_width)),
            input_height: u16_of(model.map_or(0, |m| m.input_height)),
            latent: u16_of(model.map_or(0, |m| m.latent)),
            parameters: u32::try_from(model.map_or(0, |m| m.parameters())).unwrap_or(u32::MAX),
            threshold: self.threshold,
            flash_used: footprint.flash_used(),
            ram_static: footprint.ram_static(),
            stack_high_water: footprint.stack_high_water(),
        }
    }

    /// Draws the idle screen's next frame, unless a byte arrives meanwhile.
    fn idle_frame(&mut self) {
        let detector = self.detector();
        let (Some(model), Some(idle)) = (&self.model, &mut self.idle) else {
            return;
        };
        let workspace = &mut self.buffers.workspace;
        let (w, h) = (model.input_width, model.input_height);
        let display = &mut self.parts.display;
        match idle.screen() {
            IdleScreen::Walk => {
                let (z, frame) = idle.walk().next_point();
                let Ok(image) = pipeline::decode(model, workspace, &z) else {
                    return;
                };
                // The host spoke while the frame was decoded: serve it first, drop
                // the frame.
                if self.parts.serial.read_ready().unwrap_or(true) {
                    return;
                }
                screen::draw_walk(display, &image, w, h, frame);
            }
            IdleScreen::Demo => match idle.next_demo_step() {
                DemoStep::Score { caption, pixels } => {
                    let threshold = self.threshold;
                    let Ok(scored) = pipeline::score_image_with(
                        model,
                        workspace,
                        pixels,
                        threshold,
                        detector.as_ref(),
                    ) else {
                        return;
                    };
                    if self.parts.serial.read_ready().unwrap_or(true) {
                        return;
                    }
                    let recon = &scored.reconstruction;
                    screen::draw_demo_scored(display, pixels, recon, w, h, &scored.score, caption);
                }
                DemoStep::Generate { seed } => {
                    let Ok((_, image)) = pipeline::generate(model, workspace, seed, Q16_ONE) else {
                        return;
                    };
                    if self.parts.serial.read_ready().unwrap_or(true) {
                        return;
                    }
                    screen::draw_generated(display, &image, w, h, seed);
                }
            },
        }
        self.parts.display.flush();
    }
}

/// Draws the boot screen for `model` (`None`: the model did not parse).
pub fn draw_boot_screen<D: screen::Screen>(display: &mut D, model: Option<&Model<'_>>) {
    match model {
        Some(m) => screen::draw_boot(
            display,
            m.name(),
            m.input_width,
            m.input_height,
            m.latent,
            m.parameters(),
            m.hash,
        ),
        None => screen::draw_boot(display, "INVALID MODEL", 0, 0, 0, 0, 0),
    }
}

/// Counts one decoded image and its instructions.
fn count_generated(stats: &mut Stats, instructions: u64) {
    stats.instructions = stats.instructions.wrapping_add(instructions);
    stats.generated = stats.generated.wrapping_add(1);
}

/// The reply to an image request when the model failed to parse: the model takes
/// nothing.
fn no_model_image(got: usize) -> Response {
    Response::Error(ErrorCode::WrongImageSize {
        expected: 0,
        got: u16_of(got),
    })
}

/// The reply to a latent request when the model failed to parse: the model takes
/// nothing (Info then reports zero sizes too).
fn no_model_latent(got: usize) -> Response {
    Response::Error(ErrorCode::WrongLatentSize {
        expected: 0,
        got: u16_of(got),
    })
}
