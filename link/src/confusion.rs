//! The confusion table of the device's verdicts (the AUROC is
//! [`tinyvae_datasets::metrics::auroc`]).

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
            c.add(v, t);
        }
        c
    }

    /// Counts one verdict (true = flagged anomalous) against its truth; the live
    /// monitor tallies as answers arrive.
    pub fn add(&mut self, verdict: bool, truth: bool) {
        match (truth, verdict) {
            (true, true) => self.true_positive += 1,
            (false, true) => self.false_positive += 1,
            (false, false) => self.true_negative += 1,
            (true, false) => self.false_negative += 1,
        }
    }

    /// How many verdicts were counted.
    pub fn total(&self) -> usize {
        self.true_positive + self.false_positive + self.true_negative + self.false_negative
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
