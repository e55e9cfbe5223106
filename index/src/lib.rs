//! # quiver-index: vectors, distances and the indices
//!
//! - [`metric`]: [`Metric`] (L2, inner product, cosine) and [`ElementType`] (f32, f16, i8, u8).
//! - [`distance`]: the [`distance::Element`] trait — simsimd kernels behind a safe API — and the
//!   [`distance::scalar`] reference. [`topk`]: bounded selection and merging with id tie-breaks.
//! - [`dataset`]: streaming readers/writers of fvecs/ivecs/bvecs, fbin/ibin/u8bin/i8bin and npy;
//!   [`synth`] generates realistic mixtures; [`analysis`] measures LID and relative contrast;
//!   [`gt`] writes exact ground truth.
//! - [`contract`]: the one search trait ([`VectorIndex`]), its params and stats, and [`open`],
//!   which reads an index directory's [`manifest`] and picks the implementation by kind.
//! - [`diskann`]: the SSD graph index (Vamana + PQ navigation + beam search); [`kmeans`] is the
//!   shared clustering step. [`hnsw`]: the in-memory graph index, loaded or served through mmap.
//! - [`spann`]: the clustering index on SSD (SPANN and IVF-Flat: centroids and their HNSW
//!   router in RAM, size-capped posting lists on disk).
//! - [`flat`]: the exact index. [`ids`] and [`payloads`] are the files beside every index that
//!   let a server attach the directory as a segment.

pub mod analysis;
mod blobs;
pub mod build;
pub mod contract;
pub mod dataset;
pub mod diskann;
pub mod distance;
pub mod error;
pub mod flat;
pub mod gt;
pub mod hnsw;
pub mod ids;
pub mod kmeans;
pub mod manifest;
pub mod metric;
pub mod payloads;
pub mod scan;
mod simd;
pub mod spann;
pub mod synth;
pub mod topk;

pub use contract::{open, OpenOptions, SearchParams, SearchStats, VectorIndex};
pub use error::{IndexError, Result};
pub use metric::{ElementType, Metric};
pub use topk::Neighbor;
