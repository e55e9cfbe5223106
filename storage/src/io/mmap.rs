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
