//! [`Emulator`]: the firmware running in `qemu-system-arm -M lm3s6965evb`, its
//! serial port on a pty, driven over QMP.
//!
//! QEMU starts paused (`-S`): output written before anyone opens the pty is lost, so
//! the caller opens [`Emulator::pty_path`] first and then calls [`Emulator::resume`].
//! `-icount shift=0` makes the guest's SysTick count instructions, which is what the
//! firmware reports per request. Dropping the `Emulator` kills QEMU, so a failing test
//! leaves no process behind.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::error::EmulateError;
use super::qmp::Qmp;
use crate::serial::{DeviceClient, SerialError};

/// How to start QEMU.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The firmware ELF.
    pub firmware: PathBuf,
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The board.
    pub machine: String,
    /// The core QEMU puts on the board (`-cpu`, e.g. `cortex-m0`, `cortex-m4`); the
    /// board's own (a Cortex-M3 on the lm3s6965evb) when `None`. It must match the
    /// firmware's target.
    pub cpu: Option<String>,
    /// Where [`boot`] saves a screenshot of the boot screen: taken as soon as the
    /// firmware has drawn it, before the first request (the screen changes after).
    pub boot_screendump: Option<PathBuf>,
    /// Time allowed for QEMU to start and answer QMP.
    pub startup_timeout: Duration,
}

impl EmulatorConfig {
    /// The defaults: `qemu-system-arm -M lm3s6965evb`, 30 s to start.
    pub fn new(firmware: impl Into<PathBuf>) -> Self {
        Self {
            firmware: firmware.into(),
            qemu: "qemu-system-arm".into(),
            machine: "lm3s6965evb".into(),
            cpu: None,
            boot_screendump: None,
            startup_timeout: Duration::from_secs(30),
        }
    }
}

/// A running (or paused) QEMU with the firmware.
pub struct Emulator {
    child: Child,
    qmp: Qmp,
    pty: PathBuf,
    socket: PathBuf,
    output: Arc<Mutex<String>>,
}

/// Distinguishes the QMP sockets of emulators started by one process.
static INSTANCE: AtomicU64 = AtomicU64::new(0);

/// Collects a child's output in the background, so QEMU never blocks on a full pipe
/// and its messages are at hand when it fails.
fn collect(mut stream: impl Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = sink.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
}

