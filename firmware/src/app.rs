//! The request server and the idle loop.
//!
//! The line carries nothing but frames. Every frame the reader completes (every zero
//! byte ends one) gets exactly one response frame: the answer, or
//! [`Response::Error`] for a frame that does not decode, a request the model cannot
//! take, or an over-long frame (reported once, as soon as it overflows; its bytes up to
//! the next zero are then skipped). The screen is updated before the response is sent,
//! so a screendump taken after a reply shows that reply's screen.

use tinyvae_shared::fixed::Q16;
use tinyvae_shared::model::Model;
use tinyvae_shared::pipeline::{self, Workspace};
use tinyvae_shared::protocol::{
    decode_frame, encode_frame, DeviceInfo, Encoded, ErrorCode, FrameEvent, FrameReader, Generated,
    Reconstructed, Request, Response, Stats, MAX_FRAME, MAX_PAYLOAD, PROTOCOL_VERSION,
};
use tinyvae_screens::{self as screen, FrameBuffer};

use crate::clock::Clock;
use crate::oled::Oled;
use crate::stack;
use crate::uart::Uart0;
use crate::walk::Walk;

/// Instructions without a byte on the line before the idle walk starts: three
/// seconds on a 50 MHz part, one to two under QEMU (~100 million a second when idle).
const IDLE_AFTER: u64 = 150_000_000;
/// Instructions from the end of one walk frame to the start of the next: a slow walk
/// of a few frames a second (a frame itself costs ~0.6 million: decode, draw, flush).
const WALK_FRAME_EVERY: u64 = 20_000_000;
/// Instructions spent between two polls of an idle line.
const IDLE_SPIN: u32 = 2_000;

/// The buffers too large for the stack; one static instance lives in `main`.
pub struct Buffers {
    /// Collects frame bodies from the line.
    pub reader: FrameReader,
    /// Inference scratch.
    pub workspace: Workspace,
    /// The screen.
    pub frame: FrameBuffer,
    /// Un-stuffed response payload.
    pub scratch: [u8; MAX_PAYLOAD],
    /// Response frame.
    pub out: [u8; MAX_FRAME],
}

impl Buffers {
    /// Zeroed buffers (so they live in .bss).
    pub const fn new() -> Self {
        Self {
            reader: FrameReader::new(),
            workspace: Workspace::new(),
            frame: FrameBuffer::new(),
            scratch: [0; MAX_PAYLOAD],
            out: [0; MAX_FRAME],
        }
    }
}

/// The firmware's state.
pub struct App {
    model: Option<Model<'static>>,
    threshold: Q16,
    stats: Stats,
    buffers: &'static mut Buffers,
    clock: Clock,
    uart: Uart0,
    oled: Oled,
    walk: Option<Walk>,
    /// When the last byte arrived or the last reply left, in instructions.
    last_activity: u64,
    /// When the walk may draw its next frame.
    next_walk_frame: u64,
}

/// Clips a size to the protocol's u16 fields.
fn u16_of(v: usize) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

impl App {
    /// Takes the peripherals and the parsed model (or why it failed to parse: the
    /// build validated it, but a failure is served as error replies, not a panic).
    pub fn new(
        model: Option<Model<'static>>,
        buffers: &'static mut Buffers,
        clock: Clock,
        uart: Uart0,
        oled: Oled,
    ) -> Self {
        let threshold = model.as_ref().map_or(0, |m| m.threshold);
        let walk = model.as_ref().map(|m| Walk::new(m.latent));
        let mut app = Self {
            model,
            threshold,
            stats: Stats::default(),
            buffers,
            clock,
            uart,
            oled,
            walk,
            last_activity: 0,
            next_walk_frame: 0,
        };
        app.show_boot();
        app.last_activity = app.clock.now();
        app
    }

    fn show_boot(&mut self) {
        let fb = &mut self.buffers.frame;
        match &self.model {
            Some(m) => screen::draw_boot(
                fb,
                m.name(),
                m.input_width,
                m.input_height,
                m.latent,
                m.parameters(),
                m.hash,
            ),
            None => screen::draw_boot(fb, "INVALID MODEL", 0, 0, 0, 0, 0),
        }
        self.oled.flush(&self.buffers.frame);
    }

    /// Serves the line forever, walking the latent space when idle.
    pub fn run(&mut self) -> ! {
        loop {
            if let Some(byte) = self.uart.try_read() {
                self.last_activity = self.clock.now();
                self.on_byte(byte);
                continue;
            }
            let now = self.clock.now();
            if now.wrapping_sub(self.last_activity) >= IDLE_AFTER && now >= self.next_walk_frame {
                self.walk_frame();
                self.next_walk_frame = self.clock.now() + WALK_FRAME_EVERY;
            } else {
                // Nothing to do: run a moment without touching a peripheral. QEMU
                // emulates register accesses far more slowly than plain instructions,
                // so a loop that only polled would make the idle timer crawl; two
                // microseconds of latency are nothing to the host.
                cortex_m::asm::delay(IDLE_SPIN);
            }
        }
    }

