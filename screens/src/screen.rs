//! The device's 128x64 OLED screen: a frame buffer and the screens the firmware shows.
//!
//! The LM3S6965 evaluation board carries an SSD0323 controller driving a 128x64 panel
//! with 16 grey levels. [`FrameBuffer`] holds exactly the 4096 bytes the controller
//! takes in one flush (64 rows of 64 bytes, two pixels a byte, the left pixel in the
//! high nibble), so the firmware sends it as is.
//!
//! The drawing functions live here rather than in the firmware so that the host can
//! render the very same screens: a test draws a screen on the host, renders it with
//! [`screendump_pixels`] the way QEMU's `screendump` does, and compares the PNG QEMU
//! wrote pixel for pixel.
//!
//! Images are 8-bit greyscale (0 = black, 255 = white) and map to the panel's 4-bit
//! levels by keeping the high nibble ([`gray4_of`]): `level = pixel >> 4`. Every
//! function accepts any image, size and score without panicking: pixels missing from a
//! short buffer draw black, and a zero-sized image draws nothing.

use core::num::NonZeroU32;

use embedded_graphics::mono_font::ascii::FONT_5X8;
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::Gray4;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

use crate::fixed::Q16;
use crate::math::div_rem_u64;
use crate::protocol::ScoreReport;

/// Panel width in pixels.
pub const WIDTH: usize = 128;
/// Panel height in pixels.
pub const HEIGHT: usize = 64;
/// Bytes in one frame: two 4-bit pixels a byte.
pub const FRAME_BYTES: usize = WIDTH * HEIGHT / 2;
/// Brightest grey level.
pub const WHITE: u8 = 15;

/// The 4-bit grey level an 8-bit pixel shows as: its high nibble.
///
/// Truncating rather than rounding keeps the mapping a plain shift on the device and
/// gives each of the 16 levels an equal share of the 256 input values.
#[inline]
pub const fn gray4_of(pixel: u8) -> u8 {
    pixel >> 4
}

/// A 128x64 frame in the SSD0323's own byte layout.
///
/// Byte `y * 64 + x / 2` holds pixels `(x, y)` and `(x + 1, y)` for even `x`, the left
/// one in the high nibble: the order the controller fills its RAM in with the column
/// range 0..=63 and the row range 0..=63, so a flush is one 4096-byte write.
#[derive(Clone, PartialEq, Eq)]
pub struct FrameBuffer {
    bytes: [u8; FRAME_BYTES],
}

impl Default for FrameBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for FrameBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameBuffer").finish_non_exhaustive()
    }
}

impl FrameBuffer {
    /// An all-black frame.
    pub const fn new() -> Self {
        Self {
            bytes: [0; FRAME_BYTES],
        }
    }

    /// The bytes to send to the controller.
    pub fn as_bytes(&self) -> &[u8; FRAME_BYTES] {
        &self.bytes
    }

    /// Fills the whole frame with one grey level (0..=15; higher values are clamped).
    pub fn fill(&mut self, level: u8) {
        let level = level.min(WHITE);
        self.bytes.fill(level << 4 | level);
    }

    /// Sets pixel `(x, y)` to `level` (0..=15; higher values are clamped). Pixels
    /// outside the panel are ignored.
    #[inline]
    pub fn set(&mut self, x: usize, y: usize, level: u8) {
        if x >= WIDTH || y >= HEIGHT {
            return;
        }
        let level = level.min(WHITE);
        let byte = &mut self.bytes[y * (WIDTH / 2) + x / 2];
        *byte = if x & 1 == 0 {
            (*byte & 0x0f) | (level << 4)
        } else {
            (*byte & 0xf0) | level
        };
    }

    /// Fills the part of `area` on the panel with `level` (0..=15; higher values are
    /// clamped): whole bytes at a time, where embedded-graphics' default `fill_solid`
    /// sets every pixel through `draw_iter`. Host stand-ins of the display call it
    /// (clearing the screen was most of a fuzzed request's time); the device's driver
    /// does not need it.
    pub fn fill_rect(&mut self, area: &Rectangle, level: u8) {
        let area = area.intersection(&Rectangle::new(Point::zero(), self.size()));
        let Some(end) = area.bottom_right() else {
            return;
        };
        let level = level.min(WHITE);
        // Both bounds are on the panel: the intersection is within 0..WIDTH, 0..HEIGHT.
        let (x0, y0) = (area.top_left.x as usize, area.top_left.y as usize);
        let (x1, y1) = (end.x as usize + 1, end.y as usize + 1);
        // Whole bytes hold pixel pairs (2k, 2k + 1) from the first even x to the last.
        let (pair_start, pair_end) = (x0.div_ceil(2), x1 / 2);
        for y in y0..y1 {
            if x0 % 2 == 1 {
                self.set(x0, y, level);
            }
            if pair_start < pair_end {
                let row = y * (WIDTH / 2);
                self.bytes[row + pair_start..row + pair_end].fill(level << 4 | level);
            }
            if x1 % 2 == 1 && x1 > x0 {
                self.set(x1 - 1, y, level);
            }
        }
    }