impl Emulator {
    /// Starts QEMU paused and connects to its QMP socket.
    pub fn spawn(config: &EmulatorConfig) -> Result<Self, EmulateError> {
        let socket = std::env::temp_dir().join(format!(
            "tinyvae-qmp-{}-{}.sock",
            std::process::id(),
            INSTANCE.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&socket);
        let mut child = Command::new(&config.qemu)
            .arg("-M")
            .arg(&config.machine)
            .args(config.cpu.iter().flat_map(|cpu| ["-cpu", cpu.as_str()]))
            .args([
                "-display", "none", "-icount", "shift=0", "-serial", "pty", "-monitor", "none",
            ])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket.display()))
            .arg("-S")
            .arg("-kernel")
            .arg(&config.firmware)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| EmulateError::Spawn {
                program: config.qemu.display().to_string(),
                source,
            })?;
        let output = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            collect(out, output.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(err, output.clone());
        }
        let deadline = Instant::now() + config.startup_timeout;
        let qmp = {
            let output = output.clone();
            let child = &mut child;
            Qmp::connect(&socket, deadline, || exited(child, &output))
        };
        let qmp = match qmp {
            Ok(qmp) => qmp,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_file(&socket);
                return Err(e);
            }
        };
        let mut emulator = Self {
            child,
            qmp,
            pty: PathBuf::new(),
            socket,
            output,
        };
        emulator.pty = emulator.find_pty()?;
        Ok(emulator)
    }

    /// The serial port's pty, from QMP `query-chardev`.
    fn find_pty(&mut self) -> Result<PathBuf, EmulateError> {
        let devices = self.qmp.execute("query-chardev", None)?;
        let list = devices.as_array().cloned().unwrap_or_default();
        list.iter()
            .find(|d| d["label"] == "serial0")
            .and_then(|d| d["filename"].as_str())
            .and_then(|f| f.strip_prefix("pty:"))
            .map(PathBuf::from)
            .ok_or_else(|| EmulateError::NoPty(devices.to_string()))
    }

    /// The pty of the board's UART0.
    pub fn pty_path(&self) -> &Path {
        &self.pty
    }

    /// Starts (or continues) the guest.
    pub fn resume(&mut self) -> Result<(), EmulateError> {
        self.qmp.execute("cont", None).map(drop)
    }

    /// Saves the OLED as a PNG (512x256: QEMU magnifies the 128x64 panel 4x) and
    /// waits until the file is complete.
    pub fn screendump(&mut self, path: &Path) -> Result<(), EmulateError> {
        let path = std::path::absolute(path)?;
        let _ = std::fs::remove_file(&path);
        self.qmp.execute(
            "screendump",
            Some(json!({ "filename": path.display().to_string(), "format": "png" })),
        )?;
        // QEMU answers once the dump is written; poll a little in case it is not.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(EmulateError::NoScreendump(path))
    }

    /// Saves screenshots to `path` until one with a lit pixel has stayed the same for
    /// [`STEADY`], or `limit` passes: the first picture the firmware puts on the
    /// (blank at reset) panel, once its flush is complete. (A flush takes well under a
    /// millisecond of guest time; a loaded host can stall the guest longer, so callers
    /// that compare the picture retry on a mismatch.)
    pub fn screendump_first_picture(
        &mut self,
        path: &Path,
        limit: Duration,
    ) -> Result<(), EmulateError> {
        const STEADY: Duration = Duration::from_millis(60);
        let deadline = Instant::now() + limit;
        let mut steady: Option<(Vec<u8>, Instant)> = None;
        loop {
            self.screendump(path)?;
            let pixels = image::open(path)
                .map(|png| png.to_luma8().into_raw())
                .unwrap_or_default();
            if !pixels.iter().any(|&p| p != 0) {
                steady = None;
            } else {
                match &steady {
                    Some((seen, since)) if *seen == pixels => {
                        if since.elapsed() >= STEADY {
                            return Ok(());
                        }
                    }
                    _ => steady = Some((pixels, Instant::now())),
                }
            }
            if Instant::now() >= deadline {
                return Err(EmulateError::NoScreendump(path.to_path_buf()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The QMP session, for commands this type does not wrap.
    pub fn qmp(&mut self) -> &mut Qmp {
        &mut self.qmp
    }

    /// Everything QEMU printed so far.
    pub fn output(&self) -> String {
        self.output.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// An error if QEMU has exited.
    pub fn check_alive(&mut self) -> Result<(), EmulateError> {
        exited(&mut self.child, &self.output)
    }

    /// Stops QEMU now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// `Err(Exited)` once the child has exited, with its output.
fn exited(child: &mut Child, output: &Mutex<String>) -> Result<(), EmulateError> {
    match child.try_wait()? {
        None => Ok(()),
        Some(status) => {
            // Give the collector threads a moment to read the last messages.
            std::thread::sleep(Duration::from_millis(50));
            Err(EmulateError::Exited {
                status: status.to_string(),
                output: output.lock().map(|s| s.clone()).unwrap_or_default(),
            })
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Why [`boot`] failed: starting the emulator or reaching the firmware.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The emulator failed.
    #[error(transparent)]
    Emulate(#[from] EmulateError),
    /// The serial link failed.
    #[error("{error}\nQEMU output:\n{output}")]
    Serial {
        /// The error.
        #[source]
        error: SerialError,
        /// What QEMU printed.
        output: String,
    },
}

/// Starts the firmware in QEMU and returns it with a client that has seen the device
/// answer `Info` (the pty is opened before the guest runs, so nothing is lost).
pub fn boot(
    config: &EmulatorConfig,
    ready_timeout: Duration,
) -> Result<(Emulator, DeviceClient, tinyvae_shared::protocol::DeviceInfo), BootError> {
    let mut emulator = Emulator::spawn(config)?;
    let serial = |error, emulator: &Emulator| BootError::Serial {
        error,
        output: emulator.output(),
    };
    let path = emulator.pty_path().display().to_string();
    let port = crate::serial::client::open_port(&path, 115_200);
    let port = match port {
        Ok(p) => p,
        Err(e) => return Err(serial(e, &emulator)),
    };
    let mut client = match DeviceClient::from_port(port) {
        Ok(c) => c,
        Err(e) => return Err(serial(e, &emulator)),
    };
    emulator.resume()?;
    if let Some(path) = &config.boot_screendump {
        // The boot screen stays until the idle walk starts, 150 million instructions
        // after boot (and after the last byte), so it is up well before anything can
        // replace it.
        emulator.screendump_first_picture(path, ready_timeout)?;
    }
    match client.wait_ready(ready_timeout) {
        Ok(info) => Ok((emulator, client, info)),
        Err(e) => Err(serial(e, &emulator)),
    }
}
