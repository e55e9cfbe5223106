//! `quiver bench`: recall@k, QPS, latency percentiles, reads and bytes per query, cache hit ratio
//! and RSS of an index directory over a query file, one row (or JSON line) per parameter setting.

use crate::parse_list;
use crate::progress::bar;
use anyhow::{bail, Context, Result};
use clap::Args;
use quiver_index::dataset::read_matrix;
use quiver_index::gt::dist_path;
use quiver_index::{open, Neighbor, OpenOptions, SearchParams, SearchStats, VectorIndex};
use quiver_storage::io::Backend;
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

/// `quiver bench --index DIR --queries FILE --gt FILE`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Index directory (or --server and --collection). Given with --server too, the same
    /// segment is also searched in this process, in phases that alternate with the server's, so
    /// both sides see the same disk (whose speed drifts between runs): a paired comparison.
    #[arg(long, required_unless_present = "server")]
    pub index: Option<PathBuf>,
    /// Paired runs: queries per request in flight in each phase (1 at --threads 1 alternates
    /// query by query).
    #[arg(long, default_value_t = 1)]
    pub pair_queries: usize,
    /// Bench a collection on a running server instead (e.g. http://127.0.0.1:6334); --threads
    /// is then the number of concurrent requests.
    #[arg(long, requires = "collection")]
    pub server: Option<String>,
    /// With --server: the collection (its ids must be the ground truth's row numbers).
    #[arg(long)]
    pub collection: Option<String>,
    /// Query vector file.
    #[arg(long)]
    pub queries: PathBuf,
    /// Ground-truth ids (ibin/ivecs); distances are read from STEM_dist.fbin beside it if present.
    #[arg(long)]
    pub gt: PathBuf,
    /// Neighbours per query.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Search threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Queries each thread searches together, for indices that interleave their reads
    /// (diskann); a query's latency is then its group's time.
    #[arg(long, default_value_t = 8)]
    pub interleave: usize,
    /// Dataset name for the report (default: the query file's directory name).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Use at most this many queries.
    #[arg(long)]
    pub max_queries: Option<usize>,
    /// Read backend: pread, mmap or uring.
    #[arg(long, default_value = "pread")]
    pub backend: String,
    /// Block-cache budgets to sweep (bytes, comma list).
    #[arg(long, default_value = "0")]
    pub cache_bytes: String,
    /// Graph nodes pinned at open on top of a dynamic cache of --cache-bytes (default: half of
    /// --cache-bytes pins hot nodes, half is the dynamic cache).
    #[arg(long)]
    pub hot_nodes: Option<usize>,
    /// HNSW candidate list sizes (comma list).
    #[arg(long)]
    pub ef: Option<String>,
    /// DiskANN candidate list sizes (comma list).
    #[arg(long)]
    pub search_list: Option<String>,
    /// DiskANN beam widths (comma list).
    #[arg(long)]
    pub beam_width: Option<String>,
    /// IVF lists probed (comma list).
    #[arg(long)]
    pub nprobe: Option<String>,
    /// SPANN pruning slack (comma list).
    #[arg(long)]
    pub eps: Option<String>,
    /// SPANN maximum lists (comma list).
    #[arg(long)]
    pub max_lists: Option<String>,
    /// SPANN with SQ8 lists: candidates re-ranked at full precision (comma list; 0 = none: the
    /// codes' estimated distances, so recall is counted by id).
    #[arg(long)]
    pub rerank: Option<String>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One measured setting, with the keys of docs/BENCHMARKS.md.
