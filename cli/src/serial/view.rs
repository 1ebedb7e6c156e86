//! What `tinyvae serial monitor` draws, from a [`Monitor`] alone: no terminal and no
//! device here, so a test draws into ratatui's `TestBackend` and reads the cells.
//!
//! ```text
//! tinyvae monitor  /dev/ttyACM0  reconstruct every 0.25 s  frame 42
//! ┌score per frame (threshold 123.4)──────────────────────────────┐
//! │ scatter of the last --window scores, threshold line           │
//! └───────────────────────────────────────────────────────────────┘
//! ┌verdicts──────────────────┐┌image───────┐┌reconstruction──────┐
//! │ counts, vs truth, costs  ││ half blocks ││ half blocks        │
//! └──────────────────────────┘└────────────┘└────────────────────┘
//! q/Esc quit  space pause
//! ```

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph, Widget};
use ratatui::Frame;
use tinyvae_link::monitor::Monitor;
use tinyvae_shared::fixed::q16_to_f64;

/// The upper half block: its foreground paints a cell's top half, its background the
/// bottom half, so one text row shows two pixel rows and the image keeps its aspect.
pub const HALF_BLOCK: &str = "▀";

/// What the view shows besides the tally.
#[derive(Debug, Clone)]
pub struct Header<'a> {
    /// The serial port.
    pub port: &'a str,
    /// The request sent (`reconstruct` or `encode`).
    pub request: &'a str,
    /// Seconds between requests.
    pub interval: f64,
    /// Whether sending is paused.
    pub paused: bool,
    /// Image width, pixels.
    pub width: usize,
    /// Image height, pixels.
    pub height: usize,
}

/// A grey 8-bit image drawn with [`HALF_BLOCK`]s: `width` columns, `height / 2`
/// (rounded up) rows; a missing bottom row of an odd height is black.
pub struct HalfBlocks<'a> {
    /// Row-major pixels, 0 black to 255 white.
    pub pixels: &'a [u8],
    /// Pixels per row.
    pub width: usize,
    /// Rows of pixels.
    pub height: usize,
}

fn grey(v: u8) -> Color {
    Color::Rgb(v, v, v)
}

impl Widget for HalfBlocks<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let pixel = |x: usize, y: usize| {
            if y < self.height {
                self.pixels.get(y * self.width + x).copied().unwrap_or(0)
            } else {
                0
            }
        };
        let rows = self.height.div_ceil(2);
        for (row, y) in (area.top()..area.bottom()).take(rows).enumerate() {
            for (col, x) in (area.left()..area.right()).take(self.width).enumerate() {
                if let Some(cell) = buf.cell_mut((x, y)) {
                    cell.set_symbol(HALF_BLOCK)
                        .set_fg(grey(pixel(col, 2 * row)))
                        .set_bg(grey(pixel(col, 2 * row + 1)));
                }
            }
        }
    }
}

/// Draws the whole view.
pub fn draw(frame: &mut Frame, monitor: &Monitor, header: &Header) {
    let image_rows = u16::try_from(header.height.div_ceil(2)).unwrap_or(u16::MAX);
    let image_cols = u16::try_from(header.width).unwrap_or(u16::MAX);
    let [title, chart, bottom, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(6),
        Constraint::Length(image_rows.saturating_add(2).max(12)),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [stats, image, reconstruction] = Layout::horizontal([
        Constraint::Min(34),
        Constraint::Length(image_cols.saturating_add(2).max(16)),
        Constraint::Length(image_cols.saturating_add(2).max(16)),
    ])
    .areas(bottom);

    frame.render_widget(Paragraph::new(title_line(monitor, header)), title);
    draw_chart(frame, chart, monitor);
    frame.render_widget(
        Paragraph::new(stats_lines(monitor)).block(Block::bordered().title("verdicts")),
        stats,
    );
    let last = monitor.last();
    draw_image(
        frame,
        image,
        "image",
        last.map(|s| s.image.as_slice()),
        header,
        "no frame yet",
    );
    draw_image(
        frame,
        reconstruction,
        "reconstruction",
        last.and_then(|s| s.reconstruction.as_deref()),
        header,
        if last.is_some() {
            "encode requests: none"
        } else {
            "no frame yet"
        },
    );
    frame.render_widget(
        Paragraph::new("q/Esc quit   space pause/resume")
            .style(Style::default().add_modifier(Modifier::DIM)),
        help,
    );
}

fn title_line<'a>(monitor: &Monitor, header: &Header) -> Line<'a> {
    let mut spans = vec![
        Span::styled(
            "tinyvae monitor",
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(
            "  {}  {} every {} s  frame {}",
            header.port,
            header.request,
            header.interval,
            monitor.frames()
        )),
    ];
    if header.paused {
        spans.push(Span::styled(
            "  PAUSED",
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ));
    }
    Line::from(spans)
}

/// One line or scatter of the chart, in braille dots.
fn series<'a>(name: String, kind: GraphType, color: Color, data: &'a [(f64, f64)]) -> Dataset<'a> {
    Dataset::default()
        .name(name)
        .marker(Marker::Braille)
        .graph_type(kind)
        .style(Style::default().fg(color))
        .data(data)
}

