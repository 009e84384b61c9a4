//! Delegating addresses to an IPAM plugin (`host-local`, …) found on
//! `CNI_PATH`, as the reference plugins do: the same stdin, the same
//! environment, the command given.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};

use super::conf::{CniEnv, Command};
use super::error::{code, CniError};

/// What an IPAM plugin's ADD gave: the first IPv4 address, its prefix
/// length and gateway, the first IPv6 address (a dual-stack range), and
/// the DNS settings to pass on.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The gateway, if the plugin gave one.
    pub gateway: Option<Ipv4Addr>,
    /// The first IPv6 address, if the plugin gave one.
    pub ip6: Option<Ipv6Addr>,
    /// `dns`, as the plugin wrote it.
    pub dns: serde_json::Value,
}

/// The plugin `name` on `CNI_PATH`: the first executable file of that name.
pub fn find(env: &CniEnv, name: &str) -> Result<PathBuf, CniError> {
    env.path
        .iter()
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            CniError::new(
                code::IPAM_FAILED,
                format!("IPAM plugin {name:?} not found on CNI_PATH"),
                format!(
                    "CNI_PATH={}",
                    std::env::join_paths(&env.path)
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ),
            )
        })
}

/// Runs IPAM plugin `name` with `CNI_COMMAND=command`, `stdin`, and the rest
/// of this process's environment; returns its stdout parsed (`None` if it
/// printed nothing). Its own CNI error is passed on with its code.
pub fn exec(
    env: &CniEnv,
    name: &str,
    command: Command,
    stdin: &[u8],
) -> Result<Option<serde_json::Value>, CniError> {
    let path = find(env, name)?;
    let failed = |what: String, e: String| CniError::new(code::IPAM_FAILED, what, e);
    let mut child = Process::new(&path)
        .env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run {}", path.display()), e.to_string()))?;
    // Written whole before reading: IPAM plugins read all of stdin first.
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin)
            .map_err(|e| failed(format!("cannot write to {}", path.display()), e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("cannot wait for {}", path.display()), e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A CNI plugin reports its error as JSON on stdout.
        let parsed: Option<serde_json::Value> = serde_json::from_str(&stdout).ok();
        let code = parsed
            .as_ref()
            .and_then(|v| v.get("code"))
            .and_then(|c| c.as_u64())
            .map_or(code::IPAM_FAILED, |c| c as u32);
        let field = |k: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(|m| m.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let msg = if field("msg").is_empty() {
            stdout.trim().to_string()
        } else {
            field("msg")
        };
        return Err(CniError::new(
            code,
            format!("IPAM plugin {name} {}: {msg}", command.as_str()),
            format!(
                "{}{}",
                field("details"),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    if stdout.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&stdout)
        .map(Some)
        .map_err(|e| failed(format!("IPAM plugin {name} printed no JSON"), e.to_string()))
}

/// The lease in an IPAM ADD result of any version (0.3.0 to 1.x).
pub fn lease(name: &str, result: &serde_json::Value) -> Result<Lease, CniError> {
    let ips = result.get("ips").and_then(|v| v.as_array());
    let first = ips.into_iter().flatten().find_map(|ip| {
        let address = ip.get("address")?.as_str()?;
        let (addr, len) = address.split_once('/')?;
        Some((
            addr.parse::<Ipv4Addr>().ok()?,
            len.parse::<u8>().ok().filter(|l| *l <= 32)?,
            ip.get("gateway")
                .and_then(|g| g.as_str())
                .and_then(|g| g.parse().ok()),
        ))
    });
    let Some((ip, prefix_len, gateway)) = first else {
        return Err(CniError::new(
            code::IPAM_FAILED,
            format!("IPAM plugin {name} gave no IPv4 address"),
            result.to_string(),
        ));
    };
    let ip6 = ips.into_iter().flatten().find_map(|ip| {
        let address = ip.get("address")?.as_str()?;
        address.split('/').next()?.parse::<Ipv6Addr>().ok()
    });
    Ok(Lease {
        ip,
        prefix_len,
        gateway,
        ip6,
        dns: result.get("dns").cloned().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_read_from_old_and_new_results() {
        let old = serde_json::json!({"cniVersion":"0.4.0","ips":[{"version":"4",
            "address":"10.1.0.5/24","gateway":"10.1.0.1"}],"dns":{}});
        let new = serde_json::json!({"cniVersion":"1.0.0","ips":[{"address":"fd00::5/64"},
            {"address":"10.1.0.6/16"}],"routes":[{"dst":"0.0.0.0/0"}]});
        let a = lease("host-local", &old).unwrap();
        assert_eq!(
            (a.ip, a.prefix_len, a.gateway),
            (
                "10.1.0.5".parse().unwrap(),
                24,
                Some("10.1.0.1".parse().unwrap())
            )
        );
        let b = lease("host-local", &new).unwrap();
        assert_eq!(
            (b.ip, b.prefix_len, b.gateway),
            ("10.1.0.6".parse().unwrap(), 16, None)
        );
        // A dual-stack range: its IPv6 address too.
        assert_eq!(a.ip6, None);
        assert_eq!(b.ip6, Some("fd00::5".parse().unwrap()));
        assert_eq!(
            lease("x", &serde_json::json!({"ips":[]})).unwrap_err().code,
            code::IPAM_FAILED
        );
    }
}
