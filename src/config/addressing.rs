//! Docker-style address allocation within one network, per address family.
//!
//! IPv4, reserved first: the subnet's network and broadcast addresses, the
//! gateway, `aux_addresses` and `host_shim`; then every static endpoint
//! `ip`; then each endpoint without `ip` takes the lowest free address of
//! `ip_range` (or of the subnet), in file order. As in Docker's IPAM, an
//! `ip_range`'s own first and last addresses are usable unless they are the
//! subnet's. IPv6 (`subnet6`) the same way, with the subnet-router anycast
//! address (the subnet's first) in place of network and broadcast.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use super::{
    ConfigError, Ipv4Net, Ipv4Range, Ipv6Addressing, Ipv6Net, Ipv6Range, Key, NetworkConfig,
};

/// A subnet type an [`AddressBook`] allocates from.
pub(super) trait Subnet: Copy + std::fmt::Display {
    /// Its address type.
    type Addr: Copy + Eq + Hash + Into<IpAddr>;
    /// Its addresses in ascending order.
    type Iter: Iterator<Item = Self::Addr>;
    /// Whether `ip` lies in it.
    fn holds(&self, ip: Self::Addr) -> bool;
    /// Every address of it, ascending.
    fn every(&self) -> Self::Iter;
}

impl Subnet for Ipv4Net {
    type Addr = std::net::Ipv4Addr;
    type Iter = Ipv4Range;
    fn holds(&self, ip: Self::Addr) -> bool {
        self.contains(ip)
    }
    fn every(&self) -> Ipv4Range {
        self.addresses()
    }
}

impl Subnet for Ipv6Net {
    type Addr = std::net::Ipv6Addr;
    type Iter = Ipv6Range;
    fn holds(&self, ip: Self::Addr) -> bool {
        self.contains(ip)
    }
    fn every(&self) -> Ipv6Range {
        self.addresses()
    }
}

/// The addresses of one network in one family: who holds what, and the
/// allocation cursor.
pub(super) struct AddressBook<N: Subnet> {
    network: String,
    subnet: N,
    pool: N,
    holders: HashMap<N::Addr, String>,
    cursor: N::Iter,
}

/// The IPv4 book of `net`, with the network's own addresses reserved
/// (checked: inside the subnet, no clashes). `key` is the network's key.
pub(super) fn ipv4_book(
    net: &NetworkConfig,
    key: &Key,
) -> Result<AddressBook<Ipv4Net>, ConfigError> {
    let subnet = net.subnet;
    let mut book = AddressBook::empty(&net.name, subnet, net.pool());
    book.holders
        .insert(subnet.network(), format!("the network address of {subnet}"));
    book.holders.insert(
        subnet.broadcast(),
        format!("the broadcast address of {subnet}"),
    );
    // With DHCP the gateway is the server's to say (never allocated here anyway).
    if net.ipam == super::Ipam::Static {
        book.reserve_own(key, "gateway", net.gateway, "the gateway")?;
    }
    for (i, &aux) in net.aux_addresses.iter().enumerate() {
        book.reserve(
            key.field("aux_addresses").index(i),
            aux,
            format!("aux_addresses[{i}] of network {:?}", net.name),
        )?;
    }
    if let Some(shim) = net.host_shim {
        book.reserve_own(key, "host_shim", shim, "the host shim")?;
    }
    Ok(book)
}

/// The IPv6 book of a dual-stack network, like [`ipv4_book`]. IPv6 aux
/// addresses are named by their place in the one `aux_addresses` list.
pub(super) fn ipv6_book(
    net: &NetworkConfig,
    v6: &Ipv6Addressing,
    key: &Key,
) -> Result<AddressBook<Ipv6Net>, ConfigError> {
    let subnet = v6.subnet;
    let mut book = AddressBook::empty(&net.name, subnet, v6.pool());
    book.holders.insert(
        subnet.network(),
        format!("the subnet-router anycast address of {subnet}"),
    );
    book.reserve_own(key, "gateway6", v6.gateway, "the IPv6 gateway")?;
    for (&aux, &i) in v6.aux_addresses.iter().zip(&v6.aux_positions) {
        book.reserve(
            key.field("aux_addresses").index(i),
            aux,
            format!("aux_addresses[{i}] of network {:?}", net.name),
        )?;
    }
    if let Some(shim) = v6.host_shim {
        book.reserve_own(key, "host_shim6", shim, "the host shim")?;
    }
    Ok(book)
}

impl<N: Subnet> AddressBook<N> {
    fn empty(network: &str, subnet: N, pool: N) -> AddressBook<N> {
        AddressBook {
            network: network.to_string(),
            subnet,
            pool,
            holders: HashMap::new(),
            cursor: pool.every(),
        }
    }

    /// Reserves one of the network's own addresses, under its key `field`.
    fn reserve_own(
        &mut self,
        key: &Key,
        field: &'static str,
        ip: N::Addr,
        what: &str,
    ) -> Result<(), ConfigError> {
        let holder = format!("{what} of network {:?}", self.network);
        self.reserve(key.field(field), ip, holder)
    }

    /// Claims `ip` for `holder`: it must lie in the subnet and be free.
    pub fn reserve(&mut self, key: Key, ip: N::Addr, holder: String) -> Result<(), ConfigError> {
        if !self.subnet.holds(ip) {
            return Err(ConfigError::OutsideSubnet {
                key,
                ip: ip.into(),
                subnet: self.subnet.to_string(),
            });
        }
        if let Some(other) = self.holders.get(&ip) {
            return Err(ConfigError::DuplicateIp {
                key,
                ip: ip.into(),
                other: other.clone(),
            });
        }
        self.holders.insert(ip, holder);
        Ok(())
    }

    /// Takes the lowest free address of the pool for `holder`.
    pub fn allocate(&mut self, key: Key, holder: String) -> Result<N::Addr, ConfigError> {
        // The holders set only grows, so addresses behind the cursor stay taken.
        let ip = self
            .cursor
            .by_ref()
            .find(|ip| !self.holders.contains_key(ip))
            .ok_or_else(|| ConfigError::PoolExhausted {
                key,
                pool: self.pool.to_string(),
                network: self.network.clone(),
            })?;
        self.holders.insert(ip, holder);
        Ok(ip)
    }
}