    /// The grey level of pixel `(x, y)`; 0 outside the panel.
    #[inline]
    pub fn get(&self, x: usize, y: usize) -> u8 {
        if x >= WIDTH || y >= HEIGHT {
            return 0;
        }
        let byte = self.bytes[y * (WIDTH / 2) + x / 2];
        if x & 1 == 0 {
            byte >> 4
        } else {
            byte & 0x0f
        }
    }
}

impl OriginDimensions for FrameBuffer {
    fn size(&self) -> Size {
        Size::new(WIDTH as u32, HEIGHT as u32)
    }
}

impl DrawTarget for FrameBuffer {
    type Color = Gray4;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(point, color) in pixels {
            if let (Ok(x), Ok(y)) = (usize::try_from(point.x), usize::try_from(point.y)) {
                self.set(x, y, color.luma());
            }
        }
        Ok(())
    }

    fn clear(&mut self, color: Self::Color) -> Result<(), Self::Error> {
        self.fill(color.luma());
        Ok(())
    }
}

/// A short line of text, formatted without allocating; what does not fit is cut off
/// (the screen could not show it anyway).
type Line = heapless::String<40>;

/// What the screens draw on: any 16-grey embedded-graphics target (the device's OLED
/// driver, or a [`FrameBuffer`] on the host). Drawing errors are ignored: a display
/// that fails has no better way to say so than the picture it shows.
pub trait Screen: DrawTarget<Color = Gray4> {}

impl<D: DrawTarget<Color = Gray4>> Screen for D {}

fn text<D: Screen>(fb: &mut D, s: &str, x: i32, y: i32, font: &MonoFont<'_>, level: u8) {
    let style = MonoTextStyle::new(font, Gray4::new(level.min(WHITE)));
    // A display that fails to draw has nothing better to show: drawing goes on.
    let _ = Text::with_baseline(s, Point::new(x, y), style, Baseline::Top).draw(fb);
}

fn rect<D: Screen>(fb: &mut D, x: i32, y: i32, w: u32, h: u32, style: PrimitiveStyle<Gray4>) {
    let _ = Rectangle::new(Point::new(x, y), Size::new(w, h))
        .into_styled(style)
        .draw(fb);
}

/// Appends `value` (Q16) with one decimal, rounded half away from zero.
fn push_q16(line: &mut Line, value: Q16) {
    // (|v| * 10 + 2^15) >> 16 in 32 bits: the integer part times ten, plus the
    // rounded tenths of the fraction (the integer part's product has no bits below 2^16).
    let abs = value.unsigned_abs();
    let tenths = (abs >> 16) * 10 + (((abs & 0xFFFF) * 10 + (1 << 15)) >> 16);
    if value < 0 && tenths != 0 {
        let _ = line.push('-');
    }
    push_decimal(line, u64::from(tenths / 10));
    let _ = line.push('.');
    let _ = line.push(char::from(b'0' + (tenths % 10) as u8));
}

/// Appends `value` in decimal.
///
/// The screens format a handful of integers; doing it by hand rather than with
/// `core::fmt` keeps the formatting machinery (several KiB) out of the firmware.
fn push_decimal(line: &mut Line, mut value: u64) {
    const TEN: NonZeroU32 = NonZeroU32::new(10).unwrap();
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        // `div_rem_u64`, not `/` and `%`: no 64-bit division call on the device.
        let (quotient, digit) = div_rem_u64(value, TEN);
        digits[n] = b'0' + digit as u8;
        n += 1;
        value = quotient;
        if value == 0 || n == digits.len() {
            break;
        }
    }
    for &d in digits[..n].iter().rev() {
        let _ = line.push(char::from(d));
    }
}

/// Appends the low `digits` nibbles of `value` as lowercase hexadecimal digits.
fn push_hex(line: &mut Line, value: u32, digits: u32) {
    for i in (0..digits).rev() {
        let nibble = (value >> (4 * i)) & 0xF;
        let _ = line.push(char::from(b"0123456789abcdef"[nibble as usize]));
    }
}

/// Longest image side [`blit`] draws; no image the protocol carries comes close, and
/// the bound keeps every product below in 32 bits.
const MAX_SIDE: usize = 1 << 16;

