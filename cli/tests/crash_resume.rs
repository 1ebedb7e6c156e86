//! `tinyvae train` killed with SIGKILL at seeded random moments and resumed each time
//! with `--resume` ends with the same weights, bit for bit, as a run that was never
//! interrupted; after every kill the checkpoint on disk loads and the metrics log holds
//! exactly the epochs the checkpoint holds (or one fewer), in order, each equal to the
//! uninterrupted run's.
//!
//! Half of the kills wait for a checkpoint's temporary file to appear and kill the
//! process while it writes (the file is several megabytes and is synced to disk, so the
//! write takes milliseconds); the others kill after a random delay, in the loading of
//! the data, in an epoch, or in the final evaluation. The test prints how many landed
//! where. The last kill is always in a write: the final resume must remove the
//! temporary file it left.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ok;
use common::train::{assert_same_tensors, command, epoch_lines};
use tinyvae_datasets::rng::SeededRng;
use tinyvae_trainer::checkpoint;

/// The run: small enough to finish in seconds, with a model large enough that each
/// checkpoint (parameters, Adam moments, best epoch) is several megabytes.
#[rustfmt::skip]
const RUN: [&str; 12] = [
    "--seed", "5", "--val-frac", "0.2", "--limit", "300", "--epochs", "60",
    "--hidden", "512", "--latent", "8",
];
/// Kills.
const KILLS: usize = 20;

/// Where a kill landed.
#[derive(Debug, Default)]
struct Landed {
    startup: usize,
    training: usize,
    checkpoint_write: usize,
    log_rewrite: usize,
    model_write: usize,
    after_exit: usize,
}

/// The temporary files of atomic writes in `dir` (see `write_atomic`).
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether one of the temporary files `temps` is a write of `file`.
fn writing(temps: &[PathBuf], file: &str) -> bool {
    temps.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(file))
    })
}

/// The epoch lines of `dir`'s metrics log, each without its wall-clock time (the one
/// field that differs between runs).
fn logged_epochs(dir: &Path) -> Vec<serde_json::Value> {
    epoch_lines(dir)
        .iter()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            if let Some(o) = v.as_object_mut() {
                o.remove("seconds");
            }
            v
        })
        .collect()
}

/// Starts the run in `dir`: fresh while there is no checkpoint, else `--resume`, with
/// its stderr into `log`.
fn start(dir: &Path, log: &Path) -> Child {
    let resume = dir.join("last.safetensors").exists();
    let mut c = if resume {
        command(dir, &["--resume"])
    } else {
        command(dir, &RUN)
    };
    c.stdout(Stdio::null())
        .stderr(File::create(log).expect("log file"))
        .spawn()
        .expect("starting tinyvae")
}

/// Sends `child` a signal (`-STOP`, `-CONT`) with kill(1).
fn signal(child: &Child, which: &str) {
    let status = Command::new("kill")
        .arg(which)
        .arg(child.id().to_string())
        .status()
        .expect("running kill");
    assert!(status.success(), "kill {which} {} failed", child.id());
}

/// Watches `dir` while `child` runs, until it ends or the `stop_at`-th temporary file
/// of an atomic write appears (the process is then in that write); returns when (since
/// the call) each appeared.
fn watch_writes(child: &mut Child, dir: &Path, stop_at: usize) -> Vec<Duration> {
    let started = Instant::now();
    let (mut times, mut present) = (Vec::new(), false);
    while times.len() < stop_at && child.try_wait().expect("polling tinyvae").is_none() {
        let now = !temp_files(dir).is_empty();
        if now && !present {
            times.push(started.elapsed());
        }
        present = now;
        std::thread::sleep(Duration::from_micros(200));
    }
    times
}

/// Asserts that each logged epoch equals the uninterrupted run's, naming the first that
/// does not.
fn assert_same_epochs(lines: &[serde_json::Value], reference: &[serde_json::Value], what: &str) {
    if let Some((i, (a, b))) = lines
        .iter()
        .zip(reference)
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        panic!(
            "{what}: logged epoch {} differs from the uninterrupted run's:\nresumed:       {a}\nuninterrupted: {b}",
            i + 1
        );
    }
}

/// After a kill: the checkpoint, if any, loads as a resume file; the log holds the
/// checkpoint's epochs or one fewer, each as the uninterrupted run logged it. Returns
/// the checkpoint's epoch.
fn check_state(dir: &Path, reference: &[serde_json::Value], kill: usize) -> usize {
    let last = dir.join("last.safetensors");
    if !last.exists() {
        return 0;
    }
    let (trainer, meta) = checkpoint::load_trainer(&last, &candle_core::Device::Cpu, None)
        .unwrap_or_else(|e| panic!("kill {kill}: the checkpoint does not load: {e}"));
    let epoch = trainer.progress.epoch;
    assert_eq!(meta.epoch, epoch, "kill {kill}: checkpoint metadata");
    let lines: Vec<serde_json::Value> = logged_epochs(dir);
    assert!(
        lines.len() == epoch || lines.len() + 1 == epoch,
        "kill {kill}: the log has {} epochs, the checkpoint {epoch}",
        lines.len()
    );
    assert_same_epochs(&lines, reference, &format!("kill {kill}"));
    epoch
}

