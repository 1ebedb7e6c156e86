//! The Cortex-M3 inner loop in Thumb-2 assembly.
//!
//! Compiled from Rust, LLVM runs out of registers in this loop (`r6` and `r7` are
//! reserved, four accumulators, four activations) and spills: 42 instructions per 16
//! MACs. Written out, it is 35.

use super::{split_steps, Operands, CHANNEL_GROUP};

/// Inputs per pass of the assembly loop (one `LDM` of four activations).
const BLOCK: usize = 4;

/// Runs the assembly loop over whole blocks of four inputs and returns the weights
/// and inputs left over (fewer than four inputs) for the portable loop.
///
/// Per block: one `LDM` brings in four activations, and sixteen `LDRSB` each load a
/// sign-extended weight. The first of them post-increments the weight pointer, so the
/// other fifteen use negative offsets. Sixteen `MLA`s follow, then `CMP` and `BNE`.
/// That is 35 instructions for 16 MACs (2.19 per MAC). The accumulation is in input
/// order, so only one activation and one weight are live besides the accumulators.
///
/// Sets `dot` to the sums over the whole blocks (zero without any): the assembly
/// zeroes its accumulators and stores them itself, which saves their trip through the
/// stack (all twelve allocatable registers are taken: `t` keeps `dot`'s address on
/// the stack during the loop).
#[inline]
pub(super) fn accumulate_blocks<'a, 'b>(
    dot: &mut [i32; CHANNEL_GROUP],
    weights: &'a [i8],
    xs: &'b [i32],
) -> Operands<'a, 'b> {
    let ((w_done, x_done), rest) = split_steps(weights, xs, BLOCK);
    if x_done.is_empty() {
        *dot = [0; CHANNEL_GROUP];
    } else {
        let dot_ptr = dot.as_mut_ptr();
        let w_ptr = w_done.as_ptr();
        let x_ptr = x_done.as_ptr();
        let x_end = x_done.as_ptr_range().end;
        // SAFETY: the loop reads `blocks * 16` bytes from `w_ptr` and `blocks * 4`
        // words from `x_ptr`, which is exactly `w_done` and `x_done` (split above);
        // it stops when `x_ptr` reaches `x_end`, and `x_done` is not empty, so it runs at
        // least once without passing it. It writes the four words of `dot`
        // (exclusively borrowed) and the registers it declares, and pushes and pops
        // one word of stack.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::asm!(
                "push {{{t}}}",
                "mov {a0}, #0",
                "mov {a1}, #0",
                "mov {a2}, #0",
                "mov {a3}, #0",
                "2:",
                "ldm {x}!, {{r0, r1, r2, r3}}",
                "ldrsb {t}, [{w}], #16",
                "mla {a0}, {t}, r0, {a0}",
                "ldrsb {t}, [{w}, #-15]",
                "mla {a1}, {t}, r0, {a1}",
                "ldrsb {t}, [{w}, #-14]",
                "mla {a2}, {t}, r0, {a2}",
                "ldrsb {t}, [{w}, #-13]",
                "mla {a3}, {t}, r0, {a3}",
                "ldrsb {t}, [{w}, #-12]",
                "mla {a0}, {t}, r1, {a0}",
                "ldrsb {t}, [{w}, #-11]",
                "mla {a1}, {t}, r1, {a1}",
                "ldrsb {t}, [{w}, #-10]",
                "mla {a2}, {t}, r1, {a2}",
                "ldrsb {t}, [{w}, #-9]",
                "mla {a3}, {t}, r1, {a3}",
                "ldrsb {t}, [{w}, #-8]",
                "mla {a0}, {t}, r2, {a0}",
                "ldrsb {t}, [{w}, #-7]",
                "mla {a1}, {t}, r2, {a1}",
                "ldrsb {t}, [{w}, #-6]",
                "mla {a2}, {t}, r2, {a2}",
                "ldrsb {t}, [{w}, #-5]",
                "mla {a3}, {t}, r2, {a3}",
                "ldrsb {t}, [{w}, #-4]",
                "mla {a0}, {t}, r3, {a0}",
                "ldrsb {t}, [{w}, #-3]",
                "mla {a1}, {t}, r3, {a1}",
                "ldrsb {t}, [{w}, #-2]",
                "mla {a2}, {t}, r3, {a2}",
                "ldrsb {t}, [{w}, #-1]",
                "mla {a3}, {t}, r3, {a3}",
                "cmp {x}, {x_end}",
                "bne 2b",
                "pop {{{t}}}",
                "strd {a0}, {a1}, [{t}]",
                "strd {a2}, {a3}, [{t}, #8]",
                x = inout(reg) x_ptr => _,
                w = inout(reg) w_ptr => _,
                x_end = in(reg) x_end,
                t = inout(reg) dot_ptr => _,
                a0 = out(reg) _,
                a1 = out(reg) _,
                a2 = out(reg) _,
                a3 = out(reg) _,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
            );
        }
    }
    rest
}
