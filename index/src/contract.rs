//! The contract every index implements: [`VectorIndex::search`] with per-index knobs
//! ([`SearchParams`]), an optional allow-list of internal ids, and per-query [`SearchStats`];
//! [`open`] reads the manifest and picks the implementation by kind.

use crate::distance::{normalize, Element};
use crate::error::{IndexError, Result};
use crate::manifest::Manifest;
use crate::metric::Metric;
use crate::topk::Neighbor;
use quiver_storage::io::Backend;
use roaring::RoaringBitmap;
use serde::Serialize;
use std::path::Path;

/// Largest k a search accepts (an oversized request is an error, not an allocation).
pub const MAX_K: usize = 100_000;

/// Search-time knobs. Each index reads the ones it understands and ignores the rest.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SearchParams {
    /// HNSW: candidate list size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ef: Option<usize>,
    /// DiskANN: candidate list size L.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_list: Option<usize>,
    /// DiskANN: reads per round W.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beam_width: Option<usize>,
    /// IVF: lists probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nprobe: Option<usize>,
    /// SPANN: pruning slack eps2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps: Option<f32>,
    /// SPANN: most lists probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lists: Option<usize>,
    /// SPANN with SQ8 lists: candidates re-ranked with the full-precision vectors (default k;
    /// fewer than k count as k). `Some(0)`: none - the same ids as re-ranking k, in the codes'
    /// order, with the codes' estimated distances, and k fewer reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank: Option<usize>,
}

/// What one search cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SearchStats {
    /// Rounds of batched reads.
    pub rounds: u64,
    /// Reads issued to the disk (cache misses).
    pub reads: u64,
    /// Bytes those reads returned.
    pub read_bytes: u64,
    /// Reads served by the block cache.
    pub cache_hits: u64,
    /// Full-precision or quantized distance computations.
    pub distance_computations: u64,
    /// Posting lists probed (clustering indices).
    pub lists: u64,
}

impl std::ops::AddAssign for SearchStats {
    fn add_assign(&mut self, o: Self) {
        self.rounds += o.rounds;
        self.reads += o.reads;
        self.read_bytes += o.read_bytes;
        self.cache_hits += o.cache_hits;
        self.distance_computations += o.distance_computations;
        self.lists += o.lists;
    }
}

/// How to open an index.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    /// Read backend for on-disk structures.
    pub backend: Backend,
    /// Block-cache budget in bytes (indices that read from disk).
    pub cache_bytes: u64,
    /// Graph nodes to pin in RAM at open (the static hot set, BFS around the entry point), on
    /// top of a dynamic cache of `cache_bytes`. `None`: half of `cache_bytes` pins hot nodes and
    /// the other half is the dynamic cache.
    pub hot_nodes: Option<usize>,
}

/// The one search interface.
pub trait VectorIndex: Send + Sync {
    /// The index's manifest.
    fn manifest(&self) -> &Manifest;

    /// The `k` nearest neighbors of `query` (smaller distance first, ties by id), restricted to
    /// internal ids in `allow` when given. Errors on a wrong dimension, a non-finite component,
    /// k = 0 or k > [`MAX_K`]. Returns fewer than k when fewer vectors are eligible.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        allow: Option<&RoaringBitmap>,
    ) -> Result<(Vec<Neighbor>, SearchStats)>;

    /// Searches every `dim`-long row of `queries` (results in query order). Indices that read
    /// from disk override this to interleave the queries' reads; the default loops over
    /// [`search`](Self::search).
    fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams,
        allow: Option<&RoaringBitmap>,
    ) -> Result<Vec<(Vec<Neighbor>, SearchStats)>> {
        let dim = self.manifest().dim;
        check_batch(dim, queries)?;
        queries
            .chunks_exact(dim)
            .map(|q| self.search(q, k, params, allow))
            .collect()
    }

    /// Whether [`search_batch`](Self::search_batch) interleaves its queries (so a benchmark
    /// should hand it groups); false for indices that use the default loop.
    fn interleaves(&self) -> bool {
        false
    }

    /// Parameter settings to sweep when a benchmark names none, cheapest first.
    fn default_grid(&self) -> Vec<SearchParams>;

    /// What the index keeps in RAM by design, by component (name, bytes): codes, codebooks,
    /// pinned blocks, cache budgets. Benchmarks compare the measured RSS against the sum.
    fn memory(&self) -> Vec<(&'static str, u64)>;

    /// The stored vectors of internal ids `ids`, as f32 rows in the order asked (normalised for
    /// float cosine, as stored). For exact scans of small allow-lists, `get` and compaction.
    /// Errors on an id >= n.
    fn vectors(&self, ids: &[u32]) -> Result<Vec<f32>>;
}

