//! SPANN and IVF-Flat: a clustering index whose centroids live in RAM and whose posting lists
//! live on SSD (Chen et al., "SPANN", NeurIPS 2021; microsoft/SPTAG).
//!
//! - **Build.** Rows go to the navigation space (as given for L2, normalised for cosine, and for
//!   inner product augmented with `sqrt(M^2 - |x|^2)` as in [`crate::diskann`], so squared L2
//!   there orders like the metric). [`cluster::hierarchical`] splits them until no primary
//!   cluster exceeds the leaf size, so the number of centroids follows from n and the list cap.
//!   SPANN then copies each vector to more lists: by default with SOAR ([`cluster::soar`]: each
//!   copy where its residual is most orthogonal to the copies already placed), as many copies as
//!   [`plan`] estimates cheapest; or by SPANN's closure ([`cluster::closure`]: within
//!   `(1 + eps1)` of the nearest centroid, at most `replicas` lists, RNG rule). A list that
//!   would exceed `max_list_bytes` keeps its primaries and the replicas nearest its centroid.
//! - **Layout** ([`layout`]): `postings.qbf` holds the centroids, the router graph, a list
//!   directory, a locator (each vector's primary list and position) and the lists, each
//!   block-aligned and contiguous: ids then full-precision vectors.
//! - **Search.** The centroids nearest the query come from an HNSW over the centroids held in
//!   RAM ([`crate::hnsw::RamHnsw`], its rows as 8-bit codes once opened; a flat f32 scan below
//!   [`ROUTER_MIN_LISTS`]). SPANN's query-aware
//!   pruning keeps list j only if `d(q, c_j) <= (1 + eps2) d(q, c_1)`, at most `max_lists`. All
//!   chosen lists of all queries of a batch are read as one batch (io_uring keeps them in flight
//!   together), through the block cache when one is configured; replicated ids are de-duplicated
//!   and every candidate is ranked by its exact distance. With an allow-list (or k above what
//!   the probed lists hold) more lists are read, nearest first, until k eligible are found or no
//!   list is left.
//! - **IVF-Flat** is the same index with replication and pruning off: `nprobe` nearest lists.

pub mod cluster;
pub mod layout;
pub mod plan;
pub mod sq8;

use crate::build::{finish_index_dir, open_input, prepare_out_dir, BuildInput};
use crate::contract::{prepare_query, OpenOptions, SearchParams, SearchStats, VectorIndex};
use crate::diskann::{nav_prefix, nav_query};
use crate::distance::Element;
use crate::error::{IndexError, Result};
use crate::flat::stored_bytes;
use crate::hnsw::RamHnsw;
use crate::manifest::Manifest;
use crate::metric::Metric;
use crate::topk::{Neighbor, TopK};
use layout::{list_blocks, list_bytes, ListInfo, RowLayout, SpannMeta, LIST_INFO_BYTES};
use quiver_storage::cache::{BlockCache, MaybeCached, MokaBlockCache};
use quiver_storage::io::{open_reader_for, Backend, BlockReader, ReadRequest};
use quiver_storage::{BlockFile, BlockFileWriter};
use rayon::prelude::*;
use roaring::RoaringBitmap;
use sq8::{Sq8, SqQuery};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The postings file.
pub const POSTINGS_FILE: &str = "postings.qbf";
/// Full-precision rows for re-ranking, when lists hold SQ8 codes.
pub const VECTORS_FILE: &str = "vectors.qbf";
/// Its one section.
const VECTORS_SECTION: &str = "vectors";
/// Default byte cap of one posting list (SPANN's 12 pages of 4 KiB).
pub const DEFAULT_MAX_LIST_BYTES: usize = 48 * 1024;
/// Default most lists a SPANN vector is written to (SPTAG's ReplicaCount).
pub const DEFAULT_REPLICAS: usize = 8;
/// Default SOAR lambda (the weight cuVS documents for its ScaNN builder; on h100k 0.5 and 2
/// read within 3% of 1.0 at recall 0.90).
pub const DEFAULT_SOAR_LAMBDA: f32 = 1.0;
/// Re-rank reads per query the build's plan charges SQ8 lists (k = 10).
const PLAN_RERANK_READS: f64 = 10.0;
/// Most replicas accepted.
pub const MAX_REPLICAS: usize = 8;
/// Default closure slack eps1 (on squared distances).
pub const DEFAULT_CLOSURE_EPS: f32 = 4.0;
/// RNG factors the build tries, loosest last, when none is given (1.0 is SPTAG's RNGFactor).
pub const RNG_LADDER: [f32; 4] = [1.0, 1.25, 1.5, 2.0];
/// Rows sampled to pick the RNG factor.
const RNG_SAMPLE: usize = 2_000;
/// Least primary vectors per SPANN centroid by default.
pub const MIN_LEAF: usize = 16;
/// Default search pruning slack eps2 of SPANN (on squared distances).
pub const DEFAULT_SEARCH_EPS: f32 = 2.0;
/// Default lists probed (IVF `nprobe`, SPANN `max_lists`).
pub const DEFAULT_LISTS: usize = 16;
/// Most candidates a search may re-rank (`rerank`): a request cannot ask for an unbounded buffer.
pub const MAX_RERANK: usize = 100_000;
/// From this many centroids on, an HNSW routes queries; below it a flat scan does.
pub const ROUTER_MIN_LISTS: usize = 1024;
/// Centroid candidates the closure assignment considers (SPTAG's InternalResultNum).
const CLOSURE_CANDIDATES: usize = 64;
/// Router graph M and ef_construction.
const ROUTER_M: usize = 16;
const ROUTER_EF_CONSTRUCTION: usize = 100;
/// Rows per chunk when streaming the data file.
const CHUNK_ROWS: usize = 65_536;

/// The first factor of [`RNG_LADDER`] under which `rule` (its own factor ignored) gives an
/// evenly spaced sample of the vectors at least `1 + (replicas - 1) / 7` copies on average, else
/// the loosest (see [`SpannParams::rng_factor`]).
fn pick_rng_factor(
    nav: &[f32],
    nav_dim: usize,
    primary: &[u32],
    router: &Router,
    rule: cluster::Closure,
) -> (f32, f64) {
    let n = primary.len();
    let step = n.div_ceil(RNG_SAMPLE).max(1);
    let sample: Vec<(usize, Vec<(u32, f32)>)> = (0..n)
        .step_by(step)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|i| {
            let x = &nav[i * nav_dim..(i + 1) * nav_dim];
            let mut st = SearchStats::default();
            let c = router.nearest(x, nav_dim, CLOSURE_CANDIDATES, CLOSURE_CANDIDATES, &mut st);
            (i, c)
        })
        .collect();
    let target = 1.0 + (rule.replicas - 1) as f64 / 7.0;
    let cent = router.centroids();
    let mut last = (RNG_LADDER[0], 1.0);
    for &f in &RNG_LADDER {
        let extra: usize = sample
            .iter()
            .map(|(i, c)| {
                let x = &nav[i * nav_dim..(i + 1) * nav_dim];
                let rule = cluster::Closure {
                    rng_factor: f,
                    ..rule
                };
                cluster::closure(x, cent, nav_dim, primary[*i], c, rule).len()
            })
            .sum();
        let copies = 1.0 + extra as f64 / sample.len().max(1) as f64;
        if copies >= target {
            return (f, copies);
        }
        last = (f, copies);
    }
    last
}

