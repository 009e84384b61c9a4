//! Docker's remote network-driver calls, each turned into control-socket
//! requests to the node's daemon.
//!
//! | Docker call      | mvdp                                                  |
//! |------------------|-------------------------------------------------------|
//! | `CreateNetwork`  | `network_add` (subnet, gateway, aux addresses, `-o`)   |
//! | `CreateEndpoint` | remembered: Docker's IPAM chose the address           |
//! | `Join`           | `endpoint_add`, handed off: Docker moves it in        |
//! | `Leave`          | `endpoint_del`                                         |
//! | `DeleteEndpoint` | forgotten (and `endpoint_del` if `Leave` never came)  |
//! | `DeleteNetwork`  | `network_del`                                          |
//!
//! As with Docker's own macvlan driver, the driver makes the interface and
//! Docker moves it into the container: `Join` answers with the container
//! end of the endpoint's veth (`SrcName`, made by mvdp with the endpoint's
//! MAC, TX checksum offload as the tier needs) and the gateway; Docker names
//! it `eth<N>`, gives it its address and sets the default route. The
//! sandbox's namespace does not exist yet when `Join` is called.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::{EndpointSpec, NetworkSpec};
use crate::control::api::{ApiError, ClientError, ErrorCode, Request};
use crate::wire::MacAddr;

use super::store::{EndpointEntry, NetworkEntry, Store};

/// Where Docker puts the `-o key=value` options of `docker network create`.
const GENERIC: &str = "com.docker.network.generic";
/// Docker's `--ipv6` flag.
const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
/// Docker's `--internal` flag.
const INTERNAL: &str = "com.docker.network.internal";
/// The `-o` options mvdp understands.
const OPTIONS: &[&str] = &[
    "parent",
    "mode",
    "macvlan_mode",
    "vlan",
    "host_shim",
    "kind",
    "anti_spoof",
    "multicast",
];

/// The way to the daemon (a trait so the driver can be tested without one).
pub trait Control {
    /// Sends one request and returns its result.
    fn call(&self, request: &Request) -> Result<Value, ClientError>;
}

/// The daemon's control socket.
pub struct Socket(pub PathBuf);

impl Control for Socket {
    fn call(&self, request: &Request) -> Result<Value, ClientError> {
        crate::control::api::call(&self.0, request)
    }
}

/// The driver: Docker's calls in, control requests out, state in `store`.
pub struct Driver<C> {
    control: C,
    store: Store,
    /// Endpoints whose sandbox's namespace file [`Driver::reap`] has seen.
    seen: std::collections::HashSet<String>,
}

/// How long after `Join` a sandbox never seen counts as gone.
const SANDBOX_GRACE_SECS: u64 = 60;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

type Answer = Result<Value, String>;

#[derive(Debug, Deserialize)]
struct IpamData {
    #[serde(rename = "Pool", default)]
    pool: String,
    #[serde(rename = "Gateway", default)]
    gateway: Option<String>,
    #[serde(rename = "AuxAddresses", default)]
    aux_addresses: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(rename = "Options", default)]
    options: Option<BTreeMap<String, Value>>,
    #[serde(rename = "IPv4Data", default)]
    ipv4: Option<Vec<IpamData>>,
    #[serde(rename = "IPv6Data", default)]
    ipv6: Option<Vec<IpamData>>,
}

#[derive(Debug, Deserialize)]
struct NetworkRef {
    #[serde(rename = "NetworkID")]
    network_id: String,
}

#[derive(Debug, Default, Deserialize)]
struct Interface {
    #[serde(rename = "Address", default)]
    address: String,
    #[serde(rename = "AddressIPv6", default)]
    address_v6: String,
    #[serde(rename = "MacAddress", default)]
    mac: String,
}

#[derive(Debug, Deserialize)]
struct CreateEndpoint {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    #[serde(rename = "Interface", default)]
    interface: Option<Interface>,
}

#[derive(Debug, Deserialize)]
struct EndpointRef {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
}

#[derive(Debug, Deserialize)]
struct Join {
    #[serde(rename = "NetworkID")]
    network_id: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    #[serde(rename = "SandboxKey")]
    sandbox_key: String,
}

