//! [`DeviceClient`]: one request, one response, over any serial port.
//!
//! The device answers every frame with exactly one response frame, so the client keeps
//! the two streams paired simply by never sending a request before the previous answer
//! arrived. Reads use short port timeouts and loop until a per-request deadline,
//! because a pty (QEMU) or a USB CDC port can deliver the first bytes hundreds of
//! milliseconds late and a loaded machine can stall the emulator for seconds.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use serialport::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, StopBits};
use tinyvae_shared::fixed::Q16;
use tinyvae_shared::protocol::{
    decode_frame, encode_frame, Compressed, Denoised, DetectorState, DeviceInfo, Encoded,
    Generated, Latent, Pixels, Reconstructed, Request, Response, Stats, MAX_FRAME, MAX_PAYLOAD,
};

use super::error::SerialError;

/// How long one `read` call on the port may block; the request deadline is enforced
/// by looping, so this only bounds how late a deadline is noticed.
const POLL: Duration = Duration::from_millis(250);

/// Default time a request may take before [`SerialError::Timeout`]: generous, since an
/// emulated device on a loaded CI machine can pause for seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Opens `path` as a serial port with 8N1, no flow control, at `baud` (which QEMU's
/// pty accepts and ignores).
pub fn open_port(path: &str, baud: u32) -> Result<Box<dyn SerialPort>, SerialError> {
    serialport::new(path, baud)
        .data_bits(DataBits::Eight)
        .parity(Parity::None)
        .stop_bits(StopBits::One)
        .flow_control(FlowControl::None)
        .timeout(POLL)
        .open()
        .map_err(|source| SerialError::Open {
            path: path.to_owned(),
            source,
        })
}

/// A request/response client for the tinyvae firmware.
pub struct DeviceClient {
    port: Box<dyn SerialPort>,
    timeout: Duration,
    /// Bytes of the frame being received (without the terminating zero).
    pending: Vec<u8>,
    /// True while skipping the rest of an over-long frame.
    skipping: bool,
    scratch: Box<[u8; MAX_PAYLOAD]>,
    out: Box<[u8; MAX_FRAME]>,
}

impl DeviceClient {
    /// Opens the port at `path` (see [`open_port`]) and drops any stale input.
    pub fn open(path: &str, baud: u32) -> Result<Self, SerialError> {
        Self::from_port(open_port(path, baud)?)
    }

    /// Wraps an already opened port and drops any stale input.
    pub fn from_port(mut port: Box<dyn SerialPort>) -> Result<Self, SerialError> {
        port.set_timeout(POLL).map_err(|source| SerialError::Open {
            path: port.name().unwrap_or_default(),
            source,
        })?;
        // A pty may not support flushing; stale bytes are then handled by `wait_ready`.
        let _ = port.clear(ClearBuffer::Input);
        Ok(Self {
            port,
            timeout: DEFAULT_TIMEOUT,
            pending: Vec::with_capacity(MAX_FRAME),
            skipping: false,
            scratch: Box::new([0; MAX_PAYLOAD]),
            out: Box::new([0; MAX_FRAME]),
        })
    }

    /// Sets the time each request may take.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The time each request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `request` and returns the device's one response to it.
    ///
    /// A [`Response::Error`] is returned as a response, not an error: callers that
    /// probe the device with bad input need to see it. The typed helpers
    /// ([`DeviceClient::info`], ...) turn it into [`SerialError::Device`].
    pub fn request(&mut self, request: &Request) -> Result<Response, SerialError> {
        let n = encode_frame(request, &mut self.scratch[..], &mut self.out[..])?;
        self.port.write_all(&self.out[..n])?;
        self.port.flush()?;
        self.read_response(Instant::now() + self.timeout)
    }

