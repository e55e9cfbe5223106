//! The one integration-test binary. Modules by subject.

mod cli;
mod conformance;
mod datasets;
mod diskann;
mod distances;
mod fixtures;
mod flat;
mod format;
mod hnsw;
mod server;
mod spann;
mod squad;

use std::path::PathBuf;

/// Seeded f32 rows in `[-1, 1)`.
pub fn random_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n * dim)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect()
}

/// The shared squad-minilm dataset, if present (it is in CI and on developer machines).
pub fn squad_dir() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/squad-minilm");
    p.join("base.fbin").exists().then_some(p)
}

/// The fixtures folder.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Brute force in f64 with the reference kernels: the k nearest (id, distance), ties by id,
/// restricted to `allow`.
pub fn brute_force<T: quiver_index::distance::Element>(
    metric: quiver_index::Metric,
    rows: &[T],
    dim: usize,
    q: &[T],
    k: usize,
    allow: Option<&roaring::RoaringBitmap>,
) -> Vec<(u32, f64)> {
    let mut all: Vec<(u32, f64)> = rows
        .chunks_exact(dim)
        .enumerate()
        .filter(|(i, _)| allow.is_none_or(|a| a.contains(*i as u32)))
        .map(|(i, r)| {
            (
                i as u32,
                quiver_index::distance::scalar::distance(metric, q, r),
            )
        })
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Mean recall@10 of `idx` over `queries`, with ties at the 10th true distance counted as hits.
pub fn mean_recall<T: quiver_index::distance::Element>(
    idx: &dyn quiver_index::VectorIndex,
    rows: &[T],
    queries: &[f32],
    metric: quiver_index::Metric,
    sp: &quiver_index::SearchParams,
    allow: Option<&roaring::RoaringBitmap>,
) -> f64 {
    let dim = idx.manifest().dim;
    let k = 10;
    let mut total = 0.0;
    for q in queries.chunks_exact(dim) {
        let qt = quiver_index::contract::prepare_query::<T>(idx.manifest(), q, k).expect("q");
        let want = crate::brute_force(metric, rows, dim, &qt, k, allow);
        let (got, stats) = idx.search(q, k, sp, allow).expect("search");
        assert!(got.len() <= k);
        assert!(stats.rounds > 0 && stats.distance_computations > 0);
        if let Some(a) = allow {
            assert!(got.iter().all(|g| a.contains(g.id)), "result outside allow");
        }
        let kth = want.last().map_or(0.0, |w| w.1);
        let tol = 1e-3 * kth.abs().max(1.0);
        let hits = got.iter().filter(|g| (g.dist as f64) <= kth + tol).count();
        total += hits as f64 / want.len().max(1) as f64;
    }
    total / (queries.len() / dim) as f64
}

/// Seeded clustered rows (n x dim) and 50 queries from the same mixture.
pub fn synth(n: usize, dim: usize, normalize: bool, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut p = quiver_index::synth::SynthParams::defaults(n, dim, seed);
    p.normalize = normalize;
    let mx = quiver_index::synth::Mixture::new(p);
    (
        mx.base(n),
        mx.queries(50, quiver_index::synth::QuerySkew::Uniform),
    )
}

/// Writes `m` under `dir` in the file format of its element type and returns the build input for
/// `metric` (no ids, no payloads).
pub fn write_input(
    dir: &std::path::Path,
    m: &quiver_index::dataset::Matrix,
    metric: quiver_index::Metric,
) -> quiver_index::build::BuildInput {
    use quiver_index::dataset::VecData;
    let ext = match &m.data {
        VecData::F32(_) => "fbin",
        VecData::F16(_) => "f16bin",
        VecData::I8(_) => "i8bin",
        VecData::U8(_) => "u8bin",
        _ => "npy",
    };
    let data = dir.join(format!("data-{metric}.{ext}"));
    quiver_index::dataset::write_matrix(&data, m).expect("write");
    quiver_index::build::BuildInput {
        data,
        ids: None,
        payloads: None,
        metric,
    }
}
