//! What to change to get from the networks and endpoints that run to the
//! ones a config wants: a pure function, so every way the desired state
//! changes (start, SIGHUP, `endpoint add/del`, a vanished container) is
//! planned by the same code and the plan can be tested without a kernel.
//!
//! A plan is a list of small named steps, applied in order by
//! [`Daemon::apply`](super::Daemon): removals first (they free names,
//! addresses and VLANs the additions may want), then networks, then
//! endpoints, then policy changes in place.

use crate::config::{Config, EndpointConfig, Mode, NetworkConfig};

/// One step toward the desired state. Each is applied whole or not at all:
/// a step that fails undoes what it did before it reports the failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Stop serving an endpoint and delete its interface.
    RemoveEndpoint(String),
    /// Retire a network no running endpoint uses any more.
    RemoveNetwork(String),
    /// Start serving a network: its flood queue, its VLAN in the FDB.
    AddNetwork(String),
    /// Create an endpoint's interface and sockets and steer its frames to it.
    AddEndpoint(String),
    /// Change an endpoint's policy in place: allowed sources, rate limit.
    UpdateEndpoint(String),
    /// Change a network's policy in place (`allow_inner_tags`,
    /// `anti_spoof`, `multicast`) and the keys
    /// only addressing reads (`ip_range`, `aux_addresses`, `host_shim`).
    UpdateNetwork(String),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::RemoveEndpoint(n) => write!(f, "remove endpoint {n}"),
            Step::RemoveNetwork(n) => write!(f, "remove network {n}"),
            Step::AddNetwork(n) => write!(f, "add network {n}"),
            Step::AddEndpoint(n) => write!(f, "add endpoint {n}"),
            Step::UpdateEndpoint(n) => write!(f, "update endpoint {n}"),
            Step::UpdateNetwork(n) => write!(f, "update network {n}"),
        }
    }
}

/// The steps, and the keys that changed but take a restart (they keep
/// their running values).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// In the order they are to be applied.
    pub steps: Vec<Step>,
    /// Config keys that differ but only change at a restart, by name.
    pub restart_only: Vec<String>,
}

impl Plan {
    /// True when nothing is to change.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// What runs now: the daemon's fixed sections, its live networks and
/// endpoints, and whether a passthru network ran at start (the group
/// listener's promiscuity and the fast path's group copies are fixed then).
pub struct Running<'a> {
    /// The config the daemon started with (its sections other than
    /// networks and endpoints are what runs).
    pub config: &'a Config,
    /// The networks being served.
    pub networks: Vec<&'a NetworkConfig>,
    /// The endpoints being served, host shims included.
    pub endpoints: Vec<&'a EndpointConfig>,
    /// Whether the daemon started with a passthru network.
    pub passthru_at_start: bool,
}

/// The network keys an endpoint is built from: changing one re-creates the
/// network and its endpoints (their addresses, routes and tags follow it).
fn network_identity_changed(old: &NetworkConfig, new: &NetworkConfig) -> bool {
    old.mode != new.mode
        || old.vlan != new.vlan
        || old.subnet != new.subnet
        || old.gateway != new.gateway
        || old.ipam != new.ipam
        // Every endpoint's IPv6 address and route come from it.
        || old.ipv6 != new.ipv6
        // The containers' interfaces are made with it.
        || old.mtu != new.mtu
}

/// The endpoint keys its interface is built from: changing one re-creates it.
fn endpoint_identity_changed(old: &EndpointConfig, new: &EndpointConfig) -> bool {
    old.ip != new.ip
        || old.ip6 != new.ip6
        || old.mac != new.mac
        || old.network != new.network
        || old.netns != new.netns
        || old.kind != new.kind
        || old.ifname != new.ifname
}