    /// Writes raw bytes (for instance a deliberately malformed frame) without waiting
    /// for anything.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), SerialError> {
        self.port.write_all(bytes)?;
        self.port.flush()?;
        Ok(())
    }

    /// Reads the next response frame, waiting until `deadline`.
    ///
    /// Empty frames (a lone zero, which a sender may use to resynchronise) are
    /// skipped; a non-empty frame that does not decode is the device's reply gone bad
    /// on the line, so it is reported as [`SerialError::Frame`] and the pairing of
    /// requests and responses is kept.
    pub fn read_response(&mut self, deadline: Instant) -> Result<Response, SerialError> {
        let started = Instant::now();
        let mut buf = [0u8; 512];
        loop {
            // Bytes left over from an earlier read may already hold a frame.
            if let Some(result) = self.take_frame() {
                return result;
            }
            if Instant::now() >= deadline {
                return Err(SerialError::Timeout {
                    waited: started.elapsed(),
                    received: self.pending.len(),
                });
            }
            match self.port.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(5)),
                Ok(n) => self.stash(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Raw bytes received but not yet consumed as frames.
    fn stash(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// Cuts the first complete frame out of `pending`, if there is one.
    fn take_frame(&mut self) -> Option<Result<Response, SerialError>> {
        loop {
            let Some(end) = self.pending.iter().position(|&b| b == 0) else {
                if self.pending.len() > MAX_FRAME {
                    // Longer than any valid frame: drop it up to its end.
                    self.pending.clear();
                    self.skipping = true;
                }
                return None;
            };
            let mut body: Vec<u8> = self.pending.drain(..=end).collect();
            body.pop();
            if std::mem::take(&mut self.skipping) {
                return Some(Err(SerialError::Frame(
                    tinyvae_shared::protocol::FrameError::TooLong,
                )));
            }
            if body.is_empty() {
                continue;
            }
            return Some(decode_frame::<Response>(&mut body).map_err(SerialError::from));
        }
    }

    /// Reads and drops everything that arrives until the line has been quiet for
    /// `quiet` (or `limit` passed). Returns the number of bytes dropped.
    pub fn drain(&mut self, quiet: Duration, limit: Duration) -> Result<usize, SerialError> {
        let start = Instant::now();
        let mut last = Instant::now();
        let mut dropped = std::mem::take(&mut self.pending).len();
        self.skipping = false;
        let mut buf = [0u8; 512];
        while last.elapsed() < quiet && start.elapsed() < limit {
            match self.port.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(5)),
                Ok(n) => {
                    dropped += n;
                    last = Instant::now();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(dropped)
    }

    /// Waits for a freshly started device: sends `Info` until one is answered (bytes
    /// sent before the firmware configured its UART are lost, and a request cut in
    /// half earns an error reply), then drains late replies to earlier attempts so
    /// that later requests pair one to one with their responses.
    pub fn wait_ready(&mut self, limit: Duration) -> Result<DeviceInfo, SerialError> {
        let start = Instant::now();
        let attempt = Duration::from_millis(1500);
        while start.elapsed() < limit {
            let n = encode_frame(&Request::Info, &mut self.scratch[..], &mut self.out[..])?;
            self.port.write_all(&self.out[..n])?;
            self.port.flush()?;
            match self.read_response(Instant::now() + attempt) {
                Ok(Response::Info(info)) => {
                    self.drain(Duration::from_millis(300), Duration::from_secs(5))?;
                    return Ok(info);
                }
                Ok(_) | Err(SerialError::Timeout { .. } | SerialError::Frame(_)) => {
                    self.drain(Duration::from_millis(100), Duration::from_secs(2))?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(SerialError::NotReady(start.elapsed()))
    }

    /// Asks for the device's description.
    pub fn info(&mut self) -> Result<DeviceInfo, SerialError> {
        match self.request(&Request::Info)? {
            Response::Info(info) => Ok(info),
            other => Err(unexpected("Info", other)),
        }
    }

    /// Encodes and scores one image.
    pub fn encode(&mut self, image: &[u8]) -> Result<Encoded, SerialError> {
        let image = pixels(image)?;
        match self.request(&Request::Encode { image })? {
            Response::Encoded(e) => Ok(e),
            other => Err(unexpected("Encoded", other)),
        }
    }

    /// Encodes one image, decodes its mean and scores it.
    pub fn reconstruct(&mut self, image: &[u8]) -> Result<Reconstructed, SerialError> {
        let image = pixels(image)?;
        match self.request(&Request::Reconstruct { image })? {
            Response::Reconstructed(r) => Ok(r),
            other => Err(unexpected("Reconstructed", other)),
        }
    }

    /// Encodes one image and decodes its mean: the device's denoised image.
    pub fn denoise(&mut self, image: &[u8]) -> Result<Denoised, SerialError> {
        let image = pixels(image)?;
        match self.request(&Request::Denoise { image })? {
            Response::Denoised(d) => Ok(d),
            other => Err(unexpected("Denoised", other)),
        }
    }

    /// Encodes one image and packs its mean at `bits` bits per dimension. A depth
    /// outside 1 to 8 comes back as the device's `WrongCodeBits` error.
    pub fn compress(&mut self, image: &[u8], bits: u8) -> Result<Compressed, SerialError> {
        let image = pixels(image)?;
        match self.request(&Request::Compress { image, bits })? {
            Response::Compressed(c) => Ok(c),
            other => Err(unexpected("Compressed", other)),
        }
    }

    /// Decodes a latent vector.
    pub fn decode(&mut self, z: &[Q16]) -> Result<Generated, SerialError> {
        let z = Latent::from_slice(z).map_err(|_| SerialError::Frame(too_large()))?;
        match self.request(&Request::Decode { z })? {
            Response::Generated(g) => Ok(g),
            other => Err(unexpected("Generated", other)),
        }
    }

    /// Samples the prior with the device's seeded generator and decodes the sample.
    pub fn generate(&mut self, seed: u64, temperature: Q16) -> Result<Generated, SerialError> {
        match self.request(&Request::Generate { seed, temperature })? {
            Response::Generated(g) => Ok(g),
            other => Err(unexpected("Generated", other)),
        }
    }

    /// Replaces the anomaly threshold; returns the one now in force.
    pub fn set_threshold(&mut self, threshold: Q16) -> Result<Q16, SerialError> {
        match self.request(&Request::SetThreshold { threshold })? {
            Response::ThresholdSet { threshold } => Ok(threshold),
            other => Err(unexpected("ThresholdSet", other)),
        }
    }

    /// Starts a calibration on the next `frames` scored images (0 cancels one under
    /// way); returns the frames the device will take.
    pub fn calibrate(&mut self, frames: u16) -> Result<u16, SerialError> {
        match self.request(&Request::Calibrate { frames })? {
            Response::Calibrating { frames } => Ok(frames),
            other => Err(unexpected("Calibrating", other)),
        }
    }

    /// Starts a threshold-only calibration on the next `frames` scored images: the
    /// terms of the detector in force stay, the threshold is set from the frames (0
    /// cancels a calibration under way); returns the frames the device will take.
    pub fn calibrate_threshold(&mut self, frames: u16) -> Result<u16, SerialError> {
        match self.request(&Request::CalibrateThreshold { frames })? {
            Response::Calibrating { frames } => Ok(frames),
            other => Err(unexpected("Calibrating", other)),
        }
    }

    /// Reads the fault detector in force and the calibration's progress.
    pub fn detector(&mut self) -> Result<DetectorState, SerialError> {
        match self.request(&Request::Detector)? {
            Response::Detector(state) => Ok(state),
            other => Err(unexpected("Detector", other)),
        }
    }

    /// Reads the request counters.
    pub fn stats(&mut self) -> Result<Stats, SerialError> {
        match self.request(&Request::Stats)? {
            Response::Stats(s) => Ok(s),
            other => Err(unexpected("Stats", other)),
        }
    }
}

fn too_large() -> tinyvae_shared::protocol::FrameError {
    tinyvae_shared::protocol::FrameError::BufferTooSmall
}

fn pixels(image: &[u8]) -> Result<Pixels, SerialError> {
    Pixels::from_slice(image).map_err(|_| SerialError::Frame(too_large()))
}

/// The error for a response of the wrong kind; a device error keeps its code.
fn unexpected(expected: &'static str, got: Response) -> SerialError {
    match got {
        Response::Error(code) => SerialError::Device(code),
        other => SerialError::Unexpected {
            expected,
            got: format!("{other:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serialport::TTYPort;
    use tinyvae_shared::protocol::{ErrorCode, FrameReader};

    /// A fake device on the master side of a pty pair: answers `Info` with a fixed
    /// description, everything else with an error, like the firmware's framing does.
    /// The thread hands the master back, so the pty stays open until it is joined
    /// (closing it would discard replies the client has not read yet).
    fn fake_device(mut master: TTYPort, frames: usize) -> std::thread::JoinHandle<TTYPort> {
        std::thread::spawn(move || {
            let _ = master.set_timeout(Duration::from_secs(10));
            let mut reader = FrameReader::new();
            let mut scratch = [0u8; MAX_PAYLOAD];
            let mut out = [0u8; MAX_FRAME];
            let mut served = 0;
            let mut byte = [0u8; 1];
            while served < frames {
                if master.read(&mut byte).unwrap_or(0) == 0 {
                    continue;
                }
                let response = match reader.push(byte[0]) {
                    tinyvae_shared::protocol::FrameEvent::Pending => continue,
                    tinyvae_shared::protocol::FrameEvent::Overflow => {
                        Response::Error(ErrorCode::FrameTooLong)
                    }
                    tinyvae_shared::protocol::FrameEvent::Frame(n) => {
                        match decode_frame::<Request>(reader.body_mut(n)) {
                            Ok(Request::Info) => Response::Info(info()),
                            Ok(_) => Response::Error(ErrorCode::BadMessage),
                            Err(e) => Response::Error(e.into()),
                        }
                    }
                };
                let n = encode_frame(&response, &mut scratch, &mut out).expect("fits");
                master.write_all(&out[..n]).expect("write");
                served += 1;
            }
            master
        })
    }

    fn info() -> DeviceInfo {
        DeviceInfo {
            protocol_version: 1,
            firmware_version: "0.1.0".try_into().expect("short"),
            model_name: "fake".try_into().expect("short"),
            model_hash: 0xdead_beef,
            input_width: 28,
            input_height: 28,
            latent: 16,
            parameters: 1,
            threshold: 5 << 16,
            flash_used: 1,
            ram_static: 2,
            stack_high_water: 3,
        }
    }

    #[test]
    fn pairs_requests_and_errors_over_a_pty() {
        let (master, slave) = TTYPort::pair().expect("pty pair");
        let device = fake_device(master, 4);
        let mut client = DeviceClient::from_port(Box::new(slave)).expect("client");
        client.set_timeout(Duration::from_secs(10));
        assert_eq!(client.info().expect("info"), info());
        client.send_raw(&[1, 2, 3, 0]).expect("send");
        let reply = client
            .read_response(Instant::now() + Duration::from_secs(10))
            .expect("reply");
        assert!(matches!(reply, Response::Error(_)), "{reply:?}");
        assert!(matches!(
            client.stats(),
            Err(SerialError::Device(ErrorCode::BadMessage))
        ));
        assert_eq!(client.info().expect("info again"), info());
        device.join().expect("device thread");
    }

    #[test]
    fn times_out_without_a_device() {
        let (_master, slave) = TTYPort::pair().expect("pty pair");
        let mut client = DeviceClient::from_port(Box::new(slave)).expect("client");
        client.set_timeout(Duration::from_millis(600));
        assert!(matches!(client.info(), Err(SerialError::Timeout { .. })));
    }
}
