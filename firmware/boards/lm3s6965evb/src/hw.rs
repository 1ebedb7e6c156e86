//! Memory-mapped registers of the LM3S6965's peripherals, and the clock setup.
//!
//! The part has no maintained peripheral access crate, and the firmware touches a
//! dozen registers, so they are plain addresses with volatile accesses. This is the
//! only place the firmware reads or writes a peripheral address.

use core::ptr;

/// One 32-bit memory-mapped register.
#[derive(Clone, Copy)]
pub struct Reg(usize);

impl Reg {
    /// The register at `base + offset`.
    pub const fn at(base: usize, offset: usize) -> Self {
        Self(base + offset)
    }

    /// Reads the register.
    #[inline]
    pub fn read(self) -> u32 {
        // SAFETY: every `Reg` is built from the fixed, documented peripheral addresses
        // in this module's users, which are always mapped on the LM3S6965, aligned,
        // and have no read side effects beyond the peripheral's own (e.g. popping a
        // FIFO), which callers intend.
        unsafe { ptr::read_volatile(self.0 as *const u32) }
    }

    /// Writes the register.
    #[inline]
    pub fn write(self, value: u32) {
        // SAFETY: as for `read`; these addresses are device registers, never memory
        // that Rust code owns.
        unsafe { ptr::write_volatile(self.0 as *mut u32, value) }
    }

    /// Sets the bits of `mask`.
    #[inline]
    pub fn set_bits(self, mask: u32) {
        self.write(self.read() | mask);
    }

    /// Clears the bits of `mask`.
    #[inline]
    pub fn clear_bits(self, mask: u32) {
        self.write(self.read() & !mask);
    }
}

/// System control block (clocks and peripheral clock gates).
const SYSCTL: usize = 0x400F_E000;
/// Run-mode clock configuration.
const RCC: Reg = Reg::at(SYSCTL, 0x060);
/// Clock gates of UART0 (bit 0) and SSI0 (bit 4).
const RCGC1: Reg = Reg::at(SYSCTL, 0x104);
/// Clock gates of GPIO ports A (bit 0) to G.
const RCGC2: Reg = Reg::at(SYSCTL, 0x108);

const RCC_SYSDIV_SHIFT: u32 = 23;
const RCC_SYSDIV_MASK: u32 = 0xF << RCC_SYSDIV_SHIFT;

/// GPIO port bases (the APB aperture).
pub const GPIO_A: usize = 0x4000_4000;
/// GPIO port C.
pub const GPIO_C: usize = 0x4000_6000;
/// GPIO port D.
pub const GPIO_D: usize = 0x4000_7000;
/// Direction register offset (1 = output).
pub const GPIO_DIR: usize = 0x400;
/// Alternate function select offset.
pub const GPIO_AFSEL: usize = 0x420;
/// Digital enable offset.
pub const GPIO_DEN: usize = 0x51C;

/// The data register of a GPIO port that reads and writes only the pins in `mask`
/// (the Stellaris address-masked data access: bits 9:2 of the address are the mask).
pub const fn gpio_data(port: usize, mask: u8) -> Reg {
    Reg::at(port, (mask as usize) << 2)
}

/// Configures pins `mask` of `port` as digital outputs.
pub fn gpio_output(port: usize, mask: u8) {
    Reg::at(port, GPIO_DIR).set_bits(mask as u32);
    Reg::at(port, GPIO_AFSEL).clear_bits(mask as u32);
    Reg::at(port, GPIO_DEN).set_bits(mask as u32);
}

/// Gives pins `mask` of `port` to their peripheral (UART, SSI).
pub fn gpio_peripheral(port: usize, mask: u8) {
    Reg::at(port, GPIO_AFSEL).set_bits(mask as u32);
    Reg::at(port, GPIO_DEN).set_bits(mask as u32);
}

/// Sets the system clock divider to 1 and opens the clock gates of the peripherals
/// the firmware uses. Returns the divider now in force (1 on QEMU).
///
/// QEMU derives the system clock from RCC.SYSDIV alone (200 MHz / (SYSDIV + 1)); the
/// reset value 15 would make a SysTick tick 80 instructions under `-icount shift=0`,
/// SYSDIV = 0 makes it 5. On a real part SYSDIV only acts together with USESYSDIV,
/// which stays clear, so the write changes nothing there.
pub fn init_clocks() -> u32 {
    RCC.clear_bits(RCC_SYSDIV_MASK);
    RCGC1.set_bits(1 << 0 | 1 << 4);
    RCGC2.set_bits(1 << 0 | 1 << 2 | 1 << 3);
    // The gates take a few cycles to open before the peripheral may be touched.
    for _ in 0..3 {
        let _ = RCGC2.read();
    }
    ((RCC.read() & RCC_SYSDIV_MASK) >> RCC_SYSDIV_SHIFT) + 1
}

/// Spins until `done` returns true or `limit` polls have passed; returns whether it
/// finished. Every hardware wait is bounded so that no peripheral state can hang the
/// firmware forever.
#[inline]
pub fn wait_until(limit: u32, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..limit {
        if done() {
            return true;
        }
    }
    done()
}
