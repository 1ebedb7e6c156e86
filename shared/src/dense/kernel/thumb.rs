//! The Cortex-M3 inner loop in Thumb-2 assembly.
//!
//! Compiled from Rust, LLVM runs out of registers in this loop (`r6` and `r7` are
//! reserved, four accumulators, four activations) and spills: 42 instructions per 16
//! MACs. Written out, it is 35, and 68 per 32 with eight inputs a pass.

use super::{split_steps, Operands, CHANNEL_GROUP};

/// Inputs per pass of the assembly loop (two `LDM`s of four activations).
const BLOCK: usize = 8;

/// One input of the loop (one `asm!` template piece): its four weights, the first
/// loaded by `first`, the others at `offsets` from the weight pointer, each
/// multiply-accumulated with the activation in register `x`.
macro_rules! mla_input {
    ($first:literal, $x:literal, $o1:literal, $o2:literal, $o3:literal) => {
        concat!(
            $first,
            "\n",
            "mla {a0}, {t}, ",
            $x,
            ", {a0}\n",
            "ldrsb {t}, [{w}, #",
            $o1,
            "]\n",
            "mla {a1}, {t}, ",
            $x,
            ", {a1}\n",
            "ldrsb {t}, [{w}, #",
            $o2,
            "]\n",
            "mla {a2}, {t}, ",
            $x,
            ", {a2}\n",
            "ldrsb {t}, [{w}, #",
            $o3,
            "]\n",
            "mla {a3}, {t}, ",
            $x,
            ", {a3}\n",
        )
    };
}

/// Runs the assembly loop over whole blocks of eight inputs and returns the weights
/// and inputs left over (fewer than eight) for the portable loop.
///
/// Per block: two `LDM`s bring in four activations each, and 32 `LDRSB`s each load a
/// sign-extended weight. The first of them post-increments the weight pointer, so the
/// others use negative offsets. 32 `MLA`s, then `CMP` and `BNE`: 68 instructions for
/// 32 MACs (2.125 per MAC; four inputs a pass took 35 per 16, 2.19). The accumulation is in input
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
        // SAFETY: the loop reads `blocks * 32` bytes from `w_ptr` and `blocks * 8`
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
                mla_input!("ldrsb {t}, [{w}], #32", "r0", "-31", "-30", "-29"),
                mla_input!("ldrsb {t}, [{w}, #-28]", "r1", "-27", "-26", "-25"),
                mla_input!("ldrsb {t}, [{w}, #-24]", "r2", "-23", "-22", "-21"),
                mla_input!("ldrsb {t}, [{w}, #-20]", "r3", "-19", "-18", "-17"),
                "ldm {x}!, {{r0, r1, r2, r3}}",
                mla_input!("ldrsb {t}, [{w}, #-16]", "r0", "-15", "-14", "-13"),
                mla_input!("ldrsb {t}, [{w}, #-12]", "r1", "-11", "-10", "-9"),
                mla_input!("ldrsb {t}, [{w}, #-8]", "r2", "-7", "-6", "-5"),
                mla_input!("ldrsb {t}, [{w}, #-4]", "r3", "-3", "-2", "-1"),
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

/// One listed input of the sparse loop (one `asm!` template piece): its weight word
/// loaded into `$w` from the offset there, each byte sign-extended in place
/// (`SXTB` with rotation, `ASR` for the top one) and multiply-accumulated with the value
/// in `$x`: 9 instructions for 4 MACs.
macro_rules! mla_word {
    ($w:literal, $x:literal) => {
        concat!(
            "ldr ",
            $w,
            ", [{g}, ",
            $w,
            "]\n",
            "sxtb {t}, ",
            $w,
            "\n",
            "mla {a0}, {t}, ",
            $x,
            ", {a0}\n",
            "sxtb {t}, ",
            $w,
            ", ror #8\n",
            "mla {a1}, {t}, ",
            $x,
            ", {a1}\n",
            "sxtb {t}, ",
            $w,
            ", ror #16\n",
            "mla {a2}, {t}, ",
            $x,
            ", {a2}\n",
            "asr {t}, ",
            $w,
            ", #24\n",
            "mla {a3}, {t}, ",
            $x,
            ", {a3}\n",
        )
    };
}

/// One group's dot products over a [`super::sparse_list`] (two entries a pass), into
/// `dot`. `reach` bounds the list's offsets plus a word (see [`super::Inputs`]).
///
/// Per pass: one `LDM` of two entries, then per entry its weight word (`LDR` with a
/// register offset) and four `SXTB`/`ASR` + `MLA`; `CMP` and `BNE`: 21 instructions
/// for 8 MACs (2.625 per MAC, over the listed inputs only).
#[inline(always)]
pub(super) fn sparse_dot_group_into(
    weights: &[i8],
    list: &[i32],
    reach: usize,
    dot: &mut [i32; CHANNEL_GROUP],
) {
    let (passes, rest) = list.as_chunks::<4>();
    if passes.is_empty() || !rest.is_empty() || reach > weights.len() {
        super::sparse::entries_dot(weights, list, dot);
        return;
    }
    let range = passes.as_ptr_range();
    let dot_ptr = dot.as_mut_ptr();
    // SAFETY: the loop reads `passes` (16 bytes a pass) from its start until the
    // pointer reaches its end (at least one pass), and for each entry the word at
    // `g + offset`, inside `weights` (every offset is below `reach - 3`, checked above
    // to be within it; `LDR` tolerates misalignment). It writes the four words of
    // `dot` (exclusively borrowed) and the registers it declares, and pushes and pops
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
            "ldm {p}!, {{r0, r1, r2, r3}}",
            mla_word!("r1", "r0"),
            mla_word!("r3", "r2"),
            "cmp {p}, {end}",
            "bne 2b",
            "pop {{{t}}}",
            "strd {a0}, {a1}, [{t}]",
            "strd {a2}, {a3}, [{t}, #8]",
            p = inout(reg) range.start => _,
            end = in(reg) range.end,
            g = in(reg) weights.as_ptr(),
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
