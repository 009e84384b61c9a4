//! How `mvdp bench` shows its results: a table for the terminal, a JSON file
//! and a PNG chart under a results folder.
//!
//! The chart's text is drawn with DejaVu Sans loaded at run time (Debian's
//! `fonts-dejavu-core`), so building mvdp needs no fontconfig or freetype.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::results::{BenchResults, Direction, FrameResult, Load, Ratio, System, TcpDirection};

/// The font the chart is drawn with (Debian package `fonts-dejavu-core`).
pub const CHART_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// The bold face of [`CHART_FONT`], used for titles when present.
const CHART_FONT_BOLD: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";
/// The chart's width in pixels; the height follows the number of panels.
pub const CHART_WIDTH: u32 = 1500;
/// Panels per row of the chart.
const CHART_COLUMNS: usize = 3;
/// Height of one row of panels, pixels.
const PANEL_HEIGHT: u32 = 260;
/// Height of the title and legend band at the top of the chart, pixels.
const HEADER_PX: u32 = 112;
/// Left and right margin of the header text, pixels.
const HEADER_MARGIN: i32 = 20;

/// Human table for the terminal: the set-up, one block per direction and
/// frame size (offered, refused, delivered, loss, delivered Mfps at max load,
/// zero-loss Mfps, CPU ns/frame at the fixed rate), TCP, latency, the ratios
/// against the kernel's macvlan with the goals marked ✓/✗, memory.
pub fn table(r: &BenchResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mvdp bench · {} · kernel {} · {} CPUs · {} containers · {} runs · frames {} s, TCP {} s, latency {} s per measurement",
        r.started_at,
        r.kernel,
        r.cpus,
        r.containers,
        r.runs,
        fmt_seconds(r.seconds),
        r.tcp_seconds,
        r.latency_seconds,
    );
    let _ = writeln!(out, "command: {}", r.command);
    let _ = writeln!(out, "rig: {}", r.rig);
    let _ = writeln!(out, "generators: {}", r.generator);
    let _ = writeln!(out, "placement: {}", r.placement);
    let _ = writeln!(out, "CPU: {}", r.cpu_accounting);
    if !r.frames.is_empty() {
        let _ = writeln!(
            out,
            "columns: offered = frames the sending interfaces took; refused = frames they dropped because the \
             next queue was full (not offered; a zero-loss step allows none); lost = 1 - delivered/offered"
        );
    }

    for dir in Direction::ALL {
        for frame_len in frame_lens(r) {
            let rows = frames_at(r, dir, frame_len);
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(out);
            let _ = writeln!(out, "{}, {} B frames", dir.label(), frame_len + 4);
            write_frame_rows(&mut out, &rows);
        }
    }

    if !r.tcp.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "TCP bulk: iperf3, 1 stream, {} s, MTU-sized frames on the wire (MTU {}); receiver Gbit/s",
            r.tcp_seconds,
            r.mtu
        );
        let _ = writeln!(
            out,
            "  {:<SYSTEM_W$}  {:>16}  {:>16}",
            "system",
            TcpDirection::WireToContainer.label(),
            TcpDirection::ContainerToWire.label()
        );
        for s in systems_present(r) {
            let cell = |d: TcpDirection| {
                r.tcp
                    .iter()
                    .find(|t| t.system == s && t.direction == d)
                    .map(|t| format!("{:.2}", t.gbps))
                    .unwrap_or_else(|| "-".into())
            };
            if r.tcp.iter().any(|t| t.system == s) {
                let _ = writeln!(
                    out,
                    "  {:<SYSTEM_W$}  {:>16}  {:>16}",
                    s.label(),
                    cell(TcpDirection::WireToContainer),
                    cell(TcpDirection::ContainerToWire)
                );
            }
        }
    }

    if !r.latency.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "latency: UDP request/response round trip, sockperf ping-pong, 64 B, wire host → container, {} s; µs",
            r.latency_seconds
        );
        let _ = writeln!(
            out,
            "  {:<SYSTEM_W$}  {:>8}  {:>8}  {:>8}    {:>14}  {:>8}  {:>8}",
            "system", "idle p50", "p99", "p99.9", "busy core p50", "p99", "p99.9"
        );
        for s in systems_present(r) {
            if !r.latency.iter().any(|l| l.system == s) {
                continue;
            }
            let cells = |load: Load| -> [String; 3] {
                match r.latency.iter().find(|l| l.system == s && l.load == load) {
                    Some(l) => [fmt_us(l.p50_us), fmt_us(l.p99_us), fmt_us(l.p999_us)],
                    None => ["-".into(), "-".into(), "-".into()],
                }
            };
            let [a, b, c] = cells(Load::Idle);
            let [d, e, f] = cells(Load::BusyCore);
            let _ = writeln!(
                out,
                "  {:<SYSTEM_W$}  {a:>8}  {b:>8}  {c:>8}    {d:>14}  {e:>8}  {f:>8}",
                s.label()
            );
        }
    }

    if !r.ratios.is_empty() {
        let _ = writeln!(out);
        write_ratios(&mut out, &r.ratios);
    }

    if !r.memory.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "daemon resident memory (VmRSS)");
        let _ = writeln!(
            out,
            "  {:>9}  {:>10}  {:>13}  {:>10}",
            "endpoints", "idle", "after traffic", "growth"
        );
        for m in &r.memory {
            let growth = m.rss_after_traffic_kib as i64 - m.rss_idle_kib as i64;
            let _ = writeln!(
                out,
                "  {:>9}  {:>10}  {:>13}  {:>10}",
                m.endpoints,
                fmt_kib(m.rss_idle_kib as i64),
                fmt_kib(m.rss_after_traffic_kib as i64),
                fmt_kib_signed(growth)
            );
        }
    }
    out
}

