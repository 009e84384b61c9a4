//! Config parsing and validation: never a panic, an error always names a
//! key or a line, and a config that validates holds what validation
//! promises (checked below).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mvdp::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match Config::parse(text) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "an error that says nothing");
            return;
        }
    };
    let _ = config.summary();
    // No network is valid (they may all come at run time); then no endpoint.
    assert!(
        !config.networks.is_empty() || config.endpoints.is_empty(),
        "endpoints without a network"
    );
    let mut ips = Vec::new();
    let mut macs = Vec::new();
    for ep in &config.endpoints {
        let net = config
            .network(&ep.network)
            .expect("an endpoint on an unknown network");
        assert!(net.subnet.contains(ep.ip), "{} outside its subnet", ep.ip);
        assert_ne!(ep.ip, net.gateway, "an endpoint on the gateway's address");
        assert!(
            !ips.contains(&(&ep.network, ep.ip)),
            "an address used twice"
        );
        ips.push((&ep.network, ep.ip));
        assert!(!ep.mac.is_multicast(), "a group MAC for an endpoint");
        assert!(!macs.contains(&(net.vlan, ep.mac)), "a MAC used twice");
        macs.push((net.vlan, ep.mac));
    }
    for net in &config.networks {
        assert!(
            !net.allow_inner_tags || net.vlan.is_some(),
            "inner tags allowed on an untagged network"
        );
    }
});
