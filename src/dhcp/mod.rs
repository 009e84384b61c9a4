//! DHCP from the LAN (`ipam = "dhcp"` on a network): mvdp runs each
//! endpoint's DHCP client itself, so the container needs none.
//!
//! - [`message`]: the DHCP message codec and its Ethernet/IPv4/UDP framing
//!   (pure, tested with literal bytes).
//! - [`client`]: one endpoint's RFC 2131 state machine, timers on an
//!   injected clock (pure).
//! - [`crate::control::dhcp`]: the thread that runs every endpoint's client
//!   over a packet socket inside the container's namespace and puts the
//!   leased address on the container's interface.

pub mod client;
pub mod message;

pub use client::{Action, Client, Lease, State};
pub use message::{Message, MessageType};
