//! The mutable in-memory segment: rows appended by upserts since the last flush, searched
//! exactly. A row is never changed in place: an overwrite appends a new row and marks the old one
//! dead.

use super::payload::{Filter, Payload};
use quiver_index::scan::exact_topk;
use quiver_index::{Metric, Neighbor};
use roaring::RoaringBitmap;

/// Rows in RAM.
#[derive(Debug, Default)]
pub struct MemTable {
    dim: usize,
    /// External id of each row.
    pub ids: Vec<u64>,
    /// Row-major f32 vectors (normalised for cosine).
    pub vectors: Vec<f32>,
    /// Payload of each row.
    pub payloads: Vec<Payload>,
    /// Rows deleted or overwritten.
    pub dead: RoaringBitmap,
    /// Bytes of vectors and payload text (for the flush threshold).
    bytes: usize,
}

impl MemTable {
    /// An empty table of `dim`-dimensional rows.
    pub fn new(dim: usize) -> Self {
        MemTable {
            dim,
            ..Default::default()
        }
    }

    /// Appends a row; returns its row number.
    pub fn push(&mut self, id: u64, vector: &[f32], payload: Payload) -> u32 {
        let row = self.ids.len() as u32;
        self.bytes += vector.len() * 4 + 16 + payload.text.len() + 32 * payload.fields.len();
        self.ids.push(id);
        self.vectors.extend_from_slice(vector);
        self.payloads.push(payload);
        row
    }

    /// Rows held, dead ones included.
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    /// Live rows.
    pub fn live(&self) -> u64 {
        self.ids.len() as u64 - self.dead.len()
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Row `r`'s vector.
    pub fn vector(&self, r: u32) -> &[f32] {
        &self.vectors[r as usize * self.dim..(r as usize + 1) * self.dim]
    }

    /// The live rows that pass `filter`.
    pub fn allowed(&self, filter: Option<&Filter>) -> RoaringBitmap {
        let mut b = RoaringBitmap::new();
        for (r, p) in self.payloads.iter().enumerate() {
            if filter.is_none_or(|f| f.matches(p)) {
                b.insert(r as u32);
            }
        }
        b - &self.dead
    }

    /// Exact top `k` rows for a prepared query (normalised for cosine), among live rows passing
    /// `filter` and not in `also_dead`; returns them and the distances computed.
    pub fn search(
        &self,
        metric: Metric,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        also_dead: Option<&RoaringBitmap>,
    ) -> (Vec<Neighbor>, u64) {
        if self.ids.is_empty() {
            return (Vec::new(), 0);
        }
        let mut allow = self.allowed(filter);
        if let Some(d) = also_dead {
            allow -= d;
        }
        exact_topk(metric, &self.vectors, self.dim, query, k, Some(&allow))
    }
}
