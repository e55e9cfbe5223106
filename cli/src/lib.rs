//! # quiver-cli: the `quiver` command
//!
//! [`Cli`] is the clap definition; [`run`] dispatches to one module per command family:
//! [`dataset`] (gen, gt, info), [`build`](mod@build), [`bench`](mod@bench) (recall/QPS over an index directory),
//! [`inspect`] (headers and checksums), [`iobench`] (block-read throughput next to fio) and
//! [`client`] (serve, ingest, query, collections: the gRPC server and its command-line client).
//! The only crate that uses `anyhow`; `main.rs` turns an error into a message and exit code 1.

pub mod bench;
mod bench_server;
pub mod build;
pub mod channel;
pub mod client;
pub mod dataset;
pub mod inspect;
pub mod iobench;
mod progress;

use clap::{Parser, Subcommand};

/// Quiver: a vector database whose indices live on SSD.
#[derive(Debug, Parser)]
#[command(name = "quiver", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate, inspect and compute ground truth for vector files.
    #[command(subcommand)]
    Dataset(dataset::DatasetCmd),
    /// Build an index directory from a vector file.
    Build(build::BuildArgs),
    /// Measure recall, QPS, latency and I/O of an index over a query set.
    Bench(bench::BenchArgs),
    /// Dump an index directory's manifest and file headers; `--verify` checks every checksum.
    Inspect(inspect::InspectArgs),
    /// 4 KiB random-read benchmark of the storage backends, next to fio.
    BenchStorage(iobench::IoBenchArgs),
    /// Run the gRPC server (collections, ingest, search) on a data directory.
    Serve(client::ServeArgs),
    /// Stream a vector file (ids, payloads) into a collection on a server.
    Ingest(client::IngestArgs),
    /// Search a collection on a server.
    Query(client::QueryArgs),
    /// List a server's collections.
    Collections(client::CollectionsArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dataset(c) => dataset::run(c),
        Command::Build(a) => build::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::BenchStorage(a) => iobench::run(a),
        Command::Serve(a) => client::serve(a),
        Command::Ingest(a) => client::ingest(a),
        Command::Query(a) => client::query(a),
        Command::Collections(a) => client::collections(a),
    }
}

/// Parses `args` (the first is the program name) and runs them: the entry point tests use.
pub fn run_args<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    run(cli)
}

/// Parses a comma-separated list (`10,20,40`).
pub fn parse_list<T: std::str::FromStr>(s: &str) -> anyhow::Result<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.parse::<T>()
                .map_err(|e| anyhow::anyhow!("bad list item {x:?}: {e}"))
        })
        .collect()
}