/// Checks every id is below `n` (the error names the first that is not).
pub fn check_ids(ids: &[u32], n: usize) -> Result<()> {
    match ids.iter().find(|&&i| i as usize >= n) {
        Some(bad) => Err(IndexError::InvalidArgument(format!(
            "internal id {bad} out of range (n = {n})"
        ))),
        None => Ok(()),
    }
}

/// Checks that `queries` is a non-empty whole number of `dim`-long rows.
pub fn check_batch(dim: usize, queries: &[f32]) -> Result<()> {
    if queries.is_empty() || !queries.len().is_multiple_of(dim) {
        return Err(IndexError::Dimension {
            what: "query batch".into(),
            expected: dim,
            got: queries.len(),
        });
    }
    Ok(())
}

/// Validates a query against an index and returns it in the index's element type (normalised
/// for float cosine, as stored vectors are).
pub fn prepare_query<T: Element>(m: &Manifest, query: &[f32], k: usize) -> Result<Vec<T>> {
    if query.len() != m.dim {
        return Err(IndexError::Dimension {
            what: "query".into(),
            expected: m.dim,
            got: query.len(),
        });
    }
    if k == 0 || k > MAX_K {
        return Err(IndexError::InvalidArgument(format!(
            "k = {k} must be in 1..={MAX_K}"
        )));
    }
    if let Some((i, &v)) = query.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(IndexError::NonFinite {
            what: "query".into(),
            index: i,
            value: v,
        });
    }
    let mut q = query.to_vec();
    if m.metric == Metric::Cosine && T::TYPE.is_float() {
        normalize(&mut q);
    }
    q.iter()
        .enumerate()
        .map(|(i, &v)| {
            T::from_f32(v).ok_or_else(|| {
                IndexError::InvalidArgument(format!(
                    "query component {i} = {v} is not representable as {}",
                    T::TYPE
                ))
            })
        })
        .collect()
}

/// Boxes `$index::<T>::$ctor(dir, manifest, opts)?` for the element type `T` the manifest names:
/// the one place an index kind's open turns the run-time element type into its generic one.
macro_rules! open_typed {
    ($index:ident :: $ctor:ident, $dir:expr, $m:expr, $opts:expr) => {{
        let (dir, m, opts) = ($dir, $m, $opts);
        let index: Box<dyn $crate::contract::VectorIndex> = match m.element {
            $crate::metric::ElementType::F32 => Box::new($index::<f32>::$ctor(dir, m, opts)?),
            $crate::metric::ElementType::F16 => Box::new($index::<half::f16>::$ctor(dir, m, opts)?),
            $crate::metric::ElementType::I8 => Box::new($index::<i8>::$ctor(dir, m, opts)?),
            $crate::metric::ElementType::U8 => Box::new($index::<u8>::$ctor(dir, m, opts)?),
        };
        Ok(index)
    }};
}
pub(crate) use open_typed;

/// Opens the index in `dir`, choosing the implementation by the manifest's kind.
pub fn open(dir: &Path, opts: &OpenOptions) -> Result<Box<dyn VectorIndex>> {
    let m = Manifest::read(dir)?;
    match m.kind.as_str() {
        "flat" => crate::flat::open(dir, m, opts),
        "diskann" => crate::diskann::open(dir, m, opts),
        "hnsw" => crate::hnsw::open(dir, m, opts),
        "spann" | "ivf" => crate::spann::open(dir, m, opts),
        other => Err(IndexError::Manifest {
            path: dir.join(crate::manifest::MANIFEST_FILE),
            what: format!(
                "unknown index kind {other:?} (this build knows: flat, diskann, hnsw, spann, ivf)"
            ),
        }),
    }
}