/// How a SPANN build picks the lists a vector is copied to beyond its primary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Spill {
    /// SPANN's closure with the RNG rule ([`SpannParams::closure_eps`],
    /// [`SpannParams::rng_factor`]): up to `replicas` lists, usually fewer.
    Rng,
    /// SOAR with this lambda ([`cluster::soar`]): `replicas` lists, as long as list caps allow.
    Soar(f32),
}

/// Which flavour of the clustering index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterKind {
    /// Replication and query-aware pruning.
    Spann,
    /// One list per vector, `nprobe` nearest lists.
    Ivf,
}

impl ClusterKind {
    /// The manifest's kind name.
    pub fn name(self) -> &'static str {
        match self {
            ClusterKind::Spann => "spann",
            ClusterKind::Ivf => "ivf",
        }
    }
}

/// `quiver build --kind spann|ivf` parameters.
#[derive(Clone, Copy, Debug)]
pub struct SpannParams {
    /// Byte cap of one posting list (ids + vectors).
    pub max_list_bytes: usize,
    /// Lists a vector is written to (1 for IVF): with SOAR exactly this many (as far as list
    /// caps allow), with the RNG rule at most this many. `None`: SOAR takes the count [`plan`]
    /// estimates cheapest, up to [`MAX_REPLICAS`]; the RNG rule at most [`DEFAULT_REPLICAS`].
    pub replicas: Option<usize>,
    /// Closure slack eps1: a vector joins lists within `(1 + eps1)` of its nearest centroid's
    /// squared distance.
    pub closure_eps: f32,
    /// RNG factor: a candidate list c is skipped when a chosen centroid s has
    /// `rng_factor * d(s, c) <= d(x, c)`. `None`: the first of [`RNG_LADDER`] under which a
    /// sample of the vectors averages at least `1 + (replicas - 1) / 7` copies (2 of the
    /// default 8). In high dimensions centroids sit about as far from each other as from their
    /// points, so factor 1 keeps almost no replicas there (384-d squad: 1.06 copies, 1.25: 1.57,
    /// 1.5: 3.43); the 128-d synthetic sets keep 2.2-4.0 at factor 1 and stay there. A target of
    /// 3 copies had also loosened synth100k (2.2 -> 3.7 copies), whose lists then grew past the
    /// size where SQ8 codes pay off: 0.6x the QPS of its factor-1 index.
    pub rng_factor: Option<f32>,
    /// Most primary vectors per centroid; `None`: the list cap (IVF) or a sixth of it, at
    /// least [`MIN_LEAF`] (SPANN, which leaves room for replicas: about 5-10% of points become
    /// centroids).
    pub leaf_size: Option<usize>,
    /// Seed of the clustering.
    pub seed: u64,
    /// Lists hold SQ8 codes (a byte per dimension) and the full-precision vectors go to
    /// `vectors.qbf` for re-ranking; `None`: off for IVF and integer vectors; for SPANN over
    /// float vectors on when full-precision lists would average more than three blocks.
    pub sq8: Option<bool>,
    /// How replicas are placed.
    pub spill: Spill,
}

impl SpannParams {
    /// The defaults of `kind`.
    pub fn defaults(kind: ClusterKind) -> Self {
        SpannParams {
            max_list_bytes: DEFAULT_MAX_LIST_BYTES,
            replicas: match kind {
                ClusterKind::Spann => None,
                ClusterKind::Ivf => Some(1),
            },
            closure_eps: DEFAULT_CLOSURE_EPS,
            rng_factor: None,
            leaf_size: None,
            seed: 42,
            sq8: None,
            spill: match kind {
                ClusterKind::Spann => Spill::Soar(DEFAULT_SOAR_LAMBDA),
                ClusterKind::Ivf => Spill::Rng,
            },
        }
    }
}

/// Build phases reported to the progress callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the data file.
    Load,
    /// Hierarchical k-means.
    Cluster,
    /// The router graph over the centroids.
    Router,
    /// Closure assignment of replicas.
    Assign,
    /// Writing the lists.
    Write,
}

/// The centroids and what finds the nearest ones.
enum Router {
    Flat(Vec<f32>),
    Hnsw(RamHnsw),
}

impl Router {
    fn new(centroids: Vec<f32>, nav_dim: usize, seed: u64) -> Router {
        if centroids.len() / nav_dim >= ROUTER_MIN_LISTS {
            Router::Hnsw(RamHnsw::build(
                centroids,
                nav_dim,
                ROUTER_M,
                ROUTER_EF_CONSTRUCTION,
                seed,
            ))
        } else {
            Router::Flat(centroids)
        }
    }

    /// The centroids in f32: the build's router. Empty for an opened index's graph router,
    /// which holds codes ([`RamHnsw::decode_quantized`]); searches use
    /// [`distances_to_all`](Self::distances_to_all).
    fn centroids(&self) -> &[f32] {
        match self {
            Router::Flat(c) => c,
            Router::Hnsw(g) => g.data().unwrap_or_default(),
        }
    }

    /// Squared distance from `q` to every centroid, in list order.
    fn distances_to_all(&self, q: &[f32], dim: usize) -> Vec<f32> {
        match self {
            Router::Flat(c) => c
                .chunks_exact(dim)
                .map(|row| crate::kmeans::l2sq(q, row))
                .collect(),
            Router::Hnsw(g) => g.distances_to_all(q),
        }
    }

    /// The `k` nearest centroids (list, squared distance), closest first; `ef` bounds the
    /// graph search.
    fn nearest(
        &self,
        q: &[f32],
        dim: usize,
        k: usize,
        ef: usize,
        st: &mut SearchStats,
    ) -> Vec<(u32, f32)> {
        match self {
            Router::Hnsw(g) => g.search(q, k, ef, st),
            Router::Flat(c) => {
                let mut top = TopK::new(k);
                for (i, row) in c.chunks_exact(dim).enumerate() {
                    top.push(i as u32, crate::kmeans::l2sq(q, row));
                }
                st.distance_computations += (c.len() / dim) as u64;
                top.into_sorted_vec()
                    .into_iter()
                    .map(|n| (n.id, n.dist))
                    .collect()
            }
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Router::Flat(c) => c.len() as u64 * 4,
            Router::Hnsw(g) => g.bytes(),
        }
    }
}