    fn on_byte(&mut self, byte: u8) {
        match self.buffers.reader.push(byte) {
            FrameEvent::Pending => {}
            FrameEvent::Overflow => {
                self.stats.frames = self.stats.frames.wrapping_add(1);
                self.reply(&Response::Error(ErrorCode::FrameTooLong));
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
            Err(_) => (
                encode_frame(&Response::Error(ErrorCode::ResponseTooLarge), scratch, out)
                    .unwrap_or(0),
                true,
            ),
        };
        if is_error {
            self.stats.errors = self.stats.errors.wrapping_add(1);
        }
        self.uart.write_all(&out[..frame_len.min(out.len())]);
        self.uart.enable_fifo_when_idle();
        self.last_activity = self.clock.now();
    }

    /// Answers one request. Inference is timed alone: the instruction counts cover the
    /// pipeline call, not frame decoding, drawing or the UART.
    fn serve(&mut self, request: Request) -> Response {
        match request {
            Request::Info => Response::Info(self.info()),
            Request::Stats => Response::Stats(self.stats),
            Request::SetThreshold { threshold } => {
                self.threshold = threshold;
                Response::ThresholdSet { threshold }
            }
            Request::Encode { image } => self.score(&image, false),
            Request::Reconstruct { image } => self.score(&image, true),
            Request::Decode { z } => {
                let Some(model) = &self.model else {
                    return no_model_latent(z.len());
                };
                self.clock.start_measurement();
                let result = pipeline::decode(model, &mut self.buffers.workspace, &z);
                let instructions = self.clock.measured();
                match result {
                    Ok(image) => {
                        self.stats.instructions =
                            self.stats.instructions.wrapping_add(instructions);
                        self.stats.generated = self.stats.generated.wrapping_add(1);
                        let (w, h) = (model.input_width, model.input_height);
                        screen::draw_decoded(&mut self.buffers.frame, &image, w, h);
                        self.oled.flush(&self.buffers.frame);
                        Response::Generated(Generated {
                            z,
                            image,
                            instructions,
                        })
                    }
                    Err(e) => Response::Error(e.into()),
                }
            }
            Request::Generate { seed, temperature } => {
                let Some(model) = &self.model else {
                    return no_model_latent(0);
                };
                self.clock.start_measurement();
                let result =
                    pipeline::generate(model, &mut self.buffers.workspace, seed, temperature);
                let instructions = self.clock.measured();
                match result {
                    Ok((z, image)) => {
                        self.stats.instructions =
                            self.stats.instructions.wrapping_add(instructions);
                        self.stats.generated = self.stats.generated.wrapping_add(1);
                        let (w, h) = (model.input_width, model.input_height);
                        screen::draw_generated(&mut self.buffers.frame, &image, w, h, seed);
                        self.oled.flush(&self.buffers.frame);
                        Response::Generated(Generated {
                            z,
                            image,
                            instructions,
                        })
                    }
                    Err(e) => Response::Error(e.into()),
                }
            }
        }
    }

    /// Encode and Reconstruct: both run the encoder and the decoder (the score needs
    /// the reconstruction), and differ only in what they send back.
    fn score(&mut self, image: &[u8], reconstruct: bool) -> Response {
        let Some(model) = &self.model else {
            return Response::Error(ErrorCode::WrongImageSize {
                expected: 0,
                got: u16_of(image.len()),
            });
        };
        self.clock.start_measurement();
        let result =
            pipeline::score_image(model, &mut self.buffers.workspace, image, self.threshold);
        let instructions = self.clock.measured();
        let scored = match result {
            Ok(scored) => scored,
            Err(e) => return Response::Error(e.into()),
        };
        self.stats.instructions = self.stats.instructions.wrapping_add(instructions);
        self.stats.scored = self.stats.scored.wrapping_add(1);
        if scored.score.anomalous {
            self.stats.anomalies = self.stats.anomalies.wrapping_add(1);
        }
        let (w, h) = (model.input_width, model.input_height);
        screen::draw_scored(
            &mut self.buffers.frame,
            image,
            &scored.reconstruction,
            w,
            h,
            &scored.score,
        );
        self.oled.flush(&self.buffers.frame);
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

    fn info(&self) -> DeviceInfo {
        let mut firmware_version = heapless::String::new();
        // Versions longer than the field are cut: the field is for display.
        for c in env!("CARGO_PKG_VERSION").chars() {
            if firmware_version.push(c).is_err() {
                break;
            }
        }
        let mut model_name = heapless::String::new();
        if let Some(m) = &self.model {
            let _ = model_name.push_str(m.name());
        }
        let model = self.model.as_ref();
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
            flash_used: stack::flash_used(),
            ram_static: stack::static_ram(),
            stack_high_water: stack::high_water(),
        }
    }

    /// Draws the next frame of the idle walk, unless a byte arrives meanwhile.
    fn walk_frame(&mut self) {
        let (Some(model), Some(walk)) = (&self.model, &mut self.walk) else {
            return;
        };
        let (z, frame) = walk.next();
        let Ok(image) = pipeline::decode(model, &mut self.buffers.workspace, &z) else {
            return;
        };
        // The host spoke while the frame was decoded: serve it first, drop the frame.
        if self.uart.rx_ready() {
            return;
        }
        let (w, h) = (model.input_width, model.input_height);
        screen::draw_walk(&mut self.buffers.frame, &image, w, h, frame);
        self.oled.flush(&self.buffers.frame);
    }
}

/// The reply to a latent request when the model failed to parse: the model takes
/// nothing (Info then reports zero sizes too).
fn no_model_latent(got: usize) -> Response {
    Response::Error(ErrorCode::WrongLatentSize {
        expected: 0,
        got: u16_of(got),
    })
}
