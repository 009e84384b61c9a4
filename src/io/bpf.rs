//! What the loaders of mvdp's BPF objects share (`xdp.rs`, `fastpath.rs`):
//! the map key both programs use, taking maps and programs out of a loaded
//! object, and error text.

use aya::maps::MapError;
use aya::programs::{Program, ProgramError};
use aya::Ebpf;

/// Mirror of `struct mvdp_ep_key` in `bpf/mvdp.h`: an endpoint's (MAC, VID).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EpKey {
    /// The endpoint's MAC.
    pub mac: [u8; 6],
    /// 802.1Q VID in host byte order; 0 = untagged.
    pub vlan: u16,
}

const _: () = assert!(std::mem::size_of::<EpKey>() == 8);

// SAFETY: `EpKey` is `repr(C)`, 8 bytes with no padding (asserted above), and
// every bit pattern is a valid value, as `Pod` requires.
unsafe impl aya::Pod for EpKey {}

/// Takes map `name` out of `bpf` as the type `convert` makes of it; the
/// error says what was wrong, for the caller's "missing map" error.
pub(crate) fn take_map<M>(
    bpf: &mut Ebpf,
    name: &str,
    convert: impl FnOnce(aya::maps::Map) -> Result<M, MapError>,
) -> Result<M, String> {
    let map = bpf.take_map(name).ok_or("not found")?;
    convert(map).map_err(|e| e.to_string())
}

/// Program `name` of `bpf` as the program type `P`; the error says what was
/// wrong, for the caller's "missing program" error.
pub(crate) fn program<'a, P>(bpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, String>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    let program = bpf.program_mut(name).ok_or("not found")?;
    program.try_into().map_err(|e: ProgramError| e.to_string())
}

/// An error and its sources, joined with ": " (aya keeps errno in `source()`),
/// skipping a source whose text its parent already printed.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// The names of a C enum's members in `header`, in order.
#[cfg(test)]
pub(crate) fn c_enum_names(header: &str, name: &str) -> Vec<String> {
    header
        .split(&format!("enum {name} {{"))
        .nth(1)
        .and_then(|rest| rest.split("};").next())
        .unwrap_or_else(|| panic!("no enum {name} in the header"))
        .lines()
        .filter_map(|line| line.trim().split([' ', ',', '\t', '=']).next())
        .filter(|n| n.starts_with("MVDP_"))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_matches_header() {
        let header = include_str!("../../bpf/mvdp.h");
        assert!(header.contains("struct mvdp_ep_key {\n\t__u8 mac[6];\n\t__u16 vlan;\n};"));
        assert_eq!(std::mem::size_of::<EpKey>(), 8);
        assert_eq!(std::mem::align_of::<EpKey>(), 2);
    }

    #[test]
    fn error_chain_shows_errno_once() {
        let io = std::io::Error::from_raw_os_error(libc::EOPNOTSUPP);
        let error = ProgramError::SyscallError(aya::sys::SyscallError {
            call: "bpf_link_create",
            io_error: io,
        });
        let text = chain(&error);
        assert!(text.starts_with("`bpf_link_create` failed: "), "{text}");
        assert_eq!(text.matches("os error 95").count(), 1, "{text}");
    }

    #[test]
    fn c_enum_names_in_order() {
        let header = "enum mvdp_x {\n\tMVDP_A = 0,\t/* a */\n\tMVDP_B,\n};\n";
        assert_eq!(c_enum_names(header, "mvdp_x"), ["MVDP_A", "MVDP_B"]);
    }
}