/// Builds a SPANN or IVF-Flat index from `input` into `out`. `progress(phase, done, total)`.
pub fn build(
    input: &BuildInput,
    kind: ClusterKind,
    params: &SpannParams,
    out: &Path,
    progress: &(dyn Fn(Phase, u64, u64) + Sync),
) -> Result<Manifest> {
    let t0 = Instant::now();
    let (mut reader, elem, n, dim) = open_input(input)?;
    let vec_bytes = dim * elem.size();
    if params.sq8 == Some(true) && !elem.is_float() {
        return Err(IndexError::InvalidArgument(format!(
            "--list-codes sq8 needs float vectors, {} are {elem}",
            input.data.display()
        )));
    }
    let full_entry = 4 + vec_bytes;
    if !(full_entry..=64 << 20).contains(&params.max_list_bytes) {
        return Err(IndexError::InvalidArgument(format!(
            "--max-list-bytes {} must hold one full entry ({full_entry} bytes: id + vector) and be at most 64 MiB",
            params.max_list_bytes
        )));
    }
    // The clustering's grain follows the full-precision entry, with or without codes.
    let full_cap = params.max_list_bytes / full_entry;
    let replicas = if kind == ClusterKind::Ivf {
        1
    } else {
        params.replicas.unwrap_or(DEFAULT_REPLICAS)
    };
    if !(1..=MAX_REPLICAS).contains(&replicas) {
        return Err(IndexError::InvalidArgument(format!(
            "--replicas {replicas} must be in 1..={MAX_REPLICAS}"
        )));
    }
    if !(params.closure_eps >= 0.0 && params.closure_eps.is_finite()) {
        return Err(IndexError::InvalidArgument(format!(
            "--closure-eps {} must be a finite number >= 0",
            params.closure_eps
        )));
    }
    if let Spill::Soar(l) = params.spill {
        if !(l >= 0.0 && l.is_finite()) {
            return Err(IndexError::InvalidArgument(format!(
                "--soar-lambda {l} must be a finite number >= 0"
            )));
        }
    }
    if let Some(f) = params.rng_factor.filter(|f| f.is_nan() || *f <= 0.0) {
        return Err(IndexError::InvalidArgument(format!(
            "--rng-factor {f} must be > 0 (inf turns the RNG rule off)"
        )));
    }
    let leaf = match (params.leaf_size, kind) {
        (Some(l), _) => l,
        (None, ClusterKind::Ivf) => full_cap,
        (None, ClusterKind::Spann) => (full_cap / 6).max(MIN_LEAF).min(full_cap),
    };
    if !(1..=full_cap).contains(&leaf) {
        return Err(IndexError::InvalidArgument(format!(
            "--leaf-size {leaf} must be in 1..={full_cap} (full vectors a {}-byte list holds)",
            params.max_list_bytes
        )));
    }
    prepare_out_dir(out)?;

    // 1. Stored rows and the navigation matrix.
    let nav_dim = if input.metric == Metric::Ip {
        dim + 1
    } else {
        dim
    };
    let mut nav: Vec<f32> = Vec::with_capacity(n * nav_dim);
    let mut stored: Vec<u8> = Vec::with_capacity(n * vec_bytes);
    while let Some(chunk) = reader.read_chunk(CHUNK_ROWS)? {
        stored.extend_from_slice(&stored_bytes(input.metric, &chunk)?);
        let mut v = chunk.to_f32();
        nav_prefix(input.metric, &mut v, dim);
        nav.extend_from_slice(&v);
        progress(Phase::Load, reader.position() as u64, n as u64);
    }
    if stored.len() != n * vec_bytes {
        return Err(IndexError::bad_file(
            &input.data,
            "changed while the index was being built",
        ));
    }
    let mut ip_max_norm = 0.0;
    if input.metric == Metric::Ip {
        let (aug, m) = crate::diskann::augment_ip(&nav, dim);
        nav = aug;
        ip_max_norm = m;
    }
    let t_load = t0.elapsed().as_secs_f64();

    // 2. Primary clusters.
    let (centroids, primary) = cluster::hierarchical(&nav, nav_dim, leaf, params.seed, &|d| {
        progress(Phase::Cluster, d, n as u64)
    });
    let n_lists = centroids.len() / nav_dim;
    let t_cluster = t0.elapsed().as_secs_f64() - t_load;

    // 3. The router.
    progress(Phase::Router, 0, n_lists as u64);
    let router = Router::new(centroids, nav_dim, params.seed);
    progress(Phase::Router, n_lists as u64, n_lists as u64);
    let t_router = t0.elapsed().as_secs_f64() - t_load - t_cluster;

    // 4. Members of each list: primaries, then the replicas nearest the centroid that fit.
    let mut members: Vec<Vec<(f32, u32)>> = vec![Vec::new(); n_lists];
    let cent = router.centroids();
    for (i, &p) in primary.iter().enumerate() {
        let p = p as usize;
        let d = crate::kmeans::l2sq(
            &nav[i * nav_dim..(i + 1) * nav_dim],
            &cent[p * nav_dim..(p + 1) * nav_dim],
        );
        members[p].push((d, i as u32));
    }
    let mut replicas_kept = 0u64;
    let mut replicas_dropped = 0u64;
    let mut cands: Vec<Vec<(f32, u32)>> = vec![Vec::new(); n_lists];
    // With SOAR and no --replicas: the copy count from the estimate on sampled queries
    // (plan.rs), under the list codes given or chosen by size below.
    let block_payload =
        quiver_storage::format::payload_bytes(quiver_storage::format::DEFAULT_BLOCK_SIZE);
    let (mut replicas, mut planned_sq8, mut planned) = (replicas, None, Vec::new());
    if let Spill::Soar(lambda) = params.spill {
        if params.replicas.is_none() && replicas > 1 && n >= plan::MIN_ROWS {
            // Codes by the rule the RNG path uses (full-precision lists over three blocks),
            // with the copies the RNG rule would keep, estimated on a sample: it tells sets with
            // many boundary vectors from well-separated ones, and on the four sets measured it
            // picks the codes that were fastest. Estimating codes from the sampled queries alone
            // does not: data vectors used as queries find their neighbours in far fewer lists
            // than real queries do where queries differ from the data (squad's questions: 2.5
            // lists against 12 for recall 0.9), which made full vectors look cheapest there.
            let rule = cluster::Closure {
                replicas,
                eps: params.closure_eps,
                rng_factor: RNG_LADDER[0],
            };
            let (_, rng_copies) = pick_rng_factor(&nav, nav_dim, &primary, &router, rule);
            let full =
                (n as f64 / n_lists as f64 * rng_copies).min(full_cap as f64) * full_entry as f64;
            let by_size =
                kind == ClusterKind::Spann && elem.is_float() && full > (3 * block_payload) as f64;
            let codes = params.sq8.unwrap_or(by_size);
            let shape = plan::Shape {
                max_copies: replicas,
                primaries_per_list: n as f64 / n_lists as f64,
                full_entry,
                sq8_entry: elem.is_float().then_some(4 + dim),
                max_list_bytes: params.max_list_bytes,
                payload: block_payload,
                rerank_reads: PLAN_RERANK_READS,
                lambda,
            };
            planned = plan::plan(&nav, nav_dim, &primary, &router, &shape);
            if let Some(c) = planned.iter().find(|c| c.sq8 == codes) {
                replicas = c.copies;
                planned_sq8 = Some(c.sq8);
            }
        }
    }
    let mut rng_factor = params.rng_factor.unwrap_or(RNG_LADDER[0]);
    if replicas > 1 {
        let mut rule = cluster::Closure {
            replicas,
            eps: params.closure_eps,
            rng_factor,
        };
        if params.rng_factor.is_none() && params.spill == Spill::Rng {
            rng_factor = pick_rng_factor(&nav, nav_dim, &primary, &router, rule).0;
            rule.rng_factor = rng_factor;
        }
        let done = std::sync::atomic::AtomicU64::new(0);
        let extra: Vec<Vec<(u32, f32)>> = nav
            .par_chunks_exact(nav_dim)
            .zip(primary.par_iter())
            .map(|(x, &p)| {
                let mut st = SearchStats::default();
                let cands =
                    router.nearest(x, nav_dim, CLOSURE_CANDIDATES, CLOSURE_CANDIDATES, &mut st);
                let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if d.is_multiple_of(65_536) {
                    progress(Phase::Assign, d, n as u64);
                }
                match params.spill {
                    Spill::Rng => cluster::closure(x, cent, nav_dim, p, &cands, rule),
                    Spill::Soar(lambda) => {
                        cluster::soar(x, cent, nav_dim, p, &cands, replicas, lambda)
                    }
                }
            })
            .collect();
        for (i, e) in extra.into_iter().enumerate() {
            for (c, d) in e {
                cands[c as usize].push((d, i as u32));
            }
        }
    }
    // What lists hold. Measured (docs/BENCHMARKS.md, issue 6): SQ8 codes and a re-rank of k
    // rows win where full-precision lists are long (mean 18 KB on synth1m: 1.65x the QPS at
    // recall 0.90; 15.9 KB on h100k: 1.18x) and lose where they are short (10.2 KB on the old
    // synth100k: 0.45x; 8.1 KB on squad: 0.93x) - the k re-rank reads cost more than the codes
    // save. Without an explicit choice, SPANN over float data takes codes above three blocks;
    // IVF-Flat keeps full vectors.
    let full_list_bytes = members
        .iter()
        .zip(&cands)
        .map(|(m, c)| (m.len() + c.len()).min(full_cap) * full_entry)
        .sum::<usize>() as f64
        / n_lists as f64;
    let sq8 = params.sq8.or(planned_sq8).unwrap_or(
        kind == ClusterKind::Spann
            && elem.is_float()
            && full_list_bytes > (3 * block_payload) as f64,
    );
    let entry = if sq8 { 4 + dim } else { full_entry };
    let cap = params.max_list_bytes / entry;
    for (m, mut c) in members.iter_mut().zip(cands) {
        c.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let room = cap - m.len();
        replicas_kept += c.len().min(room) as u64;
        replicas_dropped += c.len().saturating_sub(room) as u64;
        c.truncate(room);
        m.extend(c);
    }
    // Nearest the centroid first within each list (as SPTAG stores them).
    members
        .par_iter_mut()
        .for_each(|m| m.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))));
    let t_assign = t0.elapsed().as_secs_f64() - t_load - t_cluster - t_router;

    // 5. The file.
    let mut w = BlockFileWriter::create(out.join(POSTINGS_FILE), "spann.postings")?;
    let payload = w.payload_bytes();
    let meta = SpannMeta {
        dim,
        element: elem,
        metric: input.metric,
        n: n as u64,
        n_lists,
        nav_dim,
        vec_bytes,
        max_list_entries: cap,
        ip_max_norm,
        replicas,
        has_router: matches!(router, Router::Hnsw(_)),
        sq8,
    };
    w.write_section(layout::META_SECTION, &meta.encode())?;
    // With codes: the quantizer, trained on the stored rows (the navigation rows' first dim
    // columns), and the full-precision rows in vectors.qbf for re-ranking.
    let quant = sq8.then(|| Sq8::train(&nav, nav_dim, dim));
    if let Some(q) = &quant {
        w.write_section(layout::SQ8_SECTION, &q.encode())?;
        let mut vw = BlockFileWriter::create(out.join(VECTORS_FILE), "spann.vectors")?;
        let rl = RowLayout::new(vec_bytes, vw.payload_bytes());
        vw.begin_section(VECTORS_SECTION)?;
        for (i, row) in stored.chunks_exact(vec_bytes).enumerate() {
            vw.write(row)?;
            if rl.per_block == 0 || (i + 1) % rl.per_block == 0 {
                vw.pad_to_block()?;
            }
        }
        vw.pad_to_block()?;
        vw.end_section()?;
        vw.finish()?;
    }
    w.write_section(
        layout::CENTROIDS_SECTION,
        bytemuck::cast_slice(router.centroids()),
    )?;
    if let Router::Hnsw(g) = &router {
        w.write_section(layout::ROUTER_SECTION, &g.encode())?;
    }
    let mut dir = Vec::with_capacity(n_lists * LIST_INFO_BYTES);
    let mut locator = vec![0u32; 2 * n];
    let mut next = 0u64;
    for (l, m) in members.iter().enumerate() {
        let info = ListInfo {
            first_block: next,
            n_blocks: list_blocks(m.len(), entry, payload) as u32,
            count: m.len() as u32,
        };
        info.encode_into(&mut dir);
        next += info.n_blocks as u64;
        for (pos, &(_, id)) in m.iter().enumerate() {
            if primary[id as usize] as usize == l {
                locator[2 * id as usize] = l as u32;
                locator[2 * id as usize + 1] = pos as u32;
            }
        }
    }
    w.write_section(layout::LISTS_SECTION, &dir)?;
    w.write_section(layout::LOCATOR_SECTION, bytemuck::cast_slice(&locator))?;
    drop(locator);
    w.begin_section(layout::POSTINGS_SECTION)?;
    let mut buf = Vec::with_capacity(cap * entry);
    let mut written = 0u64;
    for m in &members {
        buf.clear();
        for &(_, id) in m {
            buf.extend_from_slice(&id.to_le_bytes());
        }
        for &(_, id) in m {
            let id = id as usize;
            match &quant {
                Some(q) => q.encode_into(&nav[id * nav_dim..id * nav_dim + dim], &mut buf),
                None => buf.extend_from_slice(&stored[id * vec_bytes..(id + 1) * vec_bytes]),
            }
        }
        w.write(&buf)?;
        w.pad_to_block()?;
        written += m.len() as u64;
        progress(Phase::Write, written, (n as u64) + replicas_kept);
    }
    w.end_section()?;
    w.finish()?;
    let t_write = t0.elapsed().as_secs_f64() - t_load - t_cluster - t_router - t_assign;
    let sizes: Vec<usize> = members.iter().map(Vec::len).collect();
    let entries: usize = sizes.iter().sum();
    finish_index_dir(
        out,
        input,
        kind.name(),
        elem,
        dim,
        n,
        serde_json::json!({
            "max_list_bytes": params.max_list_bytes, "max_list_entries": cap,
            "replicas": replicas, "closure_eps": params.closure_eps,
            "rng_factor": (params.spill == Spill::Rng).then_some(rng_factor),
            "spill": match params.spill { Spill::Rng => "rng", Spill::Soar(_) => "soar" },
            "soar_lambda": match params.spill { Spill::Soar(l) => Some(l), Spill::Rng => None },
            "copies": matches!(params.spill, Spill::Soar(_)).then_some(replicas),
            "plan": planned.iter().take(16).collect::<Vec<_>>(),
            "leaf_size": leaf, "seed": params.seed,
            "lists": n_lists, "router": if meta.has_router { "hnsw" } else { "flat" },
            "entries": entries, "replication": entries as f64 / n as f64,
            "replicas_dropped_by_cap": replicas_dropped,
            "list_entries": {"min": sizes.iter().min(), "mean": entries as f64 / n_lists as f64,
                             "max": sizes.iter().max()},
            "postings_blocks": next, "list_codes": if sq8 { "sq8" } else { "full" },
            "mean_full_list_bytes": full_list_bytes,
            "seconds": {"load": t_load, "cluster": t_cluster, "router": t_router,
                        "assign": t_assign, "write": t_write},
        }),
        if sq8 {
            vec![POSTINGS_FILE.into(), VECTORS_FILE.into()]
        } else {
            vec![POSTINGS_FILE.into()]
        },
    )
}

