//! The evaluation board's 128x64 16-grey OLED: an SSD0323 controller on SSI0.
//!
//! Data/command select is GPIO PC7 (low = command). In QEMU the controller's chip
//! select is GPIO PD0 through a splitter that selects the SD card when low, so PD0 is
//! driven high; on the real board PA3 (SSI0Fss, see [`Ssi0::init`]) selects the OLED.
//!
//! The driver is the app's [`Display`]: an embedded-graphics target that draws into a
//! [`FrameBuffer`] in RAM (the controller's own byte layout) and sends all of it on
//! [`Display::flush`].

use embedded_graphics::pixelcolor::Gray4;
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Pixel, Size};
use embedded_graphics::primitives::Rectangle;
use tinyvae_app::Display;
use tinyvae_screens::FrameBuffer;

use crate::hw::{self, Reg};
use crate::pl022::Ssi0;

/// PC7: data (high) or command (low).
const DC: Reg = hw::gpio_data(hw::GPIO_C, 1 << 7);
/// PD0: the OLED's select through QEMU's splitter (high = OLED).
const SELECT: Reg = hw::gpio_data(hw::GPIO_D, 1 << 0);

/// Display setup, from TI's osram128x64x4 driver: display off, column and row windows
/// 0..=63, contrast, full current, remap (nibble order, COM split), start line 0,
/// offset 0x40, normal mode, multiplex 64, DC-DC on, display on.
const INIT: &[u8] = &[
    0xAE, 0x15, 0x00, 0x3F, 0x75, 0x00, 0x3F, 0x81, 0x50, 0x86, 0xA0, 0x52, 0xA1, 0x00, 0xA2, 0x40,
    0xA4, 0xA8, 0x3F, 0xAD, 0x03, 0xAF,
];
/// The window a full-frame flush writes: columns 0..=63 (two pixels each), rows 0..=63.
const WINDOW: &[u8] = &[0x15, 0x00, 0x3F, 0x75, 0x00, 0x3F];

/// The OLED and the frame drawn for it.
pub struct Ssd0323 {
    ssi: Ssi0,
    frame: &'static mut FrameBuffer,
}

impl Ssd0323 {
    /// Configures the control pins, then sends the controller's setup.
    pub fn init(mut ssi: Ssi0, frame: &'static mut FrameBuffer) -> Self {
        hw::gpio_output(hw::GPIO_C, 1 << 7);
        hw::gpio_output(hw::GPIO_D, 1 << 0);
        SELECT.write(0xFF);
        send(&mut ssi, false, INIT);
        Self { ssi, frame }
    }
}

/// Sends `bytes` as commands or as display data.
fn send(ssi: &mut Ssi0, data_mode: bool, bytes: &[u8]) {
    // D/C may only change once the previous bytes have left the shifter.
    ssi.wait_idle();
    DC.write(if data_mode { 0xFF } else { 0 });
    for &b in bytes {
        ssi.transfer(b);
    }
    ssi.wait_idle();
}

impl OriginDimensions for Ssd0323 {
    fn size(&self) -> Size {
        self.frame.size()
    }
}

impl DrawTarget for Ssd0323 {
    type Color = Gray4;
    type Error = core::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Gray4>>,
    {
        self.frame.draw_iter(pixels)
    }

    fn fill_contiguous<I>(&mut self, area: &Rectangle, colors: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Gray4>,
    {
        self.frame.fill_contiguous(area, colors)
    }

    fn clear(&mut self, color: Gray4) -> Result<(), Self::Error> {
        self.frame.clear(color)
    }
}

impl Display for Ssd0323 {
    /// Sets the full window, then streams the 4096 bytes.
    fn flush(&mut self) {
        send(&mut self.ssi, false, WINDOW);
        send(&mut self.ssi, true, self.frame.as_bytes());
    }
}
