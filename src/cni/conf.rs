//! What a CNI runtime hands the plugin: the environment (`CNI_*`) and the
//! network configuration on stdin, checked once here.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde::Deserialize;

use super::error::{code, CniError};
use crate::wire::MacAddr;

/// The versions mvdp-cni speaks; results are written in the config's.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The control socket when the config does not name one.
pub const DEFAULT_SOCKET: &str = "/run/mvdp/mvdp.sock";

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach the container.
    Add,
    /// Detach it (idempotent).
    Del,
    /// Verify an attachment.
    Check,
    /// Report the supported versions.
    Version,
    /// Remove attachments the runtime no longer knows (spec 1.1).
    Gc,
    /// Whether the plugin can serve ADD now (spec 1.1).
    Status,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            _ => return None,
        })
    }

    /// The name the runtime and IPAM plugins use.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Gc => "GC",
            Command::Status => "STATUS",
        }
    }
}

/// The `CNI_*` environment, validated for the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (ADD, DEL, CHECK).
    pub container_id: String,
    /// `CNI_NETNS`: required for ADD and CHECK, may be empty for DEL.
    pub netns: String,
    /// `CNI_IFNAME` (ADD, DEL, CHECK).
    pub ifname: String,
    /// `CNI_ARGS`, `K=V;K=V`.
    pub args: BTreeMap<String, String>,
    /// `CNI_PATH`, where IPAM plugins are looked for.
    pub path: Vec<PathBuf>,
}

impl CniEnv {
    /// Reads and checks the variables through `var` (`std::env::var` in the binary).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<CniEnv, CniError> {
        let raw = var("CNI_COMMAND").unwrap_or_default();
        let command = Command::parse(&raw).ok_or_else(|| {
            CniError::new(
                code::INVALID_ENV,
                if raw.is_empty() {
                    "CNI_COMMAND is not set".to_string()
                } else {
                    format!("CNI_COMMAND {raw:?} is not a CNI command")
                },
                "expected ADD, DEL, CHECK, VERSION, GC or STATUS",
            )
        })?;
        let needs_container = matches!(command, Command::Add | Command::Del | Command::Check);
        let needs_netns = matches!(command, Command::Add | Command::Check);
        let mut missing = Vec::new();
        let mut get = |name: &'static str, required: bool| {
            let v = var(name).unwrap_or_default();
            if required && v.is_empty() {
                missing.push(name);
            }
            v
        };
        let container_id = get("CNI_CONTAINERID", needs_container);
        let netns = get("CNI_NETNS", needs_netns);
        let ifname = get("CNI_IFNAME", needs_container);
        if !missing.is_empty() {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!(
                    "required environment variables missing: {}",
                    missing.join(", ")
                ),
                format!("CNI_COMMAND={}", command.as_str()),
            ));
        }
        if needs_container {
            check_container_id(&container_id)?;
            check_ifname(&ifname)?;
        }
        let args = parse_args(&var("CNI_ARGS").unwrap_or_default())?;
        let path = var("CNI_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        Ok(CniEnv {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
        })
    }

    /// A `CNI_ARGS` value, e.g. `IP` or `MAC`.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args.get(key).map(String::as_str)
    }
}

/// The spec's container id rule: alphanumerics first, then also `_ . -`.
fn check_container_id(id: &str) -> Result<(), CniError> {
    let ok = id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            code::INVALID_ENV,
            "CNI_CONTAINERID has invalid characters",
            id,
        ))
    }
}

/// The spec's interface name rule (what the kernel accepts).
fn check_ifname(name: &str) -> Result<(), CniError> {
    let bad = name.len() > 15
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace());
    if bad {
        Err(CniError::new(
            code::INVALID_ENV,
            "CNI_IFNAME is not a valid interface name",
            name,
        ))
    } else {
        Ok(())
    }
}