fn parse<'a, T: Deserialize<'a>>(call: &str, body: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("mvdp: malformed {call} request: {e}"))
}

/// mvdp's name for a Docker object: a prefix and the id's first 12 digits.
fn short_name(prefix: &str, id: &str) -> Result<String, String> {
    if id.len() < 12 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("mvdp: {id:?} is not a Docker id"));
    }
    Ok(format!("{prefix}{}", &id[..12]))
}

/// `192.168.1.1/24` → `192.168.1.1`.
fn strip_prefix(addr: &str) -> &str {
    addr.split_once('/').map_or(addr, |(a, _)| a)
}

/// The mvdp error as Docker shows it, with the `-o` option or flag in place
/// of mvdp's config key where there is one.
fn refused(what: &str, e: &ClientError) -> String {
    let ClientError::Refused(api) = e else {
        return format!("mvdp: {what}: {e}");
    };
    let field = api
        .key
        .as_deref()
        .and_then(|k| k.rsplit('.').next())
        .unwrap_or("");
    let flag = match field {
        "subnet" => "--subnet",
        "gateway" => "--gateway",
        "ip_range" => "--ip-range",
        "aux_addresses" => "--aux-address",
        "ip" => "--ip",
        "mac" => "--mac-address",
        "mode" => "-o mode",
        "vlan" => "-o vlan",
        "host_shim" => "-o host_shim",
        "anti_spoof" => "-o anti_spoof",
        "multicast" => "-o multicast",
        "kind" => "-o kind",
        _ => "",
    };
    if flag.is_empty() {
        format!("mvdp: {what}: {}", api.message)
    } else {
        format!("mvdp: {what}: {flag}: {}", api.message)
    }
}

fn is_code(e: &ClientError, code: ErrorCode) -> bool {
    matches!(e, ClientError::Refused(ApiError { code: c, .. }) if *c == code)
}

impl<C: Control> Driver<C> {
    /// A driver that talks to the daemon through `control` and remembers in `store`.
    pub fn new(control: C, store: Store) -> Driver<C> {
        Driver {
            control,
            store,
            seen: Default::default(),
        }
    }

    /// The state (tests and logs).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Answers one call (`/NetworkDriver.Join`, ...): the JSON body Docker
    /// expects, with `Err` set when it failed.
    pub fn handle(&mut self, path: &str, body: &[u8]) -> Value {
        let answer = match path {
            "/Plugin.Activate" => Ok(json!({ "Implements": ["NetworkDriver"] })),
            "/NetworkDriver.GetCapabilities" => {
                Ok(json!({ "Scope": "local", "ConnectivityScope": "local" }))
            }
            "/NetworkDriver.CreateNetwork" => self.create_network(body),
            "/NetworkDriver.DeleteNetwork" => self.delete_network(body),
            "/NetworkDriver.CreateEndpoint" => self.create_endpoint(body),
            "/NetworkDriver.DeleteEndpoint" => self.delete_endpoint(body),
            "/NetworkDriver.EndpointOperInfo" => Ok(json!({ "Value": {} })),
            "/NetworkDriver.Join" => self.join(body),
            "/NetworkDriver.Leave" => self.leave(body),
            "/NetworkDriver.DiscoverNew"
            | "/NetworkDriver.DiscoverDelete"
            | "/NetworkDriver.ProgramExternalConnectivity"
            | "/NetworkDriver.RevokeExternalConnectivity"
            | "/NetworkDriver.AllocateNetwork"
            | "/NetworkDriver.FreeNetwork" => Ok(json!({})),
            other => Err(format!("mvdp: {other} is not a call this driver knows")),
        };
        match answer {
            Ok(v) => v,
            Err(e) => {
                log::warn!("{path}: {e}");
                json!({ "Err": e })
            }
        }
    }

    fn save(&self) -> Result<(), String> {
        self.store
            .save()
            .map_err(|e| format!("mvdp: cannot write the plugin's state: {e}"))
    }

