//! tinyvae's display on an SSD1306 128x64 I2C OLED module: the app's
//! [`tinyvae_app::Display`] over any embedded-hal 1.0 [`I2c`] bus.
//!
//! The app draws 16-grey (`Gray4`) screens, made for the emulated board's SSD0323; the
//! SSD1306 shows one bit a pixel. [`lit`] maps a grey level to on/off with a 4x4
//! ordered (Bayer) dither: black stays black, white stays white (so text drawn white
//! is crisp), and the greys of the digits become patterns whose density follows the
//! level, which reads as grey at arm's length. It is a pure function, so the host test
//! renders a screen with the host's `FrameBuffer`, applies the same mapping and
//! compares it bit for bit with what the driver sent on the bus.
//!
//! The driver is the `ssd1306` crate in its buffered graphics mode (a 1 KiB 1-bit
//! frame in RAM; drawing touches only RAM, [`Display::flush`] sends the part that
//! changed). Why a crate and not a register-level driver like the emulated board's
//! SSD0323: the SSD1306 on I2C is the most common module there is, and `ssd1306` is
//! its maintained embedded-hal 1.0 driver, generic over the bus, so one crate serves
//! every board whose HAL implements `embedded_hal::i2c::I2c`.
//!
//! A display is optional to the firmware: the protocol is its job. So no I2C error
//! panics or stops the app. A failed setup or flush is counted ([`Oled::failures`]) and
//! remembered ([`Oled::is_ready`]); drawing goes on into RAM, and the next flush sets
//! the controller up again and, if that works, sends the whole frame (the controller
//! may have lost power and its RAM with it). A missing module costs a flush one
//! address byte that nobody acknowledges.
#![cfg_attr(not(test), no_std)]

use core::convert::Infallible;

use embedded_graphics::pixelcolor::{Gray4, GrayColor};
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Pixel, Size};
use embedded_hal::i2c::I2c;
use ssd1306::command::AddrMode;
use ssd1306::mode::BufferedGraphicsMode;
use ssd1306::prelude::{DisplayRotation, DisplaySize128x64, I2CInterface};
use ssd1306::{I2CDisplayInterface, Ssd1306};
use tinyvae_app::Display;

/// Panel width in pixels.
pub const WIDTH: usize = 128;
/// Panel height in pixels.
pub const HEIGHT: usize = 64;
/// The 7-bit I2C address most modules answer at (SA0 low).
pub const DEFAULT_ADDRESS: u8 = 0x3C;

/// The 4x4 Bayer matrix: each position's rank 0..=15 in the order pixels light up as
/// the grey rises. Neighbouring ranks are far apart, so every level is an even
/// pattern rather than a clump.
const BAYER: [[u8; 4]; 4] = [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]];

/// Whether the pixel at `(x, y)` is on for grey `gray` (0..=15; higher is clamped):
/// a 4x4 ordered dither.
///
/// The 16 ranks are thresholds spread evenly over the grey range: the pixel is on when
/// `gray > (rank + 1/2) * 15/16`, in integers `32 * gray > 30 * rank + 15`. So level
/// 0 lights none of the 16 pixels of a tile, 15 all of them, and level `g` about
/// `16 g / 15`, never fewer than a lower level.
pub const fn lit(x: usize, y: usize, gray: u8) -> bool {
    let gray = if gray > 15 { 15 } else { gray } as u16;
    let rank = BAYER[y & 3][x & 3] as u16;
    32 * gray > 30 * rank + 15
}

/// The display's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The module's 7-bit I2C address: [`DEFAULT_ADDRESS`] (0x3C), or 0x3D on modules
    /// with SA0 tied high.
    pub address: u8,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            address: DEFAULT_ADDRESS,
        }
    }
}

type Driver<I2C> =
    Ssd1306<I2CInterface<I2C>, DisplaySize128x64, BufferedGraphicsMode<DisplaySize128x64>>;

/// An SSD1306 128x64 module on an I2C bus, as the app's 16-grey display.
pub struct Oled<I2C> {
    driver: Driver<I2C>,
    /// Whether the controller took its setup and every flush since.
    ready: bool,
    /// Setups and flushes that failed on the bus since [`Oled::new`].
    failures: u32,
    /// The bits last drawn at the first and the last pixel: `ssd1306` has no way to
    /// mark its whole frame for sending except writing pixels, so after a new setup
    /// these two are written again with the values they hold, which stretches the
    /// changed area over the whole panel.
    corners: [bool; 2],
}

impl<I2C: I2c> Oled<I2C> {
    /// Takes the bus and sets the controller up (horizontal addressing, the usual
    /// orientation of these modules: column 0 left, page 0 at the top). A module that
    /// does not answer is not an error: the next flush tries again.
    pub fn new(i2c: I2C, config: Config) -> Self {
        let interface = I2CDisplayInterface::new_custom_address(i2c, config.address);
        let driver = Ssd1306::new(interface, DisplaySize128x64, DisplayRotation::Rotate0)
            .into_buffered_graphics_mode();
        let mut oled = Self {
            driver,
            ready: false,
            failures: 0,
            corners: [false; 2],
        };
        oled.ready = oled.setup();
        oled
    }

