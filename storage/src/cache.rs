//! The block cache: a small interface ([`BlockCache`]) so policies plug in without touching
//! readers, its first policy ([`MokaBlockCache`]: TinyLFU admission, byte budget, plus a pinned map
//! that is never evicted), and [`CachedReader`], which wraps any [`BlockReader`], serves hits from
//! memory without a syscall and forwards only the misses, as one batch.

use crate::error::Result;
use crate::io::{BlockReader, OnRead, ReadRequest, ReadStats};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A cached run of verified blocks (trailers included), shared without copying.
pub type CachedBlocks = Arc<[u8]>;

/// Identifies a cached read: which file (see [`next_file_id`]) and which blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// Process-unique id of the file.
    pub file_id: u64,
    /// First block number.
    pub first_block: u64,
    /// Number of blocks.
    pub n_blocks: u32,
}

/// A fresh process-unique file id for cache keys.
pub fn next_file_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Cumulative counters of a cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups that went to the backend.
    pub misses: u64,
    /// Bytes the backend read for misses.
    pub bytes_read: u64,
    /// Bytes held by the evictable part.
    pub cached_bytes: u64,
    /// Bytes held by the pinned part.
    pub pinned_bytes: u64,
}

/// A block cache policy. Implementations are shared between threads.
pub trait BlockCache: Send + Sync {
    /// Looks up every key; `out[i]` is the hit for `keys[i]`, or `None`. Counts hits and misses.
    fn get_batch(&self, keys: &[CacheKey], out: &mut Vec<Option<CachedBlocks>>);
    /// Offers blocks read from disk; the policy may decline to keep them.
    fn insert(&self, key: CacheKey, blocks: CachedBlocks);
    /// Keeps blocks resident until the cache is dropped (the static hot set).
    fn pin(&self, key: CacheKey, blocks: CachedBlocks);
    /// Records bytes read from disk on behalf of this cache's misses.
    fn record_read(&self, bytes: u64);
    /// Current counters.
    fn stats(&self) -> CacheStats;
}

/// v1 policy: moka (TinyLFU admission, LRU eviction) weighted by bytes, behind a pinned map.
pub struct MokaBlockCache {
    pinned: RwLock<HashMap<CacheKey, CachedBlocks>>,
    pinned_bytes: AtomicU64,
    lru: Option<moka::sync::Cache<CacheKey, CachedBlocks>>,
    hits: AtomicU64,
    misses: AtomicU64,
    bytes_read: AtomicU64,
}

impl MokaBlockCache {
    /// A cache holding up to `capacity_bytes` of evictable blocks (0 = pinned blocks only).
    pub fn new(capacity_bytes: u64) -> Self {
        let lru = (capacity_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity_bytes)
                .weigher(|_k: &CacheKey, v: &CachedBlocks| {
                    u32::try_from(v.len()).unwrap_or(u32::MAX)
                })
                .build()
        });
        MokaBlockCache {
            pinned: RwLock::new(HashMap::new()),
            pinned_bytes: AtomicU64::new(0),
            lru,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
        }
    }
}

impl BlockCache for MokaBlockCache {
    fn get_batch(&self, keys: &[CacheKey], out: &mut Vec<Option<CachedBlocks>>) {
        out.clear();
        let pinned = self.pinned.read().ok();
        let (mut hits, mut misses) = (0u64, 0u64);
        for k in keys {
            let found = pinned
                .as_ref()
                .and_then(|p| p.get(k).cloned())
                .or_else(|| self.lru.as_ref().and_then(|c| c.get(k)));
            if found.is_some() {
                hits += 1;
            } else {
                misses += 1;
            }
            out.push(found);
        }
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses.fetch_add(misses, Ordering::Relaxed);
    }

    fn insert(&self, key: CacheKey, blocks: CachedBlocks) {
        if let Some(c) = &self.lru {
            c.insert(key, blocks);
        }
    }

    fn pin(&self, key: CacheKey, blocks: CachedBlocks) {
        if let Ok(mut p) = self.pinned.write() {
            let len = blocks.len() as u64;
            if p.insert(key, blocks).is_none() {
                self.pinned_bytes.fetch_add(len, Ordering::Relaxed);
            }
        }
    }

    fn record_read(&self, bytes: u64) {
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            cached_bytes: self.lru.as_ref().map_or(0, |c| {
                c.run_pending_tasks();
                c.weighted_size()
            }),
            pinned_bytes: self.pinned_bytes.load(Ordering::Relaxed),
        }
    }
}

/// [`CachedReader::read_batch_tagged`]'s callback: request index, verified bytes, cache hit.
pub type TaggedOnRead<'a> = dyn FnMut(usize, &[u8], bool) -> Result<()> + 'a;

