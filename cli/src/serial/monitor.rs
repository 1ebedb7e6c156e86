//! `tinyvae serial monitor`: sends the images one request at a time at a steady pace
//! and redraws the live view ([`super::view`]) between requests, until q/Esc, Ctrl-C or
//! `--frames`.
//!
//! One thread does everything: a request blocks for the device's answer (milliseconds
//! on a board), then keys are polled until the next request is due, so the screen and
//! the line never need locking.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::DefaultTerminal;
use tinyvae_link::monitor::{Monitor, Scored};
use tinyvae_link::serial::{DeviceClient, SerialError};
use tinyvae_shared::protocol::ScoreReport;

use super::commands::{load_items, Item};
use super::view::{self, Header};
use super::{MonitorArgs, MonitorRequest};

/// What one request brought back, whichever kind it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answer {
    pub score: ScoreReport,
    pub instructions: u64,
    pub reconstruction: Option<Vec<u8>>,
}

/// Sends `item` with `request`.
fn ask(
    client: &mut DeviceClient,
    request: MonitorRequest,
    item: &Item,
) -> Result<Answer, SerialError> {
    Ok(match request {
        MonitorRequest::Encode => {
            let e = client.encode(&item.image)?;
            Answer {
                score: e.score,
                instructions: e.instructions,
                reconstruction: None,
            }
        }
        MonitorRequest::Reconstruct => {
            let r = client.reconstruct(&item.image)?;
            Answer {
                score: r.score,
                instructions: r.instructions,
                reconstruction: Some(r.image.to_vec()),
            }
        }
    })
}

/// Whether a failed request leaves the line usable: a late, refused or garbled answer
/// is shown and the session goes on; a port that stopped working ends it.
fn recoverable(error: &SerialError) -> bool {
    matches!(
        error,
        SerialError::Timeout { .. }
            | SerialError::Device(_)
            | SerialError::Frame(_)
            | SerialError::Unexpected { .. }
    )
}