const SYSTEM_W: usize = 16;

fn write_frame_rows(out: &mut String, rows: &[&FrameResult]) {
    let fixed = rows[0].fixed_rate_fps;
    let cpu_head = format!("CPU ns/frame @ {}", fmt_rate(fixed));
    let w = cpu_head.chars().count().max(12);
    let _ = writeln!(
        out,
        "  {:<SYSTEM_W$}  {:>9}  {:>8}  {:>9}  {:>7}  {:>8}  {:>14}  {:>w$}",
        "system", "offered", "refused", "delivered", "lost", "max Mfps", "zero-loss Mfps", cpu_head,
    );
    let mut notes = Vec::new();
    for s in rows {
        let mut cpu = fmt_ns(s.cpu_ns_per_frame);
        if s.fixed_loss_ratio > 0.0 {
            cpu.push('*');
            notes.push(format!(
                "  * {}: {} loss at the fixed rate, its CPU figure is not comparable",
                s.system.label(),
                fmt_loss(s.fixed_loss_ratio)
            ));
        }
        if (s.fixed_rate_fps - fixed).abs() > 0.5 {
            cpu.push_str(&format!(" @ {}", fmt_rate(s.fixed_rate_fps)));
        }
        let _ = writeln!(
            out,
            "  {:<SYSTEM_W$}  {:>9}  {:>8}  {:>9}  {:>7}  {:>8}  {:>14}  {:>w$}",
            s.system.label(),
            fmt_count(s.max_offered_frames),
            fmt_count(s.max_refused_frames),
            fmt_count(s.max_delivered_frames),
            fmt_loss(s.max_loss_ratio),
            fmt_mfps(s.max_delivered_fps),
            fmt_mfps(s.zero_loss_fps),
            cpu,
        );
    }
    for n in notes {
        let _ = writeln!(out, "{n}");
    }
}

/// The ratios, one block per mvdp system, one line per row (direction and
/// size, TCP, latency per load), each figure with its goal and ✓/✗ where
/// the issue sets one; then how many goals are met.
fn write_ratios(out: &mut String, ratios: &[Ratio]) {
    let _ = writeln!(
        out,
        "mvdp / kernel macvlan: median of per-run ratios (each run against the kernel in the same run); \
         goals of issue 7 marked ✓ met, ✗ missed"
    );
    let mut systems: Vec<System> = Vec::new();
    for x in ratios {
        if !systems.contains(&x.system) {
            systems.push(x.system);
        }
    }
    let row_w = ratios
        .iter()
        .map(|x| x.row.chars().count())
        .max()
        .unwrap_or(0);
    for s in &systems {
        let _ = writeln!(out, "  {}", s.label());
        let mut rows: Vec<&str> = Vec::new();
        for x in ratios.iter().filter(|x| x.system == *s) {
            if !rows.contains(&x.row.as_str()) {
                rows.push(&x.row);
            }
        }
        for row in rows {
            let cells: Vec<String> = ratios
                .iter()
                .filter(|x| x.system == *s && x.row == row)
                .map(|x| format!("{} {}", x.figure, fmt_ratio(x)))
                .collect();
            let _ = writeln!(out, "    {row:<row_w$}   {}", cells.join("   "));
        }
    }
    let mut summary = Vec::new();
    for s in &systems {
        let goals: Vec<&Ratio> = ratios
            .iter()
            .filter(|x| x.system == *s && x.goal.is_some())
            .collect();
        if !goals.is_empty() {
            let met = goals.iter().filter(|x| x.met == Some(true)).count();
            summary.push(format!("{} {met} of {}", s.label(), goals.len()));
        }
    }
    if !summary.is_empty() {
        let _ = writeln!(out, "  goals met: {}", summary.join(", "));
    }
}

