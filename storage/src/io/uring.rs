//! The io_uring backend: O_DIRECT reads, a registered file and registered buffers, and a refill
//! loop that keeps up to `queue_depth` reads in flight for as long as a batch has requests left.
//!
//! Rings are pooled: a thread takes one for the length of a batch, so concurrent callers each get
//! their own ring and nothing is locked across I/O. Short reads are resubmitted for the remainder;
//! a read that returns 0 bytes is reported as truncation with file and offset.

use super::{check_bounds, BlockReader, OnRead, ReadRequest, ReadStats};
use crate::aligned::AlignedBuf;
use crate::error::{Result, StorageError};
use crate::file::BlockFile;
use crate::format::verify_blocks;
use io_uring::{opcode, types, IoUring};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// Default size of the largest read expected: the registered arena holds at least one of these;
/// a request larger than the arena uses a one-off aligned buffer.
pub const DEFAULT_SLOT_BYTES: usize = super::DEFAULT_MAX_READ_BYTES;

/// Most idle rings kept per reader.
const MAX_IDLE_RINGS: usize = 64;
/// A ring idle this long is dropped at the next return of any ring: rings are reused only by
/// the thread that made them, and a thread pool that retires idle threads (tokio's blocking
/// pool, after 10 s) would otherwise leave rings with registered buffers behind.
const IDLE_RING_TTL: Duration = Duration::from_secs(30);

/// Reads blocks through pooled io_uring instances.
pub struct UringReader {
    path: PathBuf,
    file: File,
    direct: bool,
    block_size: usize,
    readable: u64,
    queue_depth: u32,
    /// Bytes of each ring's registered arena: `queue_depth` blocks, at least the largest read
    /// expected. Reads take contiguous blocks of it, so memory follows bytes in flight rather than
    /// `queue_depth` times the largest read (a reader of 48 KiB lists would otherwise register
    /// 3 MiB per ring).
    arena_bytes: usize,
    /// Idle rings, each tagged with the thread that created it: a ring is only reused by its
    /// creator, which lets the kernel run it single-issuer with deferred task work.
    rings: Mutex<Vec<(ThreadId, Instant, Ring)>>,
    /// [`IDLE_RING_TTL`], a field so tests can shorten it.
    ring_ttl: Duration,
}

struct Ring {
    // Field order matters: the ring (and its buffer registration) drops before the buffers.
    ring: IoUring,
    /// The registered arena (one buffer, index 0); empty once leaked after a failed wait.
    bufs: Vec<AlignedBuf>,
    fixed_bufs: bool,
    fixed_file: bool,
}

struct Slot {
    req: usize,
    done: usize,
    len: usize,
    /// Where the read lands: `n_blocks` blocks of the arena starting at block `at`, or `big`.
    at: usize,
    n_blocks: usize,
    big: Option<AlignedBuf>,
}

/// First-fit allocation of contiguous blocks of a ring's arena (a bitmap, one bit per block).
struct Blocks {
    used: Vec<u64>,
    n: usize,
}

impl Blocks {
    fn new(n: usize) -> Self {
        Blocks {
            used: vec![0; n.div_ceil(64)],
            n,
        }
    }

    fn is_used(&self, b: usize) -> bool {
        self.used[b / 64] & (1 << (b % 64)) != 0
    }

    fn set(&mut self, start: usize, len: usize, used: bool) {
        for b in start..start + len {
            if used {
                self.used[b / 64] |= 1 << (b % 64);
            } else {
                self.used[b / 64] &= !(1 << (b % 64));
            }
        }
    }

    /// Takes `len` contiguous free blocks, the lowest run that fits.
    fn alloc(&mut self, len: usize) -> Option<usize> {
        let mut run = 0;
        for b in 0..self.n {
            if self.is_used(b) {
                run = 0;
                continue;
            }
            run += 1;
            if run == len {
                let start = b + 1 - len;
                self.set(start, len, true);
                return Some(start);
            }
        }
        None
    }

