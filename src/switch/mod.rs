//! The switch: the forwarding database, the multicast group table and
//! `classify(frame) -> Verdict`.
//!
//! Pure code: no I/O, no clock, no allocation per frame. It runs unchanged in
//! the workers, in unit tests and in the criterion bench.

mod classify;
mod fdb;
mod groups;

pub use classify::{
    classify_egress, classify_ingress, flood_targets, ingress_drop_endpoint, snoop_egress,
    snoop_query, DropReason, Flood, FloodRule, Verdict,
};
pub use fdb::{
    EndpointEntry, EndpointId, Fdb, FdbError, Mode, NetworkEntry, NetworkId, RateLimit,
    ENDPOINT_SLOTS, MAX_ENDPOINTS, MAX_HOST_SHIMS,
};
pub use groups::{GroupTable, Memberships, SnoopEvent, MEMBERSHIP_INTERVAL};
