//! `quiver build`.

use crate::progress::{bar, PhaseBars};
use anyhow::{bail, Result};
use clap::Args;
use quiver_index::build::BuildInput;
use quiver_index::dataset::VectorFileReader;
use quiver_index::Metric;
use quiver_index::{diskann, hnsw, spann};
use std::path::PathBuf;

/// `quiver build --kind flat --data FILE --out DIR`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Index kind. Available: flat (exact, multi-threaded brute force), diskann (Vamana graph on
    /// SSD with PQ navigation in RAM), hnsw (in-memory graph; open with --backend mmap to serve
    /// it from the page cache), spann (centroids + HNSW router in RAM, size-capped posting lists
    /// on SSD, boundary vectors replicated, query-aware pruning), ivf (IVF-Flat: spann with
    /// replication and pruning off).
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
    /// diskann: seed of the PQ training sample and the insertion order; hnsw: seed of the level
    /// draw.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// hnsw: neighbors per node M (2M at level 0).
    #[arg(long, default_value_t = hnsw::DEFAULT_M)]
    pub m: usize,
    /// hnsw: candidate list size of the insertion searches.
    #[arg(long, default_value_t = hnsw::DEFAULT_EF_CONSTRUCTION)]
    pub ef_construction: usize,
    /// spann, ivf: byte cap of one posting list (ids + full vectors).
    #[arg(long, default_value_t = spann::DEFAULT_MAX_LIST_BYTES)]
    pub max_list_bytes: usize,
    /// spann: lists a vector is written to, 1..=8 (ivf: always 1): with --spill soar exactly
    /// this many, with rng at most [default: soar the count the build estimates cheapest, up to
    /// 8; rng at most 8].
    #[arg(long)]
    pub replicas: Option<usize>,
    /// spann: closure slack eps1 - a vector joins lists whose centroid is within (1 + eps1) of
    /// its nearest centroid's squared distance.
    #[arg(long, default_value_t = spann::DEFAULT_CLOSURE_EPS)]
    pub closure_eps: f32,
    /// spann with --spill rng: RNG factor - a list is skipped when an already chosen centroid s
    /// has factor * d(s, c) <= d(x, c); "inf" turns the rule off [default: the first of 1,
    /// 1.25, 1.5, 2 under which a sample of the vectors averages 1 + (replicas - 1) / 7 copies,
    /// 2 at 8 replicas].
    #[arg(long)]
    pub rng_factor: Option<f32>,
    /// spann, ivf: most primary vectors per centroid (sets the number of centroids)
    /// [default: ivf the list cap, spann a sixth of it, at least 16].
    #[arg(long)]
    pub leaf_size: Option<usize>,
    /// spann, ivf: what lists hold - sq8 (a byte per dimension; full vectors in vectors.qbf
    /// re-rank the best candidates) or full (the vectors) [default: ivf full; spann over float
    /// data sq8 when full-precision lists would average more than three 4 KiB blocks with the
    /// copies the RNG rule keeps (estimated on a sample under --spill soar), else full].
    #[arg(long)]
    pub list_codes: Option<String>,
    /// spann: how replicas are placed - soar (each copy where its residual is most orthogonal
    /// to those already placed; without --replicas the build picks how many from an estimate on
    /// sampled vectors) or rng (SPANN's closure and RNG rule: up to --replicas, as many as the
    /// rule keeps).
    #[arg(long, default_value = "soar")]
    pub spill: String,
    /// spann with --spill soar: weight of the orthogonality penalty.
    #[arg(long, default_value_t = spann::DEFAULT_SOAR_LAMBDA)]
    pub soar_lambda: f32,
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
            let bars = PhaseBars::default();
            let m = diskann::build(&input, &params, &a.out, &|ph, done, total| {
                let label = match ph {
                    diskann::Phase::Load => "loading",
                    diskann::Phase::Pq => "pq",
                    diskann::Phase::Pass1 => "vamana a=1",
                    diskann::Phase::Pass2 => "vamana a",
                    diskann::Phase::Write => "writing",
                };
                bars.report(label, done, total)
            })?;
            bars.finish();
            m
        }
        "hnsw" => {
            let params = hnsw::HnswParams {
                m: a.m,
                ef_construction: a.ef_construction,
                seed: a.seed,
            };
            let bars = PhaseBars::default();
            let m = hnsw::build(&input, &params, &a.out, &|ph, done, total| {
                let label = match ph {
                    hnsw::Phase::Load => "loading",
                    hnsw::Phase::Insert => "inserting",
                    hnsw::Phase::Write => "writing",
                };
                bars.report(label, done, total)
            })?;
            bars.finish();
            m
        }
        "spann" | "ivf" => {
            let kind = if a.kind == "spann" {
                spann::ClusterKind::Spann
            } else {
                spann::ClusterKind::Ivf
            };
            let params = spann::SpannParams {
                max_list_bytes: a.max_list_bytes,
                replicas: a.replicas,
                closure_eps: a.closure_eps,
                rng_factor: a.rng_factor,
                leaf_size: a.leaf_size,
                seed: a.seed,
                spill: match a.spill.as_str() {
                    "rng" => spann::Spill::Rng,
                    "soar" => spann::Spill::Soar(a.soar_lambda),
                    other => bail!("--spill {other:?} is not soar or rng"),
                },
                sq8: match a.list_codes.as_deref() {
                    None => None,
                    Some("sq8") => Some(true),
                    Some("full") => Some(false),
                    Some(other) => bail!("--list-codes {other:?} is not sq8 or full"),
                },
            };
            let bars = PhaseBars::default();
            let m = spann::build(&input, kind, &params, &a.out, &|ph, done, total| {
                let label = match ph {
                    spann::Phase::Load => "loading",
                    spann::Phase::Cluster => "clustering",
                    spann::Phase::Router => "router",
                    spann::Phase::Assign => "replicas",
                    spann::Phase::Write => "writing",
                };
                bars.report(label, done, total)
            })?;
            bars.finish();
            m
        }
        other => bail!("unknown index kind {other:?} (available: flat, diskann, hnsw, spann, ivf)"),
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
