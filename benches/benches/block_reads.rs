//! Batched block reads by backend on a small, page-cache-resident file (CPU cost per batch, not
//! disk speed; `quiver bench-storage` measures the disk), plus cache hits.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use quiver_storage::cache::{CachedReader, MokaBlockCache};
use quiver_storage::io::{open_reader, Backend, BlockReader, ReadRequest};
use quiver_storage::{BlockFile, BlockFileWriter};
use std::sync::Arc;

fn block_reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("b.qbf");
    let mut w = BlockFileWriter::create(&p, "bench").expect("create");
    w.write_section("data", &vec![7u8; 4096 * 2048])
        .expect("write");
    w.finish().expect("finish");
    let file = BlockFile::open(&p).expect("open");
    let reqs: Vec<ReadRequest> = (0..32u64)
        .map(|i| ReadRequest::block(1 + (i * 61) % 2000))
        .collect();
    let mut g = c.benchmark_group("read_batch-32x4KiB");
    g.throughput(Throughput::Elements(32));
    let mut readers: Vec<(&str, Arc<dyn BlockReader>)> = vec![
        ("pread", open_reader(&file, Backend::Pread).expect("pread")),
        ("mmap", open_reader(&file, Backend::Mmap).expect("mmap")),
        (
            "uring",
            open_reader(&file, Backend::IoUring { queue_depth: 32 }).expect("uring"),
        ),
    ];
    let cached = Arc::new(CachedReader::new(
        readers[0].1.clone(),
        Arc::new(MokaBlockCache::new(64 << 20)),
    ));
    cached.read_batch(&reqs, &mut |_, _| Ok(())).expect("warm");
    readers.push(("cache-hit", cached));
    for (name, r) in readers {
        g.bench_function(name, |b| {
            b.iter(|| r.read_batch(&reqs, &mut |_, _| Ok(())).expect("read"))
        });
    }
    g.finish();
}

/// criterion's macros emit a public, undocumented fn; keep it in a private module.
mod group {
    use super::*;
    criterion_group!(benches, block_reads);
}
criterion_main!(group::benches);
