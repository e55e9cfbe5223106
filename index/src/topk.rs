//! Top-k selection and merging. Order is (distance, id) ascending, so ties break by the smaller
//! id, the same rule ground truth uses.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One result: an internal id and its distance (smaller is closer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbor {
    /// Internal id (row number in the index).
    pub id: u32,
    /// Distance under the index's metric.
    pub dist: f32,
}

impl Neighbor {
    /// Total order: distance (NaN last), then id.
    pub fn cmp_key(&self, o: &Self) -> Ordering {
        self.dist.total_cmp(&o.dist).then(self.id.cmp(&o.id))
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry(Neighbor);

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.cmp_key(&o.0)
    }
}

/// Keeps the k best neighbors seen so far (a max-heap on the worst).
#[derive(Clone, Debug)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

impl TopK {
    /// An empty selection of `k` best.
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// The distance a candidate must beat to enter (infinity until k are held).
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |e| e.0.dist)
        }
    }

    /// Offers a candidate.
    #[inline]
    pub fn push(&mut self, id: u32, dist: f32) {
        if self.k == 0 {
            return;
        }
        let e = Entry(Neighbor { id, dist });
        if self.heap.len() < self.k {
            self.heap.push(e);
        } else if let Some(top) = self.heap.peek() {
            if e < *top {
                self.heap.pop();
                self.heap.push(e);
            }
        }
    }

    /// Number held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The selection, best first.
    pub fn into_sorted_vec(self) -> Vec<Neighbor> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|e| e.0)
            .collect()
    }
}

/// Merges several result lists into the k best, dropping duplicate ids (first, i.e. best,
/// occurrence wins). Used to combine per-thread, per-chunk and per-segment results.
pub fn merge_topk(lists: &[Vec<Neighbor>], k: usize) -> Vec<Neighbor> {
    let mut all: Vec<Neighbor> = lists.iter().flatten().copied().collect();
    all.sort_by(Neighbor::cmp_key);
    let mut seen = std::collections::HashSet::with_capacity(k * 2);
    let mut out = Vec::with_capacity(k);
    for n in all {
        if out.len() == k {
            break;
        }
        if seen.insert(n.id) {
            out.push(n);
        }
    }
    out
}
