//! The memory routines the compiler calls (`memcpy`, `memset` and their ARM EABI
//! forms), small: word copies and stores where both ends are word aligned, bytes
//! otherwise.
//!
//! Why our own: compiler-builtins' versions are built for speed on large blocks
//! (unrolled, with misaligned-source shifting) and took 1,294 bytes of the Cortex-M3's
//! 32 KiB code budget; these take about a tenth of that. The firmware copies little:
//! a response's few hundred bytes, a request's frame. compiler-builtins defines its
//! routines as weak symbols, so these replace them at link time.
//!
//! The loops use volatile accesses so that LLVM cannot recognize them as a copy or a
//! fill and turn them back into a call to the routine being defined.
#![allow(unsafe_code)]

use core::ptr::{read_volatile, write_volatile};

/// Copies `n` bytes, words first when both pointers are word aligned.
///
/// # Safety
/// `src` readable and `dest` writable for `n` bytes, not overlapping.
#[inline(always)]
unsafe fn copy(dest: *mut u8, src: *const u8, n: usize) {
    let mut i = 0;
    if (dest as usize | src as usize) & 3 == 0 {
        // Four words an iteration: the loop's compare and branch once per 16 bytes.
        while i + 16 <= n {
            // SAFETY: in bounds (`i + 16 <= n`) and word aligned (both bases are).
            unsafe {
                let (d, s) = (dest.add(i).cast::<u32>(), src.add(i).cast::<u32>());
                let (a, b) = (read_volatile(s), read_volatile(s.add(1)));
                let (c, e) = (read_volatile(s.add(2)), read_volatile(s.add(3)));
                write_volatile(d, a);
                write_volatile(d.add(1), b);
                write_volatile(d.add(2), c);
                write_volatile(d.add(3), e);
            }
            i += 16;
        }
        while i + 4 <= n {
            // SAFETY: in bounds (`i + 4 <= n`) and word aligned.
            unsafe {
                write_volatile(
                    dest.add(i).cast::<u32>(),
                    read_volatile(src.add(i).cast::<u32>()),
                )
            };
            i += 4;
        }
    }
    while i < n {
        // SAFETY: in bounds (`i < n`).
        unsafe { write_volatile(dest.add(i), read_volatile(src.add(i))) };
        i += 1;
    }
}

/// Fills `n` bytes with `value`, words first when `dest` is word aligned.
///
/// # Safety
/// `dest` writable for `n` bytes.
#[inline(always)]
unsafe fn fill(dest: *mut u8, value: u8, n: usize) {
    let mut i = 0;
    if dest as usize & 3 == 0 {
        let word = u32::from(value) * 0x0101_0101;
        while i + 16 <= n {
            // SAFETY: in bounds (`i + 16 <= n`) and word aligned.
            unsafe {
                let d = dest.add(i).cast::<u32>();
                write_volatile(d, word);
                write_volatile(d.add(1), word);
                write_volatile(d.add(2), word);
                write_volatile(d.add(3), word);
            }
            i += 16;
        }
        while i + 4 <= n {
            // SAFETY: in bounds and word aligned.
            unsafe { write_volatile(dest.add(i).cast::<u32>(), word) };
            i += 4;
        }
    }
    while i < n {
        // SAFETY: in bounds.
        unsafe { write_volatile(dest.add(i), value) };
        i += 1;
    }
}

/// C `memcpy`.
///
/// # Safety
/// As [`copy`].
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { copy(dest, src, n) };
    dest
}

/// ARM EABI `memcpy` (no return value).
///
/// # Safety
/// As [`copy`].
#[no_mangle]
pub unsafe extern "C" fn __aeabi_memcpy(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's contract.
    unsafe { copy(dest, src, n) };
}

/// ARM EABI `memcpy` of word-aligned pointers.
///
/// # Safety
/// As [`copy`].
#[no_mangle]
pub unsafe extern "C" fn __aeabi_memcpy4(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's contract.
    unsafe { copy(dest, src, n) };
}

/// ARM EABI `memcpy` of doubleword-aligned pointers.
///
/// # Safety
/// As [`copy`].
#[no_mangle]
pub unsafe extern "C" fn __aeabi_memcpy8(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller's contract.
    unsafe { copy(dest, src, n) };
}

/// C `memset`.
///
/// # Safety
/// As [`fill`].
#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, value: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { fill(dest, value as u8, n) };
    dest
}

/// ARM EABI `memset` (note the order: length before value).
///
/// # Safety
/// As [`fill`].
#[no_mangle]
pub unsafe extern "C" fn __aeabi_memset(dest: *mut u8, n: usize, value: i32) {
    // SAFETY: the caller's contract.
    unsafe { fill(dest, value as u8, n) };
}

/// ARM EABI zero fill.
///
/// # Safety
/// As [`fill`].
#[no_mangle]
pub unsafe extern "C" fn __aeabi_memclr(dest: *mut u8, n: usize) {
    // SAFETY: the caller's contract.
    unsafe { fill(dest, 0, n) };
}

/// ARM EABI zero fill of a word-aligned block.
///
/// # Safety
/// As [`fill`].
#[no_mangle]
pub unsafe extern "C" fn __aeabi_memclr4(dest: *mut u8, n: usize) {
    // SAFETY: the caller's contract.
    unsafe { fill(dest, 0, n) };
}

/// ARM EABI zero fill of a doubleword-aligned block.
///
/// # Safety
/// As [`fill`].
#[no_mangle]
pub unsafe extern "C" fn __aeabi_memclr8(dest: *mut u8, n: usize) {
    // SAFETY: the caller's contract.
    unsafe { fill(dest, 0, n) };
}
