//! The Cortex-M4 inner loop (ARMv7E-M DSP extension) in Thumb-2 assembly.
//!
//! `SMLAD` adds two 16x16-bit products to an accumulator: `a += lo(w) lo(x) + hi(w)
//! hi(x)`. The inputs are widened once per layer into pairs `(x[i], x[i+1])`, one word
//! each ([`widen_pairs`]). The weights stay in the model's grouped layout, one word per
//! input holding channels 0-3 (`[a0 a1 a2 a3]` for input i, `[b0 b1 b2 b3]` for i+1),
//! so each channel's pair `(a_c, b_c)` is built from two such words:
//!
//! * `PKHBT` takes the low halves: `[a0 a1 b0 b1]`; `PKHTB` the high ones: `[a2 a3 b2 b3]`;
//! * `SXTB16` sign-extends bytes 0 and 2 into i16 halves: `(a0, b0)`, and with `ROR #8`
//!   bytes 1 and 3: `(a1, b1)`; the same on the other word gives channels 2 and 3.
//!
//! Per pass of eight inputs: two `LDRD`s of two input pairs each, four `LDRD`s of
//! weight word pairs, eight `PKH`s, sixteen `SXTB16`s and sixteen `SMLAD`s, then `CMP`
//! and `BNE`: 48 instructions for 32 MACs (1.5 per MAC; the Cortex-M3 loop takes 2.125).
//! `LDRD` needs word-aligned weights (a model image placed at a 4-byte boundary has
//! them: every section of it is a multiple of 4 bytes); where they are not, the same
//! loop loads them with eight `LDR`s (which tolerate misalignment): 52 per 32 (1.625).
//! The last zero to seven inputs of a group run in Rust.
//! Products are exact (|x| <= 255, |w| <= 128) and `SMLAD` wraps like the other
//! kernels' adds (it only sets the Q flag), so the bits are the same.

use super::CHANNEL_GROUP;

/// Inputs per pass of the assembly loop.
const BLOCK: usize = 8;

/// Two inputs of the loop (one `asm!` template piece): load their weight words
/// (`load_a`, `load_b`), pack the channels' pairs, and `SMLAD` them with the input
/// pair in register `x`: 12 instructions for 8 MACs.
macro_rules! pair {
    ($load_a:literal, $load_b:literal, $x:literal) => {
        concat!(
            $load_a,
            "\n",
            $load_b,
            "\n",
            "pkhtb {t}, {wb}, {wa}, asr #16\n",
            "pkhbt {wa}, {wa}, {wb}, lsl #16\n",
            "sxtb16 {wb}, {wa}\n",
            "smlad {a0}, {wb}, ",
            $x,
            ", {a0}\n",
            "sxtb16 {wb}, {wa}, ror #8\n",
            "smlad {a1}, {wb}, ",
            $x,
            ", {a1}\n",
            "sxtb16 {wb}, {t}\n",
            "smlad {a2}, {wb}, ",
            $x,
            ", {a2}\n",
            "sxtb16 {wb}, {t}, ror #8\n",
            "smlad {a3}, {wb}, ",
            $x,
            ", {a3}\n",
        )
    };
}