/// "1.12 (≥ 1.0) ✓"; "0.93"; "n/a (≥ 1.0) ?" when the ratio could not be computed.
fn fmt_ratio(x: &Ratio) -> String {
    let v = if x.ratio.is_finite() {
        format!("{:.2}", x.ratio)
    } else {
        "n/a".to_string()
    };
    match (x.goal, x.met) {
        (None, _) => v,
        (Some(g), Some(true)) => format!("{v} ({} {}) ✓", g.op, g.bound),
        (Some(g), Some(false)) => format!("{v} ({} {}) ✗", g.op, g.bound),
        (Some(g), None) => format!("{v} ({} {}) ?", g.op, g.bound),
    }
}

/// Writes `<dir>/bench-<timestamp>.json` (serde_json, pretty) and
/// `<dir>/bench-<timestamp>.png`, and also `<dir>/latest.json` /
/// `<dir>/latest.png` copies; returns the paths written.
///
/// The timestamp is the run's `started_at` made safe for a file name, so the
/// files of one run share a name.
pub fn write(r: &BenchResults, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)
        .with_context(|| format!("creating results folder {}", dir.display()))?;
    let stem = format!("bench-{}", file_timestamp(&r.started_at));
    let json_path = dir.join(format!("{stem}.json"));
    let png_path = dir.join(format!("{stem}.png"));
    let latest_json = dir.join("latest.json");
    let latest_png = dir.join("latest.png");

    let mut json = serde_json::to_string_pretty(r).context("serialising bench results")?;
    json.push('\n');
    fs::write(&json_path, &json).with_context(|| format!("writing {}", json_path.display()))?;
    chart(r, &png_path)?;
    fs::copy(&json_path, &latest_json)
        .with_context(|| format!("copying to {}", latest_json.display()))?;
    fs::copy(&png_path, &latest_png)
        .with_context(|| format!("copying to {}", latest_png.display()))?;
    Ok(vec![json_path, png_path, latest_json, latest_png])
}

/// One bar chart of the PNG: a figure, a bar per system that has it.
struct Panel {
    caption: String,
    axis: &'static str,
    /// Decimals of the value labels.
    decimals: usize,
    bars: Vec<(System, f64)>,
}

