//! One suite, every backend: pread, mmap, io_uring (with and without O_DIRECT-sized slots) and
//! the cached reader over each must return the same verified bytes and the same errors.

use quiver_storage::cache::{CachedReader, MokaBlockCache};
use quiver_storage::io::{
    open_reader, Backend, BlockReader, PreadReader, ReadRequest, ReadStats, UringReader,
};
use quiver_storage::{BlockFile, BlockFileWriter, StorageError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const BLOCKS: u64 = 300;

fn make_file(dir: &std::path::Path) -> BlockFile {
    let p = dir.join("c.qbf");
    let mut w = BlockFileWriter::create(&p, "conformance").expect("create");
    w.begin_section("data").expect("section");
    for b in 0..BLOCKS {
        let payload: Vec<u8> = (0..w.payload_bytes())
            .map(|i| (b as usize * 31 + i) as u8)
            .collect();
        w.write(&payload).expect("write");
    }
    w.end_section().expect("end");
    w.finish().expect("finish");
    BlockFile::open(&p).expect("open")
}

fn backends(file: &BlockFile) -> Vec<(String, Arc<dyn BlockReader>)> {
    let mut v: Vec<(String, Arc<dyn BlockReader>)> = vec![
        (
            "pread".into(),
            open_reader(file, Backend::Pread).expect("pread"),
        ),
        (
            "mmap".into(),
            open_reader(file, Backend::Mmap).expect("mmap"),
        ),
        (
            "uring-qd4".into(),
            open_reader(file, Backend::IoUring { queue_depth: 4 }).expect("uring"),
        ),
        (
            "uring-qd64".into(),
            open_reader(file, Backend::IoUring { queue_depth: 64 }).expect("uring"),
        ),
    ];
    if let Ok(u) = UringReader::with_read_sizes(file, 2, 4096, 0) {
        // An arena of two blocks: 3- and 4-block requests take the one-off buffer path, and
        // 2-block requests wait for the arena to empty.
        v.push(("uring-small-arena".into(), Arc::new(u)));
    }
    let cached: Vec<(String, Arc<dyn BlockReader>)> = v
        .iter()
        .map(|(n, r)| {
            (
                format!("cached-{n}"),
                Arc::new(CachedReader::new(
                    r.clone(),
                    Arc::new(MokaBlockCache::new(1 << 20)),
                )) as Arc<dyn BlockReader>,
            )
        })
        .collect();
    v.extend(cached);
    v
}

fn expected_payload(block_no: u64, payload: usize) -> Vec<u8> {
    // Data block b (1-based in the file) holds section block b - 1.
    (0..payload)
        .map(|i| ((block_no - 1) as usize * 31 + i) as u8)
        .collect()
}

#[test]
fn every_backend_returns_the_same_verified_bytes() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = make_file(dir.path());
    let p = file.payload_bytes();
    let bs = file.block_size();
    let reqs: Vec<ReadRequest> = (0..200u64)
        .map(|i| ReadRequest::blocks(1 + (i * 37) % (BLOCKS - 4), 1 + (i % 4) as u32).expect("req"))
        .collect();
    for (name, r) in backends(&file) {
        for round in 0..2 {
            let mut seen = vec![false; reqs.len()];
            let stats = r
                .read_batch(&reqs, &mut |i, buf| {
                    assert_eq!(
                        buf.len(),
                        reqs[i].n_blocks() as usize * bs,
                        "{name}: length of request {i}"
                    );
                    for (j, block) in buf.chunks(bs).enumerate() {
                        let b = reqs[i].first_block() + j as u64;
                        assert_eq!(
                            &block[..p],
                            &expected_payload(b, p)[..],
                            "{name}: block {b}"
                        );
                    }
                    seen[i] = true;
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                seen.iter().all(|&s| s),
                "{name}: every request answered once"
            );
            assert_eq!(
                stats.ios + stats.cache_hits,
                reqs.len() as u64,
                "{name}: stats count requests"
            );
            if name.starts_with("cached") && round == 1 {
                assert_eq!(stats.ios, 0, "{name}: second round served from cache");
            }
        }
    }
}

#[test]
fn every_backend_rejects_out_of_range_and_reports_corruption() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = make_file(dir.path());
    for (name, r) in backends(&file) {
        let beyond = ReadRequest::blocks(BLOCKS, 2).expect("req");
        let e = r
            .read_batch(&[beyond], &mut |_, _| Ok(()))
            .expect_err(&name);
        assert!(matches!(e, StorageError::OutOfRange { .. }), "{name}: {e}");
    }
    // Flip one byte inside block 17's payload: every backend (uncached) must name file and offset.
    let path = file.path().to_path_buf();
    let mut bytes = std::fs::read(&path).expect("read");
    let bs = file.block_size();
    bytes[17 * bs + 100] ^= 0x55;
    std::fs::write(&path, &bytes).expect("write");
    let file = BlockFile::open(&path).expect("header and footer still fine");
    for (name, r) in backends(&file) {
        let reqs = [
            ReadRequest::block(3),
            ReadRequest::blocks(16, 3).expect("req"),
            ReadRequest::block(5),
        ];
        let e = r.read_batch(&reqs, &mut |_, _| Ok(())).expect_err(&name);
        match e {
            StorageError::Corrupt {
                path: p, offset, ..
            } => {
                assert_eq!(p, path, "{name}");
                assert_eq!(offset, 17 * bs as u64, "{name}");
            }
            other => panic!("{name}: expected corruption, got {other}"),
        }
        // The reader stays usable after an error.
        r.read_batch(&[ReadRequest::block(3)], &mut |_, _| Ok(()))
            .unwrap_or_else(|e| panic!("{name} after error: {e}"));
    }
}

