//! The steps a [`Plan`] is made of, each applied whole or not at all: a
//! step that fails undoes what it did before it reports the failure, and
//! the plan goes on with the steps that do not depend on it.
//!
//! Adding endpoints is batched: each is created (interface, sockets on
//! every worker, fast-path entry), then the FDB is published once, then
//! each is steered (the parent's unicast filter, the XDP and fast-path
//! maps, the host shim's routes). An endpoint whose creation or steering
//! fails is removed again; the others of the batch stay.

use std::net::IpAddr;
use std::sync::Arc;

use super::*;
use crate::config::{EndpointConfig, Ipam, Multicast, NetworkConfig};
use crate::control::netlink::{EndpointLinkSpec, LinkKind};
use crate::dataplane::EndpointIo;
use crate::switch::{EndpointEntry, NetworkEntry};

impl Daemon {
    /// Applies `plan`, made against `desired` (host shims included).
    /// Returns the steps done; if any failed, an error naming each failure
    /// (the others are applied).
    pub(super) fn apply(&mut self, desired: &Config, plan: &Plan) -> Result<Vec<String>> {
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let mut batch: Vec<EndpointConfig> = Vec::new();
        for step in &plan.steps {
            if let Step::AddEndpoint(name) = step {
                batch.extend(desired.endpoint(name).cloned());
                continue;
            }
            self.add_endpoints(std::mem::take(&mut batch), &mut done, &mut failed);
            let result = match step {
                Step::RemoveEndpoint(name) => {
                    self.remove_endpoint_named(name);
                    Ok(())
                }
                Step::RemoveNetwork(name) => self.remove_network(name),
                Step::AddNetwork(name) => match desired.network(name) {
                    Some(net) => self.add_network(net),
                    None => Ok(()),
                },
                Step::UpdateEndpoint(name) => match desired.endpoint(name) {
                    Some(ep) => self.update_endpoint(ep),
                    None => Ok(()),
                },
                Step::UpdateNetwork(name) => match desired.network(name) {
                    Some(net) => self.update_network(net),
                    None => Ok(()),
                },
                Step::AddEndpoint(_) => unreachable!("batched above"),
            };
            match result {
                Ok(()) => {
                    log::info!("{step}");
                    done.push(step.to_string());
                }
                Err(e) => {
                    log::error!("{step}: {e}");
                    failed.push(e.to_string());
                }
            }
        }
        self.add_endpoints(batch, &mut done, &mut failed);
        if failed.is_empty() {
            Ok(done)
        } else {
            Err(DaemonError::Steps(failed))
        }
    }

    /// The endpoint with id `id`, if it runs.
    pub(super) fn endpoint(&self, id: EndpointId) -> Option<&Endpoint> {
        self.endpoints
            .get(usize::from(id.0))
            .and_then(Option::as_ref)
    }

    /// The running (not retired) network called `name`.
    fn network_id(&self, name: &str) -> Option<NetworkId> {
        self.networks
            .iter()
            .position(|n| !n.retired && n.config.name == name)
            .map(|i| NetworkId(i as u16))
    }

    /// The endpoints running on network `id`.
    fn members(&self, id: NetworkId) -> Vec<EndpointId> {
        self.endpoints
            .iter()
            .flatten()
            .filter(|e| e.network == id)
            .map(|e| e.id)
            .collect()
    }

    fn network_config(&self, id: NetworkId) -> &NetworkConfig {
        &self.networks[usize::from(id.0)].config
    }

    /// Step: starts serving a network. Its flood queue goes to the worker
    /// the network falls to, then the FDB with it is published.
    fn add_network(&mut self, net: &NetworkConfig) -> Result<()> {
        let id = NetworkId(self.networks.len() as u16);
        self.networks.push(Network {
            config: net.clone(),
            retired: false,
        });
        // A VLAN another network owns: refused before anything is made.
        let fdb = match self.current_fdb() {
            Ok(fdb) => fdb,
            Err(e) => {
                self.networks.pop();
                return Err(DaemonError::from(e).network(&net.name));
            }
        };
        let (tx, rx) = bounded(net.bcast_queue_len.max(1));
        let worker = &self.workers[usize::from(id.0) % self.workers.len()];
        worker.commands.send(Command::AddFloodQueue(rx)).ok();
        worker.wake.wake();
        self.flood_queues
            .lock()
            .expect("flood queues lock")
            .push(tx);
        self.publish(Arc::new(fdb));
        Ok(())
    }