/// `CNI_ARGS`: `K=V` pairs separated by `;`.
fn parse_args(text: &str) -> Result<BTreeMap<String, String>, CniError> {
    let mut out = BTreeMap::new();
    for pair in text.split(';').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(CniError::new(
                code::INVALID_ENV,
                "CNI_ARGS is not a list of KEY=VALUE pairs",
                format!("{pair:?} has no '='"),
            ));
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// `runtimeConfig`: what the runtime fills in for the capabilities the
/// config declares (`mac`, `ips`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuntimeConfig {
    /// The `mac` capability.
    #[serde(default)]
    pub mac: Option<String>,
    /// The `ips` capability, `a.b.c.d/nn` each.
    #[serde(default)]
    pub ips: Vec<String>,
}

/// One entry of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, Deserialize)]
pub struct Attachment {
    /// The container.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Its interface.
    pub ifname: String,
}

/// The network configuration as the runtime sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    cni_version: String,
    name: String,
    #[serde(rename = "type")]
    plugin_type: String,
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    vlan: Option<u16>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    ipam: Option<serde_json::Value>,
    #[serde(default)]
    socket: Option<PathBuf>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    runtime_config: RuntimeConfig,
    #[serde(default)]
    prev_result: Option<serde_json::Value>,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
}

/// The network configuration, validated.
#[derive(Debug, Clone)]
pub struct NetConf {
    /// `cniVersion`: results and errors are written in it.
    pub cni_version: String,
    /// The CNI network's `name`.
    pub name: String,
    /// `master`: the mvdp network.
    pub master: String,
    /// `mode`, if given: must equal the mvdp network's.
    pub mode: Option<String>,
    /// `vlan`, if given (0 = untagged): must equal the mvdp network's.
    pub vlan: Option<u16>,
    /// `mtu` of the container's interface.
    pub mtu: Option<u32>,
    /// `ipam.type`, if an IPAM plugin is configured.
    pub ipam_type: Option<String>,
    /// `socket`: the daemon's control socket.
    pub socket: PathBuf,
    /// `kind`: "veth" or "tap".
    pub kind: String,
    /// `runtimeConfig`.
    pub runtime_config: RuntimeConfig,
    /// `prevResult` (CHECK, DEL).
    pub prev_result: Option<serde_json::Value>,
    /// `cni.dev/valid-attachments` (GC).
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The macvlan modes, as mvdp's networks have them.
const MODES: [&str; 5] = ["bridge", "private", "vepa", "passthru", "source"];

fn invalid(key: &str, msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg, format!("key: {key}"))
}

