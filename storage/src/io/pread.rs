//! The portable backend: one `pread(2)` per request, page cache on, readahead off.

use super::{check_bounds, BlockReader, OnRead, ReadRequest, ReadStats};
use crate::error::{Result, StorageError};
use crate::file::BlockFile;
use crate::format::verify_blocks;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Reads blocks with `pread(2)`.
pub struct PreadReader {
    path: PathBuf,
    file: File,
    block_size: usize,
    readable: u64,
}

impl PreadReader {
    /// Opens `file` for reading.
    pub fn open(file: &BlockFile) -> Result<Self> {
        let path = file.path().to_path_buf();
        let f = File::open(&path).map_err(|e| StorageError::io(&path, e))?;
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // Random reads: readahead would only pollute the page cache. Advisory, so errors are moot.
            // SAFETY: plain syscall on a file descriptor we own; no memory is passed.
            let _ = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
        }
        Ok(PreadReader {
            path,
            file: f,
            block_size: file.block_size(),
            readable: file.readable_blocks(),
        })
    }
}

impl BlockReader for PreadReader {
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
        let mut buf = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            let len = r.n_blocks() as usize * self.block_size;
            buf.resize(len, 0);
            let offset = r.first_block() * self.block_size as u64;
            self.file.read_exact_at(&mut buf, offset).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    StorageError::Truncated {
                        path: self.path.clone(),
                        offset,
                        needed: len as u64,
                        len: 0,
                    }
                } else {
                    StorageError::io(&self.path, e)
                }
            })?;
            verify_blocks(&self.path, r.first_block(), self.block_size, &buf)?;
            stats.ios += 1;
            stats.bytes += len as u64;
            on_read(i, &buf)?;
        }
        Ok(stats)
    }
}
