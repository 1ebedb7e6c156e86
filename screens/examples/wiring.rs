//! Draws the wiring diagrams of docs/boards.md: each real board, the SSD1306 OLED
//! module and the wires between them, with the pin names and numbers of the board
//! crates (firmware/boards/*), as PNG files.
//!
//! `cargo run -p tinyvae-screens --example wiring -- docs` writes
//! `docs/wiring-nucleo-f411re.png` and `docs/wiring-pico.png`. Drawn with the same
//! embedded-graphics the firmware's screens use, so no drawing tool is needed.

use std::path::PathBuf;

use embedded_graphics::mono_font::ascii::{FONT_10X20, FONT_6X10, FONT_7X13_BOLD};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Circle, Line, PrimitiveStyle, Rectangle, RoundedRectangle};
use embedded_graphics::text::Text;

/// An RGB canvas that embedded-graphics draws on.
struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            pixels: vec![255; (width * height * 3) as usize],
        }
    }

    fn save(&self, path: &std::path::Path) -> Result<(), String> {
        image::RgbImage::from_raw(self.width, self.height, self.pixels.clone())
            .ok_or("canvas size")?
            .save(path)
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.width && (p.y as u32) < self.height {
                let i = ((p.y as u32 * self.width + p.x as u32) * 3) as usize;
                self.pixels[i..i + 3].copy_from_slice(&[c.r(), c.g(), c.b()]);
            }
        }
        Ok(())
    }
}

const INK: Rgb888 = Rgb888::new(30, 30, 30);
const BOARD_GREEN: Rgb888 = Rgb888::new(214, 232, 214);
const NUCLEO_WHITE: Rgb888 = Rgb888::new(236, 236, 240);
const OLED_BLUE: Rgb888 = Rgb888::new(205, 220, 245);
const PANEL: Rgb888 = Rgb888::new(20, 24, 40);
const RED: Rgb888 = Rgb888::new(200, 30, 30);
const BLACK: Rgb888 = Rgb888::new(40, 40, 40);
const YELLOW: Rgb888 = Rgb888::new(220, 160, 0);
const BLUE: Rgb888 = Rgb888::new(30, 90, 210);
const GREY: Rgb888 = Rgb888::new(120, 120, 120);

fn text(c: &mut Canvas, s: &str, x: i32, y: i32, font: &MonoFont<'_>, color: Rgb888) {
    let _ = Text::new(s, Point::new(x, y), MonoTextStyle::new(font, color)).draw(c);
}

fn boxed(c: &mut Canvas, x: i32, y: i32, w: u32, h: u32, fill: Rgb888) {
    let style = PrimitiveStyle::with_fill(fill);
    let _ = RoundedRectangle::with_equal_corners(
        Rectangle::new(Point::new(x, y), Size::new(w, h)),
        Size::new(10, 10),
    )
    .into_styled(style)
    .draw(c);
    let _ = RoundedRectangle::with_equal_corners(
        Rectangle::new(Point::new(x, y), Size::new(w, h)),
        Size::new(10, 10),
    )
    .into_styled(PrimitiveStyle::with_stroke(INK, 2))
    .draw(c);
}

/// A header pin: a dot with its label to the left or right.
fn pin(c: &mut Canvas, at: Point, label: &str, label_left: bool) {
    let _ = Circle::with_center(at, 9)
        .into_styled(PrimitiveStyle::with_fill(INK))
        .draw(c);
    let x = if label_left {
        at.x - 10 - 7 * label.len() as i32
    } else {
        at.x + 10
    };
    text(c, label, x, at.y + 4, &FONT_7X13_BOLD, INK);
}

