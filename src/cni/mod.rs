//! `mvdp-cni`: a CNI plugin (spec 1.0, GC and STATUS of 1.1) that attaches
//! containers to an mvdp network by asking the node's daemon over its
//! control socket.
//!
//! The network config mirrors the reference `macvlan` plugin: `master` names
//! the mvdp network (an `[[network]]` of the daemon's config), `mode` and
//! `vlan` must agree with it if given, `mtu` sets the container interface's
//! MTU, `ipam` is delegated to an IPAM plugin on `CNI_PATH`; `socket` and
//! `kind` are mvdp's own. The endpoint's name is derived from the CNI
//! network's name, the container id and the interface name, so DEL, CHECK
//! and GC find what ADD made without any state of the plugin's own.

pub mod conf;
pub mod error;
pub mod ipam;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use conf::{CniEnv, Command, NetConf, SUPPORTED_VERSIONS};
use error::{code, CniError};

use crate::config::EndpointSpec;
use crate::control::api::{
    self, ApiError, ClientError, EndpointInfo, ErrorCode, NetworkInfo, Request,
};

/// What the binary prints and how it exits.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The JSON for stdout (`None`: print nothing).
    pub stdout: Option<serde_json::Value>,
    /// The exit code: 0, or 1 with a CNI error on stdout.
    pub exit: i32,
}

/// Carries out one plugin call: `var` reads the environment, `stdin` is
/// the network configuration.
pub fn run(var: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    // Errors are written in the config's version when it has a known one,
    // even if the config is otherwise bad or the environment is.
    let mut version = serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.0.0".into());
    let result = CniEnv::from_vars(var).and_then(|env| {
        if env.command == Command::Version {
            return Ok(Some(version_answer(stdin)));
        }
        let conf = NetConf::parse(stdin)?;
        version = conf.cni_version.clone();
        match env.command {
            Command::Add => add(&env, &conf, stdin).map(Some),
            Command::Del => del(&env, &conf, stdin).map(|()| None),
            Command::Check => check(&env, &conf, stdin).map(|()| None),
            Command::Gc => gc(&env, &conf, stdin).map(|()| None),
            Command::Status => status(&conf).map(|()| None),
            Command::Version => unreachable!("answered above"),
        }
    });
    match result {
        Ok(stdout) => Outcome { stdout, exit: 0 },
        Err(e) => Outcome {
            stdout: Some(e.to_json(&version)),
            exit: 1,
        },
    }
}

/// `mvdp-cni install DIR`: copies this binary to `DIR/mvdp-cni` atomically
/// (a temp file renamed over the old one, so a runtime never executes half
/// a file); the Kubernetes DaemonSet's init container runs it against the
/// node's /opt/cni/bin. Returns the installed path.
pub fn install(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe()?;
    let target = dir.join("mvdp-cni");
    let tmp = dir.join(".mvdp-cni.tmp");
    std::fs::copy(&me, &tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &target)?;
    Ok(target)
}

/// VERSION: the versions spoken, in the version asked for (or the newest).
fn version_answer(stdin: &[u8]) -> serde_json::Value {
    let asked = serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "1.0.0".into());
    serde_json::json!({ "cniVersion": asked, "supportedVersions": SUPPORTED_VERSIONS })
}

/// The endpoint mvdp-cni makes for (`network`, `container_id`, `ifname`):
/// `cni-<8 hex of the network>-<12 chars of the container>-<16 hex of all three>`,
/// 42 bytes at most, within mvdp's name rules. The network's part lets GC
/// find its own; the container's lets people read `mvdp endpoint list`.
pub fn endpoint_name(network: &str, container_id: &str, ifname: &str) -> String {
    let short: String = container_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.' || *c == '-')
        .take(12)
        .collect();
    let whole = fnv1a64(format!("{network}\0{container_id}\0{ifname}").as_bytes());
    format!("{}{short}-{whole:016x}", network_prefix(network))
}

/// The prefix of every endpoint name of CNI network `network`.
pub fn network_prefix(network: &str) -> String {
    format!("cni-{:08x}-", fnv1a64(network.as_bytes()) as u32)
}

/// FNV-1a, 64 bits: stable across builds and machines (names must be).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Sends `request` to the daemon on `conf.socket`; errors become CNI errors.
fn call(conf: &NetConf, request: &Request) -> Result<serde_json::Value, CniError> {
    api::call(&conf.socket, request).map_err(|e| daemon_error(&conf.socket, e))
}

