//! Docker-style address allocation within one network.
//!
//! Reserved first: the subnet's network and broadcast addresses, the gateway,
//! `aux_addresses` and `host_shim`; then every static endpoint `ip`; then each
//! endpoint without `ip` takes the lowest free address of `ip_range` (or of the
//! subnet), in file order. As in Docker's IPAM, an `ip_range`'s own first and
//! last addresses are usable unless they are the subnet's.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::{ConfigError, Ipv4Net, Ipv4Range, Key, NetworkConfig};

/// The addresses of one network: who holds what, and the allocation cursor.
pub(super) struct AddressBook<'a> {
    net: &'a NetworkConfig,
    holders: HashMap<Ipv4Addr, String>,
    cursor: Ipv4Range,
}

impl<'a> AddressBook<'a> {
    /// Reserves the network's own addresses, checking each lies in the subnet
    /// and clashes with no other. `key` is the network's key (`network[0]`).
    pub fn new(net: &'a NetworkConfig, key: &Key) -> Result<AddressBook<'a>, ConfigError> {
        let subnet = net.subnet;
        let mut book = AddressBook {
            net,
            holders: HashMap::new(),
            cursor: net.pool().addresses(),
        };
        book.holders
            .insert(subnet.network(), format!("the network address of {subnet}"));
        book.holders.insert(
            subnet.broadcast(),
            format!("the broadcast address of {subnet}"),
        );
        // With DHCP the gateway is the server's to say (never allocated here anyway).
        if net.ipam == super::Ipam::Static {
            book.reserve(
                key.field("gateway"),
                net.gateway,
                format!("the gateway of network {:?}", net.name),
            )?;
        }
        for (i, &aux) in net.aux_addresses.iter().enumerate() {
            book.reserve(
                key.field("aux_addresses").index(i),
                aux,
                format!("aux_addresses[{i}] of network {:?}", net.name),
            )?;
        }
        if let Some(shim) = net.host_shim {
            book.reserve(
                key.field("host_shim"),
                shim,
                format!("the host shim of network {:?}", net.name),
            )?;
        }
        Ok(book)
    }

    /// Claims `ip` for `holder`: it must lie in the subnet and be free.
    pub fn reserve(&mut self, key: Key, ip: Ipv4Addr, holder: String) -> Result<(), ConfigError> {
        if !self.net.subnet.contains(ip) {
            return Err(ConfigError::OutsideSubnet {
                key,
                ip,
                subnet: self.net.subnet,
            });
        }
        if let Some(other) = self.holders.get(&ip) {
            return Err(ConfigError::DuplicateIp {
                key,
                ip,
                other: other.clone(),
            });
        }
        self.holders.insert(ip, holder);
        Ok(())
    }

    /// Takes the lowest free address of the pool for `holder`.
    pub fn allocate(&mut self, key: Key, holder: String) -> Result<Ipv4Addr, ConfigError> {
        // The holders set only grows, so addresses behind the cursor stay taken.
        let ip = self
            .cursor
            .by_ref()
            .find(|ip| !self.holders.contains_key(ip))
            .ok_or_else(|| ConfigError::PoolExhausted {
                key,
                pool: self.pool(),
                network: self.net.name.clone(),
            })?;
        self.holders.insert(ip, holder);
        Ok(ip)
    }

    fn pool(&self) -> Ipv4Net {
        self.net.pool()
    }
}