/// Draws a `w` x `h` image into the box at `(bx, by)` of size `bw` x `bh`, as large as
/// fits while keeping the aspect ratio, centred.
///
/// An image that fits at least once is magnified by a whole factor (so every source
/// pixel becomes an equal square); a larger one is reduced by nearest-neighbour
/// sampling. Pixels beyond the end of `image` draw black; an image with a side of 0 or
/// of [`MAX_SIDE`] or more draws nothing.
#[allow(clippy::too_many_arguments)]
fn blit<D: Screen>(
    fb: &mut D,
    image: &[u8],
    w: usize,
    h: usize,
    bx: usize,
    by: usize,
    bw: usize,
    bh: usize,
) {
    if w == 0 || h == 0 || w >= MAX_SIDE || h >= MAX_SIDE || bw == 0 || bh == 0 {
        return;
    }
    let (bw, bh) = (bw.min(WIDTH), bh.min(HEIGHT));
    let (dw, dh) = if w <= bw && h <= bh {
        let scale = (bw / w).min(bh / h);
        (w * scale, h * scale)
    } else if w * bh >= h * bw {
        // Relatively wider than the box: the width limits.
        (bw, (h * bw / w).max(1))
    } else {
        ((w * bh / h).max(1), bh)
    };
    let x0 = bx + (bw - dw) / 2;
    let y0 = by + (bh - dh) / 2;
    let area = Rectangle::new(
        Point::new(x0 as i32, y0 as i32),
        Size::new(dw as u32, dh as u32),
    );
    // Row by row, left to right: the order `fill_contiguous` expects.
    let colors = (0..dh).flat_map(|dy| {
        let row = (dy * h / dh).checked_mul(w);
        (0..dw).map(move |dx| {
            let p = row
                .and_then(|r| r.checked_add(dx * w / dw))
                .and_then(|i| image.get(i))
                .copied()
                .unwrap_or(0);
            Gray4::new(gray4_of(p))
        })
    });
    let _ = fb.fill_contiguous(&area, colors);
}

/// The screen shown after boot: the model the firmware carries.
pub fn draw_boot<D: Screen>(
    fb: &mut D,
    name: &str,
    width: usize,
    height: usize,
    latent: usize,
    parameters: usize,
    hash: u32,
) {
    let _ = fb.clear(Gray4::BLACK);
    text(fb, "tinyvae", 0, 0, &FONT_5X8, WHITE);
    text(fb, "int8 VAE", 56, 1, &FONT_5X8, 8);
    rect(
        fb,
        0,
        11,
        WIDTH as u32,
        1,
        PrimitiveStyle::with_fill(Gray4::new(6)),
    );
    text(fb, name, 0, 14, &FONT_5X8, WHITE);
    let mut line = Line::new();
    let _ = line.push_str("input ");
    push_decimal(&mut line, width as u64);
    let _ = line.push('x');
    push_decimal(&mut line, height as u64);
    let _ = line.push_str("  z ");
    push_decimal(&mut line, latent as u64);
    text(fb, &line, 0, 24, &FONT_5X8, 11);
    line.clear();
    let _ = line.push_str("params ");
    push_decimal(&mut line, parameters as u64);
    text(fb, &line, 0, 33, &FONT_5X8, 11);
    line.clear();
    let _ = line.push_str("hash ");
    push_hex(&mut line, hash, 8);
    text(fb, &line, 0, 42, &FONT_5X8, 11);
    text(fb, "waiting for host", 0, 55, &FONT_5X8, 6);
}

/// Left edge of the score bar in [`draw_scored`].
const BAR_X: usize = 116;
/// Height of the image area above the verdict line.
const IMAGE_AREA: usize = 56;
/// Bar height at which the score equals the threshold: three quarters up, so that
/// scores up to a third above the threshold still show how far above they are.
const BAR_AT_THRESHOLD: i64 = 40;

/// The bar height for a score against a threshold, 0..=`IMAGE_AREA - 2`.
fn bar_height(score: Q16, threshold: Q16) -> usize {
    let max = (IMAGE_AREA - 2) as u64;
    let height = match NonZeroU32::new(threshold.max(0) as u32) {
        // score * 40 / threshold, both non-negative: a u64 numerator below 2^37 over
        // a 31-bit divisor (`div_rem_u64`: no 64-bit division call on the device).
        Some(threshold) => {
            let scaled = u64::from(score.max(0) as u32) * BAR_AT_THRESHOLD as u64;
            div_rem_u64(scaled, threshold).0.min(max)
        }
        None if score > threshold => max,
        None => 0,
    };
    height as usize
}

