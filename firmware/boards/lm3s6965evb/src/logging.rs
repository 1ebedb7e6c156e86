//! defmt's timestamp: none (the instruction counter belongs to the measurements, and
//! a log line needs no time to be useful under QEMU). The transport is
//! `defmt-semihosting`, linked here, which writes to QEMU's stdout through the
//! debugger channel, never to UART0.

use defmt_semihosting as _;