/// The panels, in reading order: per direction (at the smallest frame size)
/// delivered Mfps at max load, zero-loss Mfps and CPU ns per frame; then TCP
/// both ways; then latency (p50 idle, p99 idle, p99 with a busy core).
fn panels(r: &BenchResults) -> Vec<Panel> {
    let mut out = Vec::new();
    let finite = |v: f64| (v.is_finite() && v >= 0.0).then_some(v);
    if let Some(&len) = frame_lens(r).first() {
        for dir in Direction::ALL {
            let rows = frames_at(r, dir, len);
            if rows.is_empty() {
                continue;
            }
            let bars = |f: fn(&FrameResult) -> f64| -> Vec<(System, f64)> {
                rows.iter()
                    .filter_map(|x| finite(f(x)).map(|v| (x.system, v)))
                    .collect()
            };
            let head = format!("{}, {} B", dir.short(), len + 4);
            out.push(Panel {
                caption: format!("{head}: delivered at max load"),
                axis: "Mframes/s (higher is better)",
                decimals: 3,
                bars: bars(|x| x.max_delivered_fps / 1e6),
            });
            out.push(Panel {
                caption: format!("{head}: zero-loss rate"),
                axis: "Mframes/s (higher is better)",
                decimals: 3,
                bars: bars(|x| x.zero_loss_fps / 1e6),
            });
            out.push(Panel {
                caption: format!(
                    "{head}: CPU per frame @ {}",
                    fmt_rate(rows[0].fixed_rate_fps)
                ),
                axis: "CPU ns per frame (lower is better)",
                decimals: 0,
                bars: bars(|x| x.cpu_ns_per_frame),
            });
        }
    }
    for dir in TcpDirection::ALL {
        let bars: Vec<(System, f64)> = systems_present(r)
            .into_iter()
            .filter_map(|s| {
                r.tcp
                    .iter()
                    .find(|t| t.system == s && t.direction == dir)
                    .and_then(|t| finite(t.gbps).map(|v| (s, v)))
            })
            .collect();
        if !bars.is_empty() {
            out.push(Panel {
                caption: format!("TCP {} (iperf3)", dir.label()),
                axis: "Gbit/s (higher is better)",
                decimals: 2,
                bars,
            });
        }
    }
    type Pick = fn(&super::results::LatencyResult) -> f64;
    let latency: [(Load, &str, Pick); 3] = [
        (Load::Idle, "p50", |l| l.p50_us),
        (Load::Idle, "p99", |l| l.p99_us),
        (Load::BusyCore, "p99", |l| l.p99_us),
    ];
    for (load, pct, f) in latency {
        let bars: Vec<(System, f64)> = systems_present(r)
            .into_iter()
            .filter_map(|s| {
                r.latency
                    .iter()
                    .find(|l| l.system == s && l.load == load)
                    .and_then(|l| finite(f(l)).map(|v| (s, v)))
            })
            .collect();
        if !bars.is_empty() {
            out.push(Panel {
                caption: format!("UDP round trip {pct}, {}", load.label()),
                axis: "µs (lower is better)",
                decimals: 0,
                bars,
            });
        }
    }
    out
}

/// The PNG chart: a header (title, command, kernel, date, legend) and a grid
/// of bar charts, [`CHART_COLUMNS`] to a row (see [`panels`]).
pub fn chart(r: &BenchResults, path: &Path) -> anyhow::Result<()> {
    load_font()?;
    let panels = panels(r);
    let rows = panels.len().div_ceil(CHART_COLUMNS).max(1);
    let size = (CHART_WIDTH, HEADER_PX + rows as u32 * PANEL_HEIGHT);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let (header, body) = root.split_vertically(HEADER_PX);
    draw_header(&header, r)?;

    if panels.is_empty() {
        body.draw(&Text::new(
            "no results",
            (20, 20),
            ("sans-serif", 24).into_font(),
        ))
        .map_err(draw_err)?;
    } else {
        let areas = body.split_evenly((rows, CHART_COLUMNS));
        for (panel, area) in panels.iter().zip(&areas) {
            draw_panel(area, panel)?;
        }
    }
    root.present()
        .map_err(|e| anyhow!("writing chart {}: {e}", path.display()))?;
    Ok(())
}

/// The bar colour of a system, the same in every panel and in the legend.
fn system_color(s: System) -> RGBColor {
    match s {
        System::KernelMacvlan => RGBColor(120, 120, 130),
        System::MvdpFastPath => RGBColor(44, 160, 44),
        System::MvdpWorkers => RGBColor(31, 119, 180),
        System::MvdpTap => RGBColor(255, 127, 14),
        System::MvdpBusyPoll => RGBColor(148, 103, 189),
    }
}

/// The x-axis label of a system in a panel (the legend has the full name).
fn system_short(s: System) -> &'static str {
    match s {
        System::KernelMacvlan => "kernel",
        System::MvdpFastPath => "fast path",
        System::MvdpWorkers => "workers",
        System::MvdpTap => "tap",
        System::MvdpBusyPoll => "busy poll",
    }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the bench chart: {e}")
}

/// Draws `text` at `pos` in the largest size up to `size` that fits `width` pixels.
fn fitted_text(
    area: &Area<'_>,
    text: &str,
    pos: (i32, i32),
    size: u32,
    style: FontStyle,
    color: RGBColor,
    width: i32,
) -> anyhow::Result<()> {
    let mut px = size;
    loop {
        let font: TextStyle = ("sans-serif", px, style).into_font().color(&color);
        let (w, _) = area.estimate_text_size(text, &font).map_err(draw_err)?;
        if w as i32 <= width || px <= 9 {
            area.draw(&Text::new(text.to_string(), pos, font))
                .map_err(draw_err)?;
            return Ok(());
        }
        px -= 1;
    }
}

