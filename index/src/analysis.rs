//! Dataset statistics for `quiver dataset info`: norms, local intrinsic dimensionality (MLE of
//! Levina and Bickel over the k nearest neighbours) and relative contrast (He et al.: mean distance
//! over nearest-neighbour distance), on a seeded sample against a reference prefix of the set.

use crate::distance::Element;
use crate::topk::TopK;
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

/// Statistics of a dataset.
#[derive(Clone, Debug, Serialize)]
pub struct DatasetStats {
    /// Rows.
    pub n: usize,
    /// Dimension.
    pub dim: usize,
    /// Smallest L2 norm.
    pub norm_min: f32,
    /// Mean L2 norm.
    pub norm_mean: f32,
    /// Largest L2 norm.
    pub norm_max: f32,
    /// Mean local intrinsic dimensionality (MLE, k neighbours).
    pub lid_mean: f32,
    /// Median local intrinsic dimensionality.
    pub lid_median: f32,
    /// Mean relative contrast (mean distance / nearest-neighbour distance).
    pub relative_contrast: f32,
    /// Neighbours used for LID.
    pub lid_k: usize,
    /// Points sampled.
    pub sample: usize,
    /// Rows used as the reference set.
    pub reference_rows: usize,
}

/// Computes statistics over f32 rows (`data` is n x dim). `sample_size` points are drawn with
/// `seed` from the first `reference_rows` rows, which also serve as the neighbour pool.
pub fn dataset_stats(
    data: &[f32],
    dim: usize,
    lid_k: usize,
    sample_size: usize,
    reference_rows: usize,
    seed: u64,
) -> DatasetStats {
    let n = data.len() / dim;
    let norms: Vec<f32> = data
        .par_chunks_exact(dim)
        .map(|r| <f32 as Element>::dot(r, r).sqrt())
        .collect();
    let (mut lo, mut hi, mut sum) = (f32::INFINITY, 0f32, 0f64);
    for &x in &norms {
        lo = lo.min(x);
        hi = hi.max(x);
        sum += x as f64;
    }
    let refs = reference_rows.min(n);
    let s = sample_size.min(refs);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let picks: Vec<usize> = if s == 0 {
        vec![]
    } else {
        sample(&mut rng, refs, s).into_vec()
    };
    let pool = &data[..refs * dim];
    let per: Vec<(f32, f32)> = picks
        .par_iter()
        .filter_map(|&i| {
            let q = &data[i * dim..(i + 1) * dim];
            let mut top = TopK::new(lid_k);
            let mut mean = 0f64;
            let mut cnt = 0u64;
            for (j, row) in pool.chunks_exact(dim).enumerate() {
                if j == i {
                    continue;
                }
                let d = <f32 as Element>::l2sq(q, row).max(0.0).sqrt();
                mean += d as f64;
                cnt += 1;
                if d > 0.0 {
                    top.push(j as u32, d);
                }
            }
            let nn = top.into_sorted_vec();
            let dk = nn.last()?.dist;
            let d1 = nn.first()?.dist;
            let lid_sum: f64 = nn.iter().map(|x| ((x.dist / dk) as f64).ln()).sum();
            let lid = if lid_sum < 0.0 {
                (-(nn.len() as f64) / lid_sum) as f32
            } else {
                f32::INFINITY
            };
            Some((lid, (mean / cnt.max(1) as f64) as f32 / d1))
        })
        .collect();
    let mut lids: Vec<f32> = per.iter().map(|p| p.0).filter(|x| x.is_finite()).collect();
    lids.sort_by(f32::total_cmp);
    let mean = |v: &[f32]| {
        if v.is_empty() {
            f32::NAN
        } else {
            v.iter().sum::<f32>() / v.len() as f32
        }
    };
    let rcs: Vec<f32> = per.iter().map(|p| p.1).filter(|x| x.is_finite()).collect();
    DatasetStats {
        n,
        dim,
        norm_min: if n == 0 { 0.0 } else { lo },
        norm_mean: (sum / n.max(1) as f64) as f32,
        norm_max: hi,
        lid_mean: mean(&lids),
        lid_median: lids.get(lids.len() / 2).copied().unwrap_or(f32::NAN),
        relative_contrast: mean(&rcs),
        lid_k,
        sample: s,
        reference_rows: refs,
    }
}