fn daemon_error(socket: &Path, e: ClientError) -> CniError {
    match e {
        ClientError::Connect { source, .. } => CniError::new(
            code::DAEMON_UNREACHABLE,
            format!("mvdp does not answer on {}", socket.display()),
            format!("{source} (is `mvdp run` running with this [control] socket?)"),
        ),
        ClientError::Protocol { reason, .. } => CniError::new(
            code::DAEMON_FAILED,
            format!("control socket {}: {reason}", socket.display()),
            "",
        ),
        ClientError::Refused(e) => refused(e),
    }
}

/// The daemon's refusal as a CNI error: a taken address is "address in use".
fn refused(e: ApiError) -> CniError {
    let key = e.key.clone().unwrap_or_default();
    let details = format!("mvdp: {} ({:?})", e.message, e.code);
    match e.code {
        ErrorCode::Invalid
            if (key.ends_with(".ip") || key.ends_with(".mac"))
                && e.message.contains("already used") =>
        {
            CniError::new(code::ADDRESS_IN_USE, "address in use", details)
        }
        ErrorCode::Invalid => CniError::new(
            code::INVALID_CONFIG,
            format!("mvdp refused the endpoint: {}", e.message),
            details,
        ),
        ErrorCode::Conflict => CniError::new(
            code::ENDPOINT_EXISTS,
            "an endpoint for this container and interface exists already",
            details,
        ),
        _ => CniError::new(code::DAEMON_FAILED, e.message.clone(), details),
    }
}

fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, CniError> {
    serde_json::from_value(v).map_err(|e| {
        CniError::new(
            code::DAEMON_FAILED,
            "unexpected answer from mvdp",
            e.to_string(),
        )
    })
}

/// The mvdp network `conf.master`, checked against `mode` and `vlan`.
fn network(conf: &NetConf) -> Result<NetworkInfo, CniError> {
    let networks: Vec<NetworkInfo> = decode(call(conf, &Request::NetworkList {})?)?;
    let Some(net) = networks.iter().find(|n| n.name == conf.master) else {
        let names: Vec<&str> = networks.iter().map(|n| n.name.as_str()).collect();
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!("master: mvdp has no network {:?}", conf.master),
            format!("key: master; mvdp's networks: {}", names.join(", ")),
        ));
    };
    if let Some(mode) = &conf.mode {
        if *mode != net.mode {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "mode: {mode:?} differs from mvdp network {:?}'s mode {:?}",
                    net.name, net.mode
                ),
                "key: mode",
            ));
        }
    }
    if let Some(vlan) = conf.vlan {
        let want = (vlan != 0).then_some(vlan);
        if want != net.vlan {
            let show = |v: Option<u16>| v.map_or("untagged".to_string(), |v| v.to_string());
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "vlan: {} differs from mvdp network {:?}'s vlan {}",
                    show(want),
                    net.name,
                    show(net.vlan)
                ),
                "key: vlan",
            ));
        }
    }
    Ok(net.clone())
}

fn find_endpoint(conf: &NetConf, name: &str) -> Result<Option<EndpointInfo>, CniError> {
    let list: Vec<EndpointInfo> = decode(call(conf, &Request::EndpointList {})?)?;
    Ok(list.into_iter().find(|e| e.name == name))
}

