//! SSI0 (an ARM PL022) as an 8-bit SPI master in mode 3: the OLED's bus.

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
/// 8-bit frames (DSS = 7), SPO = 1, SPH = 1: SPI mode 3.
const CR0_MODE3_8BIT: u32 = 0x7 | 1 << 6 | 1 << 7;
const CR1_SSE: u32 = 1 << 1;

/// Polls before giving up on the SSI; a byte takes a few hundred at most.
const WAIT_LIMIT: u32 = 100_000;

/// SSI0, configured and enabled.
pub struct Ssi0(());

impl Ssi0 {
    /// Gives PA2 (clock), PA3 (frame select) and PA5 (transmit) to SSI0 and enables it
    /// in SPI mode 3 at the system clock / 2.
    pub fn init() -> Self {
        hw::gpio_peripheral(hw::GPIO_A, 1 << 2 | 1 << 3 | 1 << 5);
        CR1.write(0);
        CR0.write(CR0_MODE3_8BIT);
        CPSR.write(2);
        CR1.write(CR1_SSE);
        Self(())
    }

    /// Sends one byte and discards the byte clocked in: QEMU's PL022 stops
    /// transmitting once its receive FIFO (8 entries) is full.
    #[inline]
    pub fn transfer(&mut self, byte: u8) {
        hw::wait_until(WAIT_LIMIT, || SR.read() & SR_TNF != 0);
        DR.write(byte as u32);
        hw::wait_until(WAIT_LIMIT, || SR.read() & SR_RNE != 0);
        let _ = DR.read();
    }

    /// Waits (bounded) until the last byte has left the shifter.
    pub fn wait_idle(&mut self) {
        hw::wait_until(WAIT_LIMIT, || SR.read() & SR_BSY == 0);
    }
}
