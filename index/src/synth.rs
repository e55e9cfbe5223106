//! Synthetic data that looks like real embeddings: a mixture of many clusters of uneven size
//! (log-normal weights), each stretched anisotropically (a decaying, per-cluster permuted spectrum)
//! inside a low-dimensional latent space, mapped to `dim` dimensions by one random linear map, plus
//! isotropic noise, optionally L2-normalised. Queries are fresh draws from the same mixture, with
//! clusters chosen by weight (uniform traffic) or by a Zipf law over a random cluster ranking
//! (skewed traffic). Deterministic from the seed, and independent of the thread count.

use crate::distance::normalize;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, StandardNormal};
use rayon::prelude::*;
use serde::Serialize;

/// Generator parameters.
#[derive(Clone, Debug, Serialize)]
pub struct SynthParams {
    /// Dimension.
    pub dim: usize,
    /// Number of clusters.
    pub clusters: usize,
    /// Latent (intrinsic) dimension.
    pub latent_dim: usize,
    /// Spread of cluster centres relative to within-cluster spread.
    pub center_spread: f32,
    /// Spectrum decay exponent of within-cluster scales.
    pub decay: f32,
    /// Standard deviation of the isotropic ambient noise (per component, before normalisation).
    pub noise: f32,
    /// Log-normal sigma of cluster weights (0 = equal sizes).
    pub weight_sigma: f32,
    /// L2-normalise every vector (as sentence embeddings are).
    pub normalize: bool,
    /// Seed.
    pub seed: u64,
}

impl SynthParams {
    /// Defaults tuned so `quiver dataset info` sits near squad-minilm's LID and relative contrast
    /// (see docs/BENCHMARKS.md).
    pub fn defaults(n: usize, dim: usize, seed: u64) -> Self {
        SynthParams {
            dim,
            clusters: (n / 500).clamp(8, 4096),
            latent_dim: 16.min(dim),
            center_spread: 0.25,
            decay: 0.5,
            noise: 0.18,
            weight_sigma: 1.0,
            normalize: true,
            seed,
        }
    }
}

/// Query traffic shape.
#[derive(Clone, Copy, Debug, Serialize)]
pub enum QuerySkew {
    /// Clusters drawn in proportion to their weight (like the data).
    Uniform,
    /// Clusters drawn by a Zipf law with this exponent over a random ranking.
    Zipf(f64),
}

/// The mixture model, built once from the parameters.
pub struct Mixture {
    p: SynthParams,
    /// dim x latent_dim mixing matrix, row-major.
    mix: Vec<f32>,
    centers: Vec<Vec<f32>>,
    scales: Vec<Vec<f32>>,
    /// Cumulative cluster weights for data draws.
    cum_weights: Vec<f64>,
}

const ROWS_PER_TASK: usize = 4096;

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    StandardNormal.sample(rng)
}

fn pick(cum: &[f64], u: f64) -> usize {
    cum.partition_point(|&c| c < u).min(cum.len() - 1)
}

impl Mixture {
    /// Builds the model (cheap: O(clusters x latent_dim + dim x latent_dim)).
    pub fn new(p: SynthParams) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let m = p.latent_dim.max(1);
        let mix: Vec<f32> = (0..p.dim * m)
            .map(|_| gauss(&mut rng) / (m as f32).sqrt())
            .collect();
        let jitter = LogNormal::new(0.0, 0.3).unwrap_or_else(|_| unreachable_lognormal());
        let mut centers = Vec::with_capacity(p.clusters);
        let mut scales = Vec::with_capacity(p.clusters);
        for _ in 0..p.clusters {
            centers.push(
                (0..m)
                    .map(|_| gauss(&mut rng) * p.center_spread)
                    .collect::<Vec<f32>>(),
            );
            let mut s: Vec<f32> = (0..m)
                .map(|i| (i as f32 + 1.0).powf(-p.decay) * jitter.sample(&mut rng) as f32)
                .collect();
            s.shuffle(&mut rng);
            scales.push(s);
        }
        let w = LogNormal::new(0.0, p.weight_sigma.max(1e-6) as f64)
            .unwrap_or_else(|_| unreachable_lognormal());
        let weights: Vec<f64> = (0..p.clusters).map(|_| w.sample(&mut rng)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cum_weights = weights
            .iter()
            .map(|x| {
                acc += x / total;
                acc
            })
            .collect();
        Mixture {
            p,
            mix,
            centers,
            scales,
            cum_weights,
        }
    }

    fn draw(&self, cluster: usize, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let m = self.p.latent_dim.max(1);
        let z: Vec<f32> = (0..m)
            .map(|i| self.centers[cluster][i] + self.scales[cluster][i] * gauss(rng))
            .collect();
        for (d, o) in out.iter_mut().enumerate() {
            let row = &self.mix[d * m..(d + 1) * m];
            *o = row.iter().zip(&z).map(|(a, b)| a * b).sum::<f32>() + self.p.noise * gauss(rng);
        }
        if self.p.normalize {
            normalize(out);
        }
    }

    /// Draws rows `[start, start + count)` of the stream named `stream` (0 = base, 1 = queries),
    /// choosing clusters with `cluster_of`. Deterministic per row block, whatever the threads.
    fn rows(
        &self,
        stream: u64,
        count: usize,
        cluster_of: &(dyn Fn(f64) -> usize + Sync),
    ) -> Vec<f32> {
        let dim = self.p.dim;
        let mut out = vec![0f32; count * dim];
        out.par_chunks_mut(ROWS_PER_TASK * dim)
            .enumerate()
            .for_each(|(task, chunk)| {
                let seed = self.p.seed
                    ^ (stream << 56)
                    ^ ((task as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                for row in chunk.chunks_exact_mut(dim) {
                    let c = cluster_of(rng.random::<f64>());
                    self.draw(c, &mut rng, row);
                }
            });
        out
    }

    /// `n` base vectors, row-major.
    pub fn base(&self, n: usize) -> Vec<f32> {
        self.rows(0, n, &|u| pick(&self.cum_weights, u))
    }

    /// `n` queries: fresh draws, clusters chosen per `skew`.
    pub fn queries(&self, n: usize, skew: QuerySkew) -> Vec<f32> {
        match skew {
            QuerySkew::Uniform => self.rows(1, n, &|u| pick(&self.cum_weights, u)),
            QuerySkew::Zipf(s) => {
                let mut rng = ChaCha8Rng::seed_from_u64(self.p.seed ^ 0x5A5A);
                let mut rank: Vec<usize> = (0..self.p.clusters).collect();
                rank.shuffle(&mut rng);
                let w: Vec<f64> = (1..=self.p.clusters).map(|r| (r as f64).powf(-s)).collect();
                let total: f64 = w.iter().sum();
                let mut acc = 0.0;
                let cum: Vec<f64> = w
                    .iter()
                    .map(|x| {
                        acc += x / total;
                        acc
                    })
                    .collect();
                self.rows(2, n, &|u| rank[pick(&cum, u)])
            }
        }
    }
}

// LogNormal::new fails only for a negative or NaN sigma, which the constants above never are.
fn unreachable_lognormal() -> LogNormal<f64> {
    LogNormal::new(0.0, 1.0).unwrap_or_else(|_| unreachable!("constant parameters are valid"))
}