/// ADD: IPAM first (if configured), then the endpoint; an endpoint that
/// cannot be made releases the lease again.
fn add(env: &CniEnv, conf: &NetConf, stdin: &[u8]) -> Result<serde_json::Value, CniError> {
    // What the runtime asked for is checked before anything is changed.
    let mac = conf.mac(env)?;
    let static_ips = match conf.ipam_type {
        None => conf.static_ips(env)?,
        Some(_) => (None, None),
    };
    let net = network(conf)?;
    let name = endpoint_name(&conf.name, &env.container_id, &env.ifname);
    // Before IPAM: a second ADD of one attachment must not touch the
    // first's lease (host-local hands the same container its address again,
    // and the roll-back below would release it).
    if find_endpoint(conf, &name)?.is_some() {
        return Err(CniError::new(
            code::ENDPOINT_EXISTS,
            format!(
                "container {} already has {} on this network",
                env.container_id, env.ifname
            ),
            format!("endpoint {name}"),
        ));
    }
    let ((ip, ip6), dns) = match &conf.ipam_type {
        Some(ipam_type) => {
            let result = ipam::exec(env, ipam_type, Command::Add, stdin)?.ok_or_else(|| {
                CniError::new(
                    code::IPAM_FAILED,
                    format!("IPAM plugin {ipam_type} printed no result"),
                    "",
                )
            })?;
            let lease = ipam::lease(ipam_type, &result).inspect_err(|_| {
                let _ = ipam::exec(env, ipam_type, Command::Del, stdin);
            })?;
            ((Some(lease.ip), lease.ip6), lease.dns)
        }
        None => (static_ips, serde_json::Value::Null),
    };
    let release = || {
        if let Some(t) = &conf.ipam_type {
            let _ = ipam::exec(env, t, Command::Del, stdin);
        }
    };
    // An IPv6 address needs a dual-stack network to go in.
    if let (Some(ip6), None) = (ip6, &net.subnet6) {
        release();
        let from = match &conf.ipam_type {
            Some(t) => format!("IPAM plugin {t}"),
            None => "the runtime".to_string(),
        };
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!(
                "{from} gave IPv6 address {ip6}, but mvdp network {:?} has no subnet6",
                net.name
            ),
            "key: master; give the mvdp network a subnet6, or the IPAM config no IPv6 range",
        ));
    }
    let spec = EndpointSpec {
        name: name.clone(),
        network: conf.master.clone(),
        kind: Some(conf.kind.clone()),
        netns: None,
        netns_path: Some(env.netns.clone()),
        ifname: Some(env.ifname.clone()),
        ip: ip.map(|i| i.to_string()),
        ip6: ip6.map(|i| i.to_string()),
        mac: mac.map(|m| m.to_string()),
        ..EndpointSpec::default()
    };
    let info: EndpointInfo =
        match call(conf, &Request::EndpointAdd { endpoint: spec }).and_then(decode) {
            Ok(info) => info,
            Err(e) => {
                release();
                return Err(e);
            }
        };
    if let Some(mtu) = conf.mtu {
        let set = crate::control::netns::in_netns(Path::new(&env.netns), || {
            crate::control::netlink::set_link_mtu(&env.ifname, mtu)
        });
        let failure = match set {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(details) = failure {
            let _ = call(conf, &Request::EndpointDel { name: name.clone() });
            release();
            return Err(CniError::new(
                code::IO,
                format!("cannot set mtu {mtu} on {}", env.ifname),
                details,
            ));
        }
    }
    // The result says what mvdp configured in the container: the address
    // with the network's prefix and its gateway as the default route (an
    // IPAM plugin's own prefix, gateway and routes are not applied); DNS is
    // the runtime's to apply, passed on from the IPAM plugin.
    let ip: Ipv4Addr = info.ip.parse().map_err(|_| {
        CniError::new(
            code::DAEMON_FAILED,
            "mvdp answered a bad address",
            info.ip.clone(),
        )
    })?;
    let mut result = serde_json::json!({
        "cniVersion": conf.cni_version,
        "interfaces": [{ "name": env.ifname, "mac": info.mac, "sandbox": env.netns }],
        "ips": [{ "address": format!("{ip}/{}", net.prefix_len()), "gateway": net.gateway, "interface": 0 }],
        "routes": [{ "dst": "0.0.0.0/0", "gw": net.gateway }],
    });
    // On a dual-stack network, the IPv6 address mvdp gave it (asked for,
    // or the next free one) and the IPv6 default route.
    let ip6 = info.ip6.as_deref().and_then(|a| a.parse::<Ipv6Addr>().ok());
    if let (Some(ip6), Some(subnet6)) = (ip6, &net.subnet6) {
        let len6 = subnet6.split_once('/').map_or("128", |(_, l)| l);
        result["ips"]
            .as_array_mut()
            .expect("an array")
            .push(serde_json::json!({
                "address": format!("{ip6}/{len6}"), "gateway": net.gateway6, "interface": 0
            }));
        result["routes"]
            .as_array_mut()
            .expect("an array")
            .push(serde_json::json!({
                "dst": "::/0", "gw": net.gateway6
            }));
    }
    if !dns.is_null() {
        result["dns"] = dns;
    }
    Ok(in_version(result, &conf.cni_version))
}