impl NetConf {
    /// Decodes stdin: not JSON is a decode error (6), a wrong or missing
    /// key an invalid config (7), an unknown `cniVersion` an incompatible
    /// version (1).
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let value: serde_json::Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                code::DECODE,
                "the network configuration on stdin is not JSON",
                e.to_string(),
            )
        })?;
        let raw: RawConf = serde_json::from_value(value).map_err(|e| {
            CniError::new(
                code::INVALID_CONFIG,
                "invalid network configuration",
                e.to_string(),
            )
        })?;
        if !SUPPORTED_VERSIONS.contains(&raw.cni_version.as_str()) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("incompatible CNI version {:?}", raw.cni_version),
                format!("mvdp-cni supports {}", SUPPORTED_VERSIONS.join(", ")),
            ));
        }
        let name_ok = raw
            .name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && raw
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
        if !name_ok {
            return Err(invalid(
                "name",
                format!("name {:?}: use letters, digits, '_', '.', '-'", raw.name),
            ));
        }
        let master = raw
            .master
            .filter(|m| !m.is_empty())
            .ok_or_else(|| invalid("master", "master (the mvdp network) is required"))?;
        if let Some(mode) = &raw.mode {
            if !MODES.contains(&mode.as_str()) {
                return Err(invalid(
                    "mode",
                    format!("mode {mode:?}: expected one of {}", MODES.join(", ")),
                ));
            }
        }
        if let Some(vlan) = raw.vlan {
            if vlan > 4094 {
                return Err(invalid("vlan", format!("vlan {vlan}: expected 0..=4094")));
            }
        }
        if let Some(mtu) = raw.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(invalid("mtu", format!("mtu {mtu}: expected 68..=65535")));
            }
        }
        let kind = raw.kind.unwrap_or_else(|| "veth".into());
        if kind != "veth" && kind != "tap" {
            return Err(invalid(
                "kind",
                format!("kind {kind:?}: expected veth or tap"),
            ));
        }
        let ipam_type = match raw.ipam {
            None => None,
            Some(serde_json::Value::Object(m)) if m.is_empty() => None,
            Some(v) => Some(
                v.get("type")
                    .and_then(|t| t.as_str())
                    .filter(|t| !t.is_empty() && !t.contains('/'))
                    .ok_or_else(|| invalid("ipam.type", "ipam needs a plugin name in \"type\""))?
                    .to_string(),
            ),
        };
        let _ = raw.plugin_type;
        Ok(NetConf {
            cni_version: raw.cni_version,
            name: raw.name,
            master,
            mode: raw.mode,
            vlan: raw.vlan,
            mtu: raw.mtu,
            ipam_type,
            socket: raw.socket.unwrap_or_else(|| DEFAULT_SOCKET.into()),
            kind,
            runtime_config: raw.runtime_config,
            prev_result: raw.prev_result,
            valid_attachments: raw.valid_attachments,
        })
    }

    /// The MAC asked for: `CNI_ARGS` `MAC=`, else `runtimeConfig.mac`.
    pub fn mac(&self, env: &CniEnv) -> Result<Option<MacAddr>, CniError> {
        let (key, text) = match (env.arg("MAC"), &self.runtime_config.mac) {
            (Some(m), _) => ("CNI_ARGS MAC", m),
            (None, Some(m)) => ("runtimeConfig.mac", m.as_str()),
            (None, None) => return Ok(None),
        };
        text.parse::<MacAddr>()
            .map(Some)
            .map_err(|_| invalid(key, format!("{key} {text:?} is not a MAC address")))
    }

    /// The addresses asked for when no IPAM plugin is configured: `CNI_ARGS`
    /// `IP=` (comma-separated), else `runtimeConfig.ips`; at most one IPv4
    /// and one IPv6 address (a prefix length after either is ignored: the
    /// network's subnets give them).
    pub fn static_ips(
        &self,
        env: &CniEnv,
    ) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>), CniError> {
        let (key, texts): (&str, Vec<&str>) = match env.arg("IP") {
            Some(ip) => ("CNI_ARGS IP", ip.split(',').map(str::trim).collect()),
            None => (
                "runtimeConfig.ips",
                self.runtime_config.ips.iter().map(String::as_str).collect(),
            ),
        };
        let (mut v4, mut v6) = (None, None);
        for text in &texts {
            let addr = text.split('/').next().unwrap_or_default();
            let parsed = addr.parse::<IpAddr>().map_err(|_| {
                invalid(
                    key,
                    format!("{key} {text:?} is not an IPv4 or IPv6 address"),
                )
            })?;
            let taken = match parsed {
                IpAddr::V4(a) => v4.replace(a).is_some(),
                IpAddr::V6(a) => v6.replace(a).is_some(),
            };
            if taken {
                return Err(CniError::new(
                    code::UNSUPPORTED_FIELD,
                    format!("{key}: mvdp gives an endpoint one address per family"),
                    texts.join(","),
                ));
            }
        }
        Ok((v4, v6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        CniEnv::from_vars(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn env_is_checked_per_command() {
        let e = env(&[]).unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(e.msg.contains("CNI_COMMAND"), "{e}");
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "abc")]).unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(e.msg.contains("CNI_NETNS, CNI_IFNAME"), "{e}");
        // DEL needs no namespace.
        let ok = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;IP=10.0.0.5;MAC=02:00:00:00:00:01",
            ),
            ("CNI_PATH", "/a:/b"),
        ])
        .unwrap();
        assert_eq!(ok.arg("IP"), Some("10.0.0.5"));
        assert_eq!(ok.path, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(env(&[("CNI_COMMAND", "VERSION")]).is_ok());
        for (k, v) in [
            ("CNI_CONTAINERID", "-abc"),
            ("CNI_IFNAME", "a/b"),
            ("CNI_IFNAME", "sixteen-chars-xx"),
            ("CNI_ARGS", "IP"),
        ] {
            let mut vars = vec![
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "abc"),
                ("CNI_IFNAME", "eth0"),
            ];
            vars.retain(|(n, _)| *n != k);
            vars.push((k, v));
            assert_eq!(env(&vars).unwrap_err().code, code::INVALID_ENV, "{k}={v}");
        }
    }

    #[test]
    fn config_errors_name_the_key() {
        let base = r#"{"cniVersion":"1.0.0","name":"n","type":"mvdp-cni","master":"lan"}"#;
        let c = NetConf::parse(base.as_bytes()).unwrap();
        assert_eq!(
            (c.kind.as_str(), c.socket.to_str()),
            ("veth", Some(DEFAULT_SOCKET))
        );
        assert_eq!(NetConf::parse(b"{not json").unwrap_err().code, code::DECODE);
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"9.9.9","name":"n","type":"t","master":"m"}"#)
                .unwrap_err()
                .code,
            code::INCOMPATIBLE_VERSION
        );
        for (bad, key) in [
            (r#""master":"""#, "master"),
            (r#""mode":"weird""#, "mode"),
            (r#""mtu":20"#, "mtu"),
            (r#""kind":"macvtap""#, "kind"),
            (r#""vlan":5000"#, "vlan"),
            (r#""ipam":{"subnet":"x"}"#, "ipam.type"),
        ] {
            let text = base.replace(r#""master":"lan""#, &format!(r#""master":"lan",{bad}"#));
            let text = if key == "master" {
                base.replace(r#""master":"lan""#, bad)
            } else {
                text
            };
            let e = NetConf::parse(text.as_bytes()).unwrap_err();
            assert_eq!(e.code, code::INVALID_CONFIG, "{text}");
            assert!(e.details.contains(key) || e.msg.contains(key), "{e}");
        }
    }

    #[test]
    fn static_addresses_one_per_family() {
        let conf = |ips: &str| {
            let text = format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"t","master":"lan",
                    "runtimeConfig":{{"ips":[{ips}]}}}}"#
            );
            NetConf::parse(text.as_bytes()).unwrap()
        };
        let add = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_NETNS", "/proc/self/ns/net"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        let v4: Ipv4Addr = "10.0.0.5".parse().unwrap();
        let v6: Ipv6Addr = "fd00::5".parse().unwrap();
        assert_eq!(conf("").static_ips(&add).unwrap(), (None, None));
        assert_eq!(
            conf(r#""10.0.0.5/24","fd00::5/64""#)
                .static_ips(&add)
                .unwrap(),
            (Some(v4), Some(v6))
        );
        assert_eq!(
            conf(r#""fd00::5/64""#).static_ips(&add).unwrap(),
            (None, Some(v6))
        );
        let e = conf(r#""fd00::5/64","fd00::6/64""#)
            .static_ips(&add)
            .unwrap_err();
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        assert!(e.msg.contains("one address per family"), "{e}");
        let e = conf(r#""not-an-ip""#).static_ips(&add).unwrap_err();
        assert!(e.msg.contains("runtimeConfig.ips"), "{e}");
        // CNI_ARGS IP= wins, comma-separated.
        let args = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_NETNS", "/proc/self/ns/net"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;IP=10.0.0.7,fd00::7"),
        ])
        .unwrap();
        assert_eq!(
            conf(r#""10.0.0.5/24""#).static_ips(&args).unwrap(),
            (
                Some("10.0.0.7".parse().unwrap()),
                Some("fd00::7".parse().unwrap())
            )
        );
    }
}
