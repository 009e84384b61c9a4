//! The data plane: per-core worker loops, the flood path and the egress mux.

pub mod limit;
pub mod mem;
mod pool;
pub mod port;
#[cfg(test)]
mod tests;
mod worker;

pub use port::{Frames, Kernel, Ports};
pub use worker::{
    send_snoop, Command, EndpointIo, Event, EventFd, GroupFrame, Worker, WorkerConfig,
    WorkerHandle, MAX_PORT_FILL, MIN_PORT_FILL,
};
