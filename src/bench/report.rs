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

use super::results::{BenchResults, Ratios, System, SystemResult};

/// The font the chart is drawn with (Debian package `fonts-dejavu-core`).
pub const CHART_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// The bold face of [`CHART_FONT`], used for titles when present.
const CHART_FONT_BOLD: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";
/// The chart's size in pixels.
pub const CHART_SIZE: (u32, u32) = (1200, 800);

/// Height of the title and legend band at the top of the chart, pixels.
const HEADER_PX: u32 = 104;
/// Longest command line shown in the chart's subtitle before it is cut.
const MAX_TITLE_COMMAND: usize = 90;

/// Human table for the terminal: one block per frame size; rows = systems;
/// columns: offered frames, delivered, loss %, delivered Mfps at max load,
/// zero-loss Mfps, CPU ns/frame at the fixed rate; then the ratios
/// mvdp/kernel with the goal next to each (≥1.0, ≥1.0, ≤1.0) and a ✓/✗
/// marker; then memory rows if any.
pub fn table(r: &BenchResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mvdp bench · {} · kernel {} · {} CPUs · {} containers · {} runs × {} s · {}",
        r.started_at,
        r.kernel,
        r.cpus,
        r.containers,
        r.runs,
        fmt_seconds(r.seconds),
        r.generator
    );
    let _ = writeln!(out, "command: {}", r.command);

    for frame_len in frame_lens(r) {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", frame_heading(frame_len));
        let rows: Vec<&SystemResult> = systems_at(r, frame_len);
        if !rows.is_empty() {
            write_system_rows(&mut out, &rows);
        }
        let ratios: Vec<&Ratios> = r
            .ratios
            .iter()
            .filter(|x| x.frame_len == frame_len)
            .collect();
        if !ratios.is_empty() {
            write_ratio_rows(&mut out, &ratios);
        }
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

/// The PNG chart (1200×800): one row of panels per frame size, one panel per
/// metric (delivered Mfps at max load, zero-loss Mfps, CPU ns per delivered
/// frame at the fixed rate), a bar per system in each, with a legend and a
/// title naming the command, kernel and date.
pub fn chart(r: &BenchResults, path: &Path) -> anyhow::Result<()> {
    load_font()?;
    let systems = systems_present(r);
    let frame_lens = frame_lens(r);

    let root = BitMapBackend::new(path, CHART_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let (header, body) = root.split_vertically(HEADER_PX);
    draw_header(&header, r, &systems)?;

    if frame_lens.is_empty() {
        body.draw(&Text::new(
            "no results",
            (20, 20),
            ("sans-serif", 24).into_font(),
        ))
        .map_err(draw_err)?;
    } else {
        let panels = body.split_evenly((frame_lens.len(), Metric::ALL.len()));
        for (row, &frame_len) in frame_lens.iter().enumerate() {
            let rows = systems_at(r, frame_len);
            for (col, metric) in Metric::ALL.iter().enumerate() {
                let area = &panels[row * Metric::ALL.len() + col];
                draw_panel(area, *metric, frame_len, &systems, &rows)?;
            }
        }
    }
    root.present()
        .map_err(|e| anyhow!("writing chart {}: {e}", path.display()))?;
    Ok(())
}

/// One figure shown per panel of the chart.
#[derive(Debug, Clone, Copy)]
enum Metric {
    /// Delivered frames/s at maximum offered load.
    MaxDelivered,
    /// Highest offered rate without loss.
    ZeroLoss,
    /// CPU time per delivered frame at the fixed rate.
    CpuPerFrame,
}

impl Metric {
    const ALL: [Metric; 3] = [Metric::MaxDelivered, Metric::ZeroLoss, Metric::CpuPerFrame];

    fn title(self) -> &'static str {
        match self {
            Metric::MaxDelivered => "delivered at max load",
            Metric::ZeroLoss => "zero-loss rate",
            Metric::CpuPerFrame => "CPU per frame",
        }
    }

    fn axis(self) -> &'static str {
        match self {
            Metric::MaxDelivered | Metric::ZeroLoss => "Mframes/s (higher is better)",
            Metric::CpuPerFrame => "CPU ns per delivered frame (lower is better)",
        }
    }

    /// The value in the axis's unit, if it was measured.
    fn value(self, s: &SystemResult) -> Option<f64> {
        let v = match self {
            Metric::MaxDelivered => s.max_delivered_fps / 1e6,
            Metric::ZeroLoss => s.zero_loss_fps / 1e6,
            Metric::CpuPerFrame => s.cpu_ns_per_frame,
        };
        (v.is_finite() && v >= 0.0).then_some(v)
    }

    fn label(self, v: f64) -> String {
        match self {
            Metric::MaxDelivered | Metric::ZeroLoss => format!("{v:.3}"),
            Metric::CpuPerFrame => format!("{v:.0}"),
        }
    }
}

