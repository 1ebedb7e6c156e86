//! Matrix products for the CPU training step, through the `gemm` crate: the same
//! kernels candle runs on the CPU, called directly so that the products write into
//! buffers that live across batches instead of fresh tensors.

use gemm::Parallelism;

/// A row-major matrix operand: `data` holds `rows x cols` values, or the transpose of
/// that (`cols x rows`, row major) when `transposed`.
#[derive(Clone, Copy)]
pub struct Operand<'a> {
    /// The values.
    pub data: &'a [f32],
    /// Whether `data` stores the transpose.
    pub transposed: bool,
}

impl<'a> Operand<'a> {
    /// `data` as stored.
    pub fn plain(data: &'a [f32]) -> Self {
        Self {
            data,
            transposed: false,
        }
    }

    /// The transpose of `data`.
    pub fn transposed(data: &'a [f32]) -> Self {
        Self {
            data,
            transposed: true,
        }
    }

    /// (row stride, column stride) of the logical `rows x cols` matrix.
    fn strides(&self, rows: usize, cols: usize) -> (isize, isize) {
        if self.transposed {
            (1, rows as isize)
        } else {
            (cols as isize, 1)
        }
    }
}

/// `out (m x n, row major) = [out +] a (m x k) * b (k x n)`.
///
/// # Panics
/// If a buffer is shorter than its matrix: the callers size every buffer from the
/// same layer dimensions, so a short one is a bug, not bad input.
pub fn matmul(
    out: &mut [f32],
    a: Operand<'_>,
    b: Operand<'_>,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    threads: usize,
) {
    assert!(
        out.len() >= m * n,
        "matmul: output holds {} < {m}x{n}",
        out.len()
    );
    assert!(
        a.data.len() >= m * k,
        "matmul: lhs holds {} < {m}x{k}",
        a.data.len()
    );
    assert!(
        b.data.len() >= k * n,
        "matmul: rhs holds {} < {k}x{n}",
        b.data.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out[..m * n].fill(0.0);
        }
        return;
    }
    let (a_rs, a_cs) = a.strides(m, k);
    let (b_rs, b_cs) = b.strides(k, n);
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above keep every index of the three strided matrices
    // inside its slice: for row-major `r x c` storage the largest offset is
    // `(r - 1) * c + (c - 1) < r * c`, and the transposed form has the same extent.
    // `out` is borrowed mutably, so it cannot overlap `a` or `b`.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], at: bool, b: &[f32], bt: bool, m: usize, k: usize, n: usize) -> Vec<f32> {
        let get_a = |i: usize, p: usize| if at { a[p * m + i] } else { a[i * k + p] };
        let get_b = |p: usize, j: usize| if bt { b[j * k + p] } else { b[p * n + j] };
        (0..m * n)
            .map(|ij| (0..k).map(|p| get_a(ij / n, p) * get_b(p, ij % n)).sum())
            .collect()
    }

    #[test]
    fn every_transpose_combination_matches_the_naive_product() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
            let want = naive(&a, at, &b, bt, m, k, n);
            let op = |d, t| {
                if t {
                    Operand::transposed(d)
                } else {
                    Operand::plain(d)
                }
            };
            let mut got = vec![1.0; m * n];
            matmul(&mut got, op(&a, at), op(&b, bt), (m, k, n), false, 1);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{at} {bt}: {g} vs {w}");
            }
            matmul(&mut got, op(&a, at), op(&b, bt), (m, k, n), true, 2);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - 2.0 * w).abs() < 1e-5, "accumulate {at} {bt}");
            }
        }
    }
}