    fn free(&mut self, start: usize, len: usize) {
        self.set(start, len, false);
    }
}

fn open_file(path: &Path, direct: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path)
}

impl UringReader {
    /// Opens `file` with O_DIRECT (buffered where the filesystem refuses O_DIRECT, e.g. tmpfs,
    /// logged once) and checks that the kernel grants an io_uring of `queue_depth` entries.
    pub fn open(file: &BlockFile, queue_depth: u32) -> Result<Self> {
        Self::with_read_sizes(file, queue_depth, DEFAULT_SLOT_BYTES, 0)
    }

    /// As [`open`](Self::open), with the registered arena sized to hold the largest read
    /// expected (`largest` bytes) and `queue_depth` reads of `typical` bytes (0: one block) in
    /// flight. An arena of one block per slot let only ~21 three-block posting lists fly at a
    /// depth of 64 - SPANN at 1M ran 25-45% below what the disk gave with room for 64.
    pub fn with_read_sizes(
        file: &BlockFile,
        queue_depth: u32,
        largest: usize,
        typical: usize,
    ) -> Result<Self> {
        if !(1..=4096).contains(&queue_depth) {
            return Err(StorageError::InvalidArgument(format!(
                "queue depth {queue_depth} not in 1..=4096"
            )));
        }
        let path = file.path().to_path_buf();
        let bs = file.block_size();
        let per_read = typical.div_ceil(bs).max(1) * bs;
        let arena_bytes = (largest.max(bs).div_ceil(bs) * bs).max(queue_depth as usize * per_read);
        let (f, direct) = match open_file(&path, true) {
            Ok(f) if direct_read_works(&f, bs) => (f, true),
            _ => {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| log::warn!("{}: O_DIRECT refused by the filesystem; io_uring reads go through the page cache", path.display()));
                (
                    open_file(&path, false).map_err(|e| StorageError::io(&path, e))?,
                    false,
                )
            }
        };
        let reader = UringReader {
            path,
            file: f,
            direct,
            block_size: bs,
            readable: file.readable_blocks(),
            queue_depth,
            arena_bytes,
            rings: Mutex::new(Vec::new()),
            ring_ttl: IDLE_RING_TTL,
        };
        // Fail here (so the caller can fall back) rather than on the first search.
        let ring = reader.new_ring()?;
        reader.put_ring(ring);
        Ok(reader)
    }

    /// Whether reads bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    fn new_ring(&self) -> Result<Ring> {
        // A ring is only ever submitted to by the thread that created it (see `take_ring`), so
        // it can be single-issuer with completion work deferred to the moment this thread waits
        // (kernel 6.1+) instead of interrupting it; older kernels refuse the flags, so fall back
        // to COOP_TASKRUN (5.19+) and then to a plain ring.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(self.queue_depth)
            .or_else(|_| {
                IoUring::builder()
                    .setup_coop_taskrun()
                    .build(self.queue_depth)
            })
            .or_else(|_| IoUring::new(self.queue_depth))
            .map_err(|e| StorageError::io(&self.path, e))?;
        let mut bufs = vec![AlignedBuf::zeroed(self.arena_bytes)];
        let iovecs: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: each iovec points into an AlignedBuf owned by the returned Ring, which keeps the
        // buffers alive (and unmoved: they are heap allocations) until after the ring is dropped.
        let fixed_bufs = unsafe { ring.submitter().register_buffers(&iovecs) }.is_ok();
        let fixed_file = ring
            .submitter()
            .register_files(&[self.file.as_raw_fd()])
            .is_ok();
        if !fixed_bufs || !fixed_file {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                log::info!(
                    "io_uring: registered buffers {fixed_bufs}, registered file {fixed_file}"
                )
            });
        }
        Ok(Ring {
            ring,
            bufs,
            fixed_bufs,
            fixed_file,
        })
    }

    fn take_ring(&self) -> Result<Ring> {
        let me = std::thread::current().id();
        let pooled = self
            .rings
            .lock()
            .map(|mut v| {
                let i = v.iter().position(|(t, _, _)| *t == me)?;
                Some(v.swap_remove(i).2)
            })
            .unwrap_or(None);
        match pooled {
            Some(r) => Ok(r),
            None => self.new_ring(),
        }
    }

    fn put_ring(&self, ring: Ring) {
        if let Ok(mut v) = self.rings.lock() {
            // Threads come and go (a server's blocking pool): drop rings idle past the TTL
            // (most likely their thread has exited), and keep the pool bounded by dropping the
            // ring idle longest.
            let ttl = self.ring_ttl;
            v.retain(|(_, since, _)| since.elapsed() < ttl);
            if v.len() >= MAX_IDLE_RINGS {
                v.remove(0);
            }
            v.push((std::thread::current().id(), Instant::now(), ring));
        }
    }

    /// Pushes the read for `slot` (its remaining bytes) onto the submission queue.
    fn push(&self, ring: &mut Ring, slot_no: usize, slot: &mut Slot, reqs: &[ReadRequest]) {
        let r = reqs[slot.req];
        let offset = r.first_block() * self.block_size as u64 + slot.done as u64;
        let remaining = (slot.len - slot.done) as u32;
        let (ptr, start, fixed_index) = match slot.big.as_mut() {
            Some(b) => (b.as_mut_ptr(), 0, None),
            None => (
                ring.bufs[0].as_mut_ptr(),
                slot.at * self.block_size,
                ring.fixed_bufs.then_some(0u16),
            ),
        };
        // SAFETY: `slot.done < slot.len` and the slot owns `slot.len` bytes of its buffer from
        // `start` (the arena blocks `Blocks::alloc` gave it, or all of `big`), so the pointer
        // stays inside the buffer.
        let ptr = unsafe { ptr.add(start + slot.done) };
        let fd = self.file.as_raw_fd();
        let entry = match (fixed_index, ring.fixed_file) {
            (Some(i), true) => opcode::ReadFixed::new(types::Fixed(0), ptr, remaining, i)
                .offset(offset)
                .build(),
            (Some(i), false) => opcode::ReadFixed::new(types::Fd(fd), ptr, remaining, i)
                .offset(offset)
                .build(),
            (None, true) => opcode::Read::new(types::Fixed(0), ptr, remaining)
                .offset(offset)
                .build(),
            (None, false) => opcode::Read::new(types::Fd(fd), ptr, remaining)
                .offset(offset)
                .build(),
        };
        let entry = entry.user_data(slot_no as u64);
        // SAFETY: the bytes behind `ptr` belong to this slot alone (arena blocks are handed out
        // once until freed) and are not touched or freed until this entry's completion is reaped
        // (run() drains every in-flight read before returning, on success and on error). The SQ
        // has `queue_depth` entries and at most one entry per slot is pending, so push cannot
        // overflow.
        let pushed = unsafe { ring.ring.submission().push(&entry) };
        debug_assert!(pushed.is_ok(), "submission queue overflow");
    }

    fn run(
        &self,
        ring: &mut Ring,
        reqs: &[ReadRequest],
        on_read: &mut OnRead<'_>,
    ) -> Result<ReadStats> {
        let depth = self.queue_depth as usize;
        let arena_blocks = self.arena_bytes / self.block_size;
        let mut blocks = Blocks::new(arena_blocks);
        let mut slots: Vec<Option<Slot>> = (0..depth).map(|_| None).collect();
        let mut free: Vec<usize> = (0..depth).rev().collect();
        let (mut next, mut inflight) = (0usize, 0usize);
        let mut stats = ReadStats::default();
        let mut first_err: Option<StorageError> = None;
        let mut cqes: Vec<(u64, i32)> = Vec::with_capacity(depth);
        loop {
            while first_err.is_none() && next < reqs.len() {
                let Some(&s) = free.last() else { break };
                let n = reqs[next].n_blocks() as usize;
                let len = n * self.block_size;
                let (at, big) = if n > arena_blocks {
                    (0, Some(AlignedBuf::zeroed(len)))
                } else {
                    // No room in the arena: wait for reads in flight to free some.
                    let Some(at) = blocks.alloc(n) else { break };
                    (at, None)
                };
                free.pop();
                let mut slot = Slot {
                    req: next,
                    done: 0,
                    len,
                    at,
                    n_blocks: n,
                    big,
                };
                self.push(ring, s, &mut slot, reqs);
                slots[s] = Some(slot);
                next += 1;
                inflight += 1;
            }
            if inflight == 0 {
                break;
            }
            // Waiting for a few completions (a quarter of the depth) before refilling lets one
            // io_uring_enter submit several reads: on virtio disks every submission call costs
            // a doorbell write (a VM exit), which made a one-at-a-time refill CPU-bound at about
            // 0.7x fio's IOPS at depth 32.
            let want = (depth / 4).clamp(1, inflight);
            match ring.ring.submit_and_wait(want) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => {
                    // The kernel state of in-flight reads is unknown: leak the ring's buffers
                    // rather than risk the kernel writing into freed memory.
                    std::mem::forget(std::mem::take(&mut ring.bufs));
                    std::mem::forget(slots);
                    return Err(StorageError::io(&self.path, e));
                }
            }
            cqes.clear();
            cqes.extend(ring.ring.completion().map(|c| (c.user_data(), c.result())));
            for &(user, res) in &cqes {
                let s = user as usize;
                inflight -= 1;
                let Some(mut slot) = slots[s].take() else {
                    continue;
                };
                let offset = reqs[slot.req].first_block() * self.block_size as u64;
                if res == -libc::EAGAIN || res == -libc::EINTR {
                    if first_err.is_none() {
                        self.push(ring, s, &mut slot, reqs);
                        slots[s] = Some(slot);
                        inflight += 1;
                    } else {
                        release(&mut blocks, &mut free, s, &slot);
                    }
                    continue;
                }
                if res <= 0 {
                    let err = if res == 0 {
                        StorageError::Truncated {
                            path: self.path.clone(),
                            offset: offset + slot.done as u64,
                            needed: (slot.len - slot.done) as u64,
                            len: self.file.metadata().map(|m| m.len()).unwrap_or(0),
                        }
                    } else {
                        StorageError::io(&self.path, std::io::Error::from_raw_os_error(-res))
                    };
                    first_err.get_or_insert(err);
                    release(&mut blocks, &mut free, s, &slot);
                    continue;
                }
                slot.done += res as usize;
                if slot.done < slot.len && first_err.is_none() {
                    // Short read: ask for the rest.
                    self.push(ring, s, &mut slot, reqs);
                    slots[s] = Some(slot);
                    inflight += 1;
                    continue;
                }
                if first_err.is_none() {
                    let buf: &[u8] = match &slot.big {
                        Some(b) => &b[..slot.len],
                        None => {
                            let at = slot.at * self.block_size;
                            &ring.bufs[0][at..at + slot.len]
                        }
                    };
                    let r = reqs[slot.req];
                    let res = verify_blocks(&self.path, r.first_block(), self.block_size, buf)
                        .and_then(|()| on_read(slot.req, buf));
                    match res {
                        Ok(()) => {
                            stats.ios += 1;
                            stats.bytes += slot.len as u64;
                        }
                        Err(e) => first_err = Some(e),
                    }
                }
                release(&mut blocks, &mut free, s, &slot);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }
}

