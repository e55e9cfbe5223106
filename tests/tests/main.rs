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
