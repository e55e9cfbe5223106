//! The one integration-test binary. Modules by subject.

mod cli;
mod conformance;
mod datasets;
mod diskann;
mod distances;
mod fixtures;
mod flat;
mod format;
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