/// Wraps a backend with a cache: hits are served from memory, misses go to the backend as one
/// batch and are offered to the cache.
pub struct CachedReader {
    inner: Arc<dyn BlockReader>,
    cache: Arc<dyn BlockCache>,
    file_id: u64,
}

impl CachedReader {
    /// Wraps `inner`; several readers may share one cache.
    pub fn new(inner: Arc<dyn BlockReader>, cache: Arc<dyn BlockCache>) -> Self {
        CachedReader {
            inner,
            cache,
            file_id: next_file_id(),
        }
    }

    /// The cache key of a request against this reader's file.
    pub fn key(&self, r: &ReadRequest) -> CacheKey {
        CacheKey {
            file_id: self.file_id,
            first_block: r.first_block(),
            n_blocks: r.n_blocks(),
        }
    }

    /// Reads `reqs` from the backend and pins them (the static hot set).
    pub fn pin(&self, reqs: &[ReadRequest]) -> Result<ReadStats> {
        let stats = self.inner.read_batch(reqs, &mut |i, buf| {
            self.cache.pin(self.key(&reqs[i]), Arc::from(buf));
            Ok(())
        })?;
        self.cache.record_read(stats.bytes);
        Ok(stats)
    }

    /// As [`BlockReader::read_batch`], and the callback learns whether each request was a cache
    /// hit (`true`) or came from the backend, so a caller batching several queries can charge
    /// each its own reads.
    pub fn read_batch_tagged(
        &self,
        reqs: &[ReadRequest],
        on_read: &mut TaggedOnRead<'_>,
    ) -> Result<ReadStats> {
        let keys: Vec<CacheKey> = reqs.iter().map(|r| self.key(r)).collect();
        let mut found = Vec::with_capacity(reqs.len());
        self.cache.get_batch(&keys, &mut found);
        let mut stats = ReadStats::default();
        let mut miss_reqs = Vec::new();
        let mut miss_idx = Vec::new();
        for (i, f) in found.iter().enumerate() {
            match f {
                Some(b) => {
                    stats.cache_hits += 1;
                    on_read(i, b, true)?;
                }
                None => {
                    miss_reqs.push(reqs[i]);
                    miss_idx.push(i);
                }
            }
        }
        stats.cache_misses = miss_reqs.len() as u64;
        if !miss_reqs.is_empty() {
            let inner = self.inner.read_batch(&miss_reqs, &mut |j, buf| {
                self.cache.insert(keys[miss_idx[j]], Arc::from(buf));
                on_read(miss_idx[j], buf, false)
            })?;
            self.cache.record_read(inner.bytes);
            stats.ios += inner.ios;
            stats.bytes += inner.bytes;
        }
        Ok(stats)
    }

    /// The cache behind this reader.
    pub fn cache(&self) -> &Arc<dyn BlockCache> {
        &self.cache
    }
}

impl BlockReader for CachedReader {
    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn block_size(&self) -> usize {
        self.inner.block_size()
    }

    fn readable_blocks(&self) -> u64 {
        self.inner.readable_blocks()
    }

    fn read_batch(&self, reqs: &[ReadRequest], on_read: &mut OnRead<'_>) -> Result<ReadStats> {
        self.read_batch_tagged(reqs, &mut |i, buf, _hit| on_read(i, buf))
    }
}

/// A backend with or without the block cache in front, read through one call that tells, per
/// request, whether the cache served it (so a batch of several queries can charge each its own
/// reads). What every index that reads from disk holds.
pub enum MaybeCached {
    /// Straight to the backend.
    Plain(Arc<dyn BlockReader>),
    /// Through the cache.
    Cached(CachedReader),
}

impl MaybeCached {
    /// `reader`, behind `cache` when one is given.
    pub fn new(reader: Arc<dyn BlockReader>, cache: Option<&Arc<dyn BlockCache>>) -> Self {
        match cache {
            Some(c) => MaybeCached::Cached(CachedReader::new(reader, c.clone())),
            None => MaybeCached::Plain(reader),
        }
    }

    /// The reader to use for plain batches.
    pub fn reader(&self) -> &dyn BlockReader {
        match self {
            MaybeCached::Plain(r) => r.as_ref(),
            MaybeCached::Cached(c) => c,
        }
    }

    /// As [`CachedReader::read_batch_tagged`]; without a cache every request is a miss.
    pub fn read_batch_tagged(
        &self,
        reqs: &[ReadRequest],
        on_read: &mut TaggedOnRead<'_>,
    ) -> Result<ReadStats> {
        match self {
            MaybeCached::Plain(r) => r.read_batch(reqs, &mut |i, b| on_read(i, b, false)),
            MaybeCached::Cached(c) => c.read_batch_tagged(reqs, on_read),
        }
    }
}
