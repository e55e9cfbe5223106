//! # quiver-server: the product users talk to
//!
//! - [`engine`]: collections under a data directory; each is a write-ahead log, an in-memory
//!   segment and immutable on-disk segments of any index kind, with tombstones, payload
//!   indexes and filters ([`engine::collection`] has the write, flush and recovery protocol).
//! - [`service`]: the gRPC services of `proto/quiver.proto` (compiled by build.rs with protox,
//!   no protoc needed) over the engine, with API-key checks; [`convert`] maps wire types.
//! - [`serve`]: configuration and the run loop (TCP_NODELAY, TLS, health, metrics, shutdown).
//! - [`metrics`]: Prometheus text on a side listener.

pub mod convert;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod serve;
pub mod service;

/// Generated protobuf types, service traits and clients (package `quiver.v1`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("quiver.v1");
}

pub use error::{Result, ServerError};