#[derive(Debug, serde::Serialize)]
pub struct BenchRow {
    /// Dataset name.
    pub dataset: String,
    /// Vectors in the index.
    pub n: usize,
    /// Dimension.
    pub dim: usize,
    /// Metric.
    pub metric: String,
    /// k.
    pub k: usize,
    /// Index kind.
    pub index: String,
    /// Search knobs of this row.
    pub params: serde_json::Value,
    /// Search threads.
    pub threads: usize,
    /// Queries searched together per thread.
    pub interleave: usize,
    /// Cache budget.
    pub cache_bytes: u64,
    /// Graph nodes pinned at open, when given explicitly.
    pub hot_nodes: Option<usize>,
    /// Mean recall@k (ties at the k-th true distance count as hits).
    pub recall: f64,
    /// Queries per second over the wall time of the run.
    pub qps: f64,
    /// Median latency.
    pub p50_us: f64,
    /// 95th percentile latency.
    pub p95_us: f64,
    /// 99th percentile latency.
    pub p99_us: f64,
    /// Mean disk reads per query.
    pub mean_ios: f64,
    /// Mean bytes read per query.
    pub mean_read_bytes: f64,
    /// Cache hits / (hits + reads).
    pub cache_hit_ratio: f64,
    /// Resident set size after the run.
    pub rss_bytes: u64,
    /// Resident set size after the run minus before the index was opened (queries and ground
    /// truth are loaded before): what opening and searching the index holds.
    pub index_rss_bytes: i64,
    /// What the index holds in RAM by design, by component ([`VectorIndex::memory`]).
    pub index_memory: serde_json::Map<String, serde_json::Value>,
    /// The sum of `index_memory`.
    pub index_memory_bytes: u64,
    /// Queries measured.
    pub queries: usize,
    /// Mean distance computations per query.
    pub mean_distances: f64,
    /// Mean posting lists probed per query (clustering indices).
    pub mean_lists: f64,
    /// With --server: the client's CPU time over the run's wall time (cores busy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cpu_cores: Option<f64>,
    /// Paired runs (`--server` with `--index`): queries per phase; the two sides alternate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pair_phase_queries: Option<usize>,
    /// With --server: the median of the server's own time per search (its response stats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_p50_us: Option<f64>,
}

/// Cache hits / (hits + reads), 0 when there were neither.
pub fn hit_ratio(reads: u64, hits: u64) -> f64 {
    if reads + hits == 0 {
        0.0
    } else {
        hits as f64 / (reads + hits) as f64
    }
}