/// Reads `reqs` through `src` as one batch; `handle(i, bytes, cache_hit)` per request. The
/// handler's own error (an index error: a bad id, a short list) is returned as it is.
fn read_tagged(src: &MaybeCached, reqs: &[ReadRequest], handle: &mut OnBlocks<'_>) -> Result<()> {
    let mut err = None;
    let res = src.read_batch_tagged(reqs, &mut |i, buf, hit| {
        handle(i, buf, hit).map_err(|e| {
            err = Some(e);
            quiver_storage::StorageError::InvalidArgument("read handler".into())
        })
    });
    match (err, res) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(e.into()),
        (None, Ok(_)) => Ok(()),
    }
}

/// The full-precision rows of an index whose lists hold codes (`vectors.qbf`).
struct FullRows {
    file: BlockFile,
    source: MaybeCached,
    first_block: u64,
    layout: RowLayout,
}

/// A list's rows as read: stored vectors, or SQ8 codes (a byte per dimension).
enum Rows<'a, T> {
    Full(&'a [T]),
    Codes(&'a [u8]),
}

/// An open SPANN or IVF-Flat index over stored element type `T`.
pub struct SpannIndex<T: Element> {
    manifest: Manifest,
    meta: SpannMeta,
    file: BlockFile,
    router: Router,
    lists: Vec<ListInfo>,
    source: MaybeCached,
    postings_first_block: u64,
    block_size: usize,
    payload: usize,
    /// The pruning slack used when a search names none (SPANN: [`DEFAULT_SEARCH_EPS`]; IVF:
    /// none).
    default_eps: Option<f32>,
    cache_bytes: u64,
    /// The quantizer, when lists hold codes.
    sq8: Option<Sq8>,
    /// The full-precision rows, when lists hold codes.
    full: Option<FullRows>,
    _t: std::marker::PhantomData<T>,
}

/// Called per request read: its index in the batch, its bytes, and whether the cache served it.
type OnBlocks<'a> = dyn FnMut(usize, &[u8], bool) -> Result<()> + 'a;

/// Called per full-precision row read: id, row, cache hit, bytes of the read (first row of a
/// block only, else 0).
type OnRow<'a, T> = dyn FnMut(u32, &[T], bool, u64) -> Result<()> + 'a;

/// Called per list read: its index in the batch, ids, rows, and whether the cache served it.
type OnList<'a, T> = dyn FnMut(usize, &[u32], Rows<'_, T>, bool) -> Result<()> + 'a;