/// A 1.0 result written for `version`: before 1.0.0 each IP says its family.
fn in_version(mut result: serde_json::Value, version: &str) -> serde_json::Value {
    if version.starts_with("0.") {
        if let Some(ips) = result.get_mut("ips").and_then(|v| v.as_array_mut()) {
            for ip in ips {
                let v6 = ip["address"].as_str().is_some_and(|a| a.contains(':'));
                ip["version"] = if v6 { "6" } else { "4" }.into();
            }
        }
    }
    result
}

/// The previous result's first address of one family (IPv6 if `v6`),
/// without its prefix length.
fn prev_address(prev: &serde_json::Value, v6: bool) -> Option<&str> {
    prev.get("ips")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("address")?.as_str()?.split('/').next())
        .find(|a| a.contains(':') == v6)
}

/// DEL: the endpoint, then the lease. Something already gone is success; a
/// daemon that does not answer is success only if the container's
/// namespace is gone too (mvdp drops such endpoints itself), else "try
/// again later".
fn del(env: &CniEnv, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let name = endpoint_name(&conf.name, &env.container_id, &env.ifname);
    match api::call(&conf.socket, &Request::EndpointDel { name }) {
        Ok(_) => {}
        Err(ClientError::Refused(e)) if e.code == ErrorCode::NotFound => {}
        Err(ClientError::Connect { source, .. })
            if !env.netns.is_empty() && Path::new(&env.netns).exists() =>
        {
            return Err(CniError::new(
                code::TRY_AGAIN_LATER,
                format!(
                    "mvdp does not answer on {}; the endpoint may still exist",
                    conf.socket.display()
                ),
                source.to_string(),
            ));
        }
        Err(ClientError::Connect { .. }) => {}
        Err(e) => return Err(daemon_error(&conf.socket, e)),
    }
    if let Some(t) = &conf.ipam_type {
        ipam::exec(env, t, Command::Del, stdin)?;
    }
    Ok(())
}

/// CHECK: the endpoint exists with the previous result's address and MAC,
/// and its interface is in the container's namespace with that MAC; then
/// the IPAM plugin's own CHECK.
fn check(env: &CniEnv, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    if conf.cni_version.starts_with("0.3.") {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("CHECK is not defined for cniVersion {}", conf.cni_version),
            "CHECK needs 0.4.0 or later",
        ));
    }
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "CHECK needs prevResult",
            "key: prevResult",
        )
    })?;
    network(conf)?;
    let name = endpoint_name(&conf.name, &env.container_id, &env.ifname);
    let ep = find_endpoint(conf, &name)?.ok_or_else(|| {
        CniError::new(
            code::UNKNOWN_CONTAINER,
            format!(
                "no mvdp endpoint for container {} interface {}",
                env.container_id, env.ifname
            ),
            format!("endpoint {name}"),
        )
    })?;
    let mismatch =
        |what: String| CniError::new(code::CHECK_MISMATCH, what, format!("endpoint {name}"));
    let prev_ip = prev_address(prev, false);
    if prev_ip.is_some_and(|a| a != ep.ip) {
        return Err(mismatch(format!(
            "address {} differs from the previous result's {}",
            ep.ip,
            prev_ip.unwrap_or_default()
        )));
    }
    if let Some(prev6) = prev_address(prev, true) {
        let now6 = ep.ip6.as_deref().unwrap_or("none");
        if prev6.parse::<Ipv6Addr>().ok() != now6.parse::<Ipv6Addr>().ok() {
            return Err(mismatch(format!(
                "IPv6 address {now6} differs from the previous result's {prev6}"
            )));
        }
    }
    let prev_mac = prev
        .get("interfaces")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .find(|i| i.get("name").and_then(|n| n.as_str()) == Some(env.ifname.as_str()))
        .and_then(|i| i.get("mac")?.as_str());
    if prev_mac.is_some_and(|m| !m.eq_ignore_ascii_case(&ep.mac)) {
        return Err(mismatch(format!(
            "MAC {} differs from the previous result's {}",
            ep.mac,
            prev_mac.unwrap_or_default()
        )));
    }
    let seen = crate::control::netns::in_netns(Path::new(&env.netns), || {
        crate::control::netlink::link_mac(&env.ifname)
    })
    .map_err(|e| {
        CniError::new(
            code::IO,
            "cannot enter the container's namespace",
            e.to_string(),
        )
    })?
    .map_err(|e| {
        CniError::new(
            code::IO,
            "cannot read the container's interface",
            e.to_string(),
        )
    })?;
    match seen {
        None => {
            return Err(mismatch(format!(
                "interface {} is not in {}",
                env.ifname, env.netns
            )))
        }
        Some(mac) if !mac.to_string().eq_ignore_ascii_case(&ep.mac) => {
            return Err(mismatch(format!(
                "interface {} in {} has MAC {mac}, mvdp's endpoint {}",
                env.ifname, env.netns, ep.mac
            )))
        }
        Some(_) => {}
    }
    if let Some(t) = &conf.ipam_type {
        ipam::exec(env, t, Command::Check, stdin)?;
    }
    Ok(())
}

