//! The mmap backend: zero-copy reads from a read-only map of an immutable file, `MADV_RANDOM` so
//! the kernel does not read ahead (which floods the page cache on random access).

use super::{check_bounds, BlockReader, OnRead, ReadRequest, ReadStats};
use crate::error::{Result, StorageError};
use crate::file::BlockFile;
use crate::format::verify_blocks;
use memmap2::{Advice, Mmap};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Reads blocks from a memory map.
pub struct MmapReader {
    path: PathBuf,
    map: Mmap,
    block_size: usize,
    readable: u64,
}

impl MmapReader {
    /// Maps `file` read-only.
    ///
    /// # Safety
    /// The caller guarantees the file is never modified or truncated while mapped (Quiver only
    /// maps finished block files, which are immutable). A change would be undefined behaviour.
    pub unsafe fn open(file: &BlockFile) -> Result<Self> {
        let path = file.path().to_path_buf();
        let f = File::open(&path).map_err(|e| StorageError::io(&path, e))?;
        // SAFETY: the caller guarantees the file is immutable for the map's lifetime.
        let map = unsafe { Mmap::map(&f) }.map_err(|e| StorageError::io(&path, e))?;
        map.advise(Advice::Random)
            .map_err(|e| StorageError::io(&path, e))?;
        let readable = file.readable_blocks();
        if (map.len() as u64) < readable * file.block_size() as u64 {
            return Err(StorageError::Truncated {
                path,
                offset: map.len() as u64,
                needed: readable * file.block_size() as u64,
                len: map.len() as u64,
            });
        }
        Ok(MmapReader {
            path,
            map,
            block_size: file.block_size(),
            readable,
        })
    }
}

impl BlockReader for MmapReader {
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
        let mut stats = ReadStats::default();
        for (i, r) in reqs.iter().enumerate() {
            let start = r.first_block() as usize * self.block_size;
            let len = r.n_blocks() as usize * self.block_size;
            let bytes = &self.map[start..start + len];
            verify_blocks(&self.path, r.first_block(), self.block_size, bytes)?;
            stats.ios += 1;
            stats.bytes += len as u64;
            on_read(i, bytes)?;
        }
        Ok(stats)
    }
}

/// One section of an immutable block file served in place from a read-only map: callers borrow
/// block payloads directly (no copy), so a structure laid out block by block - records never
/// straddling a block - is searched straight from the page cache. Each block's checksum is
/// verified the first time it is touched and remembered in a bitmap, so a hot block costs one
/// relaxed atomic load per access and a cold one a crc32c of 4 KiB once.
pub struct MappedSection {
    path: PathBuf,
    map: Mmap,
    first_block: u64,
    n_blocks: u64,
    block_size: usize,
    payload: usize,
    verified: Vec<std::sync::atomic::AtomicU64>,
}

impl MappedSection {
    /// Maps section `name` of `file` read-only with `MADV_RANDOM`.
    ///
    /// # Safety
    /// As [`MmapReader::open`]: the file must never be modified or truncated while mapped.
    pub unsafe fn open(file: &BlockFile, name: &str) -> Result<Self> {
        let sec = file.section(name)?.clone();
        // SAFETY: forwarded from this function's contract.
        let reader = unsafe { MmapReader::open(file)? };
        let end = sec.first_block + sec.n_blocks;
        if end > reader.readable {
            return Err(StorageError::Truncated {
                path: reader.path,
                offset: reader.map.len() as u64,
                needed: end * reader.block_size as u64,
                len: reader.map.len() as u64,
            });
        }
        let words = sec.n_blocks.div_ceil(64) as usize;
        Ok(MappedSection {
            payload: crate::format::payload_bytes(reader.block_size),
            path: reader.path,
            map: reader.map,
            first_block: sec.first_block,
            n_blocks: sec.n_blocks,
            block_size: reader.block_size,
            verified: (0..words)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        })
    }

    /// Blocks in the section.
    pub fn n_blocks(&self) -> u64 {
        self.n_blocks
    }

    /// Payload bytes per block.
    pub fn payload_bytes(&self) -> usize {
        self.payload
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The payload of block `i` of the section (trailer excluded), verified on first touch.
    #[inline]
    pub fn block(&self, i: u64) -> Result<&[u8]> {
        use std::sync::atomic::Ordering::Relaxed;
        if i >= self.n_blocks {
            return Err(StorageError::OutOfRange {
                path: self.path.clone(),
                what: format!("block {i} of a section of {} blocks", self.n_blocks),
            });
        }
        let abs = self.first_block + i;
        let start = abs as usize * self.block_size;
        let bytes = &self.map[start..start + self.block_size];
        let (w, bit) = ((i / 64) as usize, 1u64 << (i % 64));
        if self.verified[w].load(Relaxed) & bit == 0 {
            verify_blocks(&self.path, abs, self.block_size, bytes)?;
            self.verified[w].fetch_or(bit, Relaxed);
        }
        Ok(&bytes[..self.payload])
    }

    /// Asks the kernel to read the whole section ahead (`MADV_WILLNEED`), for a warm start.
    pub fn will_need(&self) -> Result<()> {
        let start = self.first_block as usize * self.block_size;
        let len = self.n_blocks as usize * self.block_size;
        self.map
            .advise_range(Advice::WillNeed, start, len)
            .map_err(|e| StorageError::io(&self.path, e))
    }
}

/// Major page faults of the calling thread so far (page-cache misses that read the disk); a
/// mmap-served index reports the difference around a query as its reads. 0 where unavailable.
pub fn thread_major_faults() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `ru` is a valid, writable rusage; RUSAGE_THREAD asks for this thread's counts.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()) };
        if rc == 0 {
            // SAFETY: getrusage returned 0, so it filled the struct (zeroed before anyway).
            let ru = unsafe { ru.assume_init() };
            return ru.ru_majflt.max(0) as u64;
        }
    }
    0
}