/// The scores as dots (green passed, red flagged) and the threshold as a line, over
/// the frames the tally keeps.
fn draw_chart(frame: &mut Frame, area: Rect, monitor: &Monitor) {
    let threshold = monitor.threshold();
    let (mut passed, mut flagged) = (Vec::new(), Vec::new());
    for p in monitor.history() {
        let point = (p.frame as f64, p.score);
        if p.anomalous {
            flagged.push(point);
        } else {
            passed.push(point);
        }
    }
    let first = monitor.history().next().map_or(0.0, |p| p.frame as f64);
    let last = monitor.history().last().map_or(0.0, |p| p.frame as f64);
    let x_max = last.max(first + 1.0);
    let top = monitor
        .history()
        .map(|p| p.score)
        .fold(threshold, f64::max)
        .max(1.0)
        * 1.1;
    let line = [(first, threshold), (x_max, threshold)];
    let datasets = vec![
        series(
            format!("threshold {threshold:.1}"),
            GraphType::Line,
            Color::Yellow,
            &line,
        ),
        series("normal".into(), GraphType::Scatter, Color::Green, &passed),
        series("anomalous".into(), GraphType::Scatter, Color::Red, &flagged),
    ];
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(format!("score per frame (threshold {threshold:.1})")))
        .x_axis(
            Axis::default()
                .bounds([first, x_max])
                .labels([format!("{first:.0}"), format!("{x_max:.0}")]),
        )
        .y_axis(Axis::default().bounds([0.0, top]).labels([
            "0".to_owned(),
            format!("{:.0}", top / 2.0),
            format!("{top:.0}"),
        ]));
    frame.render_widget(chart, area);
}

/// The verdict counts, the table against the truth when known, the costs and the last
/// frame.
pub fn stats_lines(monitor: &Monitor) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(format!(
        "normal {}   anomalous {}",
        monitor.passed(),
        monitor.flagged()
    ))];
    match monitor.confusion() {
        Some(c) => {
            lines.push(Line::from("vs truth      flagged   passed"));
            lines.push(Line::from(format!(
                "  anomalous {:>9} {:>8}",
                c.true_positive, c.false_negative
            )));
            lines.push(Line::from(format!(
                "  normal    {:>9} {:>8}",
                c.false_positive, c.true_negative
            )));
        }
        None => lines.push(Line::from("vs truth: unknown")),
    }
    let cost = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    lines.push(Line::from(format!(
        "instructions last {}  median {}",
        cost(monitor.last_instructions()),
        cost(monitor.median_instructions())
    )));
    if let Some(s) = monitor.last() {
        let truth = match s.truth {
            Some(true) => " (truth: anomalous)",
            Some(false) => " (truth: normal)",
            None => "",
        };
        let verdict = if s.score.flagged() {
            Span::styled("ANOMALOUS", Style::default().fg(Color::Red))
        } else {
            Span::styled("ok", Style::default().fg(Color::Green))
        };
        lines.push(Line::from(match s.score.detector {
            Some(d) => format!(
                "last {}  detector {:.3} ({})  -ELBO {:.3}",
                s.name,
                q16_to_f64(d.score),
                d.fired.name(),
                q16_to_f64(s.score.score)
            ),
            None => format!("last {}  score {:.3}", s.name, q16_to_f64(s.score.score)),
        }));
        lines.push(Line::from(vec![
            Span::raw("     "),
            verdict,
            Span::raw(truth),
        ]));
    }
    if monitor.errors() > 0 {
        lines.push(Line::from(Span::styled(
            format!(
                "{} failed: {}",
                monitor.errors(),
                monitor.last_error().unwrap_or("")
            ),
            Style::default().fg(Color::Red),
        )));
    }
    lines
}

