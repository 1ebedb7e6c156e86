//! ASCII bytes as `&str` without the UTF-8 validator.
//!
//! Model names and demo-frame captions are ASCII (the OLED's fonts draw nothing else).
//! `core::str::from_utf8` would accept them too, but it costs 368 bytes of flash on the
//! Cortex-M3, whose code budget is tight; the ASCII check is a few instructions.

/// `bytes` as a string when every byte is ASCII, else `None`.
#[allow(unsafe_code)]
pub fn ascii_str(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: every byte is below 0x80, and a sequence of such bytes is valid UTF-8
        // (each is a one-byte code point).
        Some(unsafe { core::str::from_utf8_unchecked(bytes) })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::ascii_str;

    #[test]
    fn ascii_passes_and_anything_else_does_not() {
        assert_eq!(ascii_str(b"tinyvae-mnist"), Some("tinyvae-mnist"));
        assert_eq!(ascii_str(b""), Some(""));
        assert_eq!(ascii_str("caf\u{e9}".as_bytes()), None);
        assert_eq!(ascii_str(&[0x41, 0xff]), None);
    }
}
