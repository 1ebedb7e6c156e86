//! The stand-alone demo's frames: a few images, each with a caption saying what it
//! is, that a board carries in flash and scores on its own when no host is attached
//! (see the app's `idle` module). The host writes the file
//! ([`tinyvae_datasets::demo_frames`](../../tinyvae_datasets/demo_frames/index.html)
//! picks the images), the device reads it in place: this module is the format both
//! sides share.
//!
//! Layout, all integers single bytes:
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 4 | magic `TVDF` |
//! | 4 | 1 | version, [`VERSION`] |
//! | 5 | 1 | frame count `n` |
//! | 6 | 1 | width `w` |
//! | 7 | 1 | height `h` |
//! | 8 | n × ([`CAPTION_LEN`] + w·h) | frames: an ASCII caption padded with zeros, then the pixels row by row |

/// The first four bytes.
pub const MAGIC: [u8; 4] = *b"TVDF";
/// The format version this code reads and writes.
pub const VERSION: u8 = 1;
/// Bytes of a frame's caption (ASCII, zero-padded).
pub const CAPTION_LEN: usize = 12;
/// Bytes before the first frame.
const HEADER_LEN: usize = 8;

/// A parsed demo-frames file, borrowing the bytes (flash on the device).
#[derive(Debug, Clone, Copy)]
pub struct DemoFrames<'a> {
    bytes: &'a [u8],
    count: usize,
    width: usize,
    height: usize,
}

impl<'a> DemoFrames<'a> {
    /// Checks the header and the length; `None` for anything else than a complete
    /// version-[`VERSION`] file (the device then shows no demo frames, only samples).
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let header = bytes.get(..HEADER_LEN)?;
        if header[..4] != MAGIC || header[4] != VERSION {
            return None;
        }
        let (count, width, height) = (header[5] as usize, header[6] as usize, header[7] as usize);
        let frame = CAPTION_LEN + width * height;
        if bytes.len() != HEADER_LEN + count * frame {
            return None;
        }
        Some(Self {
            bytes,
            count,
            width,
            height,
        })
    }

    /// Frames in the file.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the file holds no frame.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Image width and height in pixels.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Frame `i`: its caption (up to the first zero; "?" if not ASCII) and pixels.
    pub fn get(&self, i: usize) -> Option<(&'a str, &'a [u8])> {
        if i >= self.count {
            return None;
        }
        let frame = CAPTION_LEN + self.width * self.height;
        let start = HEADER_LEN + i * frame;
        let caption = self.bytes.get(start..start + CAPTION_LEN)?;
        let pixels = self.bytes.get(start + CAPTION_LEN..start + frame)?;
        let end = caption.iter().position(|&b| b == 0).unwrap_or(CAPTION_LEN);
        let caption = crate::ascii::ascii_str(&caption[..end]).unwrap_or("?");
        Some((caption, pixels))
    }
}

/// Writes frames in this format. Captions longer than [`CAPTION_LEN`] are cut.
#[cfg(feature = "host")]
pub fn write(width: u8, height: u8, frames: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let pixels = width as usize * height as usize;
    let count =
        u8::try_from(frames.len()).map_err(|_| format!("{} frames, at most 255", frames.len()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + frames.len() * (CAPTION_LEN + pixels));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, count, width, height]);
    for (i, (caption, image)) in frames.iter().enumerate() {
        if image.len() != pixels {
            return Err(format!(
                "frame {i} has {} pixels, expected {width}x{height}",
                image.len()
            ));
        }
        if !caption.is_ascii() {
            return Err(format!("frame {i}'s caption {caption:?} is not ASCII"));
        }
        let mut field = [0u8; CAPTION_LEN];
        let n = caption.len().min(CAPTION_LEN);
        field[..n].copy_from_slice(&caption.as_bytes()[..n]);
        out.extend_from_slice(&field);
        out.extend_from_slice(image);
    }
    Ok(out)
}

#[cfg(all(test, feature = "host"))]
mod tests {
    use super::*;

    #[test]
    fn written_frames_read_back() {
        let frames = vec![
            ("digit 7".to_string(), vec![7u8; 6]),
            ("a caption too long".to_string(), vec![9u8; 6]),
        ];
        let bytes = write(3, 2, &frames).expect("writes");
        let parsed = DemoFrames::parse(&bytes).expect("parses");
        assert_eq!((parsed.len(), parsed.size()), (2, (3, 2)));
        assert_eq!(parsed.get(0), Some(("digit 7", &[7u8; 6][..])));
        assert_eq!(parsed.get(1), Some(("a caption to", &[9u8; 6][..])));
        assert_eq!(parsed.get(2), None);
    }

    #[test]
    fn damaged_files_are_refused() {
        let bytes = write(2, 2, &[("x".into(), vec![1; 4])]).expect("writes");
        assert!(DemoFrames::parse(&bytes[..bytes.len() - 1]).is_none());
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert!(DemoFrames::parse(&wrong).is_none());
        let mut newer = bytes.clone();
        newer[4] = VERSION + 1;
        assert!(DemoFrames::parse(&newer).is_none());
        assert!(write(2, 2, &[("x".into(), vec![1; 3])]).is_err());
    }
}
