//! `quiver build`.

use crate::progress::bar;
use anyhow::{bail, Result};
use clap::Args;
use quiver_index::build::BuildInput;
use quiver_index::dataset::VectorFileReader;
use quiver_index::Metric;
use std::path::PathBuf;

/// `quiver build --kind flat --data FILE --out DIR`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Index kind. Available: flat (exact, multi-threaded brute force).
    #[arg(long, default_value = "flat")]
    pub kind: String,
    /// Vector file (fbin, u8bin, i8bin, f16bin, fvecs, bvecs, npy).
    #[arg(long)]
    pub data: PathBuf,
    /// Output index directory (created; must not hold other files).
    #[arg(long)]
    pub out: PathBuf,
    /// Metric: l2, ip or cosine.
    #[arg(long, default_value = "l2")]
    pub metric: Metric,
    /// External ids, one u64 or string per line (default: row numbers).
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// Payloads, one JSON object per line (JSONL).
    #[arg(long)]
    pub payloads: Option<PathBuf>,
}

/// Runs `quiver build`.
pub fn run(a: BuildArgs) -> Result<()> {
    let input = BuildInput {
        data: a.data.clone(),
        ids: a.ids,
        payloads: a.payloads,
        metric: a.metric,
    };
    let t = std::time::Instant::now();
    let n = VectorFileReader::open(&a.data)?.rows() as u64;
    let m = match a.kind.as_str() {
        "flat" => {
            let pb = bar(n, "writing");
            let m = quiver_index::flat::build(&input, &a.out, &|done| pb.set_position(done))?;
            pb.finish_and_clear();
            m
        }
        other => bail!("unknown index kind {other:?} (available: flat)"),
    };
    let bytes: u64 = m
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(a.out.join(f)).ok())
        .map(|md| md.len())
        .sum();
    let report = serde_json::json!({
        "index": m.kind, "n": m.n, "dim": m.dim, "metric": m.metric.to_string(), "element": m.element.to_string(),
        "build_seconds": t.elapsed().as_secs_f64(), "peak_rss_bytes": crate::bench::peak_rss_bytes(), "index_bytes": bytes,
    });
    println!("{report}");
    Ok(())
}