/// The bar colour of a system, the same in every panel and in the legend.
fn system_color(s: System) -> RGBColor {
    match s {
        System::KernelMacvlan => RGBColor(120, 120, 130),
        System::MvdpVeth => RGBColor(31, 119, 180),
        System::MvdpTap => RGBColor(255, 127, 14),
    }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn draw_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the bench chart: {e}")
}

/// Title, subtitle (command, kernel, date) and the legend of systems.
fn draw_header(area: &Area<'_>, r: &BenchResults, systems: &[System]) -> anyhow::Result<()> {
    // The generator's description is long; the JSON and the table carry it whole.
    let title = format!(
        "mvdp bench: kernel macvlan vs mvdp — {} containers, median of {} runs × {} s",
        r.containers,
        r.runs,
        fmt_seconds(r.seconds),
    );
    let command = if r.command.chars().count() > MAX_TITLE_COMMAND {
        let cut: String = r.command.chars().take(MAX_TITLE_COMMAND - 1).collect();
        format!("{cut}…")
    } else {
        r.command.clone()
    };
    let subtitle = format!(
        "{command}   ·   kernel {}   ·   {} CPUs   ·   {}",
        r.kernel, r.cpus, r.started_at
    );
    let title_font = ("sans-serif", 22, FontStyle::Bold).into_font();
    let sub_font = ("sans-serif", 15).into_font().color(&RGBColor(70, 70, 70));
    area.draw(&Text::new(title, (16, 10), title_font))
        .map_err(draw_err)?;
    area.draw(&Text::new(subtitle, (16, 42), sub_font))
        .map_err(draw_err)?;

    let legend_font: TextStyle = ("sans-serif", 16).into_font().into();
    let mut x = 16;
    let y = 74;
    for &s in systems {
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

/// One panel: one metric at one frame size, a bar per system.
fn draw_panel(
    area: &Area<'_>,
    metric: Metric,
    frame_len: usize,
    systems: &[System],
    rows: &[&SystemResult],
) -> anyhow::Result<()> {
    let values: Vec<Option<f64>> = systems
        .iter()
        .map(|&s| {
            rows.iter()
                .find(|x| x.system == s)
                .and_then(|x| metric.value(x))
        })
        .collect();
    let top = values.iter().flatten().fold(0.0f64, |a, &b| a.max(b));
    // Room above the tallest bar for its value label.
    let y_max = if top > 0.0 { top * 1.2 } else { 1.0 };
    let n = systems.len().max(1) as i32;

    let mut caption = format!("{}: {}", frame_short(frame_len), metric.title());
    if let (Metric::CpuPerFrame, Some(first)) = (metric, rows.first()) {
        caption.push_str(&format!(" @ {}", fmt_rate(first.fixed_rate_fps)));
    }
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16, FontStyle::Bold))
        .margin(10)
        .x_label_area_size(26)
        .y_label_area_size(62)
        // One segment per system: bars span a segment, labels sit at its centre.
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..y_max)
        .map_err(draw_err)?;

    let x_fmt = |v: &SegmentValue<i32>| -> String {
        match v {
            SegmentValue::CenterOf(i) => usize::try_from(*i)
                .ok()
                .and_then(|i| systems.get(i))
                .map(|s| s.label().to_string())
                .unwrap_or_default(),
            _ => String::new(),
        }
    };
    let y_fmt = |v: &f64| -> String {
        match metric {
            Metric::CpuPerFrame => format!("{v:.0}"),
            _ if y_max < 0.1 => format!("{v:.3}"),
            _ if y_max < 2.0 => format!("{v:.2}"),
            _ => format!("{v:.1}"),
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n as usize)
        .y_labels(6)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_label_style(("sans-serif", 14))
        .y_label_style(("sans-serif", 13))
        .y_desc(metric.axis())
        .axis_desc_style(("sans-serif", 14))
        .light_line_style(WHITE)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(draw_err)?;

    let value_font =
        TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (i, (&s, v)) in systems.iter().zip(&values).enumerate() {
        let i = i as i32;
        let label_at = |y: f64| (SegmentValue::CenterOf(i), y);
        match v {
            Some(v) => {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), *v),
                    ],
                    system_color(s).filled(),
                );
                bar.set_margin(0, 0, 16, 16);
                chart.draw_series(std::iter::once(bar)).map_err(draw_err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        metric.label(*v),
                        label_at(*v + y_max * 0.015),
                        value_font.clone(),
                    )))
                    .map_err(draw_err)?;
            }
            None => {
                chart
                    .draw_series(std::iter::once(Text::new(
                        "n/a",
                        label_at(y_max * 0.02),
                        value_font.clone(),
                    )))
                    .map_err(draw_err)?;
            }
        }
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

