//! Checks on a finished `tinyvae` process, shared by the CLI tests.
#![allow(dead_code)] // each test file uses only some of these

use std::process::Output;

pub mod train;

/// Asserts that the command succeeded; shows its stderr when not.
pub fn ok(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that the command failed with `needle` in its message; returns the message.
pub fn fails_with(out: Output, what: &str, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{what} must fail");
    assert!(stderr.contains(needle), "{what}: {stderr}");
    stderr
}
