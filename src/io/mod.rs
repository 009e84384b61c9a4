//! Ports: everything that makes a syscall to move frames lives here.

mod bpf;
pub mod dhcp;
pub mod fastpath;
pub mod limits;
pub mod memory;
pub mod packet;
pub mod tap;
pub mod xdp;
pub mod xsk;
