//! Host stand-ins for a board (feature `testing`): an in-memory serial line, a
//! frame-buffer display, a counter that advances a fixed amount per reading and fixed
//! memory figures. The app's request tests and the fuzzer drive the app with them.

extern crate std;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::vec::Vec;

use embedded_graphics::pixelcolor::{Gray4, GrayColor};
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Pixel, Size};
use embedded_graphics::primitives::Rectangle;
use tinyvae_screens::FrameBuffer;

use crate::{Display, Footprint, InstructionCounter, Parts};

/// A serial line in memory: the host writes `input`, the app's replies collect in
/// `output`.
#[derive(Default)]
pub struct Line {
    /// Bytes the app has yet to read.
    pub input: VecDeque<u8>,
    /// Bytes the app wrote.
    pub output: Vec<u8>,
}

impl embedded_io::ErrorType for Line {
    type Error = Infallible;
}

impl embedded_io::ReadReady for Line {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(!self.input.is_empty())
    }
}

impl embedded_io::Read for Line {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let n = buf.len().min(self.input.len());
        for (slot, byte) in buf.iter_mut().zip(self.input.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl embedded_io::Write for Line {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// A display whose panel is a second frame buffer, updated only by `flush`.
pub struct Panel {
    /// What has been drawn.
    pub drawing: FrameBuffer,
    /// What the panel shows: the drawing at the last flush.
    pub shown: FrameBuffer,
    /// Flushes so far.
    pub flushes: usize,
}

impl Default for Panel {
    fn default() -> Self {
        Self {
            drawing: FrameBuffer::new(),
            shown: FrameBuffer::new(),
            flushes: 0,
        }
    }
}

impl OriginDimensions for Panel {
    fn size(&self) -> Size {
        self.drawing.size()
    }
}

impl DrawTarget for Panel {
    type Color = Gray4;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Gray4>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Infallible> {
        self.drawing.draw_iter(pixels)
    }

    fn fill_contiguous<I: IntoIterator<Item = Gray4>>(
        &mut self,
        area: &Rectangle,
        colors: I,
    ) -> Result<(), Infallible> {
        self.drawing.fill_contiguous(area, colors)
    }

    fn fill_solid(&mut self, area: &Rectangle, color: Gray4) -> Result<(), Infallible> {
        self.drawing.fill_rect(area, color.luma());
        Ok(())
    }

    fn clear(&mut self, color: Gray4) -> Result<(), Infallible> {
        self.drawing.fill(color.luma());
        Ok(())
    }
}

impl Display for Panel {
    fn flush(&mut self) {
        self.shown = self.drawing.clone();
        self.flushes += 1;
    }
}

/// Instructions per reading of the [`Counter`]: a measured window reads back exactly
/// this many.
pub const STEP: u64 = 1_000;
/// Instructions a [`Counter`] pause takes.
pub const PAUSE: u64 = 2_000;

/// Advances [`STEP`] instructions per reading, so that a measured window reads back
/// exactly `STEP` and the idle timer runs out after a known number of polls.
#[derive(Default)]
pub struct Counter {
    now: u64,
    start: u64,
}

impl InstructionCounter for Counter {
    fn now(&mut self) -> u64 {
        self.now += STEP;
        self.now
    }

    fn start_measurement(&mut self) {
        self.start = self.now();
    }

    fn measured(&mut self) -> u64 {
        self.now() - self.start
    }

    fn pause(&mut self) {
        self.now += PAUSE;
    }
}

/// Fixed memory figures: 150 000 bytes of flash, 15 000 of static RAM, 4 000 of stack.
pub struct Memory;

impl Footprint for Memory {
    fn flash_used(&self) -> u32 {
        150_000
    }

    fn ram_static(&self) -> u32 {
        15_000
    }

    fn stack_high_water(&self) -> u32 {
        4_000
    }
}

/// A board of stand-ins: an empty line, a blank panel, a counter at zero.
pub fn parts() -> Parts<Line, Panel, Counter, Memory> {
    Parts {
        serial: Line::default(),
        display: Panel::default(),
        counter: Counter::default(),
        footprint: Memory,
    }
}