/// One query of a batch in flight.
struct Query<T> {
    q: Vec<T>,
    /// The query in code units (lists of codes).
    sq: Option<SqQuery>,
    nav: Vec<f32>,
    top: TopK,
    seen: HashSet<u32>,
    stats: SearchStats,
    /// Lists to read next round.
    pending: Vec<u32>,
    /// Lists read so far.
    probed: HashSet<u32>,
}

impl<T: Element> SpannIndex<T> {
    fn open(dir: &Path, manifest: Manifest, opts: &OpenOptions) -> Result<Self> {
        let file = BlockFile::open(dir.join(POSTINGS_FILE))?;
        // The meta is read with pread: the reader for searches is sized by what it says.
        let plain = open_reader_for(&file, Backend::Pread, 0, 0)?;
        let raw = file.read_section(plain.as_ref(), layout::META_SECTION)?;
        let meta = SpannMeta::decode(file.path(), &raw)?;
        if meta.dim != manifest.dim
            || meta.n != manifest.n as u64
            || meta.element != manifest.element
            || meta.metric != manifest.metric
        {
            return Err(IndexError::bad_file(
                file.path(),
                format!(
                    "meta (dim {}, n {}, {} {}) disagrees with the manifest (dim {}, n {}, {} {})",
                    meta.dim,
                    meta.n,
                    meta.element,
                    meta.metric,
                    manifest.dim,
                    manifest.n,
                    manifest.element,
                    manifest.metric
                ),
            ));
        }
        if meta.element != T::TYPE {
            return Err(IndexError::bad_file(file.path(), "element type mismatch"));
        }
        let payload = file.payload_bytes();
        let have = file.section(layout::CENTROIDS_SECTION)?.len;
        if have != (meta.n_lists * meta.nav_dim * 4) as u64 {
            return Err(IndexError::bad_file(
                file.path(),
                format!(
                    "section centroids: {have} bytes, {} lists x {} dims need {}",
                    meta.n_lists,
                    meta.nav_dim,
                    meta.n_lists * meta.nav_dim * 4
                ),
            ));
        }
        // The f32 centroids go to an anonymous map, not the heap: a graph router keeps only
        // their 8-bit codes (a quarter of the index's largest RAM component, for routing
        // distances off by half a step per component), and an unmapped buffer leaves the
        // process at once, whatever the allocator would keep of a freed heap block.
        let len = meta.n_lists * meta.nav_dim;
        let mut buf = memmap2::MmapMut::map_anon((4 * len).max(1))
            .map_err(|e| IndexError::io(file.path(), e))?;
        file.read_section_into(
            plain.as_ref(),
            layout::CENTROIDS_SECTION,
            &mut buf[..4 * len],
        )?;
        // A page-aligned map casts to f32 without a copy.
        let centroids: &[f32] = bytemuck::try_cast_slice(&buf[..4 * len])
            .map_err(|e| IndexError::bad_file(file.path(), format!("centroid buffer: {e}")))?;
        if let Some(i) = centroids.iter().position(|x| !x.is_finite()) {
            return Err(IndexError::bad_file(
                file.path(),
                format!("section centroids: value {i} is not finite"),
            ));
        }
        let router = if meta.has_router {
            let raw = file.read_section(plain.as_ref(), layout::ROUTER_SECTION)?;
            Router::Hnsw(RamHnsw::decode_quantized(
                file.path(),
                &raw,
                centroids,
                meta.nav_dim,
            )?)
        } else {
            Router::Flat(centroids.to_vec())
        };
        drop(buf);
        let postings = file.section(layout::POSTINGS_SECTION)?.clone();
        let raw = file.read_section(plain.as_ref(), layout::LISTS_SECTION)?;
        let lists = ListInfo::decode_all(file.path(), &raw, &meta, payload, postings.n_blocks)?;
        // Registered buffers sized for the largest list a read may fetch, and for a full queue
        // of lists of the mean size.
        let bs = file.block_size();
        let max_read =
            list_blocks(meta.max_list_entries, meta.entry_bytes(), payload) as usize * bs;
        let blocks: u64 = lists.iter().map(|l| l.n_blocks as u64).sum();
        let mean_read = (blocks as usize).div_ceil(lists.len().max(1)) * bs;
        let reader = open_reader_for(&file, opts.backend, max_read, mean_read)?;
        let loc = file.section(layout::LOCATOR_SECTION)?;
        if loc.len != meta.n * 8 {
            return Err(IndexError::bad_file(
                file.path(),
                format!(
                    "section locator: {} bytes for {} vectors (8 each)",
                    loc.len, meta.n
                ),
            ));
        }
        // One cache budget for the lists and, with codes, the full rows.
        let cache: Option<Arc<dyn BlockCache>> = (opts.cache_bytes > 0)
            .then(|| Arc::new(MokaBlockCache::new(opts.cache_bytes)) as Arc<dyn BlockCache>);
        let (sq8, full) = if meta.sq8 {
            let raw = file.read_section(plain.as_ref(), layout::SQ8_SECTION)?;
            let q = Sq8::decode(file.path(), &raw, meta.dim)?;
            let vf = BlockFile::open(dir.join(VECTORS_FILE))?;
            let layout = RowLayout::new(meta.vec_bytes, vf.payload_bytes());
            let sec = vf.section(VECTORS_SECTION)?.clone();
            if sec.n_blocks < layout.blocks(meta.n as usize) {
                return Err(IndexError::bad_file(
                    vf.path(),
                    format!(
                        "section vectors has {} blocks, {} rows need {}",
                        sec.n_blocks,
                        meta.n,
                        layout.blocks(meta.n as usize)
                    ),
                ));
            }
            let row_bytes = layout.blocks_per_row * vf.block_size();
            let r = open_reader_for(&vf, opts.backend, row_bytes, row_bytes)?;
            let full = FullRows {
                source: MaybeCached::new(r, cache.as_ref()),
                first_block: sec.first_block,
                layout,
                file: vf,
            };
            (Some(q), Some(full))
        } else {
            (None, None)
        };
        let source = MaybeCached::new(reader, cache.as_ref());
        let cache_bytes = opts.cache_bytes;
        let default_eps =
            (manifest.kind == ClusterKind::Spann.name()).then_some(DEFAULT_SEARCH_EPS);
        Ok(SpannIndex {
            block_size: file.block_size(),
            payload,
            postings_first_block: postings.first_block,
            manifest,
            meta,
            file,
            router,
            lists,
            source,
            default_eps,
            cache_bytes,
            sq8,
            full,
            _t: std::marker::PhantomData,
        })
    }

