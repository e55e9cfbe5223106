//! Scalar quantization for the loaded HNSW base layer: each float component becomes one byte,
//! `code = round((x - lo_d) / step)`, with a per-dimension offset `lo_d` and one step for all
//! dimensions (the widest range / 255), so that squared L2 between codes is squared L2 between
//! vectors times `step^2`. The search walks the graph on codes - a 128-d vector is 2 cache lines
//! instead of 8, and for L2 and cosine the query is quantized too and compared with simsimd's
//! integer kernel - then re-ranks the ef candidates it kept with the full-precision vectors.

use crate::metric::Metric;
use crate::simd;

/// 64 bytes aligned to 64: the unit of the loaded arrays, so each record starts a cache line.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub(super) struct CacheLine(pub [u8; 64]);

/// The quantizer and the codes of every node.
pub(super) struct Sq8 {
    lo: Vec<f32>,
    step: f32,
    stride: usize,
    codes: Vec<CacheLine>,
}

/// A query mapped into code units.
pub(super) enum SqQuery {
    /// L2 and cosine (rows normalised, so L2 order is cosine order): the query's own codes.
    Codes(Vec<u8>),
    /// Inner product: `q * step` per dimension and `sum q * lo`.
    Weights(Vec<f32>, f32),
}

impl Sq8 {
    /// Trains on and encodes `n` rows produced by `row(i, buf)` (which writes row i as f32).
    pub fn build(n: usize, dim: usize, row: &dyn Fn(usize, &mut [f32])) -> Sq8 {
        let mut buf = vec![0f32; dim];
        let (mut lo, mut hi) = (vec![f32::INFINITY; dim], vec![f32::NEG_INFINITY; dim]);
        for i in 0..n {
            row(i, &mut buf);
            for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(&buf) {
                *l = l.min(x);
                *h = h.max(x);
            }
        }
        let widest = lo
            .iter()
            .zip(&hi)
            .map(|(&l, &h)| h - l)
            .fold(0f32, f32::max);
        let step = if widest > 0.0 && widest.is_finite() {
            widest / 255.0
        } else {
            1.0
        };
        let stride = dim.div_ceil(64) * 64;
        let mut codes = vec![CacheLine([0; 64]); n * stride / 64];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut codes);
        for (i, code) in bytes.chunks_exact_mut(stride).enumerate() {
            row(i, &mut buf);
            for (d, (c, &x)) in code.iter_mut().zip(&buf).enumerate() {
                *c = ((x - lo[d]) / step).round().clamp(0.0, 255.0) as u8;
            }
        }
        Sq8 {
            lo,
            step,
            stride,
            codes,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        (self.codes.len() * 64 + self.lo.len() * 4) as u64
    }

    /// Node `id`'s code.
    #[inline]
    pub fn code(&self, id: u32) -> &[u8] {
        let b: &[u8] = bytemuck::cast_slice(&self.codes);
        let s = id as usize * self.stride;
        b.get(s..s + self.lo.len()).unwrap_or(&[])
    }

    /// `q` (f32, already normalised for cosine) in code units for `metric`.
    pub fn query(&self, metric: Metric, q: &[f32]) -> SqQuery {
        match metric {
            Metric::L2 | Metric::Cosine => SqQuery::Codes(
                q.iter()
                    .zip(&self.lo)
                    .map(|(&x, &l)| ((x - l) / self.step).round().clamp(0.0, 255.0) as u8)
                    .collect(),
            ),
            Metric::Ip => SqQuery::Weights(
                q.iter().map(|&x| x * self.step).collect(),
                q.iter().zip(&self.lo).map(|(&x, &l)| x * l).sum(),
            ),
        }
    }

    /// Approximate distance of node `id` to `q` under `metric` ("smaller is closer"; for cosine
    /// the squared L2 of the normalised rows, `2 - 2 cos`, which orders as `1 - cos`).
    #[inline]
    pub fn distance(&self, q: &SqQuery, id: u32) -> f32 {
        let c = self.code(id);
        match q {
            SqQuery::Codes(qc) => (simd::l2sq_u8(qc, c) as f32) * self.step * self.step,
            SqQuery::Weights(w, offset) => -(offset + simd::dot_sq8(w, c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn quantized_distances_track_exact_ones() {
        // Dimensions with and without a SIMD tail.
        for dim in [13usize, 64, 100] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(dim as u64);
            let n = 300;
            let rows: Vec<f32> = (0..n * dim).map(|_| rng.random_range(-2.0..3.0)).collect();
            let sq = Sq8::build(n, dim, &|i, out| {
                out.copy_from_slice(&rows[i * dim..(i + 1) * dim])
            });
            let q: Vec<f32> = (0..dim).map(|_| rng.random_range(-2.0..3.0)).collect();
            for metric in [Metric::L2, Metric::Ip] {
                let qq = sq.query(metric, &q);
                for i in 0..n {
                    let r = &rows[i * dim..(i + 1) * dim];
                    let exact = match metric {
                        Metric::L2 => r.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum(),
                        _ => -r.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>(),
                    };
                    let got = sq.distance(&qq, i as u32);
                    // Step = 5/255 per component, query codes rounded too: errors of a few
                    // percent of the scale at most.
                    let tol = 0.03 * exact.abs().max(dim as f32 * 0.5);
                    assert!(
                        (got - exact).abs() <= tol,
                        "{metric} dim {dim} row {i}: {got} vs {exact}"
                    );
                }
            }
        }
    }
}
