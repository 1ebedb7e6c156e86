//! The running tally behind `tinyvae serial monitor`: what a live view of a board
//! scoring images needs, updated one device answer at a time.
//!
//! It holds no terminal code, so the view (the CLI's, with ratatui) only reads it and
//! the tally is tested on synthetic answers without a device or a terminal.

use std::collections::VecDeque;

use tinyvae_shared::fixed::{q16_to_f64, Q16};
use tinyvae_shared::protocol::ScoreReport;

use crate::confusion::Confusion;

/// One scored image, as the device answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scored {
    /// The image's name (e.g. `#12` or `#3 stuck-pixels`).
    pub name: String,
    /// The image sent.
    pub image: Vec<u8>,
    /// The device's reconstruction (reconstruct requests only).
    pub reconstruction: Option<Vec<u8>>,
    /// The score, its parts and the verdict.
    pub score: ScoreReport,
    /// Instructions (on QEMU) or cycles (on a board's cycle counter) the device spent.
    pub instructions: u64,
    /// Whether the image is known to be anomalous.
    pub truth: Option<bool>,
}

/// One point of the score plot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The frame's number, from 0.
    pub frame: u64,
    /// Its score, nats.
    pub score: f64,
    /// The device's verdict.
    pub anomalous: bool,
}

/// Everything the monitor shows, updated by [`Monitor::record`].
#[derive(Debug, Clone)]
pub struct Monitor {
    window: usize,
    history: VecDeque<Point>,
    costs: VecDeque<u64>,
    frames: u64,
    flagged: u64,
    confusion: Confusion,
    threshold: Q16,
    last: Option<Scored>,
    errors: u64,
    last_error: Option<String>,
}

impl Monitor {
    /// An empty tally that keeps the last `window` scores and costs (at least one),
    /// with the device's threshold until an answer reports another.
    pub fn new(window: usize, threshold: Q16) -> Self {
        let window = window.max(1);
        Self {
            window,
            history: VecDeque::with_capacity(window),
            costs: VecDeque::with_capacity(window),
            frames: 0,
            flagged: 0,
            confusion: Confusion::default(),
            threshold,
            last: None,
            errors: 0,
            last_error: None,
        }
    }

    /// Counts one answer: the fault detector's score and verdict when the device has
    /// one, the negative ELBO's otherwise. The threshold follows the answer's, so a
    /// `set-threshold` or a calibration from another terminal shows up on the plot at
    /// the next frame.
    pub fn record(&mut self, scored: Scored) {
        // With a fault detector on the device, its score and threshold are the plot's.
        let anomalous = scored.score.flagged();
        let (score, threshold) = match scored.score.detector {
            Some(d) => (d.score, d.threshold),
            None => (scored.score.score, scored.score.threshold),
        };
        push_bounded(
            &mut self.history,
            Point {
                frame: self.frames,
                score: q16_to_f64(score),
                anomalous,
            },
            self.window,
        );
        push_bounded(&mut self.costs, scored.instructions, self.window);
        self.frames += 1;
        self.flagged += u64::from(anomalous);
        if let Some(truth) = scored.truth {
            self.confusion.add(anomalous, truth);
        }
        self.threshold = threshold;
        self.last = Some(scored);
    }

    /// Counts a request that got no usable answer (a timeout, a refusal), so a flaky
    /// line shows on screen instead of ending the session.
    pub fn record_error(&mut self, error: String) {
        self.errors += 1;
        self.last_error = Some(error);
    }

    /// Frames scored.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Frames the device flagged anomalous.
    pub fn flagged(&self) -> u64 {
        self.flagged
    }

    /// Frames the device passed as normal.
    pub fn passed(&self) -> u64 {
        self.frames - self.flagged
    }

    /// The verdicts against the truth, when some frames had one.
    pub fn confusion(&self) -> Option<Confusion> {
        (self.confusion.total() > 0).then_some(self.confusion)
    }

    /// The latest threshold, nats.
    pub fn threshold(&self) -> f64 {
        q16_to_f64(self.threshold)
    }

    /// The last `window` scores, oldest first.
    pub fn history(&self) -> impl ExactSizeIterator<Item = &Point> {
        self.history.iter()
    }

    /// The last answer.
    pub fn last(&self) -> Option<&Scored> {
        self.last.as_ref()
    }

    /// The cost of the last request.
    pub fn last_instructions(&self) -> Option<u64> {
        self.costs.back().copied()
    }