/// Title, subtitle (command, kernel, CPUs, date) and the legend of systems.
fn draw_header(area: &Area<'_>, r: &BenchResults) -> anyhow::Result<()> {
    let width = area.dim_in_pixel().0 as i32 - 2 * HEADER_MARGIN;
    let title = format!(
        "mvdp bench vs the kernel's macvlan · {} containers · median of {} runs",
        r.containers, r.runs
    );
    fitted_text(
        area,
        &title,
        (HEADER_MARGIN, 12),
        24,
        FontStyle::Bold,
        RGBColor(0, 0, 0),
        width,
    )?;
    let subtitle = format!(
        "{}   ·   kernel {}   ·   {} CPUs   ·   {}   ·   NIC-like wire (MTU {} frames, GRO on)",
        r.command, r.kernel, r.cpus, r.started_at, r.mtu
    );
    fitted_text(
        area,
        &subtitle,
        (HEADER_MARGIN, 46),
        15,
        FontStyle::Normal,
        RGBColor(70, 70, 70),
        width,
    )?;

    let legend_font: TextStyle = ("sans-serif", 16).into_font().into();
    let mut x = HEADER_MARGIN;
    let y = 80;
    for s in systems_present(r) {
        area.draw(&Rectangle::new(
            [(x, y), (x + 18, y + 18)],
            system_color(s).filled(),
        ))
        .map_err(draw_err)?;
        area.draw(&Text::new(s.label(), (x + 26, y + 1), legend_font.clone()))
            .map_err(draw_err)?;
        let (w, _) = area
            .estimate_text_size(s.label(), &legend_font)
            .map_err(draw_err)?;
        x += 26 + w as i32 + 32;
    }
    Ok(())
}

/// One panel: a bar per system that has the figure.
fn draw_panel(area: &Area<'_>, panel: &Panel) -> anyhow::Result<()> {
    let top = panel.bars.iter().fold(0.0f64, |a, &(_, b)| a.max(b));
    // Room above the tallest bar for its value label.
    let y_max = if top > 0.0 { top * 1.2 } else { 1.0 };
    let n = panel.bars.len().max(1) as i32;
    let (w, _) = area.dim_in_pixel();
    // Captions are cut to the panel rather than drawn past it.
    let caption_px = if panel.caption.chars().count() * 9 > w as usize - 20 {
        13
    } else {
        15
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.caption, ("sans-serif", caption_px, FontStyle::Bold))
        .margin(10)
        .x_label_area_size(24)
        .y_label_area_size(58)
        // One segment per bar: bars span a segment, labels sit at its centre.
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..y_max)
        .map_err(draw_err)?;

    let x_fmt = |v: &SegmentValue<i32>| -> String {
        match v {
            SegmentValue::CenterOf(i) => usize::try_from(*i)
                .ok()
                .and_then(|i| panel.bars.get(i))
                .map(|(s, _)| system_short(*s).to_string())
                .unwrap_or_default(),
            _ => String::new(),
        }
    };
    let y_fmt = |v: &f64| -> String {
        if panel.decimals == 0 || y_max >= 100.0 {
            format!("{v:.0}")
        } else if y_max < 0.1 {
            format!("{v:.3}")
        } else if y_max < 2.0 {
            format!("{v:.2}")
        } else {
            format!("{v:.1}")
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n as usize)
        .y_labels(5)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_label_style(("sans-serif", 13))
        .y_label_style(("sans-serif", 12))
        .y_desc(panel.axis)
        .axis_desc_style(("sans-serif", 12))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(draw_err)?;

    let value_font =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (i, &(s, v)) in panel.bars.iter().enumerate() {
        let i = i as i32;
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), v),
            ],
            system_color(s).filled(),
        );
        bar.set_margin(0, 0, 12, 12);
        chart.draw_series(std::iter::once(bar)).map_err(draw_err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{v:.prec$}", prec = panel.decimals),
                (SegmentValue::CenterOf(i), v + y_max * 0.015),
                value_font.clone(),
            )))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Registers DejaVu Sans as plotters' "sans-serif" once per process.