    /// Step: retires a network whose endpoints are gone. Its id stays taken.
    fn remove_network(&mut self, name: &str) -> Result<()> {
        let Some(id) = self.network_id(name) else {
            return Ok(());
        };
        for ep in self.members(id) {
            self.remove_endpoint(ep);
        }
        self.networks[usize::from(id.0)].retired = true;
        let fdb = self.current_fdb()?;
        self.publish(Arc::new(fdb));
        Ok(())
    }

    /// Step: a network's policy changes in place; its flood queue keeps
    /// its length until a restart.
    fn update_network(&mut self, new: &NetworkConfig) -> Result<()> {
        let Some(id) = self.network_id(&new.name) else {
            return Ok(());
        };
        let slot = &mut self.networks[usize::from(id.0)].config;
        if slot.multicast != Multicast::Snoop && new.multicast == Multicast::Snoop {
            // Its containers joined groups while nobody listened.
            self.pending_queries.push(id);
        }
        let queue_len = slot.bcast_queue_len;
        *slot = new.clone();
        slot.bcast_queue_len = queue_len;
        // `anti_spoof` decides whether the fast path hands the workers its
        // endpoints' egress (they check it).
        for ep in self.members(id) {
            self.sync_fast_entry(ep)?;
        }
        let fdb = self.current_fdb()?;
        self.publish(Arc::new(fdb));
        Ok(())
    }

    /// Step: an endpoint's policy changes in place (allowed sources, rate
    /// limit); on failure its old policy stays.
    fn update_endpoint(&mut self, new: &EndpointConfig) -> Result<()> {
        let Some(state) = self
            .endpoints
            .iter_mut()
            .flatten()
            .find(|e| e.config.name == new.name)
        else {
            return Ok(());
        };
        let id = state.id;
        let old = (
            state.config.allowed_sources.clone(),
            state.config.rate_limit,
        );
        state.config.allowed_sources = new.allowed_sources.clone();
        state.config.rate_limit = new.rate_limit;
        if let Err(e) = self.sync_fast_entry(id) {
            if let Some(state) = self.endpoints[usize::from(id.0)].as_mut() {
                state.config.allowed_sources = old.0;
                state.config.rate_limit = old.1;
            }
            let _ = self.sync_fast_entry(id);
            return Err(e.endpoint(&new.name));
        }
        let fdb = self.current_fdb()?;
        self.publish(Arc::new(fdb));
        Ok(())
    }

    /// Whether the fast path hands the workers all an endpoint sends: the
    /// workers enforce its rate limit, and `anti_spoof = "mac+ip"`.
    fn punts_egress(&self, ep: &EndpointConfig, network: NetworkId) -> bool {
        ep.rate_limit.is_some()
            || self.network_config(network).anti_spoof == crate::config::AntiSpoof::MacIp
    }

    /// Brings endpoint `id`'s fast-path entry in line with its config and
    /// network (whether its egress is punted).
    fn sync_fast_entry(&mut self, id: EndpointId) -> Result<()> {
        let Some(state) = self.endpoint(id) else {
            return Ok(());
        };
        let punt = self.punts_egress(&state.config, state.network);
        let Some(state) = self.endpoints[usize::from(id.0)].as_mut() else {
            return Ok(());
        };
        let Some(fe) = state.fast.as_mut() else {
            return Ok(());
        };
        if fe.punt_egress == punt {
            return Ok(());
        }
        fe.punt_egress = punt;
        let entry = *fe;
        if let Some(fast) = self.fast.lock().expect("fast path lock").as_mut() {
            fast.set_endpoint(&entry)?;
        }
        Ok(())
    }

