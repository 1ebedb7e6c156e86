//! The evaluation board's 128x64 OLED: an SSD0323 controller on SSI0 (a PL022).
//!
//! Data/command select is GPIO PC7 (low = command). In QEMU the controller's chip
//! select is GPIO PD0 through a splitter that selects the SD card when low, so PD0 is
//! driven high; on the real board PA3 (SSI0Fss) selects the OLED, so PA2/PA3/PA5 are
//! given to SSI0 as well.

use tinyvae_screens::FrameBuffer;

use crate::hw::{self, Reg};

const SSI0: usize = 0x4000_8000;
const CR0: Reg = Reg::at(SSI0, 0x000);
const CR1: Reg = Reg::at(SSI0, 0x004);
const DR: Reg = Reg::at(SSI0, 0x008);
const SR: Reg = Reg::at(SSI0, 0x00C);
const CPSR: Reg = Reg::at(SSI0, 0x010);

const SR_TNF: u32 = 1 << 1;
const SR_RNE: u32 = 1 << 2;
const SR_BSY: u32 = 1 << 4;
/// 8-bit frames (DSS = 7), SPO = 1, SPH = 1: the SSD0323's SPI mode 3.
const CR0_MODE3_8BIT: u32 = 0x7 | 1 << 6 | 1 << 7;
const CR1_SSE: u32 = 1 << 1;

/// PC7: data (high) or command (low).
const DC: Reg = hw::gpio_data(hw::GPIO_C, 1 << 7);
/// PD0: the OLED's select through QEMU's splitter (high = OLED).
const SELECT: Reg = hw::gpio_data(hw::GPIO_D, 1 << 0);

/// Polls before giving up on the SSI; a byte takes a few hundred at most.
const WAIT_LIMIT: u32 = 100_000;

/// Display setup, from TI's osram128x64x4 driver: display off, column and row windows
/// 0..=63, contrast, full current, remap (nibble order, COM split), start line 0,
/// offset 0x40, normal mode, multiplex 64, DC-DC on, display on.
const INIT: &[u8] = &[
    0xAE, 0x15, 0x00, 0x3F, 0x75, 0x00, 0x3F, 0x81, 0x50, 0x86, 0xA0, 0x52, 0xA1, 0x00, 0xA2, 0x40,
    0xA4, 0xA8, 0x3F, 0xAD, 0x03, 0xAF,
];
/// The window a full-frame flush writes: columns 0..=63 (two pixels each), rows 0..=63.
const WINDOW: &[u8] = &[0x15, 0x00, 0x3F, 0x75, 0x00, 0x3F];

/// The OLED.
pub struct Oled(());

impl Oled {
    /// Configures SSI0 and the control pins, then sends the controller's setup.
    pub fn init() -> Self {
        hw::gpio_output(hw::GPIO_C, 1 << 7);
        hw::gpio_output(hw::GPIO_D, 1 << 0);
        SELECT.write(0xFF);
        hw::gpio_peripheral(hw::GPIO_A, 1 << 2 | 1 << 3 | 1 << 5);
        CR1.write(0);
        CR0.write(CR0_MODE3_8BIT);
        CPSR.write(2);
        CR1.write(CR1_SSE);
        let mut oled = Self(());
        oled.command(INIT);
        oled
    }

    /// Sends one byte and discards the byte clocked in: QEMU's PL022 stops
    /// transmitting once its receive FIFO (8 entries) is full.
    #[inline]
    fn transfer(&mut self, byte: u8) {
        hw::wait_until(WAIT_LIMIT, || SR.read() & SR_TNF != 0);
        DR.write(byte as u32);
        hw::wait_until(WAIT_LIMIT, || SR.read() & SR_RNE != 0);
        let _ = DR.read();
    }

    fn send(&mut self, data_mode: bool, bytes: &[u8]) {
        // D/C may only change once the previous bytes have left the shifter.
        hw::wait_until(WAIT_LIMIT, || SR.read() & SR_BSY == 0);
        DC.write(if data_mode { 0xFF } else { 0 });
        for &b in bytes {
            self.transfer(b);
        }
        hw::wait_until(WAIT_LIMIT, || SR.read() & SR_BSY == 0);
    }

    fn command(&mut self, bytes: &[u8]) {
        self.send(false, bytes);
    }

    /// Shows `fb`: sets the full window, then streams the 4096 bytes.
    pub fn flush(&mut self, fb: &FrameBuffer) {
        self.command(WINDOW);
        self.send(true, fb.as_bytes());
    }
}