/// The SSD1306 module at (x, y); returns its GND, VCC, SCL, SDA pin positions.
fn oled(c: &mut Canvas, x: i32, y: i32) -> [Point; 4] {
    boxed(c, x, y, 230, 200, OLED_BLUE);
    let _ = Rectangle::new(Point::new(x + 25, y + 60), Size::new(180, 100))
        .into_styled(PrimitiveStyle::with_fill(PANEL))
        .draw(c);
    text(
        c,
        "SSD1306 128x64",
        x + 45,
        y + 105,
        &FONT_7X13_BOLD,
        Rgb888::WHITE,
    );
    text(c, "I2C 0x3C", x + 80, y + 125, &FONT_6X10, Rgb888::WHITE);
    let names = ["GND", "VCC", "SCL", "SDA"];
    let mut pins = [Point::zero(); 4];
    for (i, name) in names.iter().enumerate() {
        let p = Point::new(x + 40 + 50 * i as i32, y + 22);
        let _ = Circle::with_center(p, 9)
            .into_styled(PrimitiveStyle::with_fill(INK))
            .draw(c);
        text(c, name, p.x - 10, p.y + 22, &FONT_7X13_BOLD, INK);
        pins[i] = p;
    }
    text(c, "OLED module", x, y + 220, &FONT_7X13_BOLD, GREY);
    pins
}

/// A wire from a board pin up to a module pin on top: out sideways to its own lane,
/// up above the module, across, and down.
fn wire_to_top(c: &mut Canvas, from: Point, to: Point, lane_x: i32, top_y: i32, color: Rgb888) {
    let style = PrimitiveStyle::with_stroke(color, 4);
    let corners = [
        from,
        Point::new(lane_x, from.y),
        Point::new(lane_x, top_y),
        Point::new(to.x, top_y),
        to,
    ];
    for pair in corners.windows(2) {
        let _ = Line::new(pair[0], pair[1]).into_styled(style).draw(c);
    }
}

fn legend(c: &mut Canvas, x: i32, y: i32, lines: &[(Rgb888, &str)]) {
    for (i, (color, s)) in lines.iter().enumerate() {
        let yy = y + 22 * i as i32;
        let _ = Line::new(Point::new(x, yy), Point::new(x + 30, yy))
            .into_styled(PrimitiveStyle::with_stroke(*color, 4))
            .draw(c);
        text(c, s, x + 40, yy + 5, &FONT_7X13_BOLD, INK);
    }
}

fn nucleo() -> Canvas {
    let mut c = Canvas::new(1000, 640);
    text(
        &mut c,
        "Nucleo-F411RE + SSD1306 OLED",
        20,
        35,
        &FONT_10X20,
        INK,
    );
    // The board, seen from above: ST-LINK part at the top, Arduino headers.
    let (bx, by) = (60, 150);
    boxed(&mut c, bx, by, 330, 440, NUCLEO_WHITE);
    let _ = Rectangle::new(Point::new(bx, by + 110), Size::new(330, 3))
        .into_styled(PrimitiveStyle::with_fill(GREY))
        .draw(&mut c);
    text(
        &mut c,
        "ST-LINK/V2-1",
        bx + 110,
        by + 60,
        &FONT_7X13_BOLD,
        INK,
    );
    boxed(
        &mut c,
        bx + 130,
        by - 20,
        70,
        40,
        Rgb888::new(180, 180, 180),
    );
    text(&mut c, "USB CN1", bx + 138, by + 4, &FONT_6X10, INK);
    text(
        &mut c,
        "STM32F411RE",
        bx + 110,
        by + 300,
        &FONT_7X13_BOLD,
        INK,
    );
    text(
        &mut c,
        "Cortex-M4F 100 MHz",
        bx + 95,
        by + 318,
        &FONT_6X10,
        INK,
    );
    text(
        &mut c,
        "B1 user button = PC13",
        bx + 85,
        by + 420,
        &FONT_6X10,
        INK,
    );
    // Right-hand Arduino header CN5 (D8..D15): D15 = SCL (PB8), D14 = SDA (PB9).
    // Left-hand CN6 (power): 3V3, GND.
    let right = bx + 300;
    let left = bx + 30;
    let scl = Point::new(right, by + 170);
    let sda = Point::new(right, by + 195);
    pin(&mut c, scl, "D15 PB8 SCL", true);
    pin(&mut c, sda, "D14 PB9 SDA", true);
    text(&mut c, "CN5", right - 20, by + 150, &FONT_6X10, GREY);
    let v33 = Point::new(left, by + 190);
    let gnd = Point::new(left, by + 215);
    pin(&mut c, v33, "3V3", false);
    pin(&mut c, gnd, "GND", false);
    text(&mut c, "CN6", left - 10, by + 170, &FONT_6X10, GREY);
    let [m_gnd, m_vcc, m_scl, m_sda] = oled(&mut c, 640, 250);
    // Power runs above the board; I2C from the right header to its own lanes.
    wire_to_top(&mut c, gnd, m_gnd, bx - 35, 80, BLACK);
    wire_to_top(&mut c, v33, m_vcc, bx - 20, 95, RED);
    wire_to_top(&mut c, scl, m_scl, right + 80, 200, YELLOW);
    wire_to_top(&mut c, sda, m_sda, right + 100, 215, BLUE);
    legend(
        &mut c,
        440,
        530,
        &[
            (RED, "3V3 -> VCC"),
            (BLACK, "GND -> GND"),
            (YELLOW, "PB8 (D15) -> SCL"),
            (BLUE, "PB9 (D14) -> SDA"),
        ],
    );
    text(
        &mut c,
        "USB CN1 to the host: probe-rs flashing and the protocol (USART2 PA2/PA3, /dev/ttyACM*)",
        20,
        625,
        &FONT_6X10,
        INK,
    );
    c
}

