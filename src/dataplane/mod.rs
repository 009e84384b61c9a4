//! The data plane: per-core worker loops, the flood path and the egress mux.

mod pool;
mod worker;

pub use worker::{
    Command, EndpointIo, Event, EventFd, GroupFrame, Worker, WorkerConfig, WorkerHandle,
    MAX_PORT_FILL, MIN_PORT_FILL,
};