/// Counts the outcome of one request into `monitor`; `Err` when the session must end.
pub(super) fn update(
    monitor: &mut Monitor,
    item: &Item,
    outcome: Result<Answer, SerialError>,
) -> Result<(), SerialError> {
    match outcome {
        Ok(answer) => {
            monitor.record(Scored {
                name: item.name.clone(),
                image: item.image.clone(),
                reconstruction: answer.reconstruction,
                score: answer.score,
                instructions: answer.instructions,
                truth: item.anomalous,
            });
            Ok(())
        }
        Err(e) if recoverable(&e) => {
            monitor.record_error(format!("{}: {e}", item.name));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The groups' items taken in turn (normal, anomalous, corrupted, normal, ...), so
/// faulted frames show up from the start instead of after every normal one.
pub(super) fn interleave(groups: Vec<Vec<Item>>) -> Vec<Item> {
    let mut iters: Vec<_> = groups.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        out.extend(iters.iter_mut().filter_map(Iterator::next));
        if out.len() == before {
            return out;
        }
    }
}

/// Runs `tinyvae serial monitor` on an open line.
pub(super) fn run(client: &mut DeviceClient, port: &str, args: &MonitorArgs) -> anyhow::Result<()> {
    ensure!(
        args.interval.is_finite() && args.interval >= 0.0,
        "--interval must be a number of seconds, 0 or more"
    );
    ensure!(
        std::io::stdout().is_terminal(),
        "serial monitor draws on a terminal, and stdout is not one \
         (`tinyvae serial encode` prints a log instead)"
    );
    let info = client.info()?;
    let (groups, _) = load_items(&args.source, &info)?;
    let items = interleave(groups);
    ensure!(
        !items.is_empty(),
        "{} holds no images",
        args.source.images.display()
    );
    let mut monitor = Monitor::new(args.window, info.threshold);
    let request = match args.request {
        MonitorRequest::Reconstruct => "reconstruct",
        MonitorRequest::Encode => "encode",
    };
    let mut header = Header {
        port,
        request,
        interval: args.interval,
        paused: false,
        width: usize::from(info.input_width),
        height: usize::from(info.input_height),
    };
    let mut terminal = ratatui::try_init().context("setting up the terminal")?;
    let result = session(
        &mut terminal,
        client,
        args,
        &items,
        &mut monitor,
        &mut header,
    );
    // Restore the terminal even when the session failed, before printing anything.
    ratatui::try_restore().context("restoring the terminal")?;
    result?;
    println!("{}", monitor.summary());
    Ok(())
}

fn session(
    terminal: &mut DefaultTerminal,
    client: &mut DeviceClient,
    args: &MonitorArgs,
    items: &[Item],
    monitor: &mut Monitor,
    header: &mut Header,
) -> anyhow::Result<()> {
    let interval = Duration::from_secs_f64(args.interval);
    let mut next = Instant::now();
    let mut sent = 0usize;
    loop {
        terminal.draw(|f| view::draw(f, monitor, header))?;
        if args.frames.is_some_and(|n| sent >= n) {
            return Ok(());
        }
        let wait = if header.paused {
            Duration::from_millis(250)
        } else {
            next.saturating_duration_since(Instant::now())
        };
        // A stream of events (keys held down, resizes) must not starve the requests:
        // after one event, the request goes out if it is due.
        if event::poll(wait)? {
            if let Event::Key(key) = event::read()? {
                if key.kind == KeyEventKind::Press {
                    match key.code {
                        KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                        // Raw mode turns Ctrl-C into a key instead of a signal.
                        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                            return Ok(())
                        }
                        // Plain space only: Ctrl-Space is a NUL byte, which some
                        // terminals (and `script` at the end of its input) send.
                        KeyCode::Char(' ') if key.modifiers.is_empty() => {
                            header.paused = !header.paused
                        }
                        _ => {}
                    }
                }
            }
        }
        if header.paused || Instant::now() < next {
            continue;
        }
        next = Instant::now() + interval;
        let Some(item) = items.get(sent % items.len().max(1)) else {
            return Ok(());
        };
        let outcome = ask(client, args.request, item);
        let timed_out = matches!(outcome, Err(SerialError::Timeout { .. }));
        update(monitor, item, outcome).with_context(|| format!("sending image {}", item.name))?;
        if timed_out {
            // A late answer would pair with the next request: drop it.
            client.drain(Duration::from_millis(200), Duration::from_secs(2))?;
        }
        sent += 1;
    }
}

#[cfg(test)]
mod tests {
    use tinyvae_shared::fixed::q16_from_f64;
    use tinyvae_shared::protocol::ErrorCode;

    use super::*;

    fn item(name: &str, truth: Option<bool>) -> Item {
        Item {
            name: name.into(),
            image: vec![7; 4],
            label: None,
            anomalous: truth,
        }
    }

    fn answer(score: f64, instructions: u64, reconstruction: Option<Vec<u8>>) -> Answer {
        let (score, threshold) = (q16_from_f64(score), q16_from_f64(100.0));
        Answer {
            score: tinyvae_shared::score::report(score, 0, threshold),
            instructions,
            reconstruction,
        }
    }

    #[test]
    fn synthetic_answers_update_the_tally() {
        let mut m = Monitor::new(100, q16_from_f64(100.0));
        let normal = item("#0", Some(false));
        let faulted = item("#0 dead-rows", Some(true));
        update(&mut m, &normal, Ok(answer(50.0, 1000, Some(vec![1; 4])))).expect("counted");
        update(&mut m, &faulted, Ok(answer(300.0, 3000, None))).expect("counted");
        update(&mut m, &faulted, Ok(answer(90.0, 2000, None))).expect("counted");
        assert_eq!((m.frames(), m.passed(), m.flagged()), (3, 2, 1));
        let c = m.confusion().expect("truth known");
        assert_eq!(
            (
                c.true_negative,
                c.true_positive,
                c.false_negative,
                c.false_positive
            ),
            (1, 1, 1, 0)
        );
        assert_eq!(m.median_instructions(), Some(2000));
        assert_eq!(m.last_instructions(), Some(2000));
        let last = m.last().expect("a frame");
        assert_eq!(last.name, "#0 dead-rows");
        assert_eq!(last.image, faulted.image);
        assert_eq!(last.truth, Some(true));

        // A timeout or a refusal is shown and the session goes on...
        let timeout = SerialError::Timeout {
            waited: Duration::from_secs(1),
            received: 0,
        };
        update(&mut m, &normal, Err(timeout)).expect("recoverable");
        update(&mut m, &normal, Err(SerialError::Device(ErrorCode::BadCrc))).expect("recoverable");
        assert_eq!((m.frames(), m.errors()), (3, 2));
        assert!(
            m.last_error()
                .is_some_and(|e| e.starts_with("#0: device refused")),
            "{:?}",
            m.last_error()
        );
        // ...a dead port ends it.
        let gone = SerialError::Io(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(update(&mut m, &normal, Err(gone)).is_err());
    }

    #[test]
    fn interleave_takes_the_groups_in_turn() {
        let names = |items: Vec<Item>| items.into_iter().map(|i| i.name).collect::<Vec<_>>();
        let groups = vec![
            vec![item("a0", None), item("a1", None), item("a2", None)],
            vec![item("b0", None)],
            vec![item("c0", None), item("c1", None)],
        ];
        assert_eq!(
            names(interleave(groups)),
            ["a0", "b0", "c0", "a1", "c1", "a2"]
        );
        assert!(interleave(Vec::new()).is_empty());
    }
}
