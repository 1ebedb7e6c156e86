//! What every tinyvae board built on cortex-m-rt shares, so that a board crate holds
//! only its pins, clocks and drivers:
//!
//! * [`stack`]: paints the free stack at boot and reports the app's
//!   [`tinyvae_app::Footprint`] (flash, static RAM, stack high-water mark) from
//!   cortex-m-rt's linker symbols;
//! * [`systick`]: a 64-bit counter from SysTick and its wrap exception (instructions
//!   under QEMU's `-icount`, core cycles on a part without a cycle counter, the
//!   RP2040's Cortex-M0+);
//! * `mem` (feature `small-mem`): `memcpy` and `memset` in about a tenth of the code
//!   of compiler-builtins' (the LM3S6965's Cortex-M3 has no code to spare);
//! * `dwt` (feature `dwt`): a 64-bit cycle counter from the DWT's `CYCCNT`
//!   (Cortex-M3/M4/M7 parts; ARMv6-M has none and QEMU does not emulate it).
#![no_std]

#[cfg(feature = "dwt")]
pub mod dwt;
#[cfg(feature = "small-mem")]
pub mod mem;
pub mod stack;
pub mod systick;