    /// Steps: adds a batch of endpoints (see the module doc), recording
    /// each one done or failed.
    fn add_endpoints(
        &mut self,
        batch: Vec<EndpointConfig>,
        done: &mut Vec<String>,
        failed: &mut Vec<String>,
    ) {
        if batch.is_empty() {
            return;
        }
        let mut fail = |name: &str, e: DaemonError| {
            let e = e.endpoint(name);
            log::error!("{e}");
            failed.push(e.to_string());
        };
        // The workers need the wire's frames for one of these: the XDP
        // program first (it passes everything until MACs are added).
        if let Err(e) = self.ensure_xdp(&batch) {
            for ep in &batch {
                fail(&ep.name, DaemonError::Steps(vec![e.to_string()]));
            }
            return;
        }
        let mut created = Vec::new();
        for ep in &batch {
            match self.create_endpoint(ep) {
                Ok(id) => created.push(id),
                Err(e) => fail(&ep.name, e),
            }
        }
        let fdb = match self.current_fdb() {
            Ok(fdb) => Arc::new(fdb),
            Err(e) => {
                // Validation keeps MACs apart; should it not, none of the batch stays.
                for id in created {
                    if let Some(name) = self.remove_endpoint(id) {
                        fail(&name, e.clone().into());
                    }
                }
                return;
            }
        };
        self.publish(fdb);
        let parent = self.config.parent.interface.clone();
        // An address already in the parent's list is someone else's: used, never removed.
        let preexisting = netlink::unicast_addresses(&parent).unwrap_or_default();
        let recorded = self.unicast_addresses.len();
        for id in created {
            match self.steer(id, &preexisting) {
                Ok(()) => {
                    self.start_dhcp_client(id);
                    let ep = &self.endpoints[usize::from(id.0)].as_ref().expect("created");
                    done.push(format!("add endpoint {}", ep.config.name));
                }
                Err(e) => {
                    if let Some(name) = self.remove_endpoint(id) {
                        fail(&name, e);
                    }
                }
            }
        }
        // One write for the batch, whether or not every endpoint made it.
        if self.unicast_addresses.len() != recorded {
            self.record_unicast();
        }
    }

    /// The id for a new endpoint: the one an earlier mvdp gave it, if its
    /// interface is still there; else the lowest free id not held for such
    /// an interface.
    fn allocate_id(&self, name: &str) -> Result<EndpointId> {
        let free = |id: EndpointId| {
            self.endpoints
                .get(usize::from(id.0))
                .is_none_or(Option::is_none)
        };
        if let Some(&(_, id)) = self
            .leftover_ids
            .iter()
            .find(|(ifname, id)| *ifname == host_ifname(usize::from(id.0), name) && free(*id))
        {
            return Ok(id);
        }
        (0..crate::switch::ENDPOINT_SLOTS)
            .map(|i| EndpointId(i as u16))
            .find(|&id| free(id) && !self.leftover_ids.iter().any(|(_, l)| *l == id))
            .ok_or(DaemonError::TooManyEndpoints {
                name: name.to_string(),
                max: crate::switch::ENDPOINT_SLOTS,
            })
    }

    /// Creates an endpoint (its interface, its sockets on every worker, its
    /// fast-path entry) and records it. Steering frames to it is
    /// [`Daemon::steer`]'s. On failure nothing of it stays.
    fn create_endpoint(&mut self, ep: &EndpointConfig) -> Result<EndpointId> {
        let network = self
            .network_id(&ep.network)
            .ok_or_else(|| DaemonError::NetworkNotRunning(ep.network.clone()))?;
        let net = self.network_config(network).clone();
        let parent = &self.config.parent.interface;
        if net.vlan.is_none() && netlink::link_mac(parent)? == Some(ep.mac) {
            return Err(DaemonError::ParentMac {
                name: ep.name.clone(),
                mac: ep.mac,
                parent: parent.clone(),
            });
        }
        let id = self.allocate_id(&ep.name)?;
        let i = usize::from(id.0);
        let host = host_ifname(i, &ep.name);
        let fast = self.fast_eligible(ep);
        let shim = is_shim(ep);
        let link = netlink::create_endpoint(&EndpointLinkSpec {
            kind: match ep.kind {
                EndpointKind::Veth => LinkKind::Veth,
                EndpointKind::Tap => LinkKind::Tap,
            },
            host_ifname: &host,
            netns_path: &ep.netns.path(),
            ifname: &ep.ifname,
            mac: ep.mac,
            addr: ep.ip,
            // The shim holds the host's address alone (/32) and reaches the
            // containers through routes of its own, so it never competes with
            // the parent's address on the same subnet.
            prefix_len: if shim { 32 } else { net.subnet.prefix_len() },
            // On a DHCP network the lease brings address and gateway.
            gateway: (ep.default_route && !shim && net.ipam == Ipam::Static).then_some(net.gateway),
            addr6: ep
                .ip6
                .zip(net.ipv6.as_ref())
                .map(|(ip6, v6)| (ip6, if shim { 128 } else { v6.subnet.prefix_len() })),
            gateway6: net
                .ipv6
                .as_ref()
                .filter(|_| ep.default_route && !shim)
                .map(|v6| v6.gateway),
            queues: self.workers.len() as u32,
            // The fast path keeps the container's skbs whole: its checksum
            // offload and TSO can stay on.
            tx_offload: fast,
            // The shim is always the workers' (its frames are the host's,
            // not the fast path's): no larger than they carry. The host's
            // stack then sends it nothing longer (its route has that MTU).
            mtu: match self.config.network_mtu(&net, self.parent_mtu) {
                mtu if shim => mtu.min(self.workers_mtu()),
                mtu => mtu,
            },
            handoff: ep.handoff,
        })?;
        let adopted = link.adopted;
        if adopted {
            // Its container may hold groups mvdp has not heard it join.
            self.pending_queries.push(network);
        }
        if self.endpoints.len() <= i {
            self.endpoints.resize_with(i + 1, || None);
        }
        // Recorded before anything else can fail, so removing it deletes the pair.
        self.endpoints[i] = Some(Endpoint {
            id,
            config: ep.clone(),
            network,
            host_ifname: host.clone(),
            netns_path: ep.netns.path(),
            port_prog: None,
            tap: link.tap.map(TapPort::new),
            fast: self.fast_entry(ep, id, network, fast.then_some(link.host_ifindex)),
            // Its client starts once frames reach it (`add_endpoints`).
            dhcp: None,
        });
        if let Err(e) = self.open_ports(id, fast) {
            self.remove_endpoint(id);
            return Err(e);
        }
        log::info!(
            "endpoint {} ({:?}) {}: {} {} in {} as {}",
            ep.name,
            ep.kind,
            if adopted {
                "taken over from an earlier mvdp"
            } else {
                "up"
            },
            ep.mac,
            ep.ip,
            ep.netns,
            ep.ifname
        );
        Ok(id)
    }

