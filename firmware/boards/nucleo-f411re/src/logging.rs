//! defmt over RTT: the probe reads the log from a ring in RAM (`probe-rs run` prints
//! it), never through the protocol's UART. No timestamp: the cycle counter belongs to
//! the measurements. A panic prints its message there too (panic-probe), then halts.

use defmt_rtt as _;
use panic_probe as _;
