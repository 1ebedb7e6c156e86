//! `docs/protocol.md` held to the code: the document is the serial protocol's
//! specification for people who do not write Rust.
//!
//! * [`doc_examples_are_the_bytes_the_code_sends`]: every worked example in the document
//!   (message, CRC and frame bytes) is what `tinyvae_shared::protocol` produces today,
//!   so the document cannot go stale silently.

use serde::Serialize;
use tinyvae_e2e::harness::workspace_root;
use tinyvae_shared::fixed::Q16_ONE;
use tinyvae_shared::protocol::{
    encode_frame, DeviceInfo, ErrorCode, Request, Response, FRAME_CRC, MAX_FRAME, MAX_PAYLOAD,
};

/// The specification, relative to the workspace root.
const DOC: &str = "docs/protocol.md";

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
            "generate-request",
            Box::new(Request::Generate {
                seed: 42,
                temperature: 3 * Q16_ONE / 4,
            }),
        ),
    ]
}

/// The device description of the document's `Info` example (illustrative figures, not
/// a particular build's).
fn example_info() -> DeviceInfo {
    DeviceInfo {
        protocol_version: 1,
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