    fn create_network(&mut self, body: &[u8]) -> Answer {
        let req: CreateNetwork = parse("CreateNetwork", body)?;
        let name = short_name("dk", &req.network_id)?;
        let options = req.options.unwrap_or_default();
        let ipv6 = req.ipv6.unwrap_or_default();
        let ipam6 = match ipv6.as_slice() {
            [] if options.get(ENABLE_IPV6).and_then(Value::as_bool) == Some(true) => {
                return Err(
                    "mvdp: --ipv6 needs an IPv6 --subnet (mvdp has no default IPv6 pool)".into(),
                )
            }
            [] => None,
            [one] => Some(one),
            more => {
                return Err(format!(
                    "mvdp: a network has one IPv6 subnet; Docker gave {}",
                    more.len()
                ))
            }
        };
        if options.get(INTERNAL).and_then(Value::as_bool) == Some(true) {
            return Err(
                "mvdp: --internal is not supported: an mvdp network is the parent's LAN".into(),
            );
        }
        let generic: BTreeMap<String, String> = match options.get(GENERIC) {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect(),
            Some(other) => return Err(format!("mvdp: {GENERIC} is not an object: {other}")),
        };
        let unknown: Vec<&str> = generic
            .keys()
            .map(String::as_str)
            .filter(|k| !OPTIONS.contains(k))
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "mvdp: unsupported option{} {}: the options are {}",
                if unknown.len() > 1 { "s" } else { "" },
                unknown
                    .iter()
                    .map(|k| format!("-o {k}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                OPTIONS.join(", ")
            ));
        }
        if generic.contains_key("mode") && generic.contains_key("macvlan_mode") {
            return Err("mvdp: give -o mode or -o macvlan_mode, not both".into());
        }
        let mut vlan = generic.get("vlan").cloned();
        if let Some(parent) = generic.get("parent") {
            let status = self
                .control
                .call(&Request::Status {})
                .map_err(|e| format!("mvdp: cannot ask the daemon for its parent: {e}"))?;
            let ours = status.get("parent").and_then(Value::as_str).unwrap_or("");
            // `eth0.50` means VLAN 50 on eth0, as with Docker's macvlan
            // driver, unless the parent itself is called that.
            let (base, tag) = match parent.rsplit_once('.') {
                _ if parent == ours => (parent.as_str(), None),
                Some((base, tag)) if tag.parse::<u16>().is_ok() => (base, Some(tag)),
                _ => (parent.as_str(), None),
            };
            if base != ours {
                return Err(format!(
                    "mvdp: -o parent={parent}: this mvdp serves parent {ours:?}; one mvdp serves one parent"
                ));
            }
            if let Some(tag) = tag {
                if vlan.as_deref().is_some_and(|v| v != tag) {
                    return Err(format!(
                        "mvdp: -o parent={parent} says VLAN {tag} but -o vlan={}",
                        vlan.unwrap_or_default()
                    ));
                }
                vlan = Some(tag.to_string());
            }
        }
        let vlan = match vlan {
            None => None,
            Some(v) => Some(
                v.parse::<i64>()
                    .map_err(|_| format!("mvdp: -o vlan={v}: not a number"))?,
            ),
        };
        // Docker moves the interface into the container: a veth end (a TAP
        // lives only as long as mvdp's descriptor).
        let kind = generic
            .get("kind")
            .cloned()
            .unwrap_or_else(|| "veth".into());
        if kind != "veth" {
            return Err(format!(
                "mvdp: -o kind={kind}: Docker containers get veth endpoints"
            ));
        }
        let ipv4 = req.ipv4.unwrap_or_default();
        let [ipam] = ipv4.as_slice() else {
            return Err(format!(
                "mvdp: a network has one IPv4 subnet; Docker gave {}",
                ipv4.len()
            ));
        };
        let gateway = ipam
            .gateway
            .as_deref()
            .map(strip_prefix)
            .map(str::to_string);
        let gateway6 = ipam6
            .and_then(|i| i.gateway.as_deref())
            .map(strip_prefix)
            .map(str::to_string);
        let mut aux_addresses: Vec<String> = Vec::new();
        for i in [Some(ipam), ipam6].into_iter().flatten() {
            let aux = i.aux_addresses.iter().flatten();
            aux_addresses.extend(aux.map(|(_, a)| strip_prefix(a).to_string()));
        }
        let spec = NetworkSpec {
            name: name.clone(),
            mode: generic
                .get("mode")
                .or_else(|| generic.get("macvlan_mode"))
                .cloned(),
            vlan,
            subnet: ipam.pool.clone(),
            gateway: gateway.clone(),
            ip_range: None,
            aux_addresses,
            host_shim: generic.get("host_shim").cloned(),
            subnet6: ipam6.map(|i| i.pool.clone()),
            gateway6: gateway6.clone(),
            ip_range6: None,
            host_shim6: None,
            anti_spoof: generic.get("anti_spoof").cloned(),
            // Docker hands its endpoints over (handoff), which DHCP cannot serve.
            ipam: None,
            allow_inner_tags: None,
            mtu: None,
            multicast: generic.get("multicast").cloned(),
        };
        let added = self.control.call(&Request::NetworkAdd { network: spec });
        let info = match added {
            Ok(v) => v,
            // The plugin restarted between mvdp's answer and its own save.
            Err(e) if is_code(&e, ErrorCode::Conflict) => Value::Null,
            Err(e) => return Err(refused("docker network create", &e)),
        };
        let answered = |key: &str| info.get(key).and_then(Value::as_str).map(str::to_string);
        let gateway = answered("gateway").or(gateway).unwrap_or_default();
        let gateway6 = answered("gateway6").or(gateway6);
        self.store.state.networks.insert(
            req.network_id.clone(),
            NetworkEntry {
                name: name.clone(),
                kind,
                gateway,
                gateway6,
                options: generic,
            },
        );
        if let Err(e) = self.save() {
            // Docker forgets a network whose creation failed: so must mvdp.
            self.store.state.networks.remove(&req.network_id);
            let _ = self.control.call(&Request::NetworkDel { name });
            return Err(e);
        }
        log::info!("network {name} created");
        Ok(json!({}))
    }

    fn delete_network(&mut self, body: &[u8]) -> Answer {
        let req: NetworkRef = parse("DeleteNetwork", body)?;
        // By the name the id gives, not the store's: a lost store must not
        // leave the network in mvdp.
        let name = short_name("dk", &req.network_id)?;
        match self
            .control
            .call(&Request::NetworkDel { name: name.clone() })
        {
            Ok(_) => {}
            Err(e) if is_code(&e, ErrorCode::NotFound) => {}
            Err(e) => return Err(refused("docker network rm", &e)),
        }
        if self.store.state.networks.remove(&req.network_id).is_some() {
            self.save()?;
        }
        log::info!("network {name} removed");
        Ok(json!({}))
    }

    fn create_endpoint(&mut self, body: &[u8]) -> Answer {
        let req: CreateEndpoint = parse("CreateEndpoint", body)?;
        if !self.store.state.networks.contains_key(&req.network_id) {
            return Err(format!(
                "mvdp: network {} is not one of this plugin's (was it created while the plugin's state was lost?)",
                req.network_id
            ));
        }
        let name = short_name("dk", &req.endpoint_id)?;
        let iface = req.interface.unwrap_or_default();
        let ip6 = match iface.address_v6.as_str() {
            "" => None,
            a => Some(
                strip_prefix(a)
                    .parse::<std::net::Ipv6Addr>()
                    .map_err(|_| format!("mvdp: Docker gave a malformed IPv6 address {a:?}"))?
                    .to_string(),
            ),
        };
        let ip: Ipv4Addr = strip_prefix(&iface.address).parse().map_err(|_| {
            format!(
                "mvdp: Docker gave no IPv4 address for the endpoint ({:?})",
                iface.address
            )
        })?;
        // Docker applies a MAC the driver returns only when it sent none;
        // otherwise the endpoint is rolled back.
        let (mac, answer) = if iface.mac.is_empty() {
            let mac = MacAddr::docker_default(ip).to_string();
            (mac.clone(), json!({ "Interface": { "MacAddress": mac } }))
        } else {
            (iface.mac.clone(), json!({}))
        };
        self.store.state.endpoints.insert(
            req.endpoint_id,
            EndpointEntry {
                network_id: req.network_id,
                name,
                ip: ip.to_string(),
                ip6,
                mac,
                sandbox: None,
                joined: 0,
            },
        );
        self.save()?;
        Ok(answer)
    }

    /// Removes the mvdp endpoint of Docker endpoint `id`, if it runs.
    /// Removes the mvdp endpoint of Docker endpoint `id`, by the name the id
    /// gives (so a plugin that died before it saved a `Join` leaks nothing);
    /// one that is not there is fine.
    fn remove_endpoint(&mut self, id: &str, what: &str) -> Result<(), String> {
        let name = short_name("dk", id)?;
        match self
            .control
            .call(&Request::EndpointDel { name: name.clone() })
        {
            Ok(_) => log::info!("endpoint {name} removed"),
            Err(e) if is_code(&e, ErrorCode::NotFound) => {}
            Err(e) => return Err(refused(what, &e)),
        }
        if let Some(ep) = self.store.state.endpoints.get_mut(id) {
            if ep.sandbox.take().is_some() {
                self.save()?;
            }
        }
        Ok(())
    }

    /// Removes the endpoints whose container is gone without a `Leave` that
    /// reached mvdp (the daemon or the plugin was down when it stopped: Docker
    /// only logs the failure): their sandbox's namespace file no longer exists.
    pub fn reap(&mut self) {
        let gone: Vec<String> = self
            .store
            .state
            .endpoints
            .iter()
            .filter(|(id, e)| {
                let Some(sandbox) = e.sandbox.as_deref() else {
                    return false;
                };
                if Path::new(sandbox).exists() {
                    self.seen.insert((*id).clone());
                    return false;
                }
                self.seen.contains(*id) || now_secs().saturating_sub(e.joined) > SANDBOX_GRACE_SECS
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            match self.remove_endpoint(&id, "reap") {
                Ok(()) => {
                    log::info!("endpoint of {id}: its sandbox is gone; removed");
                    self.store.state.endpoints.remove(&id);
                    self.seen.remove(&id);
                    let _ = self.save();
                }
                Err(e) => log::debug!("endpoint of {id}: {e}; retried later"),
            }
        }
    }

    fn delete_endpoint(&mut self, body: &[u8]) -> Answer {
        let req: EndpointRef = parse("DeleteEndpoint", body)?;
        let _ = req.network_id;
        self.remove_endpoint(&req.endpoint_id, "delete endpoint")?;
        if self
            .store
            .state
            .endpoints
            .remove(&req.endpoint_id)
            .is_some()
        {
            self.save()?;
        }
        Ok(json!({}))
    }

    fn join(&mut self, body: &[u8]) -> Answer {
        let req: Join = parse("Join", body)?;
        let net = self
            .store
            .state
            .networks
            .get(&req.network_id)
            .cloned()
            .ok_or_else(|| format!("mvdp: unknown network {}", req.network_id))?;
        let ep = self
            .store
            .state
            .endpoints
            .get(&req.endpoint_id)
            .cloned()
            .ok_or_else(|| format!("mvdp: unknown endpoint {}", req.endpoint_id))?;
        // Docker creates the sandbox's namespace only after `Join`, then
        // moves `SrcName` into it and names it `eth<N>`.
        let src_name = short_name("mvc", &req.endpoint_id)?;
        let spec = EndpointSpec {
            name: ep.name.clone(),
            network: net.name.clone(),
            kind: Some(net.kind.clone()),
            ifname: Some(src_name.clone()),
            ip: Some(ep.ip.clone()),
            ip6: ep.ip6.clone(),
            mac: Some(ep.mac.clone()),
            handoff: Some(true),
            ..EndpointSpec::default()
        };
        self.control
            .call(&Request::EndpointAdd { endpoint: spec })
            .map_err(|e| refused("join", &e))?;
        if let Some(e) = self.store.state.endpoints.get_mut(&req.endpoint_id) {
            e.sandbox = Some(req.sandbox_key);
            e.joined = now_secs();
        }
        self.save()?;
        log::info!(
            "endpoint {} joined: {src_name} {} {} on {}",
            ep.name,
            ep.ip,
            ep.mac,
            net.name
        );
        let mut answer = json!({
            "InterfaceName": { "SrcName": src_name, "DstPrefix": "eth" },
            "Gateway": net.gateway,
        });
        if let Some(gateway6) = &net.gateway6 {
            answer["GatewayIPv6"] = json!(gateway6);
        }
        Ok(answer)
    }

    fn leave(&mut self, body: &[u8]) -> Answer {
        let req: EndpointRef = parse("Leave", body)?;
        let _ = req.network_id;
        self.remove_endpoint(&req.endpoint_id, "leave")?;
        Ok(json!({}))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Answers like a daemon whose parent is `p0`, recording the requests.
    struct Fake {
        calls: RefCell<Vec<Request>>,
        refuse: Option<ApiError>,
        parent: &'static str,
    }

    impl Control for Fake {
        fn call(&self, request: &Request) -> Result<Value, ClientError> {
            self.calls.borrow_mut().push(request.clone());
            if let (Some(e), false) = (&self.refuse, matches!(request, Request::Status {})) {
                return Err(ClientError::Refused(e.clone()));
            }
            Ok(match request {
                Request::Status {} => json!({ "parent": self.parent }),
                Request::NetworkAdd { network } => json!({
                    "gateway": network.gateway.clone().unwrap_or_else(|| "10.1.0.1".into())
                }),
                _ => json!({}),
            })
        }
    }

    fn driver() -> Driver<Fake> {
        Driver::new(
            Fake {
                calls: RefCell::new(Vec::new()),
                refuse: None,
                parent: "p0",
            },
            Store::in_memory(),
        )
    }

    const NET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const EP: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    fn create(d: &mut Driver<Fake>, generic: Value) -> Value {
        let body = json!({
            "NetworkID": NET,
            "Options": { GENERIC: generic },
            "IPv4Data": [{ "AddressSpace": "LocalDefault", "Pool": "10.1.0.0/24",
                           "Gateway": "10.1.0.1/24", "AuxAddresses": { "printer": "10.1.0.5/24" } }],
            "IPv6Data": []
        });
        d.handle("/NetworkDriver.CreateNetwork", body.to_string().as_bytes())
    }

    fn err(v: &Value) -> &str {
        v.get("Err").and_then(Value::as_str).unwrap_or("")
    }

    #[test]
    fn create_network_turns_options_into_a_network() {
        let mut d = driver();
        let v = create(
            &mut d,
            json!({ "parent": "p0.50", "macvlan_mode": "private" }),
        );
        assert_eq!(v, json!({}), "{v}");
        let calls = d.control.calls.borrow();
        let Some(Request::NetworkAdd { network }) = calls.last() else {
            panic!("no network_add: {calls:?}");
        };
        assert_eq!(network.name, "dk0123456789ab");
        assert_eq!(network.subnet, "10.1.0.0/24");
        assert_eq!(network.gateway.as_deref(), Some("10.1.0.1"));
        assert_eq!(network.aux_addresses, vec!["10.1.0.5".to_string()]);
        assert_eq!(network.vlan, Some(50));
        assert_eq!(network.mode.as_deref(), Some("private"));
        let entry = &d.store().state.networks[NET];
        assert_eq!(
            (entry.kind.as_str(), entry.gateway.as_str()),
            ("veth", "10.1.0.1")
        );
    }

    #[test]
    fn bad_options_are_named() {
        for (generic, expect) in [
            (
                json!({ "parent": "p0", "ipvlan_mode": "l2" }),
                "-o ipvlan_mode",
            ),
            (json!({ "parent": "eth9" }), "-o parent=eth9"),
            (json!({ "parent": "p0.50", "vlan": "60" }), "-o vlan=60"),
            (json!({ "vlan": "x" }), "-o vlan=x"),
            (json!({ "kind": "tap" }), "-o kind=tap"),
            (
                json!({ "mode": "bridge", "macvlan_mode": "vepa" }),
                "not both",
            ),
        ] {
            let mut d = driver();
            let v = create(&mut d, generic.clone());
            assert!(err(&v).contains(expect), "{generic}: {v}");
            assert!(d.store().state.networks.is_empty());
            assert!(!d
                .control
                .calls
                .borrow()
                .iter()
                .any(|r| matches!(r, Request::NetworkAdd { .. })));
        }
    }

    #[test]
    fn a_parent_named_like_a_vlan_is_the_parent() {
        let mut d = driver();
        d.control.parent = "bond0.100";
        let v = create(&mut d, json!({ "parent": "bond0.100" }));
        assert_eq!(v, json!({}), "{v}");
        let calls = d.control.calls.borrow();
        let Some(Request::NetworkAdd { network }) = calls.last() else {
            panic!("no network_add: {calls:?}");
        };
        assert_eq!(network.vlan, None);
    }

    #[test]
    fn a_sandbox_is_gone_only_once_it_was_there() {
        let mut d = driver();
        let dir = std::env::temp_dir().join(format!("mvdp-reap-{}", std::process::id()));
        let sandbox = dir.display().to_string();
        d.store.state.endpoints.insert(
            EP.into(),
            EndpointEntry {
                network_id: NET.into(),
                name: "dkfedcba987654".into(),
                ip: "10.1.0.10".into(),
                ip6: None,
                mac: "02:42:0a:01:00:0a".into(),
                sandbox: Some(sandbox),
                joined: now_secs(),
            },
        );
        // Joined, namespace not made yet (Docker's prestart hook makes it).
        d.reap();
        assert!(d.store().state.endpoints.contains_key(EP));
        std::fs::create_dir_all(&dir).unwrap();
        d.reap();
        assert!(d.store().state.endpoints.contains_key(EP));
        std::fs::remove_dir(&dir).unwrap();
        d.reap();
        assert!(!d.store().state.endpoints.contains_key(EP));
        assert!(d.control.calls.borrow().contains(&Request::EndpointDel {
            name: "dkfedcba987654".into()
        }));
    }

    #[test]
    fn internal_networks_are_refused() {
        let mut d = driver();
        let body = json!({ "NetworkID": NET, "Options": { INTERNAL: true },
                           "IPv4Data": [{ "Pool": "10.1.0.0/24" }] });
        let v = d.handle("/NetworkDriver.CreateNetwork", body.to_string().as_bytes());
        assert!(err(&v).contains("--internal"), "{v}");
    }

    #[test]
    fn deletes_go_by_the_id_even_without_state() {
        let mut d = driver();
        let ep = json!({ "NetworkID": NET, "EndpointID": EP }).to_string();
        d.handle("/NetworkDriver.Leave", ep.as_bytes());
        d.handle("/NetworkDriver.DeleteNetwork", ep.as_bytes());
        let calls = d.control.calls.borrow();
        assert!(calls.contains(&Request::EndpointDel {
            name: "dkfedcba987654".into()
        }));
        assert!(calls.contains(&Request::NetworkDel {
            name: "dk0123456789ab".into()
        }));
    }

    #[test]
    fn ipv6_without_a_subnet_is_refused_with_a_reason() {
        let mut d = driver();
        let body = json!({ "NetworkID": NET, "Options": { ENABLE_IPV6: true },
                           "IPv4Data": [{ "Pool": "10.1.0.0/24" }] });
        let v = d.handle("/NetworkDriver.CreateNetwork", body.to_string().as_bytes());
        assert!(err(&v).contains("IPv6 --subnet"), "{v}");
    }

    #[test]
    fn ipv6_subnet_and_addresses_are_passed_on() {
        let mut d = driver();
        let body = json!({ "NetworkID": NET, "Options": { ENABLE_IPV6: true },
                           "IPv4Data": [{ "Pool": "10.1.0.0/24", "Gateway": "10.1.0.1/24" }],
                           "IPv6Data": [{ "Pool": "fd00:1::/64", "Gateway": "fd00:1::1/64",
                                          "AuxAddresses": { "router": "fd00:1::fe/64" } }] });
        let v = d.handle("/NetworkDriver.CreateNetwork", body.to_string().as_bytes());
        assert_eq!(v, json!({}));
        let Some(Request::NetworkAdd { network }) = d.control.calls.borrow().last().cloned() else {
            panic!("no network_add: {:?}", d.control.calls);
        };
        assert_eq!(network.subnet6.as_deref(), Some("fd00:1::/64"));
        assert_eq!(network.gateway6.as_deref(), Some("fd00:1::1"));
        assert_eq!(network.aux_addresses, ["fd00:1::fe"]);
        let body = json!({ "NetworkID": NET, "EndpointID": EP,
                           "Interface": { "Address": "10.1.0.10/24", "AddressIPv6": "fd00:1::a/64" } });
        d.handle("/NetworkDriver.CreateEndpoint", body.to_string().as_bytes());
        let body =
            json!({ "NetworkID": NET, "EndpointID": EP, "SandboxKey": "/var/run/docker/netns/x" });
        let v = d.handle("/NetworkDriver.Join", body.to_string().as_bytes());
        assert_eq!(v["GatewayIPv6"], "fd00:1::1", "{v}");
        let Some(Request::EndpointAdd { endpoint }) = d.control.calls.borrow().last().cloned()
        else {
            panic!("no endpoint_add: {:?}", d.control.calls);
        };
        assert_eq!(endpoint.ip6.as_deref(), Some("fd00:1::a"));
        let two = json!({ "NetworkID": NET, "IPv4Data": [{ "Pool": "10.1.0.0/24" }],
                          "IPv6Data": [{ "Pool": "fd00:1::/64" }, { "Pool": "fd00:2::/64" }] });
        let v = d.handle("/NetworkDriver.CreateNetwork", two.to_string().as_bytes());
        assert!(err(&v).contains("one IPv6 subnet"), "{v}");
    }

    #[test]
    fn a_refusal_names_the_docker_flag() {
        let mut d = driver();
        d.control.refuse = Some(ApiError {
            code: ErrorCode::Invalid,
            key: Some("network[1].mode".into()),
            message: "\"bogus\" is not one of bridge, private, vepa, passthru, source".into(),
        });
        let v = create(&mut d, json!({ "mode": "bogus" }));
        assert!(err(&v).contains("-o mode: \"bogus\""), "{v}");
    }

    #[test]
    fn mac_is_returned_only_when_docker_sent_none() {
        let mut d = driver();
        create(&mut d, json!({}));
        let body = |mac: &str| {
            json!({ "NetworkID": NET, "EndpointID": EP,
                    "Interface": { "Address": "10.1.0.10/24", "AddressIPv6": "", "MacAddress": mac } })
            .to_string()
        };
        let v = d.handle("/NetworkDriver.CreateEndpoint", body("").as_bytes());
        assert_eq!(
            v,
            json!({ "Interface": { "MacAddress": "02:42:0a:01:00:0a" } })
        );
        let v = d.handle(
            "/NetworkDriver.CreateEndpoint",
            body("02:00:00:00:00:07").as_bytes(),
        );
        assert_eq!(v, json!({}));
        assert_eq!(d.store().state.endpoints[EP].mac, "02:00:00:00:00:07");
        assert!(v.get("Address").is_none());
    }

    #[test]
    fn delete_calls_are_idempotent() {
        let mut d = driver();
        d.control.refuse = Some(ApiError::new(ErrorCode::NotFound, "no such thing"));
        let ep = json!({ "NetworkID": NET, "EndpointID": EP }).to_string();
        for call in ["Leave", "DeleteEndpoint", "DeleteNetwork"] {
            let v = d.handle(&format!("/NetworkDriver.{call}"), ep.as_bytes());
            assert_eq!(v, json!({}), "{call}");
        }
    }

    #[test]
    fn unknown_and_malformed_calls_fail_clearly() {
        let mut d = driver();
        assert!(err(&d.handle("/NetworkDriver.Bogus", b"{}")).contains("Bogus"));
        assert!(err(&d.handle("/NetworkDriver.Join", b"{")).contains("malformed Join"));
        let join = json!({ "NetworkID": NET, "EndpointID": EP, "SandboxKey": "/nonexistent" });
        assert!(
            err(&d.handle("/NetworkDriver.Join", join.to_string().as_bytes()))
                .contains("unknown network")
        );
    }
}