/// Returns a finished slot's number and its arena blocks.
fn release(blocks: &mut Blocks, free: &mut Vec<usize>, s: usize, slot: &Slot) {
    if slot.big.is_none() {
        blocks.free(slot.at, slot.n_blocks);
    }
    free.push(s);
}

/// Probes whether an O_DIRECT read of block 0 works on this filesystem.
fn direct_read_works(f: &File, block_size: usize) -> bool {
    let mut b = AlignedBuf::zeroed(block_size);
    f.read_exact_at(&mut b[..block_size], 0).is_ok()
}

impl BlockReader for UringReader {
    fn path(&self) -> &Path {
        &self.path
    }

    fn block_size(&self) -> usize {
        self.block_size
    }

    fn readable_blocks(&self) -> u64 {
        self.readable
    }

    fn read_batch(&self, reqs: &[ReadRequest], on_read: &mut OnRead<'_>) -> Result<ReadStats> {
        check_bounds(&self.path, self.readable, reqs)?;
        if reqs.is_empty() {
            return Ok(ReadStats::default());
        }
        let mut ring = self.take_ring()?;
        let res = self.run(&mut ring, reqs, on_read);
        if !ring.bufs.is_empty() {
            self.put_ring(ring);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::BlockReader;
    use crate::BlockFileWriter;

    fn idle_rings(r: &UringReader) -> usize {
        r.rings.lock().map(|v| v.len()).unwrap_or(0)
    }

    #[test]
    fn arena_blocks_are_handed_out_once_and_reused_after_free() {
        let mut b = Blocks::new(70);
        assert_eq!(b.alloc(60), Some(0));
        assert_eq!(b.alloc(8), Some(60), "a run across a bitmap word");
        assert_eq!(b.alloc(3), None, "2 blocks left");
        b.free(10, 5);
        assert_eq!(b.alloc(3), Some(10), "first fit in the freed hole");
        assert_eq!(b.alloc(3), None, "2 + 2 blocks free, never 3 in a row");
        assert_eq!(b.alloc(2), Some(13));
        assert_eq!(b.alloc(2), Some(68));
        assert_eq!(b.alloc(1), None);
    }

    #[test]
    fn the_arena_holds_a_full_queue_of_typical_reads() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f.qbf");
        let mut w = BlockFileWriter::create(&path, "test").expect("create");
        w.write_section("data", &[7u8; 4092]).expect("write");
        w.finish().expect("finish");
        let file = BlockFile::open(&path).expect("open");
        let bs = file.block_size();
        let Ok(one) = UringReader::with_read_sizes(&file, 8, 4 * bs, 0) else {
            return; // no io_uring on this kernel
        };
        assert_eq!(one.arena_bytes, 8 * bs, "one block per slot");
        let lists = UringReader::with_read_sizes(&file, 8, 4 * bs, 2 * bs + 1).expect("open");
        assert_eq!(lists.arena_bytes, 8 * 3 * bs, "3-block reads, 8 in flight");
        let big = UringReader::with_read_sizes(&file, 2, 12 * bs, bs).expect("open");
        assert_eq!(big.arena_bytes, 12 * bs, "at least the largest read");
    }

    #[test]
    fn rings_of_exited_threads_are_dropped_after_the_ttl() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f.qbf");
        let mut w = BlockFileWriter::create(&path, "test").expect("create");
        w.write_section("data", &[7u8; 3 * 4092]).expect("write");
        w.finish().expect("finish");
        let file = BlockFile::open(&path).expect("open");
        let Ok(mut r) = UringReader::open(&file, 4) else {
            return; // no io_uring on this kernel: nothing to pool
        };
        let read = |r: &UringReader| {
            let first = file.section("data").expect("section").first_block;
            r.read_batch(&[ReadRequest::block(first)], &mut |_, b| {
                assert_eq!(b[0], 7);
                Ok(())
            })
            .expect("read");
        };
        // Default TTL: another thread's ring stays pooled beside this thread's.
        std::thread::scope(|s| {
            s.spawn(|| read(&r));
        });
        read(&r);
        assert_eq!(idle_rings(&r), 2);
        // TTL 0: returning a ring drops every idle one, so only this thread's remains.
        r.ring_ttl = Duration::ZERO;
        std::thread::scope(|s| {
            s.spawn(|| read(&r));
        });
        read(&r);
        assert_eq!(idle_rings(&r), 1);
    }
}
