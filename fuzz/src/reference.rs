//! The line's documented framing, written out plainly, for the reader and the app to
//! be checked against: every zero byte ends a frame; a frame longer than
//! [`MAX_FRAME`] is reported once, as soon as its byte `MAX_FRAME + 1` arrives, and its
//! bytes up to the next zero (that zero included) produce nothing more.

use tinyvae_shared::protocol::MAX_FRAME;

/// What one stretch of the line amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit<'a> {
    /// A complete frame body (the bytes before a zero), at most [`MAX_FRAME`] long.
    Frame(&'a [u8]),
    /// An over-long frame, reported once; `at` is the index of the byte that overflowed.
    Overflow {
        /// Index in the line of byte `MAX_FRAME + 1` of the frame.
        at: usize,
    },
}

/// The units of `line`, in order. A frame still open at the end of the line is no
/// unit unless it has already overflowed.
pub fn units(line: &[u8]) -> Vec<Unit<'_>> {
    let mut units = Vec::new();
    let mut start = 0;
    for segment in line.split(|&b| b == 0) {
        let terminated = start + segment.len() < line.len();
        if segment.len() > MAX_FRAME {
            units.push(Unit::Overflow {
                at: start + MAX_FRAME,
            });
        } else if terminated {
            units.push(Unit::Frame(segment));
        }
        start += segment.len() + 1;
    }
    units
}
