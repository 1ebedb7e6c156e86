//! The sparse form of a layer's inputs: only those off the zero point, each with the
//! byte offset of its weight word in a group (the grouped layout keeps channels 0-3 of
//! an input in one word), so a group's loop reads just those words.
//!
//! Two list formats, one per loop shape: [`entries`] (value, offset) for the Cortex-M0
//! and M3, and [`pairs`] (two values packed as `SMLAD`'s operand, two offsets) for the
//! Cortex-M4. Each has its loop in Rust here ([`entries_dot`], [`pairs_dot`]): the
//! reference the tests hold the lists to, and the fallback of the assembly loops. A
//! target builds the lists it uses; x86 uses neither (`super::prepare`).
#![cfg_attr(not(test), allow(dead_code))]

use super::CHANNEL_GROUP;

/// Entries: the list of the Cortex-M0 and M3 loops, word pairs `(x[i] - zero_point,
/// 4 * i)`, padded to an even count with `(0, 0)`. Returns the words written, or
/// `None` past `most` entries or when the list would not fit in `list`.
#[inline]
pub(super) fn entries(
    input: &[i8],
    zero_point: i32,
    most: usize,
    list: &mut [i32],
) -> Option<usize> {
    // Entries that fit with room for the padding pair.
    let most = most.min((list.len() / 2).saturating_sub(1));
    let mut words = 0;
    for (i, &x) in input.iter().enumerate() {
        let x = x as i32 - zero_point;
        if x != 0 {
            if words >= 2 * most {
                return None;
            }
            // In bounds: `words < 2 * most <= list.len() - 2`.
            *list.get_mut(words)? = x;
            *list.get_mut(words + 1)? = (CHANNEL_GROUP * i) as i32;
            words += 2;
        }
    }
    if words % 4 != 0 {
        *list.get_mut(words)? = 0;
        *list.get_mut(words + 1)? = 0;
        words += 2;
    }
    Some(words)
}

/// One group's dot products over an [`entries`] list in Rust: each listed input's
/// weight word, four multiply-accumulates. Entries whose word lies outside `weights`
/// are skipped (a list of the group's own layer has none).
#[inline]
pub(super) fn entries_dot(weights: &[i8], list: &[i32], dot: &mut [i32; CHANNEL_GROUP]) {
    *dot = [0; CHANNEL_GROUP];
    let (entries, _) = list.as_chunks::<2>();
    for &[x, offset] in entries {
        let Some(word) = weights.get(offset as usize..offset as usize + CHANNEL_GROUP) else {
            continue;
        };
        for (a, &w) in dot.iter_mut().zip(word) {
            *a = a.wrapping_add((w as i32).wrapping_mul(x));
        }
    }
}

/// Pairs: the Cortex-M4's list, the inputs off the zero point two at a time,
/// as word triples `(x[i] - zero_point | (x[j] - zero_point) << 16, 4 * i, 4 * j)`:
/// the pair of values as the operand `SMLAD` takes, and the byte offsets of the two
/// inputs' weight words in a group. An odd count ends with a pair whose high value
/// is zero (its second offset repeats the first).
/// Returns the words written, or
/// `None` past `most` inputs or when the list would not fit in `list`.
#[inline]
pub(super) fn pairs(input: &[i8], zero_point: i32, most: usize, list: &mut [i32]) -> Option<usize> {
    let most = most.min(list.len() / 3 * 2);
    let mut words = 0;
    let mut pending: Option<(i32, i32)> = None;
    let mut count = 0;
    for (i, &x) in input.iter().enumerate() {
        let x = x as i32 - zero_point;
        if x == 0 {
            continue;
        }
        count += 1;
        if count > most {
            return None;
        }
        let offset = (CHANNEL_GROUP * i) as i32;
        match pending.take() {
            None => pending = Some((x, offset)),
            Some((first, first_offset)) => {
                let triple = list.get_mut(words..words + 3)?;
                triple[0] = (first & 0xffff) | x << 16;
                triple[1] = first_offset;
                triple[2] = offset;
                words += 3;
            }
        }
    }
    if let Some((first, first_offset)) = pending {
        let triple = list.get_mut(words..words + 3)?;
        triple[0] = first & 0xffff;
        triple[1] = first_offset;
        triple[2] = first_offset;
        words += 3;
    }
    Some(words)
}