#[test]
fn sigkill_at_random_moments_then_resume_ends_bit_for_bit_like_one_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let whole = dir.path().join("whole");
    std::fs::create_dir_all(&whole).expect("run dir");
    let started = Instant::now();
    let mut child = command(&whole, &RUN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting tinyvae");
    let writes = watch_writes(&mut child, &whole, usize::MAX);
    let one_run = started.elapsed();
    ok(
        child.wait_with_output().expect("tinyvae"),
        "the uninterrupted run",
    );
    let reference: Vec<serde_json::Value> = logged_epochs(&whole);
    // Until the first checkpoint write: loading; then one write per epoch (and the
    // final files').
    assert!(
        writes.len() >= reference.len(),
        "the uninterrupted run wrote {} files through a temporary file for {} epochs: \
         each checkpoint must be written to a temporary file and renamed, so that a kill \
         never leaves a half-written one",
        writes.len(),
        reference.len()
    );
    let (first, last) = (writes[0], writes[reference.len() - 1]);
    let epoch = (last - first) / (reference.len() as u32 - 1);

    let run = dir.path().join("killed");
    std::fs::create_dir_all(&run).expect("run dir");
    let log = dir.path().join("stderr.txt");
    let mut rng = SeededRng::stream(2024, "crash-test", 0);
    let mut landed = Landed::default();
    let mut epochs_at_kill = Vec::new();
    let mut left_by_last_kill = 0;
    for kill in 1..=KILLS {
        let mut child = start(&run, &log);
        if kill == KILLS {
            // In a checkpoint write (several megabytes, synced: milliseconds long). On a
            // busy machine the write can end between seeing its file and the kill, so
            // the process is frozen (SIGSTOP) first and the file looked at again; if
            // the write is over, it runs on (SIGCONT) to its next write.
            while child.try_wait().expect("polling tinyvae").is_none() {
                if writing(&temp_files(&run), "last.safetensors") {
                    signal(&child, "-STOP");
                    if writing(&temp_files(&run), "last.safetensors") {
                        break;
                    }
                    signal(&child, "-CONT");
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        } else if kill % 2 == 1 {
            // While a checkpoint is written: the first, second or third write of this
            // process.
            watch_writes(&mut child, &run, 1 + rng.below(3));
        } else {
            // Anywhere from the start to two epochs in.
            let delay = (first + 2 * epoch).mul_f64(rng.uniform());
            std::thread::sleep(delay);
        }
        let finished = match child.try_wait().expect("polling tinyvae") {
            Some(status) => {
                let stderr = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(status.success(), "kill {kill}: tinyvae failed:\n{stderr}");
                true
            }
            None => false,
        };
        // SIGKILL on Unix: no destructor, no signal handler runs.
        child.kill().expect("killing tinyvae");
        child.wait().expect("reaping tinyvae");
        let temps = temp_files(&run);
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        if finished {
            landed.after_exit += 1;
        } else if writing(&temps, "last.safetensors") {
            landed.checkpoint_write += 1;
        } else if writing(&temps, "metrics.jsonl") {
            landed.log_rewrite += 1;
        } else if !temps.is_empty() {
            landed.model_write += 1;
        } else if stderr.contains("training") {
            landed.training += 1;
        } else {
            landed.startup += 1;
        }
        // What a crash leaves behind besides the checkpoint; a later write never
        // reads it. The test clears it (its watch looks for new temporary files), except
        // after the last kill: the final resume must clear that itself.
        if kill < KILLS {
            for t in temps {
                std::fs::remove_file(&t).expect("removing a stale temporary file");
            }
        } else {
            left_by_last_kill = temps.len();
        }
        epochs_at_kill.push(check_state(&run, &reference, kill));
    }
    ok(
        command(&run, &["--resume"])
            .output()
            .expect("running tinyvae"),
        "the final resume",
    );
    println!(
        "crash test: one run {:.2} s (first checkpoint at {:.2} s, then one per {:.3} s); \
         {KILLS} kills: {} during startup, {} in training, {} while writing \
         last.safetensors, {} while a resume rewrote metrics.jsonl, {} while writing the \
         final files, {} after the process had ended; checkpoint epoch after each kill: \
         {epochs_at_kill:?}",
        one_run.as_secs_f64(),
        first.as_secs_f64(),
        epoch.as_secs_f64(),
        landed.startup,
        landed.training,
        landed.checkpoint_write,
        landed.log_rewrite,
        landed.model_write,
        landed.after_exit
    );
    // The last kill is one in a write: it leaves a temporary file for the resume to
    // clear.
    assert!(
        left_by_last_kill > 0,
        "the last kill left no temporary file"
    );
    let left = temp_files(&run);
    assert!(
        left.is_empty(),
        "temporary files left after the final resume: {left:?}"
    );
    let lines: Vec<serde_json::Value> = logged_epochs(&run);
    assert_eq!(
        lines.len(),
        reference.len(),
        "epochs in the final metrics log"
    );
    assert_same_epochs(&lines, &reference, "the metrics log after the last resume");
    assert_same_tensors(
        &whole.join("last.safetensors"),
        &run.join("last.safetensors"),
        "the resume file (weights, Adam moments, best epoch)",
    );
    assert_same_tensors(
        &whole.join("model.safetensors"),
        &run.join("model.safetensors"),
        "the final model",
    );
    assert!(
        landed.checkpoint_write >= 3,
        "too few kills landed in a checkpoint write to test them: {landed:?}"
    );
}