    /// The median cost over the last `window` requests (the upper median of an even
    /// count, as `serial bench` reports it).
    pub fn median_instructions(&self) -> Option<u64> {
        let mut costs: Vec<u64> = self.costs.iter().copied().collect();
        costs.sort_unstable();
        costs.get(costs.len() / 2).copied()
    }

    /// Requests that failed.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// The last failure's message.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// One line for the end of a session.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} frames: {} normal, {} anomalous (threshold {:.4})",
            self.frames,
            self.passed(),
            self.flagged,
            self.threshold()
        );
        if let Some(c) = self.confusion() {
            s.push_str(&format!(
                "; vs truth: {} of {} anomalies caught, {} false alarms in {} normal",
                c.true_positive,
                c.true_positive + c.false_negative,
                c.false_positive,
                c.false_positive + c.true_negative
            ));
        }
        if let Some(m) = self.median_instructions() {
            s.push_str(&format!("; median {m} instructions per request"));
        }
        if self.errors > 0 {
            s.push_str(&format!("; {} failed requests", self.errors));
        }
        s
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, value: T, limit: usize) {
    if queue.len() == limit {
        queue.pop_front();
    }
    queue.push_back(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(score: f64, threshold: f64, instructions: u64, truth: Option<bool>) -> Scored {
        let (score, threshold) = (
            tinyvae_shared::fixed::q16_from_f64(score),
            tinyvae_shared::fixed::q16_from_f64(threshold),
        );
        Scored {
            name: format!("#{instructions}"),
            image: vec![0; 4],
            reconstruction: Some(vec![255; 4]),
            score: tinyvae_shared::score::report(score, 0, threshold),
            instructions,
            truth,
        }
    }

    #[test]
    fn tallies_verdicts_truth_costs_and_the_window() {
        let mut m = Monitor::new(3, tinyvae_shared::fixed::q16_from_f64(100.0));
        assert_eq!(m.frames(), 0);
        assert_eq!(m.confusion(), None);
        assert_eq!(m.median_instructions(), None);
        assert_eq!(m.threshold(), 100.0);

        m.record(answer(80.0, 100.0, 500, Some(false))); // true negative
        m.record(answer(150.0, 100.0, 700, Some(true))); // true positive
        m.record(answer(130.0, 100.0, 650, Some(false))); // false positive
        m.record(answer(120.0, 100.0, 600, Some(false))); // false positive
        m.record(answer(90.0, 100.0, 900, Some(true))); // false negative
        m.record(answer(200.0, 100.0, 100, None)); // flagged, truth unknown

        assert_eq!((m.frames(), m.flagged(), m.passed()), (6, 4, 2));
        let c = m.confusion().expect("some truth");
        assert_eq!(
            (
                c.true_positive,
                c.false_positive,
                c.true_negative,
                c.false_negative
            ),
            (1, 2, 1, 1)
        );
        // Only the last three frames are plotted and enter the median.
        let frames: Vec<u64> = m.history().map(|p| p.frame).collect();
        assert_eq!(frames, [3, 4, 5]);
        let flags: Vec<bool> = m.history().map(|p| p.anomalous).collect();
        assert_eq!(flags, [true, false, true]);
        assert_eq!(m.last_instructions(), Some(100));
        assert_eq!(m.median_instructions(), Some(600)); // of 600, 900, 100
        assert_eq!(m.last().map(|s| s.name.as_str()), Some("#100"));

        m.record_error("no response".into());
        assert_eq!((m.errors(), m.last_error()), (1, Some("no response")));
        assert_eq!(m.frames(), 6, "an error is not a frame");

        let summary = m.summary();
        assert!(
            summary.starts_with("6 frames: 2 normal, 4 anomalous"),
            "{summary}"
        );
        assert!(
            summary.contains("1 of 2 anomalies caught, 2 false alarms in 3 normal"),
            "{summary}"
        );
        assert!(summary.contains("median 600 instructions"), "{summary}");
        assert!(summary.contains("1 failed requests"), "{summary}");
    }

    #[test]
    fn the_threshold_follows_the_device() {
        let mut m = Monitor::new(10, tinyvae_shared::fixed::q16_from_f64(100.0));
        m.record(answer(120.0, 150.0, 1, None));
        assert_eq!(m.threshold(), 150.0);
        assert_eq!(m.flagged(), 0);
        let zero = Monitor::new(0, 0);
        assert_eq!(zero.window, 1);
    }
}
