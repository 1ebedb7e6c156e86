//! The Cortex-M0 inner loop (ARMv6-M: `MULS`, no `MLA`) in Thumb assembly.
//!
//! Compiled from Rust, the loop spills: ARMv6-M's `MULS`, `LDRSB` and `SXTB` take only
//! the eight low registers, of which the compiler keeps two (`r6`, `r7`), and four
//! accumulators do not fit beside the pointers; LLVM's loop is 28 instructions per
//! input (7 per MAC). Here the accumulators live in high registers (`ADD` takes any
//! register) and the low ones hold the operands:
//!
//! * the input is addressed from the weight pointer (`LDR x, [w, e]`, `e` the distance
//!   between the two arrays: both advance four bytes per input), so one pointer moves;
//! * channels 1 and 2 load with `LDRSB t, [w, o]` (register offsets 1 and 2), channels
//!   0 and 3 with `LDRB` (immediate offset) and `SXTB`, since no low register is left
//!   for two more offsets.
//!
//! Per input: `LDR`, 4 weight loads, 2 `SXTB`, 4 `MULS`, 4 `ADD`s and the pointer step;
//! two inputs per pass with `CMP` and `BNE`: 34 instructions per 8 MACs (4.25 per MAC).
//! Byte loads only, so the weights need no alignment (ARMv6-M faults on unaligned words).

use super::{split_steps, Operands, CHANNEL_GROUP};

/// Inputs per pass of the assembly loop.
const BLOCK: usize = 2;

/// One input of the loop: its activation, four weights, four products added to the
/// sums in r8-r11, and the pointer step (one `asm!` template piece).
macro_rules! one_input {
    () => {
        concat!(
            "ldr r0, [r2, r3]\n",
            "ldrb r1, [r2, #0]\n",
            "sxtb r1, r1\n",
            "muls r1, r0, r1\n",
            "add r8, r1\n",
            "ldrsb r1, [r2, r4]\n",
            "muls r1, r0, r1\n",
            "add r9, r1\n",
            "ldrsb r1, [r2, r5]\n",
            "muls r1, r0, r1\n",
            "add r10, r1\n",
            "ldrb r1, [r2, #3]\n",
            "sxtb r1, r1\n",
            "muls r1, r0, r1\n",
            "add r11, r1\n",
            "adds r2, #4\n",
        )
    };
}

/// Sets `acc` to the sums over whole pairs of inputs (zero without any) and returns
/// the weights and inputs left over (at most one input) for the portable loop.
#[inline]
pub(super) fn accumulate_pairs<'a, 'b>(
    acc: &mut [i32; CHANNEL_GROUP],
    weights: &'a [i8],
    xs: &'b [i32],
) -> Operands<'a, 'b> {
    let ((w_done, x_done), rest) = split_steps(weights, xs, BLOCK);
    if x_done.is_empty() {
        *acc = [0; CHANNEL_GROUP];
    } else {
        let w_range = w_done.as_ptr_range();
        // The input of the weight word at `w` is at `w + e` (both strides are 4 bytes).
        let e = (x_done.as_ptr() as usize).wrapping_sub(w_range.start as usize);
        let (s0, s1, s2, s3): (i32, i32, i32, i32);
        // SAFETY: the loop reads `w_done` from `w_range.start`, and for each input
        // word the matching `xs` word at `w + e`, which is `x_done` (word aligned, as `LDR` needs). It stops when the
        // weight pointer reaches `w_range.end`, and `x_done` is not empty, so it runs at least
        // once without passing it. It writes only registers it declares (high
        // registers can only be clobbers in Thumb-1 code: the sums come back through
        // low ones).
        #[allow(unsafe_code)]
        unsafe {
            core::arch::asm!(
                "mov r12, r0",
                "movs r0, #0",
                "mov r8, r0",
                "mov r9, r0",
                "mov r10, r0",
                "mov r11, r0",
                "movs r4, #1",
                "movs r5, #2",
                "2:",
                one_input!(),
                one_input!(),
                "cmp r2, r12",
                "bne 2b",
                "mov r0, r8",
                "mov r1, r9",
                "mov r4, r10",
                "mov r5, r11",
                inout("r0") w_range.end => s0,
                lateout("r1") s1,
                inout("r2") w_range.start => _,
                in("r3") e,
                lateout("r4") s2,
                lateout("r5") s3,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("r11") _,
                out("r12") _,
                options(nostack, readonly),
            );
        }
        *acc = [s0, s1, s2, s3];
    }
    rest
}

/// One listed input of the sparse loop: its value and weight offset (`LDM`), the
/// weight word's address, then per byte `LDRB`, `SXTB`, `MULS` and an `ADD` into the
/// sums in r8-r11 (one `asm!` template piece, 18 instructions for 4 MACs).
macro_rules! one_entry {
    () => {
        concat!(
            "ldm r0!, {{r2, r3}}\n",
            "adds r3, r1, r3\n",
            "ldrb r4, [r3, #0]\n",
            "sxtb r4, r4\n",
            "muls r4, r2, r4\n",
            "add r8, r4\n",
            "ldrb r4, [r3, #1]\n",
            "sxtb r4, r4\n",
            "muls r4, r2, r4\n",
            "add r9, r4\n",
            "ldrb r4, [r3, #2]\n",
            "sxtb r4, r4\n",
            "muls r4, r2, r4\n",
            "add r10, r4\n",
            "ldrb r4, [r3, #3]\n",
            "sxtb r4, r4\n",
            "muls r4, r2, r4\n",
            "add r11, r4\n",
        )
    };
}

/// One group's dot products over a [`super::sparse_list`] (two entries a pass), into
/// `acc`. `reach` bounds the list's offsets plus a word (see [`super::Inputs`]).
///
/// 38 instructions for 8 MACs (4.75 per MAC, over the listed inputs only); byte loads,
/// so the weights need no alignment.
#[inline]
pub(super) fn sparse_dot_group_into(
    weights: &[i8],
    list: &[i32],
    reach: usize,
    acc: &mut [i32; CHANNEL_GROUP],
) {
    let (passes, rest) = list.as_chunks::<4>();
    if passes.is_empty() || !rest.is_empty() || reach > weights.len() {
        super::sparse::entries_dot(weights, list, acc);
        return;
    }
    let range = passes.as_ptr_range();
    let (s0, s1, s2, s3): (i32, i32, i32, i32);
    // SAFETY: the loop reads `passes` (16 bytes a pass) from its start until the
    // pointer reaches its end (at least one pass), and for each entry the four bytes
    // at `weights + offset`, inside `weights` (every offset is below `reach - 3`,
    // checked above to be within it). It writes only registers it declares (the sums
    // come back through low ones).
    #[allow(unsafe_code)]
    unsafe {
        core::arch::asm!(
            "mov r12, r5",
            "movs r4, #0",
            "mov r8, r4",
            "mov r9, r4",
            "mov r10, r4",
            "mov r11, r4",
            "2:",
            one_entry!(),
            one_entry!(),
            "cmp r0, r12",
            "bne 2b",
            "mov r0, r8",
            "mov r1, r9",
            "mov r2, r10",
            "mov r3, r11",
            inout("r0") range.start => s0,
            inout("r1") weights.as_ptr() => s1,
            lateout("r2") s2,
            lateout("r3") s3,
            out("r4") _,
            in("r5") range.end,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            options(nostack, readonly),
        );
    }
    *acc = [s0, s1, s2, s3];
}
