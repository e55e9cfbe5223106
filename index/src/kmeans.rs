//! Lloyd's k-means on f32 rows with k-means++ seeding, used
//! by product quantization and by the clustering indices ([`crate::spann`]). Deterministic for a given seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Squared L2 distance for short vectors (PQ subspaces are a few dimensions, where a plain loop
/// beats a SIMD call's dispatch).
#[inline]
pub fn l2sq_short(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Squared L2 distance: the plain loop for short vectors, the SIMD kernel from 16 dimensions on
/// (clustering whole vectors, not PQ subspaces).
#[inline]
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    if a.len() >= 16 {
        <f32 as crate::distance::Element>::l2sq(a, b)
    } else {
        l2sq_short(a, b)
    }
}

/// Index of the centroid nearest to `v` and its squared distance.
#[inline]
pub fn nearest(centroids: &[f32], dim: usize, v: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (c, cent) in centroids.chunks_exact(dim).enumerate() {
        let d = l2sq(cent, v);
        if d < best.1 {
            best = (c, d);
        }
    }
    best
}

/// Clusters the rows of `data` (`dim` columns) into `k` centroids with `iters` Lloyd rounds.
/// Returns `k * dim` floats. With fewer rows than `k`, rows are repeated as centroids; an empty
/// cluster is re-seeded with the row farthest from its centroid.
pub fn kmeans(data: &[f32], dim: usize, k: usize, iters: usize, seed: u64) -> Vec<f32> {
    let n = data.len() / dim;
    if n == 0 || k == 0 {
        return vec![0.0; k * dim];
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cent = Vec::with_capacity(k * dim);
    if n > k {
        // k-means++ seeding: each next centroid is a row drawn with probability proportional to
        // its squared distance from the nearest centroid chosen so far.
        let first = rng.random_range(0..n);
        cent.extend_from_slice(&data[first * dim..(first + 1) * dim]);
        let mut d2: Vec<f32> = data
            .par_chunks_exact(dim)
            .map(|r| l2sq(r, &cent[..dim]))
            .collect();
        while cent.len() < k * dim {
            let total: f64 = d2.iter().map(|&x| x as f64).sum();
            let pick = if total > 0.0 {
                let mut t = rng.random_range(0.0..total);
                d2.iter()
                    .position(|&x| {
                        t -= x as f64;
                        t < 0.0
                    })
                    .unwrap_or(n - 1)
            } else {
                rng.random_range(0..n)
            };
            let start = cent.len();
            cent.extend_from_slice(&data[pick * dim..(pick + 1) * dim]);
            let c = &cent[start..];
            d2.par_iter_mut()
                .zip(data.par_chunks_exact(dim))
                .for_each(|(d, r)| *d = d.min(l2sq(r, c)));
        }
    } else {
        for i in 0..k {
            let r = i % n;
            cent.extend_from_slice(&data[r * dim..(r + 1) * dim]);
        }
    }
    let mut assign = vec![(0usize, 0f32); n];
    for _ in 0..iters {
        assign
            .par_iter_mut()
            .zip(data.par_chunks_exact(dim))
            .for_each(|(a, v)| *a = nearest(&cent, dim, v));
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (i, &(c, _)) in assign.iter().enumerate() {
            counts[c] += 1;
            for (s, &x) in sums[c * dim..(c + 1) * dim]
                .iter_mut()
                .zip(&data[i * dim..(i + 1) * dim])
            {
                *s += x as f64;
            }
        }
        // Re-seed empty clusters with the rows currently worst served.
        let mut far: Vec<usize> = Vec::new();
        if counts.contains(&0) {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| assign[b].1.total_cmp(&assign[a].1));
            far = order;
        }
        let mut far_iter = far.into_iter();
        for c in 0..k {
            let dst = &mut cent[c * dim..(c + 1) * dim];
            if counts[c] > 0 {
                for (d, s) in dst.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                    *d = (*s / counts[c] as f64) as f32;
                }
            } else if let Some(r) = far_iter.next() {
                dst.copy_from_slice(&data[r * dim..(r + 1) * dim]);
            }
        }
    }
    cent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_well_spaced_blobs() {
        // Three tight blobs far apart: every centroid must land in a different blob.
        let mut data = Vec::new();
        for c in [0.0f32, 100.0, 200.0] {
            for j in 0..50 {
                data.extend_from_slice(&[c + (j % 5) as f32 * 0.1, c - (j % 7) as f32 * 0.1]);
            }
        }
        let cent = kmeans(&data, 2, 3, 10, 7);
        let mut xs: Vec<f32> = cent.chunks_exact(2).map(|c| c[0]).collect();
        xs.sort_by(f32::total_cmp);
        assert!(
            xs[0] < 1.0 && (99.0..101.0).contains(&xs[1]) && xs[2] > 199.0,
            "{xs:?}"
        );
    }
}