    /// Gives every worker its port to endpoint `id`: an AF_XDP socket per
    /// worker on a veth's host end (with the XDP port program that steers
    /// the container's egress to them unless the fast path takes it), or
    /// the TAP fd, read by one worker.
    fn open_ports(&mut self, id: EndpointId, fast: bool) -> Result<()> {
        let i = usize::from(id.0);
        let state = self.endpoints[i].as_ref().expect("recorded");
        let (kind, host, name) = (
            state.config.kind,
            state.host_ifname.clone(),
            state.config.name.clone(),
        );
        match kind {
            EndpointKind::Veth => {
                let mut prog = if fast {
                    None
                } else {
                    Some(XdpPort::attach(&host, self.plumbing.mode)?)
                };
                let mut socks = Vec::new();
                for (w, umem) in self.plumbing.umems.iter().enumerate() {
                    let s = XskSocket::bind(
                        umem,
                        &host,
                        w as u32,
                        self.plumbing.bind.expect("set at start"),
                        self.rings(),
                    )?;
                    if let Some(prog) = prog.as_mut() {
                        prog.set_socket(w as u32, s.fd())?;
                    }
                    socks.push(s);
                }
                for (w, socket) in socks.into_iter().enumerate() {
                    let io = EndpointIo::Xsk {
                        socket,
                        receives: !fast,
                    };
                    self.workers[w].commands.send(Command::AddPort(id, io)).ok();
                    self.workers[w].wake.wake();
                }
                if let Some(st) = self.endpoints[i].as_mut() {
                    st.port_prog = prog;
                }
            }
            EndpointKind::Tap => {
                let tap = state.tap.clone().expect("TAP fd");
                let reader = i % self.workers.len();
                for (w, worker) in self.workers.iter().enumerate() {
                    let io = EndpointIo::Tap {
                        port: tap.clone(),
                        read: w == reader,
                    };
                    worker.commands.send(Command::AddPort(id, io)).ok();
                    worker.wake.wake();
                }
            }
        }
        log::debug!(
            "endpoint {name}: ports open on {} workers",
            self.workers.len()
        );
        Ok(())
    }

    /// Steers frames to a created endpoint once the FDB has it: the
    /// parent's unicast filter, the XDP and fast-path maps, the host shim's
    /// routes.
    fn steer(&mut self, id: EndpointId, preexisting: &[crate::wire::MacAddr]) -> Result<()> {
        let parent = self.config.parent.interface.clone();
        let mac = self.endpoints[usize::from(id.0)]
            .as_ref()
            .expect("created")
            .config
            .mac;
        // Container MACs are not the parent's own: put them in its unicast
        // filter, which the kernel turns into promiscuous mode for a driver
        // without one.
        if !preexisting.contains(&mac) && !self.unicast_addresses.contains(&mac) {
            netlink::add_unicast_address(&parent, mac)?;
            self.unicast_addresses.push(mac);
        }
        self.xdp_steer(id)?;
        self.fast_steer(id)?;
        self.shim_routes(id, true)
    }

