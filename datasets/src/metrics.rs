//! How well a score separates normal images from anomalous ones. The trainer's
//! evaluation, the export report, the device link and the demo all rank with this one
//! function.

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

#[cfg(test)]
mod tests {
    use super::*;

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