fn draw_image(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    pixels: Option<&[u8]>,
    header: &Header,
    missing: &str,
) {
    let block = Block::bordered().title(title.to_owned());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    match pixels {
        Some(pixels) => frame.render_widget(
            HalfBlocks {
                pixels,
                width: header.width,
                height: header.height,
            },
            inner,
        ),
        None => frame.render_widget(Paragraph::new(missing.to_owned()), inner),
    }
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use tinyvae_link::monitor::Scored;
    use tinyvae_shared::fixed::q16_from_f64;

    use super::*;

    /// A 28x28 image with a different grey in every pixel.
    fn pattern() -> Vec<u8> {
        (0..28 * 28)
            .map(|i| {
                let (x, y) = (i % 28, i / 28);
                (x * 9 + y) as u8
            })
            .collect()
    }

    #[test]
    fn half_blocks_put_two_pixel_rows_in_one_text_row() {
        let pixels = pattern();
        let mut buf = Buffer::empty(Rect::new(0, 0, 30, 15));
        HalfBlocks {
            pixels: &pixels,
            width: 28,
            height: 28,
        }
        .render(Rect::new(1, 0, 29, 15), &mut buf);
        for row in 0..14u16 {
            for col in 0..28u16 {
                let cell = &buf[(col + 1, row)];
                let (x, y) = (usize::from(col), 2 * usize::from(row));
                assert_eq!(cell.symbol(), HALF_BLOCK, "cell {col},{row}");
                assert_eq!(cell.fg, grey(pixels[y * 28 + x]), "top of {col},{row}");
                assert_eq!(
                    cell.bg,
                    grey(pixels[(y + 1) * 28 + x]),
                    "bottom of {col},{row}"
                );
            }
        }
        // Nothing outside the 28x14 cells.
        assert_eq!(buf[(0, 0)].symbol(), " ");
        assert_eq!(buf[(29, 0)].symbol(), " ");
        assert_eq!(buf[(1, 14)].symbol(), " ");
    }

    #[test]
    fn an_odd_height_has_a_black_last_bottom_half() {
        let pixels = [200u8; 3 * 3];
        let mut buf = Buffer::empty(Rect::new(0, 0, 3, 3));
        HalfBlocks {
            pixels: &pixels,
            width: 3,
            height: 3,
        }
        .render(buf.area, &mut buf);
        assert_eq!(buf[(0, 1)].fg, grey(200));
        assert_eq!(buf[(0, 1)].bg, grey(0));
        assert_eq!(
            buf[(0, 2)].symbol(),
            " ",
            "two text rows for three pixel rows"
        );
    }

    fn scored(score: f64, truth: Option<bool>, image: Vec<u8>) -> Scored {
        let (score, threshold) = (q16_from_f64(score), q16_from_f64(100.0));
        Scored {
            name: "#7".into(),
            reconstruction: Some(image.iter().map(|p| 255 - p).collect()),
            image,
            score: tinyvae_shared::score::report(score, 0, threshold),
            instructions: 1234,
            truth,
        }
    }

    fn render(monitor: &Monitor, paused: bool) -> (Buffer, String) {
        let mut terminal = Terminal::new(TestBackend::new(100, 36)).expect("test terminal");
        let header = Header {
            port: "/dev/ttyACM0",
            request: "reconstruct",
            interval: 0.25,
            paused,
            width: 28,
            height: 28,
        };
        terminal
            .draw(|f| draw(f, monitor, &header))
            .expect("drawing");
        let buf = terminal.backend().buffer().clone();
        let text = (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n");
        (buf, text)
    }

    #[test]
    fn the_view_shows_counts_truth_costs_and_both_images() {
        let mut monitor = Monitor::new(50, q16_from_f64(100.0));
        monitor.record(scored(40.0, Some(false), vec![0; 784]));
        monitor.record(scored(160.0, Some(true), vec![0; 784]));
        monitor.record(scored(120.0, Some(false), pattern()));
        let (buf, text) = render(&monitor, true);
        for needle in [
            "tinyvae monitor  /dev/ttyACM0  reconstruct every 0.25 s  frame 3",
            "PAUSED",
            "score per frame (threshold 100.0)",
            "normal 1   anomalous 2",
            "  anomalous         1        0",
            "  normal            1        1",
            "instructions last 1234  median 1234",
            "last #7  score 120.000",
            "     ANOMALOUS (truth: normal)",
            "q/Esc quit",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        // The image and its reconstruction, 28x14 half blocks each, the last frame's.
        let blocks: Vec<(u16, u16)> = (0..buf.area.height)
            .flat_map(|y| (0..buf.area.width).map(move |x| (x, y)))
            .filter(|&p| buf[p].symbol() == HALF_BLOCK)
            .collect();
        assert_eq!(blocks.len(), 2 * 28 * 14);
        let (x0, y0) = blocks[0];
        let pixels = pattern();
        assert_eq!(buf[(x0 + 5, y0 + 3)].fg, grey(pixels[6 * 28 + 5]));
        assert_eq!(buf[(x0 + 5, y0 + 3)].bg, grey(pixels[7 * 28 + 5]));
        // The reconstruction (the inverse here) starts after the image's box.
        let right = blocks
            .iter()
            .find(|&&(x, y)| y == y0 && x > x0 + 28)
            .copied();
        let (x1, _) = right.expect("a second image on the same rows");
        assert_eq!(buf[(x1, y0)].fg, grey(255 - pixels[0]));

        // Not paused: no PAUSED.
        let (_, text) = render(&monitor, false);
        assert!(!text.contains("PAUSED"), "{text}");
    }

    #[test]
    fn an_empty_monitor_says_so() {
        let monitor = Monitor::new(50, q16_from_f64(42.0));
        let (buf, text) = render(&monitor, false);
        assert!(text.contains("frame 0"), "{text}");
        assert!(text.contains("normal 0   anomalous 0"), "{text}");
        assert!(text.contains("vs truth: unknown"), "{text}");
        assert!(text.contains("instructions last -  median -"), "{text}");
        assert!(text.contains("no frame yet"), "{text}");
        assert!(text.contains("threshold 42.0"), "{text}");
        assert!(!buf.content().iter().any(|c| c.symbol() == HALF_BLOCK));
    }
}
