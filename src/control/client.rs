//! The client side of the control socket: `mvdp endpoint …` and `mvdp
//! status`, printing a table for people or the daemon's JSON for scripts.

use std::fmt::Write as _;
use std::path::Path;

use crate::cli::{EndpointAction, NetworkAction};
use crate::config::{EndpointSpec, NetworkSpec};
use crate::control::api::{call, ClientError, EndpointInfo, NetworkInfo, Request, Status};

/// Runs `mvdp endpoint ACTION` against the daemon at `socket`; returns what to print.
pub fn endpoint(action: EndpointAction, socket: &Path, json: bool) -> Result<String, ClientError> {
    let request = match action {
        EndpointAction::Add {
            name,
            network,
            netns,
            netns_path,
            kind,
            ip,
            ip6,
            mac,
            ifname,
            no_default_route,
        } => Request::EndpointAdd {
            endpoint: EndpointSpec {
                name,
                network,
                kind,
                netns,
                netns_path,
                ifname,
                ip,
                ip6,
                mac,
                default_route: no_default_route.then_some(false),
                handoff: None,
            },
        },
        EndpointAction::Del { name } => Request::EndpointDel { name },
        EndpointAction::List => Request::EndpointList {},
    };
    let result = call(socket, &request)?;
    if json {
        return Ok(pretty(&result));
    }
    let bad = |e| unexpected(socket, e);
    Ok(match request {
        Request::EndpointAdd { .. } => {
            let info: EndpointInfo = serde_json::from_value(result).map_err(bad)?;
            format!(
                "endpoint {} added: {} {} on {} ({}, {} path), {} in {}\n",
                info.name,
                info.addresses(),
                info.mac,
                info.network,
                info.kind,
                info.path,
                info.ifname,
                info.netns
            )
        }
        Request::EndpointDel { name } => format!("endpoint {name} removed\n"),
        _ => {
            let infos: Vec<EndpointInfo> = serde_json::from_value(result).map_err(bad)?;
            endpoint_table(&infos)
        }
    })
}

/// Runs `mvdp network ACTION` against the daemon at `socket`; returns what to print.
pub fn network(action: NetworkAction, socket: &Path, json: bool) -> Result<String, ClientError> {
    let request = match action {
        NetworkAction::Add {
            name,
            subnet,
            gateway,
            mode,
            vlan,
            ip_range,
            host_shim,
            subnet6,
            gateway6,
            ip_range6,
            host_shim6,
            mtu,
            multicast,
        } => Request::NetworkAdd {
            network: NetworkSpec {
                name,
                subnet,
                gateway,
                mode,
                vlan,
                ip_range,
                host_shim,
                subnet6,
                gateway6,
                ip_range6,
                host_shim6,
                mtu,
                multicast,
                ..NetworkSpec::default()
            },
        },
        NetworkAction::Del { name } => Request::NetworkDel { name },
        NetworkAction::List => Request::NetworkList {},
    };
    let result = call(socket, &request)?;
    if json {
        return Ok(pretty(&result));
    }
    Ok(match request {
        Request::NetworkDel { name } => format!("network {name} removed\n"),
        Request::NetworkAdd { .. } => {
            let info: NetworkInfo =
                serde_json::from_value(result).map_err(|e| unexpected(socket, e))?;
            format!(
                "network {} added: {} via {}{} ({}{})\n",
                info.name,
                info.subnet,
                info.gateway,
                info.subnet6
                    .as_ref()
                    .zip(info.gateway6.as_ref())
                    .map(|(s, g)| format!(", {s} via {g}"))
                    .unwrap_or_default(),
                info.mode,
                info.vlan.map(|v| format!(", VLAN {v}")).unwrap_or_default()
            )
        }
        _ => {
            let infos: Vec<NetworkInfo> =
                serde_json::from_value(result).map_err(|e| unexpected(socket, e))?;
            let mut s = String::new();
            let _ = writeln!(
                s,
                "{:<20} {:<9} {:<5} {:<18} {:<15} {:<8} ENDPOINTS",
                "NAME", "MODE", "VLAN", "SUBNET", "GATEWAY", "ORIGIN"
            );
            for n in infos {
                let _ = writeln!(
                    s,
                    "{:<20} {:<9} {:<5} {:<18} {:<15} {:<8} {}",
                    n.name,
                    n.mode,
                    n.vlan.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                    n.subnet,
                    n.gateway,
                    n.origin,
                    n.endpoints
                );
            }
            s
        }
    })
}

fn unexpected(socket: &Path, e: serde_json::Error) -> ClientError {
    ClientError::Protocol {
        path: socket.to_path_buf(),
        reason: format!("unexpected answer: {e}"),
    }
}

/// Runs `mvdp status` against the daemon at `socket`; returns what to print.
pub fn status(socket: &Path, json: bool) -> Result<String, ClientError> {
    let result = call(socket, &Request::Status {})?;
    if json {
        return Ok(pretty(&result));
    }
    let st: Status = serde_json::from_value(result).map_err(|e| unexpected(socket, e))?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "mvdp {} (pid {}), up {}",
        st.version,
        st.pid,
        uptime(st.uptime_seconds)
    );
    let _ = writeln!(s, "parent     {}", st.parent);
    let _ = writeln!(s, "xdp        {}", st.xdp);
    let _ = writeln!(s, "bind       {}", st.bind);
    let _ = writeln!(s, "fast path  {}", if st.fast_path { "on" } else { "off" });
    let workers: Vec<String> = st
        .workers
        .iter()
        .map(|w| {
            format!(
                "queue {} {}",
                w.queue,
                if w.alive { "alive" } else { "DEAD" }
            )
        })
        .collect();
    let _ = writeln!(s, "workers    {}", workers.join(", "));
    let _ = writeln!(s, "endpoints  {}", st.endpoints);
    let _ = writeln!(
        s,
        "config     {}{}",
        st.config_file,
        if st.config_changed {
            " (changed on disk since loaded: SIGHUP applies it)"
        } else {
            ""
        }
    );
    Ok(s)
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// An endpoint's lease for the table: "static", or the DHCP state with the
/// time left and the server ("bound 93s from 10.0.0.1").
fn lease_cell(dhcp: Option<&crate::control::api::DhcpInfo>) -> String {
    let Some(d) = dhcp else {
        return "static".into();
    };
    let mut s = d.state.clone();
    if let Some(secs) = d.expires_in_seconds {
        let _ = write!(s, " {secs}s");
    }
    if let Some(server) = &d.server {
        let _ = write!(s, " from {server}");
    }
    s
}

/// The endpoint list as a table.
pub fn endpoint_table(infos: &[EndpointInfo]) -> String {
    let header = [
        "NAME", "NETWORK", "KIND", "NETNS", "IP", "LEASE", "MAC", "PATH", "ORIGIN", "RX PKTS",
        "TX PKTS", "DROPS",
    ];
    let rows: Vec<[String; 12]> = infos
        .iter()
        .map(|i| {
            [
                i.name.clone(),
                i.network.clone(),
                i.kind.clone(),
                i.netns.clone(),
                i.addresses(),
                lease_cell(i.dhcp.as_ref()),
                i.mac.clone(),
                i.path.clone(),
                i.origin.clone(),
                i.rx_packets.to_string(),
                i.tx_packets.to_string(),
                i.drops.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut s = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (k, (c, w)) in cells.iter().zip(widths).enumerate() {
            // Counters right-aligned, the rest left.
            if k >= 9 {
                let _ = write!(l, "{c:>w$}  ");
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(&header);
    for r in &rows {
        line(&r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    s
}
