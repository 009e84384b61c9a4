//! Link inspection: `ip -n <ns> link`, and the tcx programs on a link.

use super::netns::Netns;

/// True if `ifname` exists in `ns`.
pub fn link_exists(ns: &Netns, ifname: &str) -> bool {
    ns.ip_output(&["link", "show", "dev", ifname])
        .status
        .success()
}

/// Names of every link in `ns` (without the `@peer` suffix).
pub fn list_links(ns: &Netns) -> Vec<String> {
    ns.ip(&["-o", "link", "show"])
        .lines()
        .filter_map(|line| {
            let name = line.split(": ").nth(1)?;
            Some(name.split('@').next()?.to_string())
        })
        .collect()
}

/// True if an XDP program is attached to `ifname` in `ns`, in any mode: the
/// link line of `ip -d link show` carries `xdp`, `xdpgeneric`, `xdpdrv`,
/// `xdpoffload` or `xdpmulti`, and the details a `prog/xdp` entry.
pub fn xdp_attached(ns: &Netns, ifname: &str) -> bool {
    let out = ns.ip_output(&["-d", "link", "show", "dev", ifname]);
    if !out.status.success() {
        return false;
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .any(|token| {
            matches!(
                token,
                "xdp" | "xdpgeneric" | "xdpdrv" | "xdpoffload" | "xdpmulti"
            ) || token.starts_with("prog/xdp")
        })
}

/// The MAC address of `ifname` in `ns`. Panics if there is none.
pub fn link_mac(ns: &Netns, ifname: &str) -> [u8; 6] {
    let out = ns.ip(&["-o", "link", "show", "dev", ifname]);
    let text = out
        .split_whitespace()
        .skip_while(|t| *t != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("{ifname} in {} has no MAC: {out}", ns.name()));
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next().expect("six MAC octets");
        *byte = u8::from_str_radix(part, 16).expect("hex MAC octet");
    }
    mac
}

/// The names of the tcx programs on `ifname`'s ingress in `ns`.
pub fn tcx_programs(ns: &Netns, ifname: &str) -> Vec<String> {
    let ifname = ifname.to_string();
    ns.in_ns(move || {
        match aya::programs::SchedClassifier::query_tcx(
            &ifname,
            aya::programs::TcAttachType::Ingress,
        ) {
            Ok((_, programs)) => programs
                .iter()
                .map(|p| p.name_as_str().unwrap_or("?").to_string())
                .collect(),
            // No device left, or nothing ever attached: nothing is there.
            Err(_) => Vec::new(),
        }
    })
}