fn load_font() -> anyhow::Result<()> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let regular = fs::read(CHART_FONT).map_err(|e| {
                format!(
                    "the bench chart needs the font {CHART_FONT} ({e}): install the Debian \
                     package fonts-dejavu-core (`make deps`)"
                )
            })?;
            // plotters keeps fonts for the life of the process: leak once.
            register_font("sans-serif", FontStyle::Normal, Box::leak(regular.into()))
                .map_err(|_| format!("{CHART_FONT} is not a usable TrueType font"))?;
            // The bold face is optional: without it titles fall back to the regular face.
            if let Ok(bold) = fs::read(CHART_FONT_BOLD) {
                let _ = register_font("sans-serif", FontStyle::Bold, Box::leak(bold.into()));
            }
            Ok(())
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Frame sizes present in the results, ascending.
fn frame_lens(r: &BenchResults) -> Vec<usize> {
    let mut v: Vec<usize> = r.frames.iter().map(|x| x.frame_len).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Systems that have any result, baseline first.
fn systems_present(r: &BenchResults) -> Vec<System> {
    System::ALL
        .into_iter()
        .filter(|s| {
            r.frames.iter().any(|x| x.system == *s)
                || r.tcp.iter().any(|x| x.system == *s)
                || r.latency.iter().any(|x| x.system == *s)
        })
        .collect()
}

/// Frame results in one direction at one size, baseline first.
fn frames_at(r: &BenchResults, dir: Direction, frame_len: usize) -> Vec<&FrameResult> {
    let mut rows: Vec<&FrameResult> = r
        .frames
        .iter()
        .filter(|x| x.direction == dir && x.frame_len == frame_len)
        .collect();
    rows.sort_by_key(|x| System::ALL.iter().position(|s| *s == x.system));
    rows
}

fn fmt_us(us: f64) -> String {
    if !us.is_finite() {
        "n/a".to_string()
    } else if us >= 100.0 {
        format!("{us:.0}")
    } else {
        format!("{us:.1}")
    }
}

/// A frame count with a k/M/G suffix.
fn fmt_count(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.2} G", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.2} M", f / 1e6)
    } else if f >= 1e4 {
        format!("{:.1} k", f / 1e3)
    } else {
        n.to_string()
    }
}

/// A rate in frames/s as "200 kfps" / "1.25 Mfps".
fn fmt_rate(fps: f64) -> String {
    if !fps.is_finite() {
        "n/a".to_string()
    } else if fps >= 1e6 {
        format!("{:.2} Mfps", fps / 1e6)
    } else if fps >= 1e3 {
        format!("{:.0} kfps", fps / 1e3)
    } else {
        format!("{fps:.0} fps")
    }
}

