//! SQ8 codes for posting lists: each component becomes one byte, `code = round((x - lo_d) /
//! step)`, with a per-dimension offset and one step for all dimensions (the widest range / 255),
//! so squared L2 to a code is squared L2 to the vector it stands for, up to rounding. The query
//! stays in f32 (asymmetric distance: only the data side is rounded); lists then cost a quarter
//! of the bytes of f32 vectors, and the best candidates are re-ranked with the full-precision
//! rows.

use crate::error::{IndexError, Result};
use crate::metric::Metric;
use std::path::Path;

/// The quantizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Sq8 {
    lo: Vec<f32>,
    step: f32,
}

/// A query in code units.
pub enum SqQuery {
    /// L2 and cosine (rows normalised): `(q - lo) / step`; distance `step^2 |q' - c|^2`.
    L2(Vec<f32>),
    /// Inner product: `q * step` and `sum q * lo`; distance `-(offset + w . c)`.
    Ip(Vec<f32>, f32),
}

impl Sq8 {
    /// Trains on the first `dim` columns of the `stride`-wide rows of `rows`.
    pub fn train(rows: &[f32], stride: usize, dim: usize) -> Sq8 {
        let (mut lo, mut hi) = (vec![f32::INFINITY; dim], vec![f32::NEG_INFINITY; dim]);
        for r in rows.chunks_exact(stride) {
            for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(r) {
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
        lo.iter_mut()
            .filter(|l| !l.is_finite())
            .for_each(|l| *l = 0.0);
        Sq8 { lo, step }
    }

    /// The code of `row`, appended to `out`.
    pub fn encode_into(&self, row: &[f32], out: &mut Vec<u8>) {
        out.extend(
            row.iter()
                .zip(&self.lo)
                .map(|(&x, &l)| ((x - l) / self.step).round().clamp(0.0, 255.0) as u8),
        );
    }

    /// The section's bytes: dim f32 offsets, then the step.
    pub fn encode(&self) -> Vec<u8> {
        let mut b: Vec<u8> = bytemuck::cast_slice(&self.lo).to_vec();
        b.extend_from_slice(&self.step.to_le_bytes());
        b
    }

    /// Reads what [`encode`](Self::encode) wrote for `dim` dimensions.
    pub fn decode(path: &Path, b: &[u8], dim: usize) -> Result<Sq8> {
        if b.len() != 4 * (dim + 1) {
            return Err(IndexError::bad_file(
                path,
                format!(
                    "section sq8: {} bytes, {dim} dims need {}",
                    b.len(),
                    4 * (dim + 1)
                ),
            ));
        }
        let v: Vec<f32> = bytemuck::pod_collect_to_vec(b);
        let step = v[dim];
        if !(step > 0.0 && step.is_finite()) || v.iter().any(|x| !x.is_finite()) {
            return Err(IndexError::bad_file(
                path,
                format!("section sq8: step {step} or an offset is not a finite positive number"),
            ));
        }
        Ok(Sq8 {
            lo: v[..dim].to_vec(),
            step,
        })
    }

    /// `q` (f32, normalised for cosine) in code units for `metric`.
    pub fn query(&self, metric: Metric, q: &[f32]) -> SqQuery {
        match metric {
            Metric::L2 | Metric::Cosine => SqQuery::L2(
                q.iter()
                    .zip(&self.lo)
                    .map(|(&x, &l)| (x - l) / self.step)
                    .collect(),
            ),
            Metric::Ip => SqQuery::Ip(
                q.iter().map(|&x| x * self.step).collect(),
                q.iter().zip(&self.lo).map(|(&x, &l)| x * l).sum(),
            ),
        }
    }

    /// Approximate distance to the vector `code` stands for ("smaller is closer"; for cosine
    /// the squared L2 of normalised rows, which orders as `1 - cos`).
    #[inline]
    pub fn distance(&self, q: &SqQuery, code: &[u8]) -> f32 {
        // Eight lanes so the compiler vectorises the f32 reduction.
        let mut acc = [0f32; 8];
        match q {
            SqQuery::L2(qv) => {
                let (qc, cc) = (qv.chunks_exact(8), code.chunks_exact(8));
                let (qr, cr) = (qc.remainder(), cc.remainder());
                for (a, b) in qc.zip(cc) {
                    for i in 0..8 {
                        let d = a[i] - b[i] as f32;
                        acc[i] += d * d;
                    }
                }
                let tail: f32 = qr
                    .iter()
                    .zip(cr)
                    .map(|(a, &b)| (a - b as f32).powi(2))
                    .sum();
                (acc.iter().sum::<f32>() + tail) * self.step * self.step
            }
            SqQuery::Ip(w, offset) => {
                let (wc, cc) = (w.chunks_exact(8), code.chunks_exact(8));
                let (wr, cr) = (wc.remainder(), cc.remainder());
                for (a, b) in wc.zip(cc) {
                    for i in 0..8 {
                        acc[i] += a[i] * b[i] as f32;
                    }
                }
                let tail: f32 = wr.iter().zip(cr).map(|(a, &b)| a * b as f32).sum();
                -(offset + acc.iter().sum::<f32>() + tail)
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        4 * (self.lo.len() as u64 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_distances_track_exact_ones_and_round_trip() {
        for dim in [13usize, 64, 100] {
            let rows: Vec<f32> = (0..200 * dim)
                .map(|i| ((i * 7919) % 1000) as f32 / 200.0 - 2.0)
                .collect();
            let sq = Sq8::train(&rows, dim, dim);
            let q: Vec<f32> = (0..dim).map(|i| (i % 9) as f32 / 3.0 - 1.0).collect();
            for metric in [Metric::L2, Metric::Ip] {
                let qq = sq.query(metric, &q);
                for r in rows.chunks_exact(dim) {
                    let mut code = Vec::new();
                    sq.encode_into(r, &mut code);
                    let exact: f32 = match metric {
                        Metric::L2 => r.iter().zip(&q).map(|(a, b)| (a - b) * (a - b)).sum(),
                        _ => -r.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>(),
                    };
                    let got = sq.distance(&qq, &code);
                    // Rounding of up to step / 2 per component (step = 5 / 255 here).
                    let tol = 0.05 * exact.abs().max(dim as f32 * 0.1);
                    assert!(
                        (got - exact).abs() <= tol,
                        "{metric} dim {dim}: {got} vs {exact}"
                    );
                }
            }
            let back = Sq8::decode(Path::new("t"), &sq.encode(), dim).expect("decode");
            assert_eq!(back, sq);
            assert!(Sq8::decode(Path::new("t"), &sq.encode()[4..], dim).is_err());
        }
    }
}