/// The whole loop over `blocks` passes of eight inputs, for `aligned` weights (four
/// `LDRD`s a pass) or `unaligned` ones (eight `LDR`s).
macro_rules! smlad_loop {
    (aligned, $($operands:ident),*) => {
        smlad_loop!(
            [
                "ldrd {wa}, {wb}, [{w}], #32", "",
                "ldrd {wa}, {wb}, [{w}, #-24]", "",
                "ldrd {wa}, {wb}, [{w}, #-16]", "",
                "ldrd {wa}, {wb}, [{w}, #-8]", ""
            ],
            $($operands),*
        )
    };
    (unaligned, $($operands:ident),*) => {
        smlad_loop!(
            [
                "ldr {wa}, [{w}], #32", "ldr {wb}, [{w}, #-28]",
                "ldr {wa}, [{w}, #-24]", "ldr {wb}, [{w}, #-20]",
                "ldr {wa}, [{w}, #-16]", "ldr {wb}, [{w}, #-12]",
                "ldr {wa}, [{w}, #-8]", "ldr {wb}, [{w}, #-4]"
            ],
            $($operands),*
        )
    };
    (
        [$l0:literal, $l1:literal, $l2:literal, $l3:literal,
         $l4:literal, $l5:literal, $l6:literal, $l7:literal],
        $x_ptr:ident, $w_ptr:ident, $x_end:ident, $dot:ident
    ) => {
        core::arch::asm!(
            // `wb` holds `dot` until the loop needs it; the sums start at zero.
            "push {{{wb}}}",
            "mov {a0}, #0",
            "mov {a1}, #0",
            "mov {a2}, #0",
            "mov {a3}, #0",
            "2:",
            "ldrd {x01}, {x23}, [{x}], #16",
            pair!($l0, $l1, "{x01}"),
            pair!($l2, $l3, "{x23}"),
            "ldrd {x01}, {x23}, [{x}, #-8]",
            pair!($l4, $l5, "{x01}"),
            pair!($l6, $l7, "{x23}"),
            "cmp {x}, {x_end}",
            "bne 2b",
            "pop {{{wb}}}",
            "strd {a0}, {a1}, [{wb}]",
            "strd {a2}, {a3}, [{wb}, #8]",
            x = inout(reg) $x_ptr => _,
            w = inout(reg) $w_ptr => _,
            x_end = in(reg) $x_end,
            x01 = out(reg) _,
            x23 = out(reg) _,
            wa = out(reg) _,
            wb = inout(reg) $dot => _,
            t = out(reg) _,
            a0 = out(reg) _,
            a1 = out(reg) _,
            a2 = out(reg) _,
            a3 = out(reg) _,
        )
    };
}

/// [`super::widen`] for `SMLAD`: `x[i] - zero_point` in the low half of word `i / 2`
/// and `x[i + 1] - zero_point` in the high half (zero past the last input).
#[inline]
pub(super) fn widen_pairs<'w>(
    input: &[i8],
    zero_point: i32,
    widened: &'w mut [i32],
) -> (&'w [i32], usize) {
    let n = input.len().min(2 * widened.len());
    let (pairs, rest) = input[..n].as_chunks::<2>();
    let half = |x: i8| (x as i32 - zero_point) & 0xffff;
    for (word, &[lo, hi]) in widened.iter_mut().zip(pairs) {
        *word = half(lo) | half(hi) << 16;
    }
    if let (Some(word), [last]) = (widened.get_mut(pairs.len()), rest) {
        *word = half(*last);
    }
    (&widened[..n.div_ceil(2)], n)
}

/// One group's dot products over `inputs` inputs of the packed `xs`, into `dot`:
/// whole blocks of eight in assembly, the last zero to seven in Rust.
///
/// The assembly stores the sums itself (two `STRD`s): returned from it, they went
/// through the stack on their way to the caller's array, about ten instructions a
/// group.
#[inline(always)]
pub(super) fn dot_group_into(
    weights: &[i8],
    xs: &[i32],
    inputs: usize,
    dot: &mut [i32; CHANNEL_GROUP],
) {
    let inputs = inputs.min(weights.len() / CHANNEL_GROUP).min(2 * xs.len());
    let blocks = inputs / BLOCK;
    if blocks == 0 {
        *dot = [0; CHANNEL_GROUP];
    } else {
        let w_ptr = weights.as_ptr();
        let x_ptr = xs.as_ptr();
        let x_end = xs[..blocks * BLOCK / 2].as_ptr_range().end;
        let dot_ptr = dot.as_mut_ptr();
        // SAFETY (both loops): the loop reads `blocks * 32` bytes from `w_ptr` and
        // `blocks * 4` words from `x_ptr`, within `weights` and `xs` (`inputs` is
        // bounded by both above); `xs` is word aligned, as `LDRD` needs, and the
        // weights are too where the `LDRD` loop reads them. It stops when `x_ptr`
        // reaches `x_end`, and `blocks > 0`, so it runs at least once without passing
        // it. It writes the four words of `dot` (exclusively borrowed) and the
        // registers it declares, and pushes and pops one word of stack.
        #[allow(unsafe_code)]
        if w_ptr.addr().is_multiple_of(4) {
            unsafe { smlad_loop!(aligned, x_ptr, w_ptr, x_end, dot_ptr) };
        } else {
            unsafe { smlad_loop!(unaligned, x_ptr, w_ptr, x_end, dot_ptr) };
        }
    }
    for i in blocks * BLOCK..inputs {
        let word = xs[i / 2];
        let x = if i % 2 == 0 {
            word as i16 as i32
        } else {
            word >> 16
        };
        for (a, &w) in dot.iter_mut().zip(&weights[CHANNEL_GROUP * i..]) {
            *a = a.wrapping_add(w as i32 * x);
        }
    }
}