    /// Removes the endpoint called `name`, if it runs.
    fn remove_endpoint_named(&mut self, name: &str) -> Option<String> {
        let id = self
            .endpoints
            .iter()
            .flatten()
            .find(|e| e.config.name == name)?
            .id;
        self.remove_endpoint(id)
    }

    /// Removes one endpoint: out of the XDP map and FDB, out of the
    /// workers, interface deleted. Its id is free again.
    pub(super) fn remove_endpoint(&mut self, id: EndpointId) -> Option<String> {
        self.endpoints.get(usize::from(id.0))?.as_ref()?;
        // Its lease goes back while the endpoint still carries frames.
        self.stop_dhcp_clients_of(&[id], true);
        if let Err(e) = self.shim_routes(id, false) {
            log::warn!("{e}");
        }
        let ep = self.endpoints.get_mut(usize::from(id.0))?.take()?;
        let net = self.network_config(ep.network).clone();
        let mac = ep.config.mac;
        if let Some(xdp) = self.xdp.lock().expect("xdp lock").as_mut() {
            // The passthru endpoint is gone: the parent's traffic is the host's again.
            if net.mode == Mode::Passthru {
                if let Err(e) = xdp.set_passthru(None) {
                    log::warn!("endpoint {}: {e}", ep.config.name);
                }
            }
            if let Err(e) = xdp.remove_endpoint(mac, net.vlan.unwrap_or(0)) {
                log::warn!("endpoint {}: {e}", ep.config.name);
            }
        }
        if let (Some(fe), Some(fast)) =
            (ep.fast, self.fast.lock().expect("fast path lock").as_mut())
        {
            if let Err(e) = fast.remove_endpoint(&fe) {
                log::warn!("endpoint {}: {e}", ep.config.name);
            }
        }
        if let Some(pos) = self.unicast_addresses.iter().position(|m| *m == mac) {
            self.unicast_addresses.swap_remove(pos);
            if let Err(e) = netlink::del_unicast_address(&self.config.parent.interface, mac) {
                log::warn!("endpoint {}: {e}", ep.config.name);
            }
            self.record_unicast();
        }
        match self.current_fdb() {
            Ok(fdb) => self.publish(Arc::new(fdb)),
            Err(e) => log::error!("rebuilding the FDB without {}: {e}", ep.config.name),
        }
        for w in &self.workers {
            w.commands.send(Command::RemovePort(id)).ok();
            w.wake.wake();
        }
        drop(ep.port_prog);
        drop(ep.tap);
        if ep.config.kind == EndpointKind::Veth {
            if let Err(e) = netlink::delete_link(&ep.host_ifname) {
                log::warn!("endpoint {}: {e}", ep.config.name);
            }
        }
        Some(ep.config.name)
    }

    /// Whether the fast path carries an endpoint's unicast: a container's
    /// veth on a bridge, vepa or private network, while the fast path is on.
    /// TAP endpoints, the host shim (its peer shares mvdp's namespace, which
    /// `bpf_redirect_peer` cannot enter) and passthru and source networks
    /// stay with the workers.
    fn fast_eligible(&self, ep: &EndpointConfig) -> bool {
        let mode = self
            .network_id(&ep.network)
            .map(|id| self.network_config(id).mode);
        self.fast.lock().expect("fast path lock").is_some()
            && ep.kind == EndpointKind::Veth
            && !is_shim(ep)
            && matches!(mode, Some(Mode::Bridge | Mode::Vepa | Mode::Private))
    }

    /// Whether the workers need frames from the wire through the parent's
    /// XDP program, with `extra` endpoints about to be added: some endpoint
    /// is theirs alone, or some network's reflected group frames go back to
    /// their sender only (private, passthru, source: the XDP program keeps
    /// those from the host).
    pub(super) fn needs_xdp(&self, extra: &[EndpointConfig]) -> bool {
        self.fast.lock().expect("fast path lock").is_none()
            || self
                .endpoints
                .iter()
                .flatten()
                .map(|e| &e.config)
                .chain(extra)
                .any(|e| !self.fast_eligible(e))
            || self.networks.iter().any(|n| {
                !n.retired && matches!(n.config.mode, Mode::Private | Mode::Passthru | Mode::Source)
            })
    }