fn fmt_mfps(fps: f64) -> String {
    if fps.is_finite() {
        format!("{:.3}", fps / 1e6)
    } else {
        "n/a".to_string()
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns.is_finite() {
        format!("{ns:.0}")
    } else {
        "n/a".to_string()
    }
}

/// Loss as a percentage; tiny non-zero loss is not shown as 0.00 %.
fn fmt_loss(ratio: f64) -> String {
    if !ratio.is_finite() {
        "n/a".to_string()
    } else if ratio > 0.0 && ratio < 0.0001 {
        "<0.01%".to_string()
    } else {
        format!("{:.2}%", ratio * 100.0)
    }
}

fn fmt_kib(kib: i64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn fmt_kib_signed(kib: i64) -> String {
    format!("{:+.1} MiB", kib as f64 / 1024.0)
}

fn fmt_seconds(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

/// `started_at` made safe for a file name ("2025-06-24T12:34:56Z" →
/// "2025-06-24T12-34-56Z"); the current Unix time if it is empty.
pub(crate) fn file_timestamp(started_at: &str) -> String {
    let s: String = started_at
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        secs.to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::results::{Goal, LatencyResult, MemoryResult, Ratio, TcpResult};

    fn frame(system: System, direction: Direction, scale: f64, cpu: f64) -> FrameResult {
        let offered_fps = 900_000.0;
        let delivered_fps = offered_fps * 0.82 * scale;
        FrameResult {
            system,
            direction,
            frame_len: 60,
            max_offered_frames: (offered_fps * 2.0) as u64,
            max_refused_frames: 12,
            max_delivered_frames: (delivered_fps * 2.0) as u64,
            max_loss_ratio: 1.0 - delivered_fps / offered_fps,
            max_offered_fps: offered_fps,
            max_delivered_fps: delivered_fps,
            zero_loss_fps: 0.6 * delivered_fps,
            fixed_rate_fps: 200_000.0,
            fixed_delivered_frames: 400_000,
            fixed_loss_ratio: 0.0,
            cpu_ns_per_frame: cpu,
            samples_max_delivered_fps: vec![delivered_fps * 0.98, delivered_fps, delivered_fps],
            samples_zero_loss_fps: vec![0.6 * delivered_fps; 3],
            samples_cpu_ns_per_frame: vec![cpu, cpu * 1.02, cpu * 0.97],
        }
    }

    fn ratio(
        system: System,
        key: &str,
        row: &str,
        figure: &str,
        v: f64,
        goal: Option<Goal>,
    ) -> Ratio {
        Ratio {
            system,
            key: key.into(),
            row: row.into(),
            figure: figure.into(),
            ratio: v,
            samples: vec![v; 3],
            goal,
            met: goal.and_then(|g| g.met(v)),
        }
    }

    pub(crate) fn sample() -> BenchResults {
        let mut frames = Vec::new();
        let mut tcp = Vec::new();
        let mut latency = Vec::new();
        let main = [
            (System::KernelMacvlan, 1.0, 1600.0, 7.5, 40.0),
            (System::MvdpFastPath, 1.05, 1500.0, 7.9, 38.0),
            (System::MvdpWorkers, 0.6, 3600.0, 2.1, 60.0),
            (System::MvdpTap, 0.55, 3900.0, 1.9, 65.0),
        ];
        for (s, scale, cpu, gbps, _) in main {
            for d in Direction::ALL {
                frames.push(frame(s, d, scale, cpu));
            }
            for d in TcpDirection::ALL {
                tcp.push(TcpResult {
                    system: s,
                    direction: d,
                    gbps,
                    retransmits: 3,
                    samples_gbps: vec![gbps; 3],
                });
            }
        }
        for (s, _, _, _, p50) in
            main.into_iter()
                .chain([(System::MvdpBusyPoll, 0.0, 0.0, 0.0, 30.0)])
        {
            for load in Load::ALL {
                let k = if load == Load::Idle { 1.0 } else { 3.0 };
                latency.push(LatencyResult {
                    system: s,
                    load,
                    p50_us: p50 * k,
                    p99_us: p50 * k * 1.8,
                    p999_us: p50 * k * 3.0,
                    samples_p50_us: vec![p50 * k; 3],
                    samples_p99_us: vec![p50 * k * 1.8; 3],
                    samples_p999_us: vec![p50 * k * 3.0; 3],
                });
            }
        }
        let fp = System::MvdpFastPath;
        let w = System::MvdpWorkers;
        let ratios = vec![
            ratio(
                fp,
                "wire_to_containers_nic/60/max_delivered_fps",
                "wire → c (NIC-like), 64 B",
                "delivered",
                1.05,
                Some(Goal::at_least(1.0)),
            ),
            ratio(
                fp,
                "wire_to_containers_nic/60/cpu_ns_per_frame",
                "wire → c (NIC-like), 64 B",
                "CPU/frame",
                0.94,
                Some(Goal::at_most(1.0)),
            ),
            ratio(
                fp,
                "tcp/container_to_wire/gbps",
                "TCP Gbit/s",
                "container → wire",
                0.91,
                Some(Goal::at_least(1.0)),
            ),
            ratio(
                fp,
                "latency/idle/p50_us",
                "latency, idle",
                "p50",
                0.95,
                None,
            ),
            ratio(
                w,
                "wire_to_containers_nic/60/cpu_ns_per_frame",
                "wire → c (NIC-like), 64 B",
                "CPU/frame",
                2.25,
                Some(Goal::at_most(1.5)),
            ),
            ratio(
                System::MvdpTap,
                "tcp/wire_to_container/gbps",
                "TCP Gbit/s",
                "wire → container",
                f64::NAN,
                None,
            ),
        ];
        BenchResults {
            command: "mvdp bench --containers 4 --runs 3 --seconds 2".to_string(),
            started_at: "2025-06-24T12:34:56Z".to_string(),
            kernel: "6.18.0-test".to_string(),
            cpus: 2,
            containers: 4,
            runs: 3,
            seconds: 2.0,
            tcp_seconds: 4,
            latency_seconds: 2,
            mtu: 1500,
            rig: "NIC-like".into(),
            generator: "nicgen, trafgen".into(),
            placement: "CPU 0, worker CPU 1".into(),
            cpu_accounting: "schedstat".into(),
            frames,
            tcp,
            latency,
            ratios,
            memory: vec![
                MemoryResult {
                    endpoints: 4,
                    rss_idle_kib: 20_480,
                    rss_after_traffic_kib: 20_736,
                },
                MemoryResult {
                    endpoints: 256,
                    rss_idle_kib: 61_440,
                    rss_after_traffic_kib: 61_440,
                },
            ],
        }
    }

    /// A fresh folder under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let p = std::env::temp_dir()
                .join(format!("mvdp-report-{tag}-{}-{nanos}", std::process::id()));
            fs::create_dir_all(&p).expect("create temp dir");
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn table_shows_every_part_and_marks_goals() {
        let t = table(&sample());
        for s in System::ALL {
            assert!(t.contains(s.label()), "missing {}:\n{t}", s.label());
        }
        for d in Direction::ALL {
            assert!(
                t.contains(&format!("{}, 64 B frames", d.label())),
                "missing {d:?}:\n{t}"
            );
        }
        assert!(t.contains("TCP bulk: iperf3"), "{t}");
        assert!(t.contains("latency: UDP request/response"), "{t}");
        assert!(t.contains("CPU ns/frame @ 200 kfps"), "{t}");
        let line = |needle: &str| {
            t.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no line with {needle}:\n{t}"))
                .to_string()
        };
        let nic = t
            .lines()
            .filter(|l| l.contains("wire → c (NIC-like), 64 B"))
            .collect::<Vec<_>>();
        assert_eq!(nic.len(), 2, "{t}");
        assert!(nic[0].contains("delivered 1.05 (≥ 1) ✓"), "{}", nic[0]);
        assert!(nic[0].contains("CPU/frame 0.94 (≤ 1) ✓"), "{}", nic[0]);
        assert!(nic[1].contains("CPU/frame 2.25 (≤ 1.5) ✗"), "{}", nic[1]);
        assert!(line("container → wire 0.91").contains('✗'));
        assert!(line("p50 0.95").ends_with("0.95"), "no goal, no mark");
        assert!(line("wire → container n/a").contains("n/a"));
        assert!(line("goals met").contains("mvdp fast path 2 of 3, mvdp workers 0 of 1"));
        assert!(t.contains("VmRSS"), "{t}");
    }

    #[test]
    fn fixed_rate_loss_is_flagged() {
        let mut r = sample();
        r.frames[1].fixed_loss_ratio = 0.02;
        let t = table(&r);
        assert!(t.contains("2.00% loss at the fixed rate"), "{t}");
    }

    #[test]
    fn write_produces_json_and_png() {
        let dir = TempDir::new("write");
        let r = sample();
        let paths = write(&r, &dir.0).expect("write results");
        let names: Vec<String> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "bench-2025-06-24T12-34-56Z.json",
                "bench-2025-06-24T12-34-56Z.png",
                "latest.json",
                "latest.png"
            ]
        );
        for json in [&paths[0], &paths[2]] {
            let text = fs::read_to_string(json).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).expect("JSON parses");
            assert_eq!(v["kernel"], "6.18.0-test");
            assert_eq!(v["frames"].as_array().unwrap().len(), 16);
            assert_eq!(v["frames"][0]["system"], "kernel_macvlan");
            assert_eq!(v["frames"][0]["direction"], "wire_to_containers_nic");
            assert_eq!(v["tcp"].as_array().unwrap().len(), 8);
            assert_eq!(v["latency"].as_array().unwrap().len(), 10);
            assert_eq!(v["ratios"][0]["goal"]["op"], "≥");
            assert_eq!(v["ratios"][0]["met"], true);
            assert_eq!(v["memory"].as_array().unwrap().len(), 2);
        }
        for png in [&paths[1], &paths[3]] {
            let bytes = fs::read(png).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", png.display());
            assert!(bytes.len() > 20_000, "PNG only {} bytes", bytes.len());
        }
        if let Ok(keep) = std::env::var("MVDP_KEEP_CHART") {
            let _ = fs::copy(&paths[1], keep);
        }
    }

    #[test]
    fn chart_handles_missing_figures() {
        let dir = TempDir::new("partial");
        let mut r = sample();
        r.frames.retain(|x| x.system != System::MvdpTap);
        r.frames[0].zero_loss_fps = f64::NAN;
        r.latency.clear();
        let path = dir.0.join("partial.png");
        chart(&r, &path).expect("chart");
        assert!(fs::metadata(&path).unwrap().len() > 10_000);
        r.frames.clear();
        r.tcp.clear();
        chart(&r, &path).expect("empty chart");
    }

    #[test]
    fn timestamp_is_file_safe() {
        assert_eq!(
            file_timestamp("2025-06-24T12:34:56+00:00"),
            "2025-06-24T12-34-56-00-00"
        );
        assert!(!file_timestamp("").is_empty());
    }
}