/// Frame sizes present in results or ratios, ascending.
fn frame_lens(r: &BenchResults) -> Vec<usize> {
    let mut v: Vec<usize> = r
        .results
        .iter()
        .map(|x| x.frame_len)
        .chain(r.ratios.iter().map(|x| x.frame_len))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Systems that have any result, baseline first.
fn systems_present(r: &BenchResults) -> Vec<System> {
    System::ALL
        .into_iter()
        .filter(|s| r.results.iter().any(|x| x.system == *s))
        .collect()
}

/// Results at one frame size, baseline first.
fn systems_at(r: &BenchResults, frame_len: usize) -> Vec<&SystemResult> {
    let mut rows: Vec<&SystemResult> = r
        .results
        .iter()
        .filter(|x| x.frame_len == frame_len)
        .collect();
    rows.sort_by_key(|x| System::ALL.iter().position(|s| *s == x.system));
    rows
}

/// "frame_len 60 (64 B on the wire with FCS)" and the like.
fn frame_heading(frame_len: usize) -> String {
    format!(
        "frame_len {frame_len} ({} B on the wire with FCS)",
        frame_len + 4
    )
}

/// Short frame-size label for chart captions.
fn frame_short(frame_len: usize) -> String {
    format!("frame_len {frame_len}")
}

const SYSTEM_W: usize = 16;

fn write_system_rows(out: &mut String, rows: &[&SystemResult]) {
    let fixed = rows[0].fixed_rate_fps;
    let cpu_head = format!("CPU ns/frame @ {}", fmt_rate(fixed));
    let _ = writeln!(
        out,
        "  {:<SYSTEM_W$}  {:>9}  {:>9}  {:>7}  {:>8}  {:>14}  {:>w$}",
        "system",
        "offered",
        "delivered",
        "loss",
        "max Mfps",
        "zero-loss Mfps",
        cpu_head,
        w = cpu_head.chars().count().max(12)
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
            "  {:<SYSTEM_W$}  {:>9}  {:>9}  {:>7}  {:>8}  {:>14}  {:>w$}",
            s.system.label(),
            fmt_count(s.max_offered_frames),
            fmt_count(s.max_delivered_frames),
            fmt_loss(s.max_loss_ratio),
            fmt_mfps(s.max_delivered_fps),
            fmt_mfps(s.zero_loss_fps),
            cpu,
            w = cpu_head.chars().count().max(12)
        );
    }
    for n in notes {
        let _ = writeln!(out, "{n}");
    }
}