    /// The fast path's entry for an endpoint (`port`: its veth host end's
    /// ifindex when the fast path delivers to it), or `None` when the fast
    /// path is off.
    fn fast_entry(
        &self,
        ep: &EndpointConfig,
        id: EndpointId,
        network: NetworkId,
        port: Option<u32>,
    ) -> Option<FastEndpoint> {
        self.fast.lock().expect("fast path lock").as_ref()?;
        let net = self.network_config(network);
        Some(FastEndpoint {
            id,
            mac: ep.mac,
            vlan: net.vlan.unwrap_or(0),
            network: network.0,
            mode: net.mode,
            port,
            punt_egress: self.punts_egress(ep, network),
            // An MTU near 65535 leaves the check to the kernel's own limit.
            max_len: (self.config.network_mtu(net, self.parent_mtu) as usize
                + crate::wire::ETH_HEADER_LEN)
                .min(usize::from(u16::MAX)) as u16,
        })
    }

    /// Attaches the parent's XDP program if the workers need frames from
    /// the wire (`extra`: endpoints about to be added) and it is not there
    /// yet, with every endpoint in its map. It passes everything until
    /// endpoint MACs are added.
    fn ensure_xdp(&mut self, extra: &[EndpointConfig]) -> Result<()> {
        if !self.needs_xdp(extra) || self.xdp.lock().expect("xdp lock").is_some() {
            return Ok(());
        }
        let mut xdp = XdpProgram::attach(&self.config.parent.interface, self.plumbing.mode)?;
        xdp.set_xsk_limit(self.workers_max_frame() as u32)?;
        for &(q, fd) in &self.plumbing.parent_fds {
            xdp.set_socket(q, fd)?;
        }
        *self.xdp.lock().expect("xdp lock") = Some(xdp);
        let ids: Vec<EndpointId> = self.endpoints.iter().flatten().map(|e| e.id).collect();
        for id in ids {
            self.xdp_steer(id)?;
        }
        Ok(())
    }

    /// Puts endpoint `id` into the XDP program's map, if one is attached:
    /// to AF_XDP, or on to the fast path.
    fn xdp_steer(&self, id: EndpointId) -> Result<()> {
        let Some(ep) = self.endpoint(id) else {
            return Ok(());
        };
        let mut guard = self.xdp.lock().expect("xdp lock");
        let Some(xdp) = guard.as_mut() else {
            return Ok(());
        };
        let net = self.network_config(ep.network);
        let fast_port = ep.fast.is_some_and(|f| f.port.is_some());
        // Group frames these endpoints send, when the wire reflects them, go
        // back to the sender alone (the kernel's "forward to original
        // port"), never to the host.
        let owned = matches!(net.mode, Mode::Private | Mode::Passthru | Mode::Source);
        let mut value = u32::from(id.0);
        if owned {
            value |= crate::io::xdp::EP_HAIRPIN_OWNED;
        }
        if fast_port {
            value |= crate::io::xdp::EP_FAST;
        }
        xdp.add_endpoint(ep.config.mac, net.vlan.unwrap_or(0), value)?;
        // A passthru network takes over every unicast frame on its VLAN;
        // group frames reach both the host and the endpoint, as with the kernel.
        if net.mode == Mode::Passthru {
            xdp.set_passthru(Some(net.vlan.unwrap_or(0)))?;
            log::info!(
                "network {}: passthru, its endpoint takes over {}'s traffic",
                net.name,
                self.config.parent.interface
            );
        }
        Ok(())
    }

    /// Puts endpoint `id` into the fast path's maps, and for a fast
    /// endpoint attaches the port program that takes its egress.
    fn fast_steer(&mut self, id: EndpointId) -> Result<()> {
        let Some(state) = self.endpoint(id) else {
            return Ok(());
        };
        let mut guard = self.fast.lock().expect("fast path lock");
        if let (Some(entry), Some(fast)) = (state.fast, guard.as_mut()) {
            fast.set_endpoint(&entry)?;
            fast.attach_port(&entry, &state.host_ifname)?;
        }
        Ok(())
    }

