//! Stack high-water mark by painting.
//!
//! At boot every word between the end of the static RAM (`__sheap`) and the current
//! stack pointer is filled with a pattern; the deepest word no longer holding it tells
//! how much stack the firmware has ever used. Scanning from the bottom stops at the
//! first overwritten word, so the answer is exact unless a frame skipped words without
//! writing them (which can only under-report by that frame's unused slots).

use core::ptr::{addr_of, addr_of_mut};

use tinyvae_app::Footprint as AppFootprint;

const PAINT: u32 = 0x5AC3_E1F0;
/// Words just below the live stack pointer left unpainted (room for this function's
/// own use and an exception frame).
const MARGIN_WORDS: usize = 16;

extern "C" {
    /// End of .bss/.uninit: the lowest address the stack may grow to.
    static mut __sheap: u32;
    /// Top of RAM: the initial stack pointer.
    static _stack_start: u32;
}

fn bottom() -> usize {
    // Only the symbol's address is taken, never a reference.
    addr_of_mut!(__sheap) as usize
}

fn top() -> usize {
    addr_of!(_stack_start) as usize
}

/// Paints the free stack. Call first thing in `main`, before any interrupt is
/// enabled.
#[inline(never)]
pub fn paint() {
    let sp = cortex_m::register::msp::read() as usize;
    let end = sp.saturating_sub(MARGIN_WORDS * 4);
    let mut addr = (bottom() + 3) & !3;
    while addr < end {
        // SAFETY: [__sheap, sp - margin) is RAM that no Rust object occupies: statics
        // end at __sheap and the stack lives above sp. Interrupts are not yet enabled.
        unsafe { core::ptr::write_volatile(addr as *mut u32, PAINT) };
        addr += 4;
    }
}

/// Most stack used since boot, in bytes.
fn high_water() -> u32 {
    let mut addr = (bottom() + 3) & !3;
    let top = top();
    while addr < top {
        // SAFETY: reads of RAM between the statics and the top of the stack; the
        // words are plain integers either way.
        let word = unsafe { core::ptr::read_volatile(addr as *const u32) };
        if word != PAINT {
            break;
        }
        addr += 4;
    }
    (top - addr) as u32
}

/// Static RAM (.data + .bss + .uninit) in bytes.
fn static_ram() -> u32 {
    extern "C" {
        static __sdata: u32;
    }
    let start = addr_of!(__sdata) as usize;
    bottom().saturating_sub(start) as u32
}

/// Flash used by the image: code, read-only data (the model included) and the
/// initial values of .data, counted from the start of the part's flash.
///
/// The start is each board's `__tinyvae_flash_start` (its memory.x): cortex-m-rt knows
/// only where its vector table goes, and flash does not always begin there (the
/// RP2040's second-stage bootloader sits before it) nor at address 0 (0x0800_0000 on
/// an STM32).
fn flash_used() -> u32 {
    extern "C" {
        static __tinyvae_flash_start: u32;
        static __sidata: u32;
        static __sdata: u32;
        static __edata: u32;
    }
    let (flash_start, load, start, end) = (
        addr_of!(__tinyvae_flash_start) as usize,
        addr_of!(__sidata) as usize,
        addr_of!(__sdata) as usize,
        addr_of!(__edata) as usize,
    );
    (load + end.saturating_sub(start)).saturating_sub(flash_start) as u32
}

/// The app's memory report, from cortex-m-rt's linker symbols and the painted stack.
pub struct Footprint;

impl AppFootprint for Footprint {
    fn flash_used(&self) -> u32 {
        flash_used()
    }

    fn ram_static(&self) -> u32 {
        static_ram()
    }

    fn stack_high_water(&self) -> u32 {
        high_water()
    }
}