/// The steps from `running` to `desired` (host shims already added to
/// `desired` as endpoints).
pub fn plan(running: &Running, desired: &Config) -> Plan {
    let mut p = Plan::default();
    let old = running.config;
    for (name, differs) in [
        ("parent", old.parent != desired.parent),
        ("dataplane", old.dataplane != desired.dataplane),
        ("workers", old.workers != desired.workers),
        ("metrics", old.metrics != desired.metrics),
        ("control", old.control != desired.control),
    ] {
        if differs {
            p.restart_only.push(format!("[{name}]"));
        }
    }

    // Networks that go, or come back re-made; and those that cannot change now.
    let mut replaced: Vec<&str> = Vec::new();
    let mut gone: Vec<&str> = Vec::new();
    // New networks that cannot be added now, and so neither their endpoints.
    let mut held: Vec<&str> = Vec::new();
    let mut updated: Vec<Step> = Vec::new();
    for net in &running.networks {
        match desired.network(&net.name) {
            None => gone.push(&net.name),
            // Kept as it runs; its endpoints are planned as usual.
            Some(new) if new.mode == Mode::Passthru && !running.passthru_at_start => {
                p.restart_only.push(format!("network {}: mode", net.name));
            }
            Some(new) if network_identity_changed(net, new) => replaced.push(&net.name),
            Some(new) => {
                if new.bcast_queue_len != net.bcast_queue_len {
                    p.restart_only
                        .push(format!("network {}: bcast_queue_len", net.name));
                }
                if new.allow_inner_tags != net.allow_inner_tags
                    || new.anti_spoof != net.anti_spoof
                    || new.multicast != net.multicast
                    || new.ip_range != net.ip_range
                    || new.aux_addresses != net.aux_addresses
                    || new.host_shim != net.host_shim
                {
                    updated.push(Step::UpdateNetwork(net.name.clone()));
                }
            }
        }
    }
    let mut added: Vec<&str> = Vec::new();
    for net in &desired.networks {
        let runs = running.networks.iter().any(|n| n.name == net.name);
        if runs {
            continue;
        }
        if net.mode == Mode::Passthru && !running.passthru_at_start {
            held.push(&net.name);
            p.restart_only.push(format!("network {}: mode", net.name));
        } else {
            added.push(&net.name);
        }
    }

    // Endpoints: removed, re-made, changed in place, added. By name in
    // hash maps: a runtime add plans over thousands of endpoints.
    let wanted: std::collections::HashMap<&str, &EndpointConfig> = desired
        .endpoints
        .iter()
        .map(|e| (e.name.as_str(), e))
        .collect();
    let mut remove = Vec::new();
    let mut removed = std::collections::HashSet::new();
    let mut update = Vec::new();
    for ep in &running.endpoints {
        let on_remade =
            gone.contains(&ep.network.as_str()) || replaced.contains(&ep.network.as_str());
        match wanted.get(ep.name.as_str()).copied() {
            Some(new) if !on_remade && !endpoint_identity_changed(ep, new) => {
                if new.allowed_sources != ep.allowed_sources || new.rate_limit != ep.rate_limit {
                    update.push(Step::UpdateEndpoint(ep.name.clone()));
                }
            }
            _ => {
                removed.insert(ep.name.as_str());
                remove.push(Step::RemoveEndpoint(ep.name.clone()));
            }
        }
    }
    let running_names: std::collections::HashSet<&str> =
        running.endpoints.iter().map(|e| e.name.as_str()).collect();
    let mut add = Vec::new();
    for ep in &desired.endpoints {
        if held.contains(&ep.network.as_str()) {
            continue;
        }
        let stays = running_names.contains(ep.name.as_str()) && !removed.contains(ep.name.as_str());
        if !stays {
            add.push(Step::AddEndpoint(ep.name.clone()));
        }
    }

    p.steps.extend(remove);
    for name in gone.iter().chain(&replaced) {
        p.steps.push(Step::RemoveNetwork(name.to_string()));
    }
    for name in replaced.iter().chain(&added) {
        p.steps.push(Step::AddNetwork(name.to_string()));
    }
    p.steps.extend(updated);
    p.steps.extend(add);
    p.steps.extend(update);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[parent]
interface = "eth0"

[[network]]
name = "lan"
subnet = "192.168.1.0/24"

[[endpoint]]
name = "a"
network = "lan"
netns = "ca"

[[endpoint]]
name = "b"
network = "lan"
netns = "cb"
"#;

    fn config(text: &str) -> Config {
        Config::parse(text).unwrap()
    }

    fn plan_between(old: &Config, new: &Config) -> Plan {
        let running = Running {
            config: old,
            networks: old.networks.iter().collect(),
            endpoints: old.endpoints.iter().collect(),
            passthru_at_start: old.networks.iter().any(|n| n.mode == Mode::Passthru),
        };
        plan(&running, new)
    }

    fn steps(names: &[&str]) -> Vec<Step> {
        names
            .iter()
            .map(|s| {
                let (verb, name) = s.split_once(' ').unwrap();
                let name = name.to_string();
                match verb {
                    "-ep" => Step::RemoveEndpoint(name),
                    "-net" => Step::RemoveNetwork(name),
                    "+net" => Step::AddNetwork(name),
                    "+ep" => Step::AddEndpoint(name),
                    "~ep" => Step::UpdateEndpoint(name),
                    "=net" => Step::UpdateNetwork(name),
                    _ => unreachable!("{verb}"),
                }
            })
            .collect()
    }

    #[test]
    fn start_is_a_plan_from_nothing() {
        let empty = Running {
            config: &config(BASE),
            networks: Vec::new(),
            endpoints: Vec::new(),
            passthru_at_start: false,
        };
        let p = plan(&empty, &config(BASE));
        assert_eq!(p.steps, steps(&["+net lan", "+ep a", "+ep b"]));
        assert!(p.restart_only.is_empty());
    }

    #[test]
    fn ipv6_changes_re_create_what_they_address() {
        let old = config(BASE);
        let dual = config(&BASE.replace(
            "subnet = \"192.168.1.0/24\"\n",
            "subnet = \"192.168.1.0/24\"\nsubnet6 = \"fd00:1::/64\"\n",
        ));
        let p = plan_between(&old, &dual);
        assert_eq!(
            p.steps,
            steps(&["-ep a", "-ep b", "-net lan", "+net lan", "+ep a", "+ep b"])
        );
        let moved = config(
            &BASE
                .replace(
                    "subnet = \"192.168.1.0/24\"\n",
                    "subnet = \"192.168.1.0/24\"\nsubnet6 = \"fd00:1::/64\"\n",
                )
                .replace("netns = \"ca\"\n", "netns = \"ca\"\nip6 = \"fd00:1::9\"\n"),
        );
        // a's static address frees ::2, which b (allocated) moves to.
        let p = plan_between(&dual, &moved);
        assert_eq!(p.steps, steps(&["-ep a", "-ep b", "+ep a", "+ep b"]));
    }

    #[test]
    fn the_same_config_plans_nothing() {
        let c = config(BASE);
        assert!(plan_between(&c, &c).is_empty());
    }

    #[test]
    fn added_network_removed_endpoint_and_changed_rate_limit_are_exactly_that() {
        let old = config(BASE);
        let new_text = BASE.replace(
            "[[endpoint]]\nname = \"b\"\nnetwork = \"lan\"\nnetns = \"cb\"\n",
            "",
        ) + r#"
[[network]]
name = "iot"
vlan = 50
subnet = "10.50.0.0/24"

[[endpoint]]
name = "c"
network = "iot"
netns = "cc"
"#;
        let new_text = new_text.replace(
            "netns = \"ca\"",
            "netns = \"ca\"\nrate_limit = { pps = 1000 }",
        );
        let p = plan_between(&old, &config(&new_text));
        assert_eq!(p.steps, steps(&["-ep b", "+net iot", "+ep c", "~ep a"]));
        assert!(p.restart_only.is_empty(), "{:?}", p.restart_only);
    }

    #[test]
    fn a_changed_address_recreates_only_that_endpoint() {
        let old = config(BASE);
        let new = config(&BASE.replace("netns = \"cb\"", "netns = \"cb\"\nip = \"192.168.1.77\""));
        assert_eq!(plan_between(&old, &new).steps, steps(&["-ep b", "+ep b"]));
    }

    #[test]
    fn a_network_whose_vlan_changes_is_remade_with_its_endpoints() {
        let old = config(BASE);
        let new = config(&BASE.replace(
            "subnet = \"192.168.1.0/24\"",
            "subnet = \"192.168.1.0/24\"\nvlan = 7",
        ));
        assert_eq!(
            plan_between(&old, &new).steps,
            steps(&["-ep a", "-ep b", "-net lan", "+net lan", "+ep a", "+ep b"])
        );
    }

    #[test]
    fn a_network_turning_to_dhcp_is_remade_with_its_endpoints() {
        let old = config(BASE);
        let new = config(&BASE.replace(
            "subnet = \"192.168.1.0/24\"",
            "subnet = \"192.168.1.0/24\"\nipam = \"dhcp\"",
        ));
        assert_eq!(
            plan_between(&old, &new).steps,
            steps(&["-ep a", "-ep b", "-net lan", "+net lan", "+ep a", "+ep b"])
        );
    }

    #[test]
    fn allowing_inner_tags_updates_the_network_in_place() {
        let vlan = BASE.replace(
            "subnet = \"192.168.1.0/24\"",
            "subnet = \"192.168.1.0/24\"\nvlan = 7",
        );
        let old = config(&vlan);
        let new = config(&vlan.replace("vlan = 7", "vlan = 7\nallow_inner_tags = true"));
        assert_eq!(plan_between(&old, &new).steps, steps(&["=net lan"]));
    }

    #[test]
    fn a_removed_network_takes_its_endpoints_along() {
        let two = BASE.to_string()
            + "\n[[network]]\nname = \"iot\"\nvlan = 50\nsubnet = \"10.50.0.0/24\"\n\n[[endpoint]]\nname = \"c\"\nnetwork = \"iot\"\nnetns = \"cc\"\n";
        let p = plan_between(&config(&two), &config(BASE));
        assert_eq!(p.steps, steps(&["-ep c", "-net iot"]));
    }

    #[test]
    fn restart_only_keys_are_named_and_left_alone() {
        let old = config(BASE);
        let new = config(
            &BASE
                .replace("interface = \"eth0\"", "interface = \"eth1\"")
                .replace(
                    "subnet = \"192.168.1.0/24\"",
                    "subnet = \"192.168.1.0/24\"\nbcast_queue_len = 8",
                ),
        );
        let p = plan_between(&old, &new);
        assert!(p.steps.is_empty(), "{:?}", p.steps);
        assert_eq!(
            p.restart_only,
            vec![
                "[parent]".to_string(),
                "network lan: bcast_queue_len".into()
            ]
        );
    }

    #[test]
    fn a_passthru_network_waits_for_a_restart_when_none_ran_at_start() {
        let old = config(BASE);
        let new = config(
            &BASE
                .replace(
                    "subnet = \"192.168.1.0/24\"",
                    "subnet = \"192.168.1.0/24\"\nmode = \"passthru\"",
                )
                .replace(
                    "[[endpoint]]\nname = \"b\"\nnetwork = \"lan\"\nnetns = \"cb\"\n",
                    "",
                ),
        );
        let p = plan_between(&old, &new);
        assert_eq!(p.steps, steps(&["-ep b"]));
        assert_eq!(p.restart_only, vec!["network lan: mode".to_string()]);
    }
}
