//! Product quantization in the navigation space (always squared L2, see [`super`]): the data
//! is centred on its mean, the dimensions are split into `m` contiguous subspaces (sizes differ
//! by at most one), and each subspace gets 256 k-means centroids trained on a sample. A vector is
//! `m` bytes; a query builds an `m x 256` table of subspace distances once, then each code costs
//! `m` table lookups.

use crate::kmeans::{kmeans, l2sq_short, nearest};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Centroids per subspace (codes are one byte).
pub const CENTROIDS: usize = 256;
/// Rows sampled to train the codebooks.
pub const TRAIN_SAMPLE: usize = 100_000;
/// Lloyd rounds per subspace.
pub const TRAIN_ITERS: usize = 12;

/// Trained codebooks.
#[derive(Clone, Debug, PartialEq)]
pub struct Pq {
    /// Dimension of the (navigation-space) vectors.
    pub dim: usize,
    /// Subspace boundaries: subspace `b` covers dims `offsets[b]..offsets[b + 1]`.
    pub offsets: Vec<usize>,
    /// Mean subtracted before quantizing.
    pub center: Vec<f32>,
    /// For each subspace, `CENTROIDS x width` floats, concatenated.
    pub codebooks: Vec<f32>,
}

impl Pq {
    /// Bytes the codebooks, centre and offsets take in RAM.
    pub fn bytes(&self) -> u64 {
        ((self.codebooks.len() + self.center.len()) * 4 + self.offsets.len() * 8) as u64
    }

    /// Number of subspaces (bytes per code).
    pub fn m(&self) -> usize {
        self.offsets.len() - 1
    }

    fn book(&self, b: usize) -> &[f32] {
        let start = self.offsets[b] * CENTROIDS;
        &self.codebooks[start..self.offsets[b + 1] * CENTROIDS]
    }

    /// Trains `m` subspaces on a sample of the `n x dim` rows of `data`.
    pub fn train(data: &[f32], dim: usize, m: usize, seed: u64) -> Pq {
        let n = data.len() / dim;
        let m = m.clamp(1, dim);
        let offsets: Vec<usize> = (0..=m).map(|b| b * dim / m).collect();
        let mut center = vec![0f64; dim];
        for row in data.chunks_exact(dim) {
            for (c, &x) in center.iter_mut().zip(row) {
                *c += x as f64;
            }
        }
        let center: Vec<f32> = center
            .iter()
            .map(|&c| (c / n.max(1) as f64) as f32)
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let rows: Vec<usize> = if n > TRAIN_SAMPLE {
            let mut r = sample(&mut rng, n, TRAIN_SAMPLE).into_vec();
            r.sort_unstable();
            r
        } else {
            (0..n).collect()
        };
        let books: Vec<Vec<f32>> = (0..m)
            .into_par_iter()
            .map(|b| {
                let (lo, hi) = (offsets[b], offsets[b + 1]);
                let mut sub = Vec::with_capacity(rows.len() * (hi - lo));
                for &r in &rows {
                    let row = &data[r * dim..(r + 1) * dim];
                    sub.extend(row[lo..hi].iter().zip(&center[lo..hi]).map(|(x, c)| x - c));
                }
                kmeans(&sub, hi - lo, CENTROIDS, TRAIN_ITERS, seed ^ (b as u64 + 1))
            })
            .collect();
        Pq {
            dim,
            offsets,
            center,
            codebooks: books.concat(),
        }
    }

    /// Encodes one row into `out` (`m` bytes).
    pub fn encode_into(&self, row: &[f32], out: &mut [u8], scratch: &mut Vec<f32>) {
        scratch.clear();
        scratch.extend(row.iter().zip(&self.center).map(|(x, c)| x - c));
        for (b, o) in out.iter_mut().enumerate() {
            let (lo, hi) = (self.offsets[b], self.offsets[b + 1]);
            *o = nearest(self.book(b), hi - lo, &scratch[lo..hi]).0 as u8;
        }
    }

    /// Encodes every row (in parallel); `n x m` bytes.
    pub fn encode_all(&self, data: &[f32]) -> Vec<u8> {
        let m = self.m();
        let mut codes = vec![0u8; data.len() / self.dim * m];
        codes
            .par_chunks_exact_mut(m)
            .zip(data.par_chunks_exact(self.dim))
            .for_each_init(Vec::new, |scratch, (out, row)| {
                self.encode_into(row, out, scratch)
            });
        codes
    }

    /// The `m x 256` table of squared distances from `query`'s subvectors to every centroid.
    pub fn table(&self, query: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.reserve(self.m() * CENTROIDS);
        let q: Vec<f32> = query.iter().zip(&self.center).map(|(x, c)| x - c).collect();
        for b in 0..self.m() {
            let (lo, hi) = (self.offsets[b], self.offsets[b + 1]);
            let qs = &q[lo..hi];
            out.extend(
                self.book(b)
                    .chunks_exact(hi - lo)
                    .map(|c| l2sq_short(c, qs)),
            );
        }
    }

    /// Asymmetric distance of one code under a query's table.
    #[inline]
    pub fn distance(table: &[f32], code: &[u8]) -> f32 {
        code.iter()
            .enumerate()
            .map(|(b, &c)| table[b * CENTROIDS + c as usize])
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adc_tracks_true_distance() {
        // Random 16-d data; with 8 subspaces the PQ distance must rank a near and a far point
        // correctly and stay close to the exact distance on average.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let data: Vec<f32> = (0..2000 * 16)
            .map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0))
            .collect();
        let pq = Pq::train(&data, 16, 8, 1);
        let codes = pq.encode_all(&data);
        let q = &data[0..16];
        let mut t = Vec::new();
        pq.table(q, &mut t);
        let mut err = 0.0;
        for i in 0..2000 {
            let exact = l2sq_short(q, &data[i * 16..(i + 1) * 16]);
            let approx = Pq::distance(&t, &codes[i * 8..(i + 1) * 8]);
            err += (exact - approx).abs() / exact.max(1e-3);
        }
        assert!(err / 2000.0 < 0.35, "mean relative error {}", err / 2000.0);
    }
}