    /// The host shim's /32 routes for endpoint `id` (added, or deleted when
    /// `add` is false): a shim reaches every other endpoint of its network,
    /// and every endpoint is reached from its network's shim.
    fn shim_routes(&self, id: EndpointId, add: bool) -> Result<()> {
        let Some(ep) = self.endpoint(id) else {
            return Ok(());
        };
        let pairs: Vec<(&Endpoint, &Endpoint)> = self
            .endpoints
            .iter()
            .flatten()
            .filter(|e| {
                e.config.name != ep.config.name
                    && e.network == ep.network
                    && is_shim(&e.config) != is_shim(&ep.config)
            })
            .map(|e| {
                if is_shim(&ep.config) {
                    (ep, e)
                } else {
                    (e, ep)
                }
            })
            .collect();
        for (shim, to) in pairs {
            let (shim, to_ip) = (&shim.config, to.dhcp.flatten().unwrap_or(to.config.ip));
            // A DHCP endpoint without a lease has no route yet; it comes
            // with the lease (`lease_route`).
            let v4 = (!to_ip.is_unspecified()).then_some((IpAddr::V4(to_ip), 32));
            // IPv6 only where both sides have it: the shim of a network that
            // became dual stack while an endpoint was kept has none for it.
            let v6 = shim.ip6.and(to.config.ip6).map(|ip| (IpAddr::V6(ip), 128));
            for (dest, len) in v4.into_iter().chain(v6) {
                if add {
                    netlink::add_link_route(&shim.ifname, dest, len)?;
                } else {
                    netlink::del_link_route(&shim.ifname, dest, len)?;
                }
            }
        }
        Ok(())
    }

    /// Adds (or deletes) the host shim's route to `ip`, a lease of endpoint
    /// `id`, if its network has a shim.
    pub(super) fn lease_route(&self, id: EndpointId, ip: std::net::Ipv4Addr, add: bool) {
        let Some(ep) = self.endpoint(id) else { return };
        let shim = self
            .endpoints
            .iter()
            .flatten()
            .find(|e| e.network == ep.network && is_shim(&e.config));
        let Some(shim) = shim else { return };
        let done = if add {
            netlink::add_link_route(&shim.config.ifname, IpAddr::V4(ip), 32)
        } else {
            netlink::del_link_route(&shim.config.ifname, IpAddr::V4(ip), 32)
        };
        if let Err(e) = done {
            log::warn!(
                "endpoint {}: host shim route to its lease {ip}: {e}",
                ep.config.name
            );
        }
    }

    /// Starts endpoint `id`'s DHCP client if its network is `ipam = "dhcp"`.
    fn start_dhcp_client(&mut self, id: EndpointId) {
        let Some(ep) = self.endpoint(id) else { return };
        let net = self.network_config(ep.network);
        if net.ipam != Ipam::Dhcp || is_shim(&ep.config) {
            return;
        }
        // An endpoint taken over from the last run still holds its lease's
        // address: asked for again first. A new one holds none.
        let previous = netlink::container_ipv4_addresses(&ep.netns_path, &ep.config.ifname)
            .unwrap_or_else(|e| {
                log::warn!("endpoint {}: reading its addresses: {e}", ep.config.name);
                Vec::new()
            })
            .into_iter()
            .find(|&(a, _)| net.subnet.contains(a));
        let spec = crate::control::dhcp::DhcpEndpoint {
            name: ep.config.name.clone(),
            network: net.name.clone(),
            mac: ep.config.mac,
            netns_path: ep.netns_path.clone(),
            ifname: ep.config.ifname.clone(),
            subnet: net.subnet,
            default_route: ep.config.default_route,
            previous,
        };
        self.dhcp.start(spec);
        if let Some(ep) = self.endpoints[usize::from(id.0)].as_mut() {
            ep.dhcp = Some(None);
        }
    }