/// One pair of listed inputs (one `asm!` template piece): the triple (`LDM`), the
/// two weight words (`LDR` with a register offset), then the dense loop's packing:
/// two `PKH`s, four `SXTB16`s and four `SMLAD`s. 13 instructions for 8 MACs.
macro_rules! sparse_pair {
    () => {
        concat!(
            "ldm {p}!, {{r0, r1, r2}}\n",
            "ldr r1, [{g}, r1]\n",
            "ldr r2, [{g}, r2]\n",
            "pkhtb r3, r2, r1, asr #16\n",
            "pkhbt r1, r1, r2, lsl #16\n",
            "sxtb16 r2, r1\n",
            "smlad {a0}, r2, r0, {a0}\n",
            "sxtb16 r2, r1, ror #8\n",
            "smlad {a1}, r2, r0, {a1}\n",
            "sxtb16 r2, r3\n",
            "smlad {a2}, r2, r0, {a2}\n",
            "sxtb16 r2, r3, ror #8\n",
            "smlad {a3}, r2, r0, {a3}\n",
        )
    };
}

/// One group's dot products over a [`super::sparse::pairs`] list, into `dot`. `reach`
/// bounds the list's offsets plus a word (see [`super::Inputs`]).
///
/// Two pairs a pass (an odd count enters the loop at its second half): 28
/// instructions for 16 MACs (1.75 per MAC, over the listed inputs only).
#[inline(always)]
pub(super) fn sparse_dot_group_into(
    weights: &[i8],
    list: &[i32],
    reach: usize,
    dot: &mut [i32; CHANNEL_GROUP],
) {
    let (triples, rest) = list.as_chunks::<3>();
    if triples.is_empty() || !rest.is_empty() || reach > weights.len() {
        super::sparse::pairs_dot(weights, list, dot);
        return;
    }
    let range = triples.as_ptr_range();
    let dot_ptr = dot.as_mut_ptr();
    // SAFETY: the loop reads `triples` (12 bytes each) from its start until the
    // pointer reaches its end (at least one triple; an odd count starts at the
    // loop's second half, so the pointer meets the end exactly), and for each
    // offset the word at `g + offset`, inside `weights` (every offset is below
    // `reach - 3`, checked above to be within it; `LDR` tolerates misalignment). It
    // writes the four words of `dot` (exclusively borrowed) and the registers it
    // declares, and pushes and pops one word of stack.
    #[allow(unsafe_code)]
    unsafe {
        core::arch::asm!(
            "push {{{t}}}",
            "mov {a0}, #0",
            "mov {a1}, #0",
            "mov {a2}, #0",
            "mov {a3}, #0",
            // 12 bytes a triple: an odd count of triples has bit 2 of the length set.
            "sub {t}, {end}, {p}",
            "tst {t}, #4",
            "bne 3f",
            "2:",
            sparse_pair!(),
            "3:",
            sparse_pair!(),
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