fn pico() -> Canvas {
    let mut c = Canvas::new(1000, 640);
    text(
        &mut c,
        "Raspberry Pi Pico + SSD1306 OLED",
        20,
        35,
        &FONT_10X20,
        INK,
    );
    // The Pico, USB at the top, pin 1 top left, pin 40 top right.
    let (bx, by) = (150, 100);
    boxed(&mut c, bx, by, 210, 500, BOARD_GREEN);
    boxed(&mut c, bx + 75, by - 20, 60, 35, Rgb888::new(180, 180, 180));
    text(&mut c, "USB", bx + 94, by + 4, &FONT_6X10, INK);
    text(&mut c, "RP2040", bx + 80, by + 260, &FONT_7X13_BOLD, INK);
    text(&mut c, "Cortex-M0+", bx + 70, by + 278, &FONT_6X10, INK);
    text(&mut c, "BOOTSEL", bx + 78, by + 60, &FONT_6X10, INK);
    text(
        &mut c,
        "SWCLK GND SWDIO",
        bx + 55,
        by + 490,
        &FONT_6X10,
        GREY,
    );
    let pitch = 24;
    let left_pin = |n: i32| Point::new(bx + 15, by + 20 + pitch * (n - 1));
    let right_pin = |n: i32| Point::new(bx + 195, by + 20 + pitch * (40 - n));
    let sda = left_pin(6);
    let scl = left_pin(7);
    pin(&mut c, sda, "(6) GP4 SDA", false);
    pin(&mut c, scl, "(7) GP5 SCL", false);
    let v33 = right_pin(36);
    let gnd = right_pin(38);
    pin(&mut c, v33, "3V3 OUT (36)", true);
    pin(&mut c, gnd, "GND (38)", true);
    let [m_gnd, m_vcc, m_scl, m_sda] = oled(&mut c, 650, 250);
    wire_to_top(&mut c, gnd, m_gnd, bx + 330, 200, BLACK);
    wire_to_top(&mut c, v33, m_vcc, bx + 350, 215, RED);
    // The I2C pins are on the left edge: around the top of the board.
    wire_to_top(&mut c, sda, m_sda, bx - 40, by - 45, BLUE);
    wire_to_top(&mut c, scl, m_scl, bx - 25, by - 30, YELLOW);
    legend(
        &mut c,
        600,
        520,
        &[
            (RED, "3V3(OUT) pin 36 -> VCC"),
            (BLACK, "GND pin 38 -> GND"),
            (YELLOW, "GP5 pin 7 -> SCL"),
            (BLUE, "GP4 pin 6 -> SDA"),
        ],
    );
    text(
        &mut c,
        "USB to the host: the protocol (CDC, /dev/ttyACM*) and UF2 flashing; SWD pads for probe-rs",
        20,
        625,
        &FONT_6X10,
        INK,
    );
    c
}

fn main() -> Result<(), String> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "docs".into()));
    for (name, canvas) in [("nucleo-f411re", nucleo()), ("pico", pico())] {
        let path = dir.join(format!("wiring-{name}.png"));
        canvas.save(&path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