    /// Whether the controller took its setup and every flush since (false after a bus
    /// error, until a flush succeeds in setting it up again).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Setups and flushes that failed on the bus.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.driver.release().release()
    }

    /// Sends the controller's setup, counting a failure. `init_with_addr_mode`, not
    /// `init`: `init` also clears the frame in RAM, which would lose the screen drawn
    /// while the module was away.
    fn setup(&mut self) -> bool {
        let ok = self
            .driver
            .init_with_addr_mode(AddrMode::Horizontal)
            .is_ok();
        if !ok {
            self.failures = self.failures.saturating_add(1);
        }
        ok
    }

    /// Sets one pixel of the frame in RAM (on the panel).
    fn set(&mut self, x: usize, y: usize, on: bool) {
        if (x, y) == (0, 0) {
            self.corners[0] = on;
        } else if (x, y) == (WIDTH - 1, HEIGHT - 1) {
            self.corners[1] = on;
        }
        // Both fit: the caller checked them against the panel.
        self.driver.set_pixel(x as u32, y as u32, on);
    }

    /// Makes the next flush send the whole frame.
    fn mark_all_changed(&mut self) {
        let [first, last] = self.corners;
        self.set(0, 0, first);
        self.set(WIDTH - 1, HEIGHT - 1, last);
    }
}

impl<I2C> OriginDimensions for Oled<I2C> {
    fn size(&self) -> Size {
        Size::new(WIDTH as u32, HEIGHT as u32)
    }
}

impl<I2C: I2c> DrawTarget for Oled<I2C> {
    type Color = Gray4;
    /// Drawing only touches RAM; the bus is used by [`Display::flush`].
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Gray4>>,
    {
        for Pixel(point, color) in pixels {
            let (Ok(x), Ok(y)) = (usize::try_from(point.x), usize::try_from(point.y)) else {
                continue;
            };
            if x < WIDTH && y < HEIGHT {
                self.set(x, y, lit(x, y, color.luma()));
            }
        }
        Ok(())
    }

    /// Black (every screen starts with it) is a plain memset; other levels are
    /// dithered pixel by pixel.
    fn clear(&mut self, color: Gray4) -> Result<(), Self::Error> {
        if color.luma() == 0 {
            self.driver.clear_buffer();
            self.corners = [false; 2];
        } else {
            for y in 0..HEIGHT {
                for x in 0..WIDTH {
                    self.set(x, y, lit(x, y, color.luma()));
                }
            }
        }
        Ok(())
    }
}

impl<I2C: I2c> Display for Oled<I2C> {
    /// Sends what changed since the last flush. After a bus error the controller is
    /// set up again first and then gets the whole frame; if the setup fails too, the
    /// frame stays in RAM for a later flush.
    fn flush(&mut self) {
        if !self.ready {
            if !self.setup() {
                return;
            }
            self.ready = true;
            self.mark_all_changed();
        }
        if self.driver.flush().is_err() {
            // `ssd1306` forgets what changed once a flush starts, so the next flush
            // sets up again and resends everything.
            self.failures = self.failures.saturating_add(1);
            self.ready = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many pixels of a 4x4 tile `gray` lights.
    fn lit_in_tile(gray: u8) -> usize {
        (0..4)
            .flat_map(|y| (0..4).map(move |x| (x, y)))
            .filter(|&(x, y)| lit(x, y, gray))
            .count()
    }

    #[test]
    fn black_is_off_white_is_on_and_greys_rise() {
        assert_eq!(lit_in_tile(0), 0);
        assert_eq!(lit_in_tile(15), 16);
        assert_eq!(lit_in_tile(200), 16, "levels above 15 clamp to white");
        for gray in 1..=15u8 {
            assert!(lit_in_tile(gray) > lit_in_tile(gray - 1), "level {gray}");
            // A pixel lit at one level stays lit at every higher one.
            for (x, y) in (0..4).flat_map(|y| (0..4).map(move |x| (x, y))) {
                assert!(!lit(x, y, gray - 1) || lit(x, y, gray));
            }
        }
        // Mid grey lights about half.
        assert_eq!(lit_in_tile(8), 9);
        assert_eq!(lit_in_tile(7), 7);
    }

    /// The mapping is pinned, not only its properties: the board and the host test
    /// both call [`lit`], so only this test sees a change in it (a transposed matrix
    /// lights the same number of pixels).
    #[test]
    fn mid_grey_lights_this_pattern() {
        let tile: Vec<String> = (0..4)
            .map(|y| {
                (0..4)
                    .map(|x| if lit(x, y, 8) { '#' } else { '.' })
                    .collect()
            })
            .collect();
        assert_eq!(tile, ["###.", ".#.#", "#.#.", ".#.#"]);
    }

    #[test]
    fn the_tile_repeats() {
        for gray in 0..16u8 {
            for (x, y) in [(0, 0), (1, 2), (3, 3), (2, 1)] {
                assert_eq!(lit(x, y, gray), lit(x + 4, y + 8, gray));
                assert_eq!(lit(x, y, gray), lit(x + 124, y + 60, gray));
            }
        }
    }

    #[test]
    fn the_default_address_is_0x3c() {
        assert_eq!(Config::default().address, 0x3C);
    }
}