/// One group's dot products over a [`pairs`] list in Rust (entries outside `weights`
/// skipped, as in [`entries_dot`]).
pub(super) fn pairs_dot(weights: &[i8], list: &[i32], dot: &mut [i32; CHANNEL_GROUP]) {
    *dot = [0; CHANNEL_GROUP];
    let (triples, _) = list.as_chunks::<3>();
    for &[xx, first, second] in triples {
        for (x, offset) in [(xx as i16 as i32, first), (xx >> 16, second)] {
            let Some(word) = weights.get(offset as usize..offset as usize + CHANNEL_GROUP) else {
                continue;
            };
            for (a, &w) in dot.iter_mut().zip(word) {
                *a = a.wrapping_add((w as i32).wrapping_mul(x));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dot products of four channels over every input, the plain way.
    fn reference(weights: &[i8], input: &[i8], zero_point: i32) -> [i32; CHANNEL_GROUP] {
        let mut dot = [0i32; CHANNEL_GROUP];
        for (i, &x) in input.iter().enumerate() {
            for (c, a) in dot.iter_mut().enumerate() {
                *a += weights[CHANNEL_GROUP * i + c] as i32 * (x as i32 - zero_point);
            }
        }
        dot
    }

    /// A few thousand groups: lengths 0..40, zero points at both ends, inputs from all
    /// at the zero point to all off it; both formats against the reference, and the
    /// lists refused exactly when too many inputs are off the zero point.
    #[test]
    fn both_lists_give_the_reference_sums() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for case in 0..4000 {
            let len = case % 41;
            let zero_point = [-128, 127, 0, 5][case % 4];
            let off_share = next() % 101;
            let input: Vec<i8> = (0..len)
                .map(|_| {
                    if next() % 100 < off_share {
                        next() as i8
                    } else {
                        zero_point as i8
                    }
                })
                .collect();
            let weights: Vec<i8> = (0..CHANNEL_GROUP * len).map(|_| next() as i8).collect();
            let want = reference(&weights, &input, zero_point);
            let off = input.iter().filter(|&&x| x as i32 != zero_point).count();
            let most = (next() % 50) as usize;
            let mut list = vec![0; 3 * len + 6];

            let got = entries(&input, zero_point, most, &mut list);
            assert_eq!(
                got.is_some(),
                off <= most,
                "entries: {off} off, most {most}"
            );
            if let Some(words) = got {
                assert_eq!(words, 2 * off.next_multiple_of(2), "entries padded to even");
                let mut dot = [0; CHANNEL_GROUP];
                entries_dot(&weights, &list[..words], &mut dot);
                assert_eq!(dot, want, "entries, case {case}");
            }

            let got = pairs(&input, zero_point, most, &mut list);
            assert_eq!(got.is_some(), off <= most, "pairs: {off} off, most {most}");
            if let Some(words) = got {
                assert_eq!(words, 3 * off.div_ceil(2), "a triple per two inputs");
                let mut dot = [0; CHANNEL_GROUP];
                pairs_dot(&weights, &list[..words], &mut dot);
                assert_eq!(dot, want, "pairs, case {case}");
            }
        }
    }

    /// A list that would not fit its buffer is refused, not cut short.
    #[test]
    fn a_list_too_long_for_its_buffer_is_refused() {
        let input = [1i8; 10];
        assert_eq!(entries(&input, 0, 10, &mut [0; 20]), None);
        assert_eq!(entries(&input, 0, 10, &mut [0; 22]), Some(20));
        assert_eq!(pairs(&input, 0, 10, &mut [0; 14]), None);
        assert_eq!(pairs(&input, 0, 10, &mut [0; 15]), Some(15));
    }
}
