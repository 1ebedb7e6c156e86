//! A tiny RGB canvas with lines, rectangles and 8x8 bitmap text: enough to draw
//! labelled loss curves without a plotting library or system fonts.

use image::{Rgb, RgbImage};

/// An RGB drawing surface.
pub struct Canvas {
    /// The pixels.
    pub img: RgbImage,
}

impl Canvas {
    /// A white canvas.
    pub fn new(w: u32, h: u32) -> Self {
        Self {
            img: RgbImage::from_pixel(w, h, Rgb([255, 255, 255])),
        }
    }

    /// Sets a pixel if inside.
    pub fn dot(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as u32) < self.img.width() && (y as u32) < self.img.height() {
            self.img.put_pixel(x as u32, y as u32, Rgb(c));
        }
    }

    /// A line `thick` pixels wide (Bresenham with a square pen).
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], thick: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            for ox in 0..thick {
                for oy in 0..thick {
                    self.dot(x + ox - thick / 2, y + oy - thick / 2, c);
                }
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// A filled rectangle.
    pub fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.dot(xx, yy, c);
            }
        }
    }

    /// Text in the 8x8 font8x8 glyphs, top-left at `(x, y)`.
    pub fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let Some(g) = font8x8::legacy::BASIC_LEGACY.get(ch as usize) else {
                continue;
            };
            for (row, bits) in g.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.dot(x + i as i64 * 8 + col, y + row as i64, c);
                    }
                }
            }
        }
    }
}
