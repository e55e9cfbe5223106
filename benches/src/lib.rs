//! Benchmarks host crate.
