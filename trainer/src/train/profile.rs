//! Where the time of a training step goes, phase by phase.
//!
//! On a GPU the host only queues work, so a wall clock around a phase measures the
//! queueing, not the work. [`Laps`] synchronizes the device at the end of each phase,
//! so each phase's time is the work it queued plus the host's own time. The
//! synchronizations serialize host and device, so a profiled run is a little slower
//! than a plain one: this is a diagnostic, off by default (`tinyvae train --profile`).

use std::time::Instant;

use candle_core::Device;
use serde::Serialize;

/// Seconds spent in each phase of candle's training steps, summed over `steps`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StepProfile {
    /// Steps measured.
    pub steps: u64,
    /// Gathering the batch's rows and uploading its noise.
    pub batch: f64,
    /// The forward pass and the loss.
    pub forward: f64,
    /// Backpropagation.
    pub backward: f64,
    /// The Adam update.
    pub optimizer: f64,
    /// A captured CUDA graph's replay: forward, backward and optimizer in one launch
    /// (on a GPU; see `train::cuda_graph`).
    pub graph: f64,
    /// Reading the batch's loss terms back to the host.
    pub readback: f64,
}

impl StepProfile {
    /// Adds another count of steps and their phases (one step's, as it ends).
    pub fn add(&mut self, other: &StepProfile) {
        self.steps += other.steps;
        self.batch += other.batch;
        self.forward += other.forward;
        self.backward += other.backward;
        self.optimizer += other.optimizer;
        self.graph += other.graph;
        self.readback += other.readback;
    }

    /// Milliseconds per step of each phase, named, in step order.
    pub fn per_step_ms(&self) -> [(&'static str, f64); 6] {
        let per = |s: f64| 1e3 * s / self.steps.max(1) as f64;
        [
            ("batch", per(self.batch)),
            ("forward", per(self.forward)),
            ("backward", per(self.backward)),
            ("optimizer", per(self.optimizer)),
            ("graph", per(self.graph)),
            ("readback", per(self.readback)),
        ]
    }
}

/// A stopwatch whose laps end with a device synchronization.
pub struct Laps<'a> {
    device: &'a Device,
    last: Instant,
}

impl<'a> Laps<'a> {
    /// Starts after the device has finished what was queued before.
    pub fn start(device: &'a Device) -> candle_core::Result<Self> {
        device.synchronize()?;
        Ok(Self {
            device,
            last: Instant::now(),
        })
    }

    /// Seconds since the previous lap, once the device has finished the work queued
    /// in between.
    pub fn lap(&mut self) -> candle_core::Result<f64> {
        self.device.synchronize()?;
        let now = Instant::now();
        let seconds = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        Ok(seconds)
    }
}

/// Started laps when `profiling`, none otherwise.
pub fn laps(profiling: bool, device: &Device) -> candle_core::Result<Option<Laps<'_>>> {
    profiling.then(|| Laps::start(device)).transpose()
}

/// [`Laps::lap`] when profiling, 0 otherwise.
pub fn lap(laps: &mut Option<Laps<'_>>) -> candle_core::Result<f64> {
    laps.as_mut().map_or(Ok(0.0), Laps::lap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_step_milliseconds_divide_by_the_steps() {
        let p = StepProfile {
            steps: 4,
            batch: 0.004,
            forward: 0.008,
            backward: 0.012,
            optimizer: 0.02,
            graph: 0.028,
            readback: 0.0,
        };
        let ms = p.per_step_ms();
        let names: Vec<_> = ms.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "batch",
                "forward",
                "backward",
                "optimizer",
                "graph",
                "readback"
            ]
        );
        for ((_, got), want) in ms.iter().zip([1.0, 2.0, 3.0, 5.0, 7.0, 0.0]) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
    }

    #[test]
    fn laps_measure_the_time_between_them() -> candle_core::Result<()> {
        let mut laps = Some(Laps::start(&Device::Cpu)?);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let first = lap(&mut laps)?;
        assert!(first >= 0.019, "{first}");
        assert!(lap(&mut laps)? < first);
        assert_eq!(lap(&mut None)?, 0.0);
        Ok(())
    }
}
