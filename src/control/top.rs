//! `mvdp top`: a live view of the running daemon's endpoints, refreshed
//! every second from the control socket, busiest first.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::{DefaultTerminal, Frame};

use crate::control::api::{call, ClientError, EndpointInfo, Request, Status};

const REFRESH: Duration = Duration::from_secs(1);

/// One endpoint's rates over the last refresh.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// Its name.
    pub name: String,
    /// Its network.
    pub network: String,
    /// Which tier carries it.
    pub path: String,
    /// Frames/s from the container.
    pub rx_pps: f64,
    /// Bits/s from the container.
    pub rx_bps: f64,
    /// Frames/s to the container.
    pub tx_pps: f64,
    /// Bits/s to the container.
    pub tx_bps: f64,
    /// Its frames dropped per second (sent by it or addressed to it).
    pub drop_pps: f64,
}

/// Rates from two samples `dt` apart, busiest first (then by name).
pub fn rates(before: &[EndpointInfo], now: &[EndpointInfo], dt: Duration) -> Vec<Rates> {
    let secs = dt.as_secs_f64().max(1e-3);
    let old: HashMap<&str, &EndpointInfo> = before.iter().map(|e| (e.name.as_str(), e)).collect();
    let per_sec = |a: u64, b: Option<u64>| b.map_or(0.0, |b| a.saturating_sub(b) as f64 / secs);
    let mut out: Vec<Rates> = now
        .iter()
        .map(|e| {
            let o = old.get(e.name.as_str());
            Rates {
                name: e.name.clone(),
                network: e.network.clone(),
                path: e.path.clone(),
                rx_pps: per_sec(e.rx_packets, o.map(|o| o.rx_packets)),
                rx_bps: 8.0 * per_sec(e.rx_bytes, o.map(|o| o.rx_bytes)),
                tx_pps: per_sec(e.tx_packets, o.map(|o| o.tx_packets)),
                tx_bps: 8.0 * per_sec(e.tx_bytes, o.map(|o| o.tx_bytes)),
                drop_pps: per_sec(e.drops, o.map(|o| o.drops)),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (b.rx_pps + b.tx_pps)
            .total_cmp(&(a.rx_pps + a.tx_pps))
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

/// 1234567 → "1.23M".
fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2}G", v / 1e9),
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

struct Sample {
    at: Instant,
    endpoints: Vec<EndpointInfo>,
    drops: BTreeMap<String, u64>,
}

fn sample(socket: &Path) -> Result<(Sample, Status), ClientError> {
    let bad = |e: serde_json::Error| ClientError::Protocol {
        path: socket.to_path_buf(),
        reason: format!("unexpected answer: {e}"),
    };
    let endpoints: Vec<EndpointInfo> =
        serde_json::from_value(call(socket, &Request::EndpointList {})?).map_err(bad)?;
    let status: Status = serde_json::from_value(call(socket, &Request::Status {})?).map_err(bad)?;
    Ok((
        Sample {
            at: Instant::now(),
            endpoints,
            drops: status.drops.clone(),
        },
        status,
    ))
}

/// Runs the view until `q`, Esc or Ctrl-C.
pub fn run(socket: &Path) -> Result<(), ClientError> {
    // Fail before taking over the terminal if the daemon is not there.
    let first = sample(socket)?;
    let mut terminal = ratatui::init();
    let result = view(&mut terminal, socket, first);
    ratatui::restore();
    result
}

fn view(
    terminal: &mut DefaultTerminal,
    socket: &Path,
    first: (Sample, Status),
) -> Result<(), ClientError> {
    let (mut last, mut status) = first;
    let mut shown: Vec<Rates> = rates(&last.endpoints, &last.endpoints, REFRESH);
    let mut drop_rates: Vec<(String, f64)> = Vec::new();
    let mut next = Instant::now() + REFRESH;
    loop {
        terminal
            .draw(|f| draw(f, &status, &shown, &drop_rates))
            .map_err(|e| ClientError::Protocol {
                path: socket.to_path_buf(),
                reason: format!("drawing: {e}"),
            })?;
        let wait = next.saturating_duration_since(Instant::now());
        if event::poll(wait).unwrap_or(false) {
            if let Ok(Event::Key(k)) = event::read() {
                let ctrl_c =
                    k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                if k.kind == KeyEventKind::Press
                    && (ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc))
                {
                    return Ok(());
                }
            }
            continue;
        }
        next = Instant::now() + REFRESH;
        let (now, st) = sample(socket)?;
        let dt = now.at - last.at;
        shown = rates(&last.endpoints, &now.endpoints, dt);
        drop_rates = now
            .drops
            .iter()
            .map(|(r, n)| {
                let before = last.drops.get(r).copied().unwrap_or(*n);
                (
                    r.clone(),
                    n.saturating_sub(before) as f64 / dt.as_secs_f64().max(1e-3),
                )
            })
            .filter(|(_, v)| *v > 0.0)
            .collect();
        last = now;
        status = st;
    }
}

fn draw(f: &mut Frame, status: &Status, shown: &[Rates], drops: &[(String, f64)]) {
    let [head, table, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let alive = status.workers.iter().filter(|w| w.alive).count();
    f.render_widget(
        Paragraph::new(vec![
            Line::from(format!(
                "mvdp {} on {} · fast path {} · xdp {} · workers {alive}/{} up · {} endpoints · up {}s",
                status.version,
                status.parent,
                if status.fast_path { "on" } else { "off" },
                status.xdp,
                status.workers.len(),
                status.endpoints,
                status.uptime_seconds
            )),
            Line::from(if drops.is_empty() {
                "drops/s: none".to_string()
            } else {
                let parts: Vec<String> = drops.iter().map(|(r, v)| format!("{r} {}", si(*v))).collect();
                format!("drops/s: {}", parts.join(", "))
            }),
        ]),
        head,
    );
    let header = Row::new([
        "ENDPOINT",
        "NETWORK",
        "PATH",
        "RX FRAMES/S",
        "RX BITS/S",
        "TX FRAMES/S",
        "TX BITS/S",
        "DROPS/S",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = shown.iter().map(|r| {
        Row::new([
            r.name.clone(),
            r.network.clone(),
            r.path.clone(),
            si(r.rx_pps),
            si(r.rx_bps),
            si(r.tx_pps),
            si(r.tx_bps),
            si(r.drop_pps),
        ])
    });
    let widths = [
        Constraint::Length(18),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(12),
        Constraint::Length(10),
        Constraint::Length(12),
        Constraint::Length(10),
        Constraint::Length(8),
    ];
    f.render_widget(
        Table::new(rows, widths).header(header).block(
            Block::bordered()
                .title(" endpoints, busiest first (RX: from the container, TX: to it, DROPS: its frames dropped) "),
        ),
        table,
    );
    f.render_widget(Paragraph::new("q quits · refreshes every second"), foot);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, rxp: u64, txp: u64) -> EndpointInfo {
        info_with_drops(name, rxp, txp, 0)
    }

    fn info_with_drops(name: &str, rxp: u64, txp: u64, drops: u64) -> EndpointInfo {
        EndpointInfo {
            name: name.into(),
            network: "lan".into(),
            kind: "veth".into(),
            netns: "n".into(),
            ifname: "eth0".into(),
            host_ifname: "mv0".into(),
            ip: "10.0.0.2".into(),
            ip6: None,
            mac: "02:42:0a:00:00:02".into(),
            origin: "config".into(),
            path: "fast".into(),
            rx_packets: rxp,
            rx_bytes: rxp * 100,
            tx_packets: txp,
            tx_bytes: txp * 100,
            drops,
            dhcp: None,
            groups: Vec::new(),
        }
    }

    #[test]
    fn rates_are_per_second_and_busiest_first() {
        let before = [info("a", 0, 0), info("b", 100, 0)];
        let now = [info("a", 500, 500), info("b", 300, 0), info("new", 7, 7)];
        let r = rates(&before, &now, Duration::from_secs(2));
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "new"]);
        assert_eq!(r[0].rx_pps, 250.0);
        assert_eq!(r[0].tx_bps, 8.0 * 250.0 * 100.0);
        assert_eq!(r[1].rx_pps, 100.0);
        // No earlier sample: no rate yet, rather than a spike.
        assert_eq!(r[2].rx_pps, 0.0);
        assert_eq!(r[0].drop_pps, 0.0);
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(999.0), "999");
    }

    #[test]
    fn drop_rates_are_per_endpoint() {
        let before = [info_with_drops("a", 10, 0, 4), info("b", 10, 0)];
        let now = [info_with_drops("a", 10, 0, 24), info("b", 10, 0)];
        let r = rates(&before, &now, Duration::from_secs(2));
        let drops: Vec<(&str, f64)> = r.iter().map(|r| (r.name.as_str(), r.drop_pps)).collect();
        assert_eq!(drops, [("a", 10.0), ("b", 0.0)]);
    }
}