/// What a scored screen shows: the fault detector's score, threshold and verdict with
/// the term that fired, or (without a detector) the negative ELBO's.
fn shown_verdict(report: &ScoreReport) -> (Q16, Q16, bool, Option<&'static str>) {
    match report.detector {
        Some(d) => (d.score, d.threshold, d.anomalous, Some(d.fired.name())),
        None => (report.score, report.threshold, report.anomalous, None),
    }
}

/// The screen shown after scoring an image: the input and its reconstruction side by
/// side, a bar showing the score against the threshold (the tick marks the
/// threshold), and the verdict with the score. With a fault detector, the score is
/// the detector's and the verdict line names the term that gave it (`holes 3.2>1.0`).
pub fn draw_scored<D: Screen>(
    fb: &mut D,
    input: &[u8],
    reconstruction: &[u8],
    width: usize,
    height: usize,
    report: &ScoreReport,
) {
    draw_pair(fb, input, reconstruction, width, height);

    // Score bar: outline, fill from the bottom, threshold tick across it.
    let bar_w = (WIDTH - BAR_X) as u32;
    rect(
        fb,
        BAR_X as i32,
        0,
        bar_w,
        IMAGE_AREA as u32,
        PrimitiveStyle::with_stroke(Gray4::new(5), 1),
    );
    let (score, threshold, anomalous, fired) = shown_verdict(report);
    let fill = bar_height(score, threshold);
    let fill_level = if anomalous { WHITE } else { 9 };
    rect(
        fb,
        BAR_X as i32 + 2,
        (IMAGE_AREA - 1 - fill) as i32,
        bar_w - 4,
        fill as u32,
        PrimitiveStyle::with_fill(Gray4::new(fill_level)),
    );
    let tick_y = (IMAGE_AREA as i64 - 1 - BAR_AT_THRESHOLD) as i32;
    rect(
        fb,
        BAR_X as i32 - 2,
        tick_y,
        bar_w + 2,
        1,
        PrimitiveStyle::with_fill(Gray4::new(WHITE)),
    );

    // Verdict line: the anomaly verdict inverted so it stands out.
    let verdict_y = IMAGE_AREA as i32;
    if anomalous {
        rect(
            fb,
            0,
            verdict_y,
            37,
            8,
            PrimitiveStyle::with_fill(Gray4::new(WHITE)),
        );
        text(fb, "ANOMALY", 1, verdict_y, &FONT_5X8, 0);
    } else {
        text(fb, "NORMAL", 1, verdict_y, &FONT_5X8, WHITE);
    }
    let mut line = Line::new();
    if let Some(name) = fired {
        let _ = line.push_str(name);
        let _ = line.push(' ');
    }
    push_q16(&mut line, score);
    let _ = line.push_str(if anomalous { ">" } else { "<=" });
    push_q16(&mut line, threshold);
    text(fb, &line, 40, verdict_y, &FONT_5X8, 11);
}

/// Clears the screen and draws `left` and `right` side by side in the two
/// [`IMAGE_AREA`] squares at the top: what a request saw beside what the model made of
/// it.
fn draw_pair<D: Screen>(fb: &mut D, left: &[u8], right: &[u8], width: usize, height: usize) {
    let _ = fb.clear(Gray4::BLACK);
    blit(fb, left, width, height, 0, 0, IMAGE_AREA, IMAGE_AREA);
    blit(fb, right, width, height, 58, 0, IMAGE_AREA, IMAGE_AREA);
}

/// The screen shown after denoising an image: the faulted input and the cleaned
/// output side by side, each captioned underneath.
pub fn draw_denoised<D: Screen>(
    fb: &mut D,
    input: &[u8],
    cleaned: &[u8],
    width: usize,
    height: usize,
) {
    draw_pair(fb, input, cleaned, width, height);
    let y = IMAGE_AREA as i32;
    text(fb, "INPUT", 1, y, &FONT_5X8, 11);
    text(fb, "DENOISED", 59, y, &FONT_5X8, WHITE);
}

/// The screen shown after compressing an image: the image, the sizes before and after
/// ("784B>16B") and the code in hexadecimal, as much of it as fits (all of a
/// 16-byte code).
pub fn draw_compressed<D: Screen>(
    fb: &mut D,
    image: &[u8],
    width: usize,
    height: usize,
    code: &[u8],
) {
    let mut sizes = Line::new();
    push_decimal(&mut sizes, width.saturating_mul(height) as u64);
    let _ = sizes.push_str("B>");
    push_decimal(&mut sizes, code.len() as u64);
    let _ = sizes.push('B');
    let mut hex = Line::new();
    for &byte in code {
        push_hex(&mut hex, u32::from(byte), 2);
    }
    draw_image_with_caption(
        fb,
        image,
        width,
        height,
        &["COMPRESSED", sizes.as_str(), hex.as_str()],
    );
}

