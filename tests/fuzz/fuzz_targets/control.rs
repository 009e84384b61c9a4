//! The control socket's requests: decoding never panics, and an
//! `endpoint_add` goes through the same validation as the config file
//! (checked against a fixed config).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mvdp::config::Config;
use mvdp::control::api::{parse_request, Request};

const BASE: &str = r#"
[parent]
interface = "eth0"

[[network]]
name = "lan"
subnet = "192.168.1.0/24"
host_shim = "192.168.1.250"

[[network]]
name = "v50"
vlan = 50
subnet = "10.50.0.0/24"

[[endpoint]]
name = "web"
network = "lan"
netns = "web"
ip = "192.168.1.10"
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(Request::EndpointAdd { endpoint }) = parse_request(line) else {
        return;
    };
    let name = endpoint.name.clone();
    match Config::parse_with(BASE, &[], &[endpoint]) {
        Ok(config) => {
            let ep = config.endpoint(&name).expect("the added endpoint");
            let net = config.network(&ep.network).expect("its network");
            assert!(net.subnet.contains(ep.ip), "{} outside its subnet", ep.ip);
            let web = config.endpoint("web").expect("the file's endpoint");
            if name != "web" {
                assert_ne!(ep.ip, web.ip, "an address in use given again");
            }
        }
        Err(e) => assert!(!e.to_string().is_empty(), "an error that says nothing"),
    }
});
