//! SCRATCH wiring: compile-checks trainer/src/{serial,emulate} before the trainer declares them.
#[path = "../../trainer/src/serial/mod.rs"]
pub mod serial;
#[path = "../../trainer/src/emulate/mod.rs"]
pub mod emulate;