/// The stand-alone demo's screen for one of its built-in frames: [`draw_scored`], with
/// what the frame really is (`truth`: "digit 7", "noise") in a box over the input's
/// top-left corner, so a viewer can judge the verdict.
pub fn draw_demo_scored<D: Screen>(
    fb: &mut D,
    input: &[u8],
    reconstruction: &[u8],
    width: usize,
    height: usize,
    report: &ScoreReport,
    truth: &str,
) {
    draw_scored(fb, input, reconstruction, width, height, report);
    // Five pixels a character, one of margin each side; at most what fits over the
    // input square.
    let chars = truth.len().min(IMAGE_AREA / 5 - 1);
    let box_w = (chars * 5 + 2) as u32;
    rect(fb, 0, 0, box_w, 9, PrimitiveStyle::with_fill(Gray4::BLACK));
    text(
        fb,
        truth.get(..chars).unwrap_or("?"),
        1,
        0,
        &FONT_5X8,
        WHITE,
    );
}

/// Draws the decoded image in the left 64x64 square and a caption on the right,
/// wrapping each caption line at the 12 characters that fit.
fn draw_image_with_caption<D: Screen>(
    fb: &mut D,
    image: &[u8],
    width: usize,
    height: usize,
    caption: &[&str],
) {
    let _ = fb.clear(Gray4::BLACK);
    blit(fb, image, width, height, 0, 0, HEIGHT, HEIGHT);
    const COLUMNS: usize = 12;
    let mut y = 2;
    for (i, line) in caption.iter().enumerate() {
        let level = if i == 0 { WHITE } else { 11 };
        let bytes = line.as_bytes();
        for chunk in bytes.chunks(COLUMNS) {
            // Captions are ASCII (the font draws nothing else); a chunk that is not
            // is left out.
            if let Some(s) = tinyvae_shared::ascii::ascii_str(chunk) {
                text(fb, s, 67, y, &FONT_5X8, level);
            }
            y += 9;
        }
        if i == 0 {
            y += 3;
        }
    }
}

/// The screen shown after generating an image: the image and the seed it came from.
pub fn draw_generated<D: Screen>(fb: &mut D, image: &[u8], width: usize, height: usize, seed: u64) {
    let mut seed_text = Line::new();
    push_decimal(&mut seed_text, seed);
    draw_image_with_caption(
        fb,
        image,
        width,
        height,
        &["GENERATED", "seed", seed_text.as_str()],
    );
}

/// The screen shown after decoding a latent vector the host sent.
pub fn draw_decoded<D: Screen>(fb: &mut D, image: &[u8], width: usize, height: usize) {
    draw_image_with_caption(fb, image, width, height, &["DECODED", "z from host"]);
}

/// The idle screen: one frame of the walk through latent space.
pub fn draw_walk<D: Screen>(fb: &mut D, image: &[u8], width: usize, height: usize, step: u32) {
    let mut step_text = Line::new();
    let _ = step_text.push_str("step ");
    push_decimal(&mut step_text, u64::from(step));
    draw_image_with_caption(
        fb,
        image,
        width,
        height,
        &["LATENT WALK", "idle", step_text.as_str()],
    );
}

/// Width of QEMU's rendering of the panel: four screen pixels per panel pixel.
pub const DUMP_WIDTH: usize = WIDTH * DUMP_MAGNIFY;
/// Height of QEMU's rendering of the panel.
pub const DUMP_HEIGHT: usize = HEIGHT * DUMP_MAGNIFY;
/// QEMU's `MAGNIFY` in `hw/display/ssd0323.c`.
pub const DUMP_MAGNIFY: usize = 4;

/// The 8-bit grey QEMU paints for a 4-bit level on a 24/32-bit console surface
/// (`n = (i << 4) | i` in `ssd0323_update_display`), so level 15 is 255.
#[inline]
pub const fn dump_gray(level: u8) -> u8 {
    let level = if level > WHITE { WHITE } else { level };
    (level << 4) | level
}

