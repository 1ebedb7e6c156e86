//! The device part of the vector table (cortex-m-rt's `device` feature).
//!
//! cortex-m-rt's generic table has a vector for each of the 240 interrupts an ARMv7-M
//! core can have (32 on ARMv6-M): 960 bytes of flash, all pointing at the default
//! handler. This one stops at UART0 (IRQ 5), the only interrupt the firmware unmasks;
//! GPIO ports A to E (IRQs 0 to 4) go to cortex-m-rt's `DefaultHandler`, and no higher
//! interrupt is ever enabled.

use crate::pl011;

extern "C" {
    /// cortex-m-rt's handler for every exception and interrupt without one of its own.
    fn DefaultHandler();
}

/// IRQs 0 to 5 of the LM3S6965, placed by cortex-m-rt's linker script right after the
/// 16 core exception vectors.
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
static __INTERRUPTS: [unsafe extern "C" fn(); 6] = [
    DefaultHandler, // 0: GPIO port A
    DefaultHandler, // 1: GPIO port B
    DefaultHandler, // 2: GPIO port C
    DefaultHandler, // 3: GPIO port D
    DefaultHandler, // 4: GPIO port E
    uart0,          // 5: UART0
];

/// UART0's interrupt (IRQ 5).
extern "C" fn uart0() {
    pl011::on_interrupt();
}
