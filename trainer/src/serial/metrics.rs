//! Detection metrics for a scored, labelled set: AUROC and the confusion table of the
//! device's verdicts.

/// Area under the ROC curve of `scores` (higher = more anomalous) against `truth`
/// (true = anomalous): the probability that a random anomalous example scores above a
/// random normal one, ties counting half (the Mann-Whitney U statistic).
///
/// `None` when either class is empty.
pub fn auroc(scores: &[i64], truth: &[bool]) -> Option<f64> {
    let mut pairs: Vec<(i64, bool)> = scores.iter().copied().zip(truth.iter().copied()).collect();
    let positives = pairs.iter().filter(|p| p.1).count();
    let negatives = pairs.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    pairs.sort_by_key(|p| p.0);
    // Sum of the (tie-averaged, 1-based) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            j += 1;
        }
        let average_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += average_rank * pairs[i..j].iter().filter(|p| p.1).count() as f64;
        i = j;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// Counts of verdicts against the truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Anomalous, flagged.
    pub true_positive: usize,
    /// Normal, flagged.
    pub false_positive: usize,
    /// Normal, passed.
    pub true_negative: usize,
    /// Anomalous, passed.
    pub false_negative: usize,
}

impl Confusion {
    /// Tallies `verdicts` (true = flagged anomalous) against `truth`.
    pub fn tally(verdicts: &[bool], truth: &[bool]) -> Self {
        let mut c = Self::default();
        for (&v, &t) in verdicts.iter().zip(truth) {
            match (t, v) {
                (true, true) => c.true_positive += 1,
                (false, true) => c.false_positive += 1,
                (false, false) => c.true_negative += 1,
                (true, false) => c.false_negative += 1,
            }
        }
        c
    }

    /// The table as aligned text.
    pub fn table(&self) -> String {
        let c = self;
        format!(
            "                 flagged   passed\n\
             anomalous    {:>10} {:>8}\n\
             normal       {:>10} {:>8}\n\
             precision {:.4}  recall {:.4}  accuracy {:.4}",
            c.true_positive,
            c.false_negative,
            c.false_positive,
            c.true_negative,
            ratio(c.true_positive, c.true_positive + c.false_positive),
            ratio(c.true_positive, c.true_positive + c.false_negative),
            ratio(
                c.true_positive + c.true_negative,
                c.true_positive + c.true_negative + c.false_positive + c.false_negative
            ),
        )
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_handles_order_and_ties() {
        assert_eq!(auroc(&[1, 2, 3, 4], &[false, false, true, true]), Some(1.0));
        assert_eq!(auroc(&[4, 3, 2, 1], &[false, false, true, true]), Some(0.0));
        assert_eq!(auroc(&[5, 5], &[false, true]), Some(0.5));
        assert_eq!(auroc(&[1, 2], &[false, false]), None);
        // One of four pairs misordered.
        assert_eq!(
            auroc(&[1, 3, 2, 4], &[false, false, true, true]),
            Some(0.75)
        );
    }

    #[test]
    fn confusion_counts() {
        let c = Confusion::tally(&[true, false, true, false], &[true, true, false, false]);
        assert_eq!(
            (
                c.true_positive,
                c.false_negative,
                c.false_positive,
                c.true_negative
            ),
            (1, 1, 1, 1)
        );
        assert!(c.table().contains("accuracy 0.5000"));
    }
}