/// Renders `fb` as QEMU's `screendump` PNG of the lm3s6965evb's OLED shows it: 512x256,
/// row major, one grey byte per pixel (the PNG's red, green and blue are all this
/// value), each panel pixel a 4x4 square.
#[cfg(feature = "host")]
pub fn screendump_pixels(fb: &FrameBuffer) -> std::vec::Vec<u8> {
    let mut out = std::vec![0u8; DUMP_WIDTH * DUMP_HEIGHT];
    for (y, row) in out.chunks_exact_mut(DUMP_WIDTH).enumerate() {
        for (x, p) in row.iter_mut().enumerate() {
            *p = dump_gray(fb.get(x / DUMP_MAGNIFY, y / DUMP_MAGNIFY));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn fill_rect_sets_exactly_the_rectangle_on_the_panel() {
        // Every edge parity, rectangles partly or wholly off the panel, empty ones.
        let edges = [-3, 0, 1, 2, 5, 62, 63, 64, 127, 128, 130];
        for &x in &edges {
            for &y in &[-2, 0, 3, 63, 64] {
                for &(w, h) in &[(0, 4), (1, 1), (2, 3), (3, 2), (7, 5), (200, 80)] {
                    let area = Rectangle::new(Point::new(x, y), Size::new(w, h));
                    let mut fast = FrameBuffer::new();
                    fast.fill(3);
                    let mut slow = fast.clone();
                    fast.fill_rect(&area, 12);
                    for p in area.points() {
                        if let (Ok(px), Ok(py)) = (usize::try_from(p.x), usize::try_from(p.y)) {
                            slow.set(px, py, 12);
                        }
                    }
                    assert!(fast == slow, "{area:?}");
                }
            }
        }
    }

    #[test]
    fn nibble_layout_matches_the_controller() {
        let mut fb = FrameBuffer::new();
        fb.set(0, 0, 0xA);
        fb.set(1, 0, 0x5);
        fb.set(2, 0, 0x3);
        fb.set(127, 63, 0xF);
        fb.set(126, 1, 0x7);
        fb.set(128, 0, 0xF); // off the panel: ignored
        fb.set(0, 64, 0xF);
        let b = fb.as_bytes();
        assert_eq!(b[0], 0xA5);
        assert_eq!(b[1], 0x30);
        assert_eq!(b[4095], 0x0F);
        assert_eq!(b[64 + 63], 0x70);
        assert_eq!(b.iter().filter(|&&x| x != 0).count(), 4);
        assert_eq!(fb.get(0, 0), 0xA);
        assert_eq!(fb.get(1, 0), 0x5);
        assert_eq!(fb.get(127, 63), 0xF);
        assert_eq!(fb.get(500, 0), 0);
    }

    #[test]
    fn set_clamps_levels_and_draw_target_clips() {
        let mut fb = FrameBuffer::new();
        fb.set(3, 3, 200);
        assert_eq!(fb.get(3, 3), 15);
        let Ok(()) = Rectangle::new(Point::new(-10, -10), Size::new(300, 300))
            .into_styled(PrimitiveStyle::with_fill(Gray4::new(9)))
            .draw(&mut fb);
        assert!(fb.as_bytes().iter().all(|&b| b == 0x99));
        assert_eq!(fb.size(), Size::new(128, 64));
    }

    #[test]
    fn gray_mapping() {
        assert_eq!(gray4_of(0), 0);
        assert_eq!(gray4_of(15), 0);
        assert_eq!(gray4_of(16), 1);
        assert_eq!(gray4_of(255), 15);
        assert_eq!(dump_gray(0), 0);
        assert_eq!(dump_gray(1), 17);
        assert_eq!(dump_gray(15), 255);
    }

    #[test]
    fn q16_formatting_rounds() {
        let cases = [
            (0, "0.0"),
            (65536, "1.0"),
            (-65536, "-1.0"),
            (65536 * 3 / 2, "1.5"),
            (3277, "0.1"),  // 0.05000305 rounds up
            (3276, "0.0"),  // 0.04998779 rounds down
            (-3276, "0.0"), // no "-0.0"
            (i32::MAX, "32768.0"),
            (i32::MIN, "-32768.0"),
        ];
        for (v, s) in cases {
            let mut line = Line::new();
            push_q16(&mut line, v);
            assert_eq!(line.as_str(), s, "{v}");
        }
    }

    #[test]
    fn integer_formatting_matches_core_fmt() {
        let mut values = std::vec![0u64, 7, 10, 99, 12345, u64::from(u32::MAX), u64::MAX];
        values.extend((1..20).flat_map(|k| [10u64.pow(k) - 1, 10u64.pow(k), 10u64.pow(k) + 1]));
        let mut x: u64 = 0x1F83_D9AB_FB41_BD6B;
        for i in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (i % 64));
        }
        for v in values {
            let mut line = Line::new();
            push_decimal(&mut line, v);
            assert_eq!(line.as_str(), std::format!("{v}"));
        }
        for v in [0u32, 0xd0dd_f0cd, u32::MAX, 0x1f] {
            let mut line = Line::new();
            push_hex(&mut line, v, 8);
            assert_eq!(line.as_str(), std::format!("{v:08x}"));
            line.clear();
            push_hex(&mut line, v, 2);
            assert_eq!(line.as_str(), std::format!("{:02x}", v & 0xff));
        }
    }

    #[test]
    fn bar_height_equals_the_i64_formula() {
        // The formula before `div_rem_u64` replaced its 64-bit division.
        fn by_i64(score: Q16, threshold: Q16) -> usize {
            let max = (IMAGE_AREA - 2) as i64;
            let height = if threshold > 0 {
                (score.max(0) as i64 * BAR_AT_THRESHOLD / threshold as i64).min(max)
            } else if score > threshold {
                max
            } else {
                0
            };
            height as usize
        }
        let mut values = std::vec![i32::MIN, -65_536, -1, 0, 1, 2, 39, 40, 41, 65_536, i32::MAX];
        values.extend([i32::MAX / 40, i32::MAX / 40 + 1, 107_374_182, 1 << 30]);
        let mut x: u64 = 0xDA94_2042_E4DD_58B5;
        for i in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push((x as i32) >> (i % 32));
        }
        for &score in &values {
            for &threshold in &values {
                let expected = by_i64(score, threshold);
                let got = bar_height(score, threshold);
                assert_eq!(got, expected, "{score} / {threshold}");
            }
        }
    }

    /// A report of `score` (all reconstruction) against `threshold`.
    fn report_of(score: Q16, threshold: Q16) -> ScoreReport {
        ScoreReport {
            reconstruction: score,
            kl: 0,
            score,
            threshold,
            anomalous: score > threshold,
            detector: None,
        }
    }

    fn image(n: usize) -> std::vec::Vec<u8> {
        (0..n).map(|i| (i * 37 % 256) as u8).collect()
    }

    #[test]
    fn draw_functions_accept_any_input() {
        let mut fb = FrameBuffer::new();
        let sizes = [
            (0, 0),
            (0, 28),
            (28, 0),
            (1, 1),
            (28, 28),
            (32, 32),
            (1, 1024),
            (1024, 1),
            (5, 200),
            (200, 5),
            (57, 57),
            (usize::MAX / 2, 2),
        ];
        let scores = [i32::MIN, -1, 0, 1, 100 << 16, i32::MAX];
        for &(w, h) in &sizes {
            for len in [0, 10, 784, 1024] {
                let img = image(len);
                for &score in &scores {
                    for &threshold in &scores {
                        let report = report_of(score, threshold);
                        draw_scored(&mut fb, &img, &img, w.min(4096), h.min(4096), &report);
                    }
                }
                draw_generated(&mut fb, &img, w.min(4096), h.min(4096), u64::MAX);
                draw_walk(&mut fb, &img, w.min(4096), h.min(4096), u32::MAX);
                draw_decoded(&mut fb, &img, w, h);
                draw_denoised(&mut fb, &img, &img[..len / 2], w, h);
                draw_compressed(&mut fb, &img, w, h, &img[..len.min(32)]);
            }
        }
        draw_boot(&mut fb, "", 0, 0, 0, 0, 0);
        draw_boot(
            &mut fb,
            "é漢字 a very long model name!!",
            9999,
            9999,
            usize::MAX,
            usize::MAX,
            u32::MAX,
        );
        draw_walk(&mut fb, &[255; 4], usize::MAX, usize::MAX, 0);
    }

    #[test]
    fn images_scale_by_whole_factors() {
        let mut fb = FrameBuffer::new();
        let img: std::vec::Vec<u8> = (0..784).map(|i| if i % 2 == 0 { 255 } else { 0 }).collect();
        draw_generated(&mut fb, &img, 28, 28, 1);
        // 28x28 doubles to 56x56, centred in the 64x64 square: offset 4.
        assert_eq!(fb.get(4, 4), 15);
        assert_eq!(fb.get(5, 5), 15);
        assert_eq!(fb.get(6, 4), 0);
        assert_eq!(fb.get(3, 4), 0);
        assert_eq!(fb.get(4 + 55, 4 + 55), 0); // pixel 783 is odd: black
        assert_eq!(fb.get(4 + 53, 4 + 53), 15); // pixel 26 * 28 + 26 is even: white
    }

    #[test]
    fn scored_screen_shows_the_verdict() {
        let img = image(784);
        let mut normal = FrameBuffer::new();
        let mut anomalous = FrameBuffer::new();
        let base = ScoreReport {
            reconstruction: 90 << 16,
            kl: 10 << 16,
            score: 100 << 16,
            threshold: 150 << 16,
            anomalous: false,
            detector: None,
        };
        draw_scored(&mut normal, &img, &img, 28, 28, &base);
        let over = ScoreReport {
            score: 200 << 16,
            anomalous: true,
            ..base
        };
        draw_scored(&mut anomalous, &img, &img, 28, 28, &over);
        // The inverted ANOMALY box lights the verdict line's left corner.
        assert_eq!(normal.get(0, 56), 0);
        assert_eq!(anomalous.get(0, 56), 15);
        // The anomalous bar is full height and white; the normal one is lower.
        assert_eq!(anomalous.get(BAR_X + 4, 2), 15);
        assert_eq!(normal.get(BAR_X + 4, 2), 0);
        assert_ne!(normal.get(BAR_X + 4, 50), 0);
    }

    #[test]
    fn the_detector_gives_the_verdict_and_names_its_term() {
        use tinyvae_shared::detect::Term;
        use tinyvae_shared::protocol::DetectorReport;
        let img = image(784);
        // The ELBO is well under its threshold; the detector's holes term is not.
        let elbo_only = report_of(100 << 16, 150 << 16);
        let report = |fired: Term, score: Q16| ScoreReport {
            detector: Some(DetectorReport {
                score,
                threshold: 1 << 16,
                fired,
                anomalous: score > 1 << 16,
            }),
            ..elbo_only
        };
        let mut plain = FrameBuffer::new();
        draw_scored(&mut plain, &img, &img, 28, 28, &elbo_only);
        let mut holes = FrameBuffer::new();
        draw_scored(
            &mut holes,
            &img,
            &img,
            28,
            28,
            &report(Term::Holes, 3 << 16),
        );
        let mut cuts = FrameBuffer::new();
        draw_scored(&mut cuts, &img, &img, 28, 28, &report(Term::Cuts, 3 << 16));
        let mut calm = FrameBuffer::new();
        draw_scored(&mut calm, &img, &img, 28, 28, &report(Term::Holes, 1 << 15));
        // The ANOMALY box follows the detector, not the ELBO.
        assert_eq!(plain.get(0, 56), 0);
        assert_eq!(holes.get(0, 56), 15);
        assert_eq!(calm.get(0, 56), 0);
        // The verdict line names the term: the two anomalous screens differ there only.
        let line_differs = |a: &FrameBuffer, b: &FrameBuffer| {
            (40..WIDTH).any(|x| (56..HEIGHT).any(|y| a.get(x, y) != b.get(x, y)))
        };
        assert!(line_differs(&holes, &cuts));
        assert!((0..WIDTH).all(|x| (0..56).all(|y| holes.get(x, y) == cuts.get(x, y))));
        // The bar is the detector's: 3.0 against 1.0 fills it; 0.5 fills a fifth.
        assert_eq!(holes.get(BAR_X + 4, 2), 15);
        assert_eq!(calm.get(BAR_X + 4, 2), 0);
    }

    /// The denoise screen shows the input left and the output right; the compress
    /// screen's code changes what it shows.
    #[test]
    fn denoise_and_compress_screens_show_their_inputs() {
        let dark = std::vec![0u8; 784];
        let bright = std::vec![255u8; 784];
        let mut fb = FrameBuffer::new();
        draw_denoised(&mut fb, &dark, &bright, 28, 28);
        assert_eq!(fb.get(10, 10), 0);
        assert_eq!(fb.get(70, 10), 15);
        let mut a = FrameBuffer::new();
        let mut b = FrameBuffer::new();
        draw_compressed(&mut a, &dark, 28, 28, &[0x12; 16]);
        draw_compressed(&mut b, &dark, 28, 28, &[0x34; 16]);
        assert_ne!(a.as_bytes(), b.as_bytes());
    }

    #[cfg(feature = "host")]
    #[test]
    fn screendump_magnifies_by_four() {
        let mut fb = FrameBuffer::new();
        fb.set(0, 0, 15);
        fb.set(127, 63, 1);
        let dump = screendump_pixels(&fb);
        assert_eq!(dump.len(), 512 * 256);
        for y in 0..4 {
            for x in 0..4 {
                assert_eq!(dump[y * 512 + x], 255);
            }
        }
        assert_eq!(dump[4], 0);
        assert_eq!(dump[4 * 512], 0);
        assert_eq!(dump[255 * 512 + 511], 17);
        assert_eq!(dump[252 * 512 + 508], 17);
        assert_eq!(dump[251 * 512 + 508], 0);
    }
}
