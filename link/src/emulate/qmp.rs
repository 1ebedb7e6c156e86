//! A minimal QMP (QEMU Machine Protocol) client: newline-delimited JSON over a Unix
//! socket. Enough for `cont`, `query-chardev`, `screendump` and `quit`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::error::EmulateError;

/// How long one QMP command may take: a screendump on a loaded machine can be slow.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected, capability-negotiated QMP session.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to the QMP socket at `path`, retrying until `deadline` (QEMU creates
    /// the socket shortly after it starts), then reads the greeting and negotiates
    /// capabilities. `alive` is polled between attempts so a QEMU that died at start
    /// is reported at once.
    pub fn connect(
        path: &Path,
        deadline: Instant,
        mut alive: impl FnMut() -> Result<(), EmulateError>,
    ) -> Result<Self, EmulateError> {
        let stream = loop {
            alive()?;
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(EmulateError::Qmp(format!(
                        "cannot connect to {}: {e}",
                        path.display()
                    )))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        stream.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut qmp = Self {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(EmulateError::Qmp(format!("unexpected greeting {greeting}")));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value, EmulateError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(EmulateError::Qmp("QEMU closed the QMP socket".into()));
        }
        serde_json::from_str(&line)
            .map_err(|e| EmulateError::Qmp(format!("bad QMP message {line:?}: {e}")))
    }

    /// Runs `command` with optional `arguments` and returns its `return` value.
    /// Asynchronous events that arrive meanwhile are skipped.
    pub fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, EmulateError> {
        let mut message = json!({ "execute": command });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        let mut text = message.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes())?;
        loop {
            let reply = self.read_message()?;
            if let Some(value) = reply.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = reply.get("error") {
                return Err(EmulateError::QmpCommand {
                    command: command.to_owned(),
                    class: error["class"].as_str().unwrap_or("?").to_owned(),
                    desc: error["desc"].as_str().unwrap_or("?").to_owned(),
                });
            }
            // {"event": ...}: not ours.
        }
    }
}
