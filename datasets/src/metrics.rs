//! How well a score separates normal images from anomalous ones ([`auroc`]: the
//! trainer's evaluation, the export report, the device link and the demo all rank with
//! this one function), and how close an image is to a reference ([`psnr`], [`ssim`]:
//! denoising and compression).
//!
//! PSNR and SSIM are written here rather than taken from an image crate: they run on
//! the `[0, 1]` float rows every other part of the host already holds, and the exact
//! definition (window, constants, borders) is stated once, below, so a reader can
//! compare our tables with published ones.

/// Area under the ROC curve for `scores` where `positive` marks anomalies
/// (higher score = more anomalous). Ties count one half (Mann–Whitney U).
/// `None` when either class is empty.
pub fn auroc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len().min(positive.len())).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let n_pos = idx.iter().filter(|&&i| positive[i]).count();
    let n_neg = idx.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    // Sum of (mid-)ranks of the positives.
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid * idx[i..=j].iter().filter(|&&t| positive[t]).count() as f64;
        i = j + 1;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

/// Peak signal-to-noise ratio in dB of `image` against `reference`, pixels in
/// `[0, 1]` (peak 1): `10 log10(1 / MSE)`. Identical images give `f64::INFINITY`;
/// `None` when the lengths differ or are zero.
pub fn psnr(image: &[f32], reference: &[f32]) -> Option<f64> {
    if image.len() != reference.len() || image.is_empty() {
        return None;
    }
    let mse = image
        .iter()
        .zip(reference)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum::<f64>()
        / image.len() as f64;
    Some(if mse == 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    })
}

/// Side of the SSIM window.
const SSIM_WINDOW: usize = 7;

/// Structural similarity (Wang, Bovik, Sheikh and Simoncelli 2004) of `image` against
/// `reference`, both `width x height`, pixels in `[0, 1]`: the mean over every 7x7
/// window that lies inside the image (no padding) of
/// `(2 mu_a mu_b + C1)(2 cov + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2))`,
/// with uniform weights, sample (n - 1) variances, `C1 = (0.01)^2` and
/// `C2 = (0.03)^2`: scikit-image's `structural_similarity` defaults, which suit
/// 28x28 images better than the paper's 11x11 Gaussian. `None` when the sizes
/// disagree or the image is smaller than the window.
pub fn ssim(image: &[f32], reference: &[f32], width: usize, height: usize) -> Option<f64> {
    let n = width.checked_mul(height)?;
    if image.len() != n || reference.len() != n || width < SSIM_WINDOW || height < SSIM_WINDOW {
        return None;
    }
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let count = (SSIM_WINDOW * SSIM_WINDOW) as f64;
    let mut total = 0.0;
    let mut windows = 0usize;
    for top in 0..=height - SSIM_WINDOW {
        for left in 0..=width - SSIM_WINDOW {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for y in top..top + SSIM_WINDOW {
                for x in left..left + SSIM_WINDOW {
                    let a = f64::from(image[y * width + x]);
                    let b = f64::from(reference[y * width + x]);
                    sa += a;
                    sb += b;
                    saa += a * a;
                    sbb += b * b;
                    sab += a * b;
                }
            }
            let (ma, mb) = (sa / count, sb / count);
            let unbias = count / (count - 1.0);
            let va = (saa / count - ma * ma) * unbias;
            let vb = (sbb / count - mb * mb) * unbias;
            let cov = (sab / count - ma * mb) * unbias;
            total += (2.0 * ma * mb + c1) * (2.0 * cov + c2)
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            windows += 1;
        }
    }
    Some(total / windows as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_of_known_errors() {
        assert_eq!(psnr(&[0.5; 4], &[0.5; 4]), Some(f64::INFINITY));
        // MSE 0.01 -> 20 dB.
        let p = psnr(&[0.1, 0.1], &[0.0, 0.2]).expect("psnr");
        assert!((p - 20.0).abs() < 1e-5, "{p}");
        assert_eq!(psnr(&[0.0], &[0.0, 1.0]), None);
        assert_eq!(psnr(&[], &[]), None);
    }

    #[test]
    fn ssim_is_one_for_equal_images_and_falls_with_damage() {
        let (w, h) = (12, 10);
        let image: Vec<f32> = (0..w * h).map(|i| ((i * 37) % 11) as f32 / 10.0).collect();
        let same = ssim(&image, &image, w, h).expect("ssim");
        assert!((same - 1.0).abs() < 1e-12, "{same}");
        let noisy: Vec<f32> = image
            .iter()
            .enumerate()
            .map(|(i, &p)| if i % 3 == 0 { 1.0 - p } else { p })
            .collect();
        let inverted: Vec<f32> = image.iter().map(|&p| 1.0 - p).collect();
        let s_noisy = ssim(&noisy, &image, w, h).expect("ssim");
        let s_inv = ssim(&inverted, &image, w, h).expect("ssim");
        assert!(s_noisy < 0.9 && s_inv < 0.0, "{s_noisy} {s_inv}");
        // A flat grey against a flat grey of another level: only the luminance term.
        let s_flat = ssim(&vec![0.5; w * h], &vec![0.25; w * h], w, h).expect("ssim");
        let want = (2.0 * 0.5 * 0.25 + 1e-4) / (0.25 + 0.0625 + 1e-4);
        assert!((s_flat - want).abs() < 1e-9, "{s_flat} vs {want}");
        assert_eq!(ssim(&image, &image, 6, 20), None);
        assert_eq!(ssim(&image, &image[1..], w, h), None);
    }

    #[test]
    fn auroc_basics() {
        assert_eq!(
            auroc(&[1.0, 2.0, 3.0, 4.0], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            auroc(&[4.0, 3.0, 2.0, 1.0], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(auroc(&[1.0, 1.0], &[false, true]), Some(0.5));
        assert_eq!(auroc(&[1.0, 2.0], &[true, true]), None);
        assert!(
            (auroc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap() - 0.75).abs()
                < 1e-12
        );
    }
}