#[test]
fn a_callback_error_stops_the_batch_and_is_returned() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = make_file(dir.path());
    for (name, r) in backends(&file) {
        let reqs: Vec<ReadRequest> = (1..100).map(ReadRequest::block).collect();
        let e = r
            .read_batch(&reqs, &mut |_, _| {
                Err(StorageError::InvalidArgument("stop".into()))
            })
            .expect_err(&name);
        assert!(e.to_string().contains("stop"), "{name}: {e}");
    }
}

/// Counts batches that reach the backend.
struct Counting {
    inner: PreadReader,
    batches: AtomicU64,
}

impl BlockReader for Counting {
    fn path(&self) -> &std::path::Path {
        self.inner.path()
    }
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }
    fn readable_blocks(&self) -> u64 {
        self.inner.readable_blocks()
    }
    fn read_batch(
        &self,
        reqs: &[ReadRequest],
        on_read: &mut quiver_storage::io::OnRead<'_>,
    ) -> quiver_storage::Result<ReadStats> {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.inner.read_batch(reqs, on_read)
    }
}

#[test]
fn cached_reader_serves_hits_without_touching_the_backend_and_forwards_misses_as_one_batch() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = make_file(dir.path());
    let counting = Arc::new(Counting {
        inner: PreadReader::open(&file).expect("pread"),
        batches: AtomicU64::new(0),
    });
    let cache = Arc::new(MokaBlockCache::new(1 << 20));
    let r = CachedReader::new(counting.clone(), cache.clone());
    let reqs: Vec<ReadRequest> = (1..=10).map(ReadRequest::block).collect();
    let s1 = r.read_batch(&reqs, &mut |_, _| Ok(())).expect("cold");
    assert_eq!((s1.ios, s1.cache_hits, s1.cache_misses), (10, 0, 10));
    assert_eq!(
        counting.batches.load(Ordering::Relaxed),
        1,
        "ten misses, one backend batch"
    );
    let s2 = r.read_batch(&reqs, &mut |_, _| Ok(())).expect("warm");
    assert_eq!((s2.ios, s2.cache_hits), (0, 10));
    assert_eq!(
        counting.batches.load(Ordering::Relaxed),
        1,
        "hits never reach the backend"
    );
    // Mixed: 5 hits, 5 misses, still one batch for the misses.
    let mixed: Vec<ReadRequest> = (6..=15).map(ReadRequest::block).collect();
    let s3 = r.read_batch(&mixed, &mut |_, _| Ok(())).expect("mixed");
    assert_eq!((s3.ios, s3.cache_hits), (5, 5));
    assert_eq!(counting.batches.load(Ordering::Relaxed), 2);
    let st = cache.stats_snapshot();
    assert_eq!((st.hits, st.misses), (15, 15));
    assert_eq!(st.bytes_read, 15 * file.block_size() as u64);
}

#[test]
fn pinned_blocks_survive_a_zero_budget_cache() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = make_file(dir.path());
    let cache = Arc::new(MokaBlockCache::new(0));
    let r = CachedReader::new(
        open_reader(&file, Backend::Pread).expect("pread"),
        cache.clone(),
    );
    r.pin(&[ReadRequest::block(1), ReadRequest::block(2)])
        .expect("pin");
    let s = r
        .read_batch(
            &[
                ReadRequest::block(1),
                ReadRequest::block(2),
                ReadRequest::block(3),
            ],
            &mut |_, _| Ok(()),
        )
        .expect("read");
    assert_eq!((s.cache_hits, s.ios), (2, 1));
    let s = r
        .read_batch(&[ReadRequest::block(3)], &mut |_, _| Ok(()))
        .expect("read");
    assert_eq!(s.ios, 1, "a zero budget keeps nothing but the pinned set");
    assert_eq!(
        cache.stats_snapshot().pinned_bytes,
        2 * file.block_size() as u64
    );
}

trait Snapshot {
    fn stats_snapshot(&self) -> quiver_storage::cache::CacheStats;
}

impl Snapshot for MokaBlockCache {
    fn stats_snapshot(&self) -> quiver_storage::cache::CacheStats {
        quiver_storage::cache::BlockCache::stats(self)
    }
}
