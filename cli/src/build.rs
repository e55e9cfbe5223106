//! `quiver build`.

use crate::progress::bar;
use anyhow::{bail, Result};
use clap::Args;
use quiver_index::build::BuildInput;
use quiver_index::dataset::VectorFileReader;
use quiver_index::diskann;
use quiver_index::Metric;
use std::path::PathBuf;

/// `quiver build --kind flat --data FILE --out DIR`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Index kind. Available: flat (exact, multi-threaded brute force), diskann (Vamana graph on
    /// SSD with PQ navigation in RAM).
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
    /// diskann: maximum out-degree R.
    #[arg(long, default_value_t = diskann::DEFAULT_MAX_DEGREE)]
    pub max_degree: usize,
    /// diskann: candidate list size L of the build's greedy searches.
    #[arg(long, default_value_t = diskann::DEFAULT_BUILD_LIST)]
    pub build_list: usize,
    /// diskann: RobustPrune slack alpha of the second pass (the first uses 1).
    #[arg(long, default_value_t = diskann::DEFAULT_ALPHA)]
    pub alpha: f32,
    /// diskann: bytes per PQ code held in RAM (subspaces of 256 centroids) [default: dim / 4].
    #[arg(long)]
    pub pq_bytes: Option<usize>,
    /// diskann: seed of the PQ training sample and the insertion order.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
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
        "diskann" => {
            let params = diskann::DiskAnnParams {
                max_degree: a.max_degree,
                build_list: a.build_list,
                alpha: a.alpha,
                pq_bytes: a.pq_bytes,
                seed: a.seed,
            };
            let bars: std::sync::Mutex<Vec<(diskann::Phase, indicatif::ProgressBar)>> =
                std::sync::Mutex::new(Vec::new());
            let report = |ph: diskann::Phase, done: u64, total: u64| {
                let Ok(mut b) = bars.lock() else { return };
                if b.last().is_none_or(|(p, _)| *p != ph) {
                    if let Some((_, old)) = b.last() {
                        old.finish();
                    }
                    let label = match ph {
                        diskann::Phase::Load => "loading",
                        diskann::Phase::Pq => "pq",
                        diskann::Phase::Pass1 => "vamana a=1",
                        diskann::Phase::Pass2 => "vamana a",
                        diskann::Phase::Write => "writing",
                    };
                    b.push((ph, bar(total, label)));
                }
                if let Some((_, pb)) = b.last() {
                    pb.set_position(done);
                }
            };
            let m = diskann::build(&input, &params, &a.out, &report)?;
            if let Ok(b) = bars.lock() {
                b.iter().for_each(|(_, pb)| pb.finish());
            }
            m
        }
        other => bail!("unknown index kind {other:?} (available: flat, diskann)"),
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