/// GC: removes this CNI network's endpoints that no valid attachment
/// names, then lets the IPAM plugin collect its own if it speaks GC.
fn gc(env: &CniEnv, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let valid = conf.valid_attachments.as_ref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "GC needs cni.dev/valid-attachments",
            "key: cni.dev/valid-attachments",
        )
    })?;
    let keep: Vec<String> = valid
        .iter()
        .map(|a| endpoint_name(&conf.name, &a.container_id, &a.ifname))
        .collect();
    let prefix = network_prefix(&conf.name);
    let list: Vec<EndpointInfo> = decode(call(conf, &Request::EndpointList {})?)?;
    for ep in list {
        if ep.name.starts_with(&prefix) && ep.network == conf.master && !keep.contains(&ep.name) {
            match api::call(&conf.socket, &Request::EndpointDel { name: ep.name }) {
                Ok(_) => {}
                Err(ClientError::Refused(e)) if e.code == ErrorCode::NotFound => {}
                Err(e) => return Err(daemon_error(&conf.socket, e)),
            }
        }
    }
    if let Some(t) = &conf.ipam_type {
        let speaks_gc = ipam::exec(env, t, Command::Version, br#"{"cniVersion":"1.1.0"}"#)?
            .and_then(|v| {
                v.get("supportedVersions")?
                    .as_array()
                    .map(|a| a.iter().any(|s| s.as_str() == Some("1.1.0")))
            })
            .unwrap_or(false);
        if speaks_gc {
            ipam::exec(env, t, Command::Gc, stdin)?;
        }
    }
    Ok(())
}

/// STATUS: ready when the daemon answers.
fn status(conf: &NetConf) -> Result<(), CniError> {
    api::call(&conf.socket, &Request::Status {})
        .map(|_| ())
        .map_err(|e| {
            CniError::new(
                code::NOT_AVAILABLE,
                format!("mvdp does not answer on {}", conf.socket.display()),
                e.to_string(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_are_stable_distinct_and_valid() {
        let a = endpoint_name("lan", "0123456789abcdef0123", "eth0");
        assert_eq!(a, endpoint_name("lan", "0123456789abcdef0123", "eth0"));
        assert!(a.starts_with(&network_prefix("lan")), "{a}");
        assert!(a.contains("-0123456789ab-"), "{a}");
        assert_ne!(a, endpoint_name("lan", "0123456789abcdef0123", "eth1"));
        assert_ne!(a, endpoint_name("lan2", "0123456789abcdef0123", "eth0"));
        assert_ne!(a, endpoint_name("lan", "0123456789abcdef0124", "eth0"));
        let long = endpoint_name(&"n".repeat(200), &"c".repeat(200), "eth-fifteen-ch");
        assert!(long.len() <= 64, "{long}");
        assert!(long
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'));
        // Pinned: a change would orphan every endpoint made before it.
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn old_results_name_the_address_family() {
        let r = serde_json::json!({"ips":[{"address":"10.0.0.2/24"},{"address":"fd00::2/64"}]});
        assert_eq!(in_version(r.clone(), "0.4.0")["ips"][0]["version"], "4");
        assert_eq!(in_version(r.clone(), "0.4.0")["ips"][1]["version"], "6");
        assert!(in_version(r, "1.0.0")["ips"][0].get("version").is_none());
    }

    #[test]
    fn taken_addresses_are_address_in_use() {
        let e = refused(ApiError {
            code: ErrorCode::Invalid,
            key: Some("endpoint[2].ip".into()),
            message: "endpoint[2].ip: 10.0.0.5 is already used by c1".into(),
        });
        assert_eq!(e.code, code::ADDRESS_IN_USE);
        let e = refused(ApiError::new(ErrorCode::Failed, "netlink said no"));
        assert_eq!(e.code, code::DAEMON_FAILED);
    }
}