fn write_ratio_rows(out: &mut String, ratios: &[&Ratios]) {
    let _ = writeln!(out, "  ratios mvdp/kernel macvlan");
    for x in ratios {
        let _ = writeln!(
            out,
            "  {:<SYSTEM_W$}  max Mfps {}   zero-loss {}   CPU/frame {}",
            x.system.label(),
            fmt_ratio(x.max_delivered_fps, Goal::AtLeast),
            fmt_ratio(x.zero_loss_fps, Goal::AtLeast),
            fmt_ratio(x.cpu_ns_per_frame, Goal::AtMost),
        );
    }
}

/// Which side of 1.0 a ratio must be on.
#[derive(Debug, Clone, Copy)]
enum Goal {
    AtLeast,
    AtMost,
}

/// "1.12 (goal ≥ 1.0) ✓"; "n/a (goal ≥ 1.0) ?" when the ratio could not be computed.
fn fmt_ratio(v: f64, goal: Goal) -> String {
    let (sign, met) = match goal {
        Goal::AtLeast => ("≥", v >= 1.0),
        Goal::AtMost => ("≤", v <= 1.0),
    };
    if !v.is_finite() {
        return format!(" n/a (goal {sign} 1.0) ?");
    }
    let mark = if met { "✓" } else { "✗" };
    format!("{v:>4.2} (goal {sign} 1.0) {mark}")
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
fn file_timestamp(started_at: &str) -> String {
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
    use crate::bench::results::MemoryResult;

    fn result(system: System, frame_len: usize, scale: f64, cpu: f64) -> SystemResult {
        let offered_fps = if frame_len == 60 {
            900_000.0
        } else {
            420_000.0
        };
        let delivered_fps = offered_fps * 0.82 * scale;
        SystemResult {
            system,
            frame_len,
            max_offered_frames: (offered_fps * 10.0) as u64,
            max_delivered_frames: (delivered_fps * 10.0) as u64,
            max_loss_ratio: 1.0 - delivered_fps / offered_fps,
            max_offered_fps: offered_fps,
            max_delivered_fps: delivered_fps,
            zero_loss_fps: 0.6 * delivered_fps,
            fixed_rate_fps: 200_000.0,
            fixed_delivered_frames: 2_000_000,
            fixed_loss_ratio: 0.0,
            cpu_ns_per_frame: cpu,
            samples_max_delivered_fps: vec![delivered_fps * 0.98, delivered_fps, delivered_fps],
            samples_zero_loss_fps: vec![0.6 * delivered_fps; 3],
            samples_cpu_ns_per_frame: vec![cpu, cpu * 1.02, cpu * 0.97],
        }
    }

    fn sample() -> BenchResults {
        let mut results = Vec::new();
        let mut ratios = Vec::new();
        for frame_len in [60, 1514] {
            results.push(result(System::KernelMacvlan, frame_len, 1.0, 1600.0));
            results.push(result(System::MvdpVeth, frame_len, 1.15, 1250.0));
            results.push(result(System::MvdpTap, frame_len, 0.9, 2100.0));
            ratios.push(Ratios {
                system: System::MvdpVeth,
                frame_len,
                max_delivered_fps: 1.15,
                zero_loss_fps: 1.15,
                cpu_ns_per_frame: 0.78,
            });
            ratios.push(Ratios {
                system: System::MvdpTap,
                frame_len,
                max_delivered_fps: 0.9,
                zero_loss_fps: 0.9,
                cpu_ns_per_frame: 1.31,
            });
        }
        BenchResults {
            command: "mvdp bench --containers 4 --runs 5 --seconds 10".to_string(),
            started_at: "2025-06-24T12:34:56Z".to_string(),
            kernel: "6.18.0-test".to_string(),
            cpus: 2,
            containers: 4,
            runs: 5,
            seconds: 10.0,
            generator: "trafgen".to_string(),
            results,
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
    fn table_names_systems_and_marks_goals() {
        let t = table(&sample());
        for s in System::ALL {
            assert!(t.contains(s.label()), "missing {}:\n{t}", s.label());
        }
        assert!(t.contains("frame_len 60 (64 B"), "{t}");
        assert!(t.contains("frame_len 1514 (1518 B"), "{t}");
        assert!(t.contains("ratios mvdp/kernel macvlan"), "{t}");
        let veth = t
            .lines()
            .find(|l| l.contains("mvdp veth") && l.contains("goal"))
            .expect("veth ratio line");
        assert!(veth.contains("1.15 (goal ≥ 1.0) ✓"), "{veth}");
        assert!(veth.contains("0.78 (goal ≤ 1.0) ✓"), "{veth}");
        assert!(!veth.contains('✗'), "{veth}");
        let tap = t
            .lines()
            .find(|l| l.contains("mvdp tap") && l.contains("goal"))
            .expect("tap ratio line");
        assert!(tap.contains("0.90 (goal ≥ 1.0) ✗"), "{tap}");
        assert!(tap.contains("1.31 (goal ≤ 1.0) ✗"), "{tap}");
        assert!(!tap.contains('✓'), "{tap}");
        assert!(t.contains("VmRSS"), "{t}");
        assert!(t.contains("256"), "{t}");
        assert!(t.contains("CPU ns/frame @ 200 kfps"), "{t}");
    }

    #[test]
    fn ratio_exactly_at_goal_is_met_and_nan_is_unknown() {
        assert!(fmt_ratio(1.0, Goal::AtLeast).ends_with('✓'));
        assert!(fmt_ratio(1.0, Goal::AtMost).ends_with('✓'));
        assert!(fmt_ratio(f64::NAN, Goal::AtLeast).ends_with('?'));
    }

    #[test]
    fn fixed_rate_loss_is_flagged() {
        let mut r = sample();
        r.results[1].fixed_loss_ratio = 0.02;
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
        for p in &paths {
            assert!(p.exists(), "{} missing", p.display());
        }

        let fields = [
            "system",
            "frame_len",
            "max_offered_frames",
            "max_delivered_frames",
            "max_loss_ratio",
            "max_offered_fps",
            "max_delivered_fps",
            "zero_loss_fps",
            "fixed_rate_fps",
            "fixed_delivered_frames",
            "fixed_loss_ratio",
            "cpu_ns_per_frame",
            "samples_max_delivered_fps",
            "samples_zero_loss_fps",
            "samples_cpu_ns_per_frame",
        ];
        for json in [&paths[0], &paths[2]] {
            let text = fs::read_to_string(json).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).expect("JSON parses");
            assert_eq!(v["kernel"], "6.18.0-test");
            let results = v["results"].as_array().expect("results array");
            assert_eq!(results.len(), 6);
            for res in results {
                let obj = res.as_object().expect("result object");
                for f in fields {
                    assert!(obj.contains_key(f), "field {f} missing in {res}");
                }
                assert_eq!(obj.len(), fields.len(), "unexpected fields in {res}");
            }
            assert_eq!(results[0]["system"], "kernel_macvlan");
            assert_eq!(v["ratios"].as_array().unwrap().len(), 4);
            assert_eq!(v["memory"].as_array().unwrap().len(), 2);
        }

        for png in [&paths[1], &paths[3]] {
            let bytes = fs::read(png).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", png.display());
            assert!(bytes.len() > 20_000, "PNG only {} bytes", bytes.len());
        }
    }

    #[test]
    fn chart_handles_missing_figures() {
        let dir = TempDir::new("partial");
        let mut r = sample();
        r.results.retain(|x| x.system != System::MvdpTap);
        r.results[0].zero_loss_fps = f64::NAN;
        let path = dir.0.join("partial.png");
        chart(&r, &path).expect("chart");
        assert!(fs::metadata(&path).unwrap().len() > 10_000);
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