/// Prints a row as JSON or as a table line.
pub fn emit(row: &BenchRow, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(row)?);
    } else {
        println!(
            "{:<24} {:>7.4} {:>9.1} {:>9.0} {:>9.0} {:>9.0} {:>8.1} {:>10.0} {:>6.1} {:>10.1}",
            row.params.to_string(),
            row.recall,
            row.qps,
            row.p50_us,
            row.p95_us,
            row.p99_us,
            row.mean_ios,
            row.mean_read_bytes,
            100.0 * row.cache_hit_ratio,
            row.rss_bytes as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}

/// Prints the table header (unless JSON).
fn header(json: bool) {
    if !json {
        println!(
            "{:<24} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>10} {:>6} {:>10}",
            "params",
            "recall",
            "qps",
            "p50_us",
            "p95_us",
            "p99_us",
            "ios/q",
            "bytes/q",
            "hit%",
            "rss_MiB"
        );
    }
}

/// Reads a `VmRSS`-style line of /proc/self/status in bytes (0 where unavailable).
fn proc_status_bytes(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Current resident set size.
pub fn rss_bytes() -> u64 {
    proc_status_bytes("VmRSS:")
}

/// Peak resident set size.
pub fn peak_rss_bytes() -> u64 {
    proc_status_bytes("VmHWM:")
}

/// Ground truth: ids and, if available, distances, `k_gt` per query.
pub struct GroundTruth {
    ids: Vec<i32>,
    dists: Option<Vec<f32>>,
    k_gt: usize,
}

impl GroundTruth {
    /// Loads `path` and its `_dist.fbin` companion if present.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let m = read_matrix(path)?;
        let ids = m
            .as_i32()
            .with_context(|| format!("{}: ground truth must hold i32 ids", path.display()))?
            .to_vec();
        let dp = dist_path(path);
        let dists = if dp.exists() {
            let d = read_matrix(&dp)?;
            if d.dim != m.dim || d.rows() != m.rows() {
                bail!(
                    "{}: {} x {} does not match {} ({} x {})",
                    dp.display(),
                    d.rows(),
                    d.dim,
                    path.display(),
                    m.rows(),
                    m.dim
                );
            }
            Some(d.to_f32())
        } else {
            None
        };
        Ok(GroundTruth {
            ids,
            dists,
            k_gt: m.dim,
        })
    }

    /// Queries covered.
    pub fn rows(&self) -> usize {
        self.ids.len() / self.k_gt.max(1)
    }

    /// recall@k of one result list for query `q`: with distances, a result is a hit if its
    /// distance is within the k-th true distance (relative slack 1e-5); otherwise id overlap.
    pub fn recall(&self, q: usize, res: &[Neighbor], k: usize) -> f64 {
        match &self.dists {
            Some(d) => {
                let kth = d[q * self.k_gt + k - 1];
                let thr = kth + 1e-5 * kth.abs();
                res.iter().take(k).filter(|r| r.dist <= thr).count() as f64 / k as f64
            }
            None => self.recall_ids(q, res, k),
        }
    }

    /// recall@k by id overlap alone (for results whose distances are estimates).
    pub fn recall_ids(&self, q: usize, res: &[Neighbor], k: usize) -> f64 {
        let truth = &self.ids[q * self.k_gt..q * self.k_gt + k];
        let hits = res
            .iter()
            .take(k)
            .filter(|r| truth.contains(&(r.id as i32)))
            .count();
        hits as f64 / k as f64
    }
}

pub(crate) fn grid(a: &BenchArgs, index: &dyn VectorIndex) -> Result<Vec<SearchParams>> {
    fn opt<T: std::str::FromStr>(s: &Option<String>) -> Result<Vec<Option<T>>>
    where
        T::Err: std::fmt::Display,
    {
        Ok(match s {
            Some(s) => parse_list::<T>(s)?.into_iter().map(Some).collect(),
            None => vec![None],
        })
    }
    let any = [
        &a.ef,
        &a.search_list,
        &a.beam_width,
        &a.nprobe,
        &a.eps,
        &a.max_lists,
        &a.rerank,
    ]
    .iter()
    .any(|x| x.is_some());
    if !any {
        return Ok(index.default_grid());
    }
    let mut out = Vec::new();
    for ef in opt(&a.ef)? {
        for search_list in opt(&a.search_list)? {
            for beam_width in opt(&a.beam_width)? {
                for nprobe in opt(&a.nprobe)? {
                    for eps in opt(&a.eps)? {
                        for max_lists in opt(&a.max_lists)? {
                            for rerank in opt(&a.rerank)? {
                                out.push(SearchParams {
                                    ef,
                                    search_list,
                                    beam_width,
                                    nprobe,
                                    eps,
                                    max_lists,
                                    rerank,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One query's results, stats and latency in microseconds.
type Measured = (Vec<Neighbor>, SearchStats, f64);

/// Runs every query of `queries` against `index` with `params` on the threads of `pool` (one
/// pool for the whole sweep: per-thread state such as io_uring rings is then set up once, and
/// the RSS the sweep reports is not inflated by rings of threads that have exited).
pub fn measure(
    index: &dyn VectorIndex,
    queries: &[f32],
    gt: &GroundTruth,
    k: usize,
    params: &SearchParams,
    pool: &rayon::ThreadPool,
    interleave: usize,
) -> Result<(f64, f64, Vec<f64>, SearchStats)> {
    let dim = index.manifest().dim;
    let nq = queries.len() / dim;
    let pb = bar(nq as u64, "searching");
    let t0 = Instant::now();
    // Indices that interleave get groups searched together (a query's latency is its group's);
    // the others get chunks of queries searched one by one and timed one by one, so the
    // per-task overhead of the pool does not count as search time.
    let (group, chunk) = if index.interleaves() {
        (interleave.max(1), interleave.max(1))
    } else {
        (1, 64)
    };
    let results: Vec<Result<Vec<Measured>>> = pool.install(|| {
        queries
            .par_chunks(dim * chunk)
            .with_max_len(1)
            .map(|qs| {
                let mut out = Vec::with_capacity(chunk);
                for g in qs.chunks(dim * group) {
                    let t = Instant::now();
                    let res = index.search_batch(g, k, params, None)?;
                    let us = t.elapsed().as_secs_f64() * 1e6;
                    out.extend(res.into_iter().map(|(r, s)| (r, s, us)));
                }
                pb.inc(out.len() as u64);
                Ok(out)
            })
            .collect()
    });
    let wall = t0.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let mut recall = 0.0;
    let mut lat = Vec::with_capacity(nq);
    let mut total = SearchStats::default();
    let flat: Vec<Measured> = results
        .into_iter()
        .enumerate()
        .map(|(ci, r)| r.with_context(|| format!("queries {} to {}", ci * chunk, (ci + 1) * chunk)))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    // Without re-rank, distances are estimates: hits are counted by id.
    let by_ids = params.rerank == Some(0);
    for (qi, (res, s, us)) in flat.into_iter().enumerate() {
        recall += if by_ids {
            gt.recall_ids(qi, &res, k)
        } else {
            gt.recall(qi, &res, k)
        };
        lat.push(us);
        total += s;
    }
    lat.sort_by(f64::total_cmp);
    Ok((recall / nq.max(1) as f64, nq as f64 / wall, lat, total))
}

/// Runs `quiver bench`.
pub fn run(a: BenchArgs) -> Result<()> {
    let backend: Backend = a.backend.parse()?;
    let caches: Vec<u64> = parse_list(&a.cache_bytes)?;
    let qm = read_matrix(&a.queries)?;
    let gt = GroundTruth::load(&a.gt)?;
    if a.k == 0 || a.k > gt.k_gt {
        bail!(
            "-k {} must be in 1..={} (the ground truth holds {} per query)",
            a.k,
            gt.k_gt,
            gt.k_gt
        );
    }
    let mut queries = qm.to_f32();
    let mut nq = qm.rows().min(gt.rows());
    if let Some(m) = a.max_queries {
        nq = nq.min(m);
    }
    queries.truncate(nq * qm.dim);
    let dataset = a.dataset.clone().unwrap_or_else(|| {
        a.queries
            .parent()
            .and_then(|p| p.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    header(a.json);
    if let Some(server) = &a.server {
        return crate::bench_server::run(&a, server, &queries, qm.dim, &gt, &dataset);
    }
    let Some(index_dir) = &a.index else {
        bail!("give --index or --server");
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.max(1))
        .build()?;
    for &cache_bytes in &caches {
        let rss_before = rss_bytes();
        let index = open(
            index_dir,
            &OpenOptions {
                backend,
                cache_bytes,
                hot_nodes: a.hot_nodes,
            },
        )?;
        let m = index.manifest().clone();
        if m.dim != qm.dim {
            bail!(
                "{}: queries have dimension {}, the index {}",
                a.queries.display(),
                qm.dim,
                m.dim
            );
        }
        let settings = grid(&a, index.as_ref())?;
        let sweeping = settings.len() > 1
            && [&a.ef, &a.search_list, &a.nprobe, &a.eps]
                .iter()
                .all(|x| x.is_none());
        for params in settings {
            let (recall, qps, lat, s) = measure(
                index.as_ref(),
                &queries,
                &gt,
                a.k,
                &params,
                &pool,
                a.interleave,
            )?;
            let n = nq.max(1) as f64;
            let memory = index.memory();
            let rss = rss_bytes();
            let row = BenchRow {
                dataset: dataset.clone(),
                n: m.n,
                dim: m.dim,
                metric: m.metric.to_string(),
                k: a.k,
                index: m.kind.clone(),
                params: serde_json::to_value(&params)?,
                threads: a.threads,
                interleave: a.interleave,
                cache_bytes,
                hot_nodes: a.hot_nodes,
                recall,
                qps,
                p50_us: percentile(&lat, 0.50),
                p95_us: percentile(&lat, 0.95),
                p99_us: percentile(&lat, 0.99),
                mean_ios: s.reads as f64 / n,
                mean_read_bytes: s.read_bytes as f64 / n,
                cache_hit_ratio: hit_ratio(s.reads, s.cache_hits),
                rss_bytes: rss,
                index_rss_bytes: rss as i64 - rss_before as i64,
                index_memory_bytes: memory.iter().map(|(_, b)| b).sum(),
                index_memory: memory
                    .into_iter()
                    .map(|(k, b)| (k.to_string(), b.into()))
                    .collect(),
                queries: nq,
                mean_distances: s.distance_computations as f64 / n,
                mean_lists: s.lists as f64 / n,
                client_cpu_cores: None,
                pair_phase_queries: None,
                server_p50_us: None,
            };
            emit(&row, a.json)?;
            if sweeping && recall >= 0.99 {
                break;
            }
        }
    }
    Ok(())
}