    fn reader(&self) -> &dyn BlockReader {
        self.source.reader()
    }

    /// Posting lists.
    pub fn n_lists(&self) -> usize {
        self.meta.n_lists
    }

    /// The read that fetches list `l`.
    fn request(&self, l: u32) -> ReadRequest {
        let info = self.lists[l as usize];
        let b = self.postings_first_block + info.first_block;
        ReadRequest::blocks(b, info.n_blocks).unwrap_or(ReadRequest::block(b))
    }

    /// Reads lists `ls` (non-empty lists only) as one batch; `on_list(i, ids, vectors, hit)`.
    fn read_lists(&self, ls: &[u32], on_list: &mut OnList<'_, T>) -> Result<()> {
        let reqs: Vec<ReadRequest> = ls.iter().map(|&l| self.request(l)).collect();
        let entry = self.meta.entry_bytes();
        read_tagged(&self.source, &reqs, &mut |i, buf, hit| {
            let count = self.lists[ls[i] as usize].count as usize;
            let bytes = list_bytes(buf, count, entry, self.block_size, self.payload)?;
            let (ib, vb) = bytes.split_at(4 * count);
            let ids: Cow<[u32]> = match bytemuck::try_cast_slice(ib) {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(ib)),
            };
            if let Some(&bad) = ids.iter().find(|&&x| x as u64 >= self.meta.n) {
                return Err(IndexError::bad_file(
                    self.file.path(),
                    format!(
                        "posting list {} (block {}) holds id {bad} (n = {})",
                        ls[i],
                        reqs[i].first_block(),
                        self.meta.n
                    ),
                ));
            }
            if self.meta.sq8 {
                return on_list(i, &ids, Rows::Codes(vb), hit);
            }
            let vs: Cow<[T]> = match bytemuck::try_cast_slice(vb) {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(vb)),
            };
            on_list(i, &ids, Rows::Full(&vs), hit)
        })
    }

    /// Reads the full-precision rows of `ids` from `vectors.qbf` as one batch (each block
    /// once); `on_row(id, row, cache_hit, block_bytes)` per id, `block_bytes` non-zero for the
    /// first id of each block read.
    fn read_rows(&self, full: &FullRows, ids: &[u32], on_row: &mut OnRow<'_, T>) -> Result<()> {
        // (block, id) sorted: each block's rows are one run, each block one request.
        let mut pairs: Vec<(u64, u32)> = ids
            .iter()
            .map(|&id| (full.layout.blocks_of(id).0, id))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut runs: Vec<usize> = Vec::new();
        let mut reqs: Vec<ReadRequest> = Vec::new();
        for (j, &(b, _)) in pairs.iter().enumerate() {
            if j == 0 || pairs[j - 1].0 != b {
                let first = full.first_block + b;
                let n = full.layout.blocks_per_row as u32;
                reqs.push(ReadRequest::blocks(first, n).unwrap_or(ReadRequest::block(first)));
                runs.push(j);
            }
        }
        runs.push(pairs.len());
        let bs = full.file.block_size();
        let payload = full.file.payload_bytes();
        read_tagged(&full.source, &reqs, &mut |i, buf, hit| {
            for (j, &(_, id)) in pairs[runs[i]..runs[i + 1]].iter().enumerate() {
                let raw = full.layout.row_bytes(buf, id, bs, payload)?;
                let row: Vec<T> = bytemuck::pod_collect_to_vec(&raw);
                let bytes = if j == 0 { buf.len() as u64 } else { 0 };
                on_row(id, &row, hit, bytes)?;
            }
            Ok(())
        })
    }

    /// Every list with its squared centroid distance, nearest first.
    fn rank_all(&self, nav: &[f32], st: &mut SearchStats) -> Vec<(u32, f32)> {
        let mut all: Vec<(f32, u32)> = self
            .router
            .distances_to_all(nav, self.meta.nav_dim)
            .into_iter()
            .enumerate()
            .map(|(i, d)| (d, i as u32))
            .collect();
        st.distance_computations += all.len() as u64;
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        all.into_iter().map(|(d, i)| (i, d)).collect()
    }

    fn run(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams,
        allow: Option<&RoaringBitmap>,
    ) -> Result<Vec<(Vec<Neighbor>, SearchStats)>> {
        let dim = self.meta.dim;
        crate::contract::check_batch(dim, queries)?;
        let lists = params.nprobe.or(params.max_lists).unwrap_or(DEFAULT_LISTS);
        if lists == 0 {
            return Err(IndexError::InvalidArgument(
                "nprobe / max_lists must be at least 1".into(),
            ));
        }
        let lists = lists.min(self.meta.n_lists);
        if let Some(r) = params.rerank.filter(|&r| r > MAX_RERANK) {
            return Err(IndexError::InvalidArgument(format!(
                "rerank {r} exceeds {MAX_RERANK}"
            )));
        }
        let eps = params.eps.or(self.default_eps);
        if let Some(e) = eps {
            if !(e >= 0.0 && e.is_finite()) {
                return Err(IndexError::InvalidArgument(format!(
                    "eps = {e} must be a finite number >= 0"
                )));
            }
        }
        // A filter that passes a fraction s of the vectors reads lists / s lists, so as many
        // eligible vectors are ranked as an unfiltered search ranks; pruning is off then (it
        // judges how hard the unfiltered query is).
        let (lists, eps) = match allow {
            Some(a) => {
                let n = self.meta.n.min(u32::MAX as u64) as u32;
                let pass = a.range_cardinality(0..n).max(1) as f64 / n.max(1) as f64;
                let widened = (lists as f64 / pass).ceil() as usize;
                (widened.clamp(lists, self.meta.n_lists), None)
            }
            None => (lists, eps),
        };
        let ef = (2 * lists).max(32);
        // Candidates kept per query: k, or with codes the ones re-ranked at full precision.
        let keep = if self.sq8.is_some() {
            // Measured on the first 100k of synth1m: re-ranking k (not 1.4k, 2k or 3.2k)
            // gives the most QPS at recall 0.90 and 0.95; more buys the last points of recall.
            params.rerank.unwrap_or(k).max(k)
        } else {
            k
        };
        // `rerank = 0`: the codes' top k with their estimated distances, no full-precision
        // reads (re-ranking exactly k candidates only orders them and makes their scores exact).
        let approximate = params.rerank == Some(0);
        let mut qs: Vec<Query<T>> = queries
            .chunks_exact(dim)
            .map(|q| -> Result<Query<T>> {
                let qt = prepare_query::<T>(&self.manifest, q, k)?;
                let nav = nav_query(self.meta.metric, dim, self.meta.ip_max_norm, q);
                let mut stats = SearchStats::default();
                // A quarter of the lists or more: rank them all exactly.
                let cands = if 4 * lists >= self.meta.n_lists {
                    let mut all = self.rank_all(&nav, &mut stats);
                    all.truncate(lists);
                    all
                } else {
                    self.router
                        .nearest(&nav, self.meta.nav_dim, lists, ef, &mut stats)
                };
                let limit = match (eps, cands.first()) {
                    (Some(e), Some(c)) => (1.0 + e) * c.1,
                    _ => f32::INFINITY,
                };
                let pending = cands
                    .iter()
                    .take_while(|c| c.1 <= limit)
                    .map(|c| c.0)
                    .collect();
                let sq = self.sq8.as_ref().map(|s| {
                    let qf: Vec<f32> = qt.iter().map(|x| x.to_f32()).collect();
                    s.query(self.meta.metric, &qf)
                });
                Ok(Query {
                    q: qt,
                    sq,
                    nav,
                    top: TopK::new(keep),
                    seen: HashSet::new(),
                    stats,
                    pending,
                    probed: HashSet::new(),
                })
            })
            .collect::<Result<_>>()?;
        let metric = self.meta.metric;
        loop {
            // Every list asked for this round, read once: (list, query) pairs sorted by list,
            // so each list's askers are one run (no allocation per list).
            let mut pairs: Vec<(u32, usize)> = Vec::new();
            let mut progressed = false;
            for (qi, q) in qs.iter_mut().enumerate() {
                let before = q.stats.lists;
                for l in q.pending.drain(..) {
                    if q.probed.insert(l) {
                        q.stats.lists += 1;
                        if self.lists[l as usize].count > 0 {
                            pairs.push((l, qi));
                        }
                    }
                }
                if q.stats.lists > before {
                    q.stats.rounds += 1;
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
            pairs.sort_unstable();
            let (mut ls, mut runs): (Vec<u32>, Vec<usize>) = (Vec::new(), Vec::new());
            for (j, &(l, _)) in pairs.iter().enumerate() {
                if ls.last() != Some(&l) {
                    ls.push(l);
                    runs.push(j);
                }
            }
            runs.push(pairs.len());
            let bs = self.block_size as u64;
            self.read_lists(&ls, &mut |i, ids, rows, hit| {
                let l = ls[i];
                let who = &pairs[runs[i]..runs[i + 1]];
                // The read is charged to the first query that asked for it.
                let first = &mut qs[who[0].1].stats;
                if hit {
                    first.cache_hits += 1;
                } else {
                    first.reads += 1;
                    first.read_bytes += self.lists[l as usize].n_blocks as u64 * bs;
                }
                for &(_, qi) in who {
                    let q = &mut qs[qi];
                    let mut offer = |id: u32, d: f32| {
                        if d <= q.top.threshold() && q.seen.insert(id) {
                            q.top.push(id, d);
                        }
                    };
                    let allowed = |id: &u32| allow.is_none_or(|a| a.contains(*id));
                    match (&rows, &q.sq, &self.sq8) {
                        (Rows::Codes(cs), Some(sq), Some(quant)) => {
                            for (&id, code) in ids.iter().zip(cs.chunks_exact(dim)) {
                                if allowed(&id) {
                                    offer(id, quant.distance(sq, code));
                                }
                            }
                        }
                        (Rows::Full(vs), _, _) => {
                            for (&id, row) in ids.iter().zip(vs.chunks_exact(dim)) {
                                if allowed(&id) {
                                    offer(id, T::distance(metric, &q.q, row));
                                }
                            }
                        }
                        _ => {
                            return Err(IndexError::InvalidArgument(
                                "list codes without a quantizer".into(),
                            ))
                        }
                    }
                    q.stats.distance_computations += ids.len() as u64;
                }
                Ok(())
            })?;
            // Queries short of k read the next lists by centroid distance: a wider router
            // search while that finds unread lists, every centroid ranked once it does not.
            let n_lists = self.meta.n_lists;
            let chunk = lists.max(k.div_ceil(self.meta.max_list_entries));
            for q in qs.iter_mut() {
                if q.top.len() >= k || q.probed.len() >= n_lists {
                    continue;
                }
                let want = (q.probed.len() + chunk).min(n_lists);
                let mut next = Vec::new();
                if 4 * want < n_lists {
                    let c = self.router.nearest(
                        &q.nav,
                        self.meta.nav_dim,
                        want,
                        2 * want,
                        &mut q.stats,
                    );
                    next = c
                        .into_iter()
                        .map(|c| c.0)
                        .filter(|l| !q.probed.contains(l))
                        .collect();
                }
                if next.is_empty() {
                    let all = self.rank_all(&q.nav, &mut q.stats);
                    next = all
                        .into_iter()
                        .map(|c| c.0)
                        .filter(|l| !q.probed.contains(l))
                        .collect();
                }
                next.truncate(chunk);
                q.pending = next;
            }
        }
        let full = match &self.full {
            Some(f) if !approximate => f,
            _ => {
                return Ok(qs
                    .into_iter()
                    .map(|q| (q.top.into_sorted_vec(), q.stats))
                    .collect())
            }
        };
        // Codes ranked the candidates; their full-precision rows decide the k best, all
        // queries' rows read as one batch.
        // (id, query) sorted: each candidate's queries are one run.
        let mut want: Vec<(u32, usize)> = Vec::new();
        let mut tops = Vec::with_capacity(qs.len());
        for (qi, q) in qs.iter_mut().enumerate() {
            let cands = std::mem::replace(&mut q.top, TopK::new(0)).into_sorted_vec();
            want.extend(cands.iter().map(|c| (c.id, qi)));
            if !cands.is_empty() {
                q.stats.rounds += 1;
            }
            tops.push(TopK::new(k));
        }
        want.sort_unstable();
        let mut ids: Vec<u32> = want.iter().map(|w| w.0).collect();
        ids.dedup();
        self.read_rows(full, &ids, &mut |id, row, hit, bytes| {
            let at = want.partition_point(|w| w.0 < id);
            let end = want.partition_point(|w| w.0 <= id);
            let who = &want[at..end];
            // Each block is read once; its bytes come with its first row.
            if bytes > 0 {
                let first = &mut qs[who[0].1].stats;
                if hit {
                    first.cache_hits += 1;
                } else {
                    first.reads += 1;
                    first.read_bytes += bytes;
                }
            }
            for &(_, qi) in who {
                tops[qi].push(id, T::distance(metric, &qs[qi].q, row));
                qs[qi].stats.distance_computations += 1;
            }
            Ok(())
        })?;
        Ok(qs
            .into_iter()
            .zip(tops)
            .map(|(q, t)| (t.into_sorted_vec(), q.stats))
            .collect())
    }
}

impl<T: Element> VectorIndex for SpannIndex<T> {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        allow: Option<&RoaringBitmap>,
    ) -> Result<(Vec<Neighbor>, SearchStats)> {
        let mut out = self.run(query, k, params, allow)?;
        out.pop()
            .ok_or_else(|| IndexError::InvalidArgument("no query given".into()))
    }

    fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams,
        allow: Option<&RoaringBitmap>,
    ) -> Result<Vec<(Vec<Neighbor>, SearchStats)>> {
        self.run(queries, k, params, allow)
    }

    fn interleaves(&self) -> bool {
        true
    }

    fn default_grid(&self) -> Vec<SearchParams> {
        [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128]
            .iter()
            .map(|&l| {
                if self.default_eps.is_some() {
                    SearchParams {
                        max_lists: Some(l),
                        ..Default::default()
                    }
                } else {
                    SearchParams {
                        nprobe: Some(l),
                        ..Default::default()
                    }
                }
            })
            .collect()
    }

    fn memory(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("centroids_and_router", self.router.bytes()),
            ("sq8_quantizer", self.sq8.as_ref().map_or(0, Sq8::bytes)),
            (
                "list_directory",
                (self.lists.capacity() * std::mem::size_of::<ListInfo>()) as u64,
            ),
            ("cache_budget", self.cache_bytes),
        ]
    }

    fn vectors(&self, ids: &[u32]) -> Result<Vec<f32>> {
        crate::contract::check_ids(ids, self.manifest.n)?;
        let dim = self.meta.dim;
        if let Some(full) = &self.full {
            let mut rows: HashMap<u32, Vec<f32>> = HashMap::new();
            for chunk in ids.chunks(4096) {
                self.read_rows(full, chunk, &mut |id, row, _, _| {
                    rows.insert(id, row.iter().map(|x| x.to_f32()).collect());
                    Ok(())
                })?;
            }
            let mut out = Vec::with_capacity(ids.len() * dim);
            for id in ids {
                out.extend_from_slice(rows.get(id).map_or(&[][..], |r| &r[..]));
            }
            return Ok(out);
        }
        // Where each id's primary copy lies.
        let loc: Vec<(u32, u32)> = if ids.len() * 64 >= self.manifest.n {
            let raw = self
                .file
                .read_section(self.reader(), layout::LOCATOR_SECTION)?;
            let all: Vec<u32> = bytemuck::pod_collect_to_vec(&raw);
            ids.iter()
                .map(|&i| (all[2 * i as usize], all[2 * i as usize + 1]))
                .collect()
        } else {
            ids.iter()
                .map(|&i| -> Result<(u32, u32)> {
                    let raw = self.file.read_section_range(
                        self.reader(),
                        layout::LOCATOR_SECTION,
                        i as u64 * 8,
                        8,
                    )?;
                    let w: Vec<u32> = bytemuck::pod_collect_to_vec(&raw);
                    Ok((w[0], w[1]))
                })
                .collect::<Result<_>>()?
        };
        let mut wanted: HashMap<u32, Vec<(usize, u32)>> = HashMap::new();
        for (at, (&id, &(l, pos))) in ids.iter().zip(&loc).enumerate() {
            let bad = self
                .lists
                .get(l as usize)
                .is_none_or(|info| pos >= info.count);
            if bad {
                return Err(IndexError::bad_file(
                    self.file.path(),
                    format!("section locator: id {id} at list {l} position {pos}, out of range"),
                ));
            }
            wanted.entry(l).or_default().push((at, id));
        }
        let mut ls: Vec<u32> = wanted.keys().copied().collect();
        ls.sort_unstable();
        let mut out = vec![0f32; ids.len() * dim];
        for chunk in ls.chunks(256) {
            self.read_lists(chunk, &mut |i, lids, rows, _| {
                let Rows::Full(vs) = rows else {
                    return Err(IndexError::InvalidArgument("list holds codes".into()));
                };
                for &(at, id) in &wanted[&chunk[i]] {
                    let pos = loc[at].1 as usize;
                    if lids.get(pos) != Some(&id) {
                        return Err(IndexError::bad_file(
                            self.file.path(),
                            format!(
                                "list {} position {pos} holds {:?}, the locator says id {id}",
                                chunk[i],
                                lids.get(pos)
                            ),
                        ));
                    }
                    for (o, x) in out[at * dim..(at + 1) * dim]
                        .iter_mut()
                        .zip(&vs[pos * dim..(pos + 1) * dim])
                    {
                        *o = x.to_f32();
                    }
                }
                Ok(())
            })?;
        }
        Ok(out)
    }
}

/// Opens a SPANN or IVF index directory whose manifest has been read.
pub fn open(dir: &Path, m: Manifest, opts: &OpenOptions) -> Result<Box<dyn VectorIndex>> {
    crate::contract::open_typed!(SpannIndex::open, dir, m, opts)
}