    /// The FDB of the networks and endpoints in place now.
    pub(super) fn current_fdb(&self) -> Result<Fdb, crate::switch::FdbError> {
        let networks = self
            .networks
            .iter()
            .map(|n| {
                let mut e = NetworkEntry::new(n.config.name.clone(), n.config.vlan, n.config.mode);
                e.flood_queue_len = n.config.bcast_queue_len.max(1);
                e.retired = n.retired;
                e.allow_inner_tags = n.config.allow_inner_tags;
                e.anti_spoof_ip = n.config.anti_spoof == crate::config::AntiSpoof::MacIp;
                e.max_frame = self.config.network_mtu(&n.config, self.parent_mtu) as usize
                    + crate::wire::ETH_HEADER_LEN;
                e.snoop = n.config.multicast == crate::config::Multicast::Snoop;
                e
            })
            .collect();
        let slots = self
            .endpoints
            .iter()
            .map(|e| {
                e.as_ref().map(|e| EndpointEntry {
                    name: e.config.name.clone(),
                    mac: e.config.mac,
                    network: e.network,
                    allowed_sources: e.config.allowed_sources.clone(),
                    rate_limit: e.config.rate_limit,
                    // The host shim speaks for the host, from the host's addresses.
                    // On a DHCP network: the lease's, 0.0.0.0 without one.
                    ip: (!is_shim(&e.config)).then_some(e.dhcp.flatten().unwrap_or(e.config.ip)),
                    ip6: (!is_shim(&e.config)).then_some(e.config.ip6).flatten(),
                })
            })
            .collect();
        Fdb::new(networks, slots)
    }

    /// Hands `fdb` to the workers and the group listener, then asks the
    /// snooping thread for the queries the FDB's new endpoints wait for.
    pub(super) fn publish(&mut self, fdb: Arc<Fdb>) {
        *self.fdb.write().expect("fdb lock") = fdb.clone();
        self.fdb_generation.fetch_add(1, Ordering::Release);
        for w in &self.workers {
            w.commands.send(Command::Fdb(fdb.clone())).ok();
            w.wake.wake();
        }
        for net in self.pending_queries.drain(..) {
            self.query_requests.send(net).ok();
        }
    }

    /// The file where the MACs mvdp put into the parent's unicast filter
    /// are recorded, so that the next start after a kill can tell its own
    /// entries from someone else's.
    pub(super) fn unicast_record(&self) -> PathBuf {
        let mut name = self.config.control.socket.clone().into_os_string();
        name.push(".unicast");
        PathBuf::from(name)
    }

    fn record_unicast(&self) {
        let text: String = self
            .unicast_addresses
            .iter()
            .map(|m| format!("{m}\n"))
            .collect();
        if let Err(e) = std::fs::write(self.unicast_record(), text) {
            log::warn!(
                "cannot record the parent's unicast filter entries in {}: {e}",
                self.unicast_record().display()
            );
        }
    }

    /// Takes back what an earlier mvdp recorded and left (it was killed):
    /// the parent's unicast filter entries are ours to keep or remove, and
    /// the ids in its endpoint interfaces' names go back to the same
    /// endpoints, so that their interfaces are taken over.
    pub(super) fn claim_leftovers(&mut self) {
        match netlink::endpoint_links() {
            Ok(links) => {
                self.leftover_ids = links
                    .into_iter()
                    .filter_map(|l| id_in_host_ifname(&l).map(|id| (l, id)))
                    .collect();
            }
            Err(e) => log::warn!("listing what an earlier mvdp left: {e}"),
        }
        let Ok(text) = std::fs::read_to_string(self.unicast_record()) else {
            return;
        };
        let parent = &self.config.parent.interface;
        let present = netlink::unicast_addresses(parent).unwrap_or_default();
        for mac in text.lines().filter_map(|l| l.trim().parse().ok()) {
            if present.contains(&mac) && !self.unicast_addresses.contains(&mac) {
                self.unicast_addresses.push(mac);
            }
        }
    }

    /// After start-up: deletes what an earlier mvdp left that nothing
    /// wants any more: endpoint interfaces and unicast filter entries.
    pub(super) fn drop_leftovers(&mut self) {
        self.leftover_ids.clear();
        let keep: Vec<String> = self
            .endpoints
            .iter()
            .flatten()
            .map(|e| e.host_ifname.clone())
            .collect();
        match netlink::delete_stale_endpoint_links(&keep) {
            Ok(gone) if !gone.is_empty() => log::info!(
                "deleted {gone:?}, left by an earlier mvdp for endpoints no longer wanted"
            ),
            Ok(_) => {}
            Err(e) => log::warn!("deleting what an earlier mvdp left: {e}"),
        }
        let wanted: Vec<crate::wire::MacAddr> = self
            .endpoints
            .iter()
            .flatten()
            .map(|e| e.config.mac)
            .collect();
        let parent = self.config.parent.interface.clone();
        self.unicast_addresses.retain(|mac| {
            if wanted.contains(mac) {
                return true;
            }
            if let Err(e) = netlink::del_unicast_address(&parent, *mac) {
                log::warn!("{e}");
            }
            false
        });
        self.record_unicast();
    }
}
