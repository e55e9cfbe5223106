//! The one batched block-read interface ([`BlockReader`]) and its backends: [`PreadReader`]
//! (portable default), [`MmapReader`] (immutable files, `MADV_RANDOM`) and, on Linux,
//! [`UringReader`] (O_DIRECT, registered file and buffers, many reads in flight).
//!
//! Every backend verifies each block's checksum as it comes off the disk, so callers only ever see
//! verified bytes; the cache ([`crate::cache`]) stores verified blocks and never re-checks.

mod mmap;
mod pread;
#[cfg(target_os = "linux")]
mod uring;

pub use mmap::{thread_major_faults, MappedSection, MmapReader};
pub use pread::PreadReader;
#[cfg(target_os = "linux")]
pub use uring::UringReader;

use crate::error::{Result, StorageError};
use crate::file::BlockFile;
use std::path::Path;
use std::sync::Arc;

/// One read: `n_blocks` consecutive blocks starting at `first_block`. Built through the checked
/// constructors, so a reader never sees an empty request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadRequest {
    first_block: u64,
    n_blocks: u32,
}

impl ReadRequest {
    /// A single block.
    pub fn block(block_no: u64) -> Self {
        ReadRequest {
            first_block: block_no,
            n_blocks: 1,
        }
    }

    /// A run of `n_blocks >= 1` consecutive blocks.
    pub fn blocks(first_block: u64, n_blocks: u32) -> Result<Self> {
        if n_blocks == 0 {
            return Err(StorageError::InvalidArgument(
                "a read request needs at least one block".into(),
            ));
        }
        Ok(ReadRequest {
            first_block,
            n_blocks,
        })
    }

    /// First block number.
    pub fn first_block(&self) -> u64 {
        self.first_block
    }

    /// Number of blocks.
    pub fn n_blocks(&self) -> u32 {
        self.n_blocks
    }
}

/// Counters for one batch (or, summed, one query).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Read operations sent to the disk (or page cache, for pread/mmap).
    pub ios: u64,
    /// Bytes those operations read.
    pub bytes: u64,
    /// Requests served by the block cache.
    pub cache_hits: u64,
    /// Requests the block cache did not hold (0 when there is no cache).
    pub cache_misses: u64,
}

impl std::ops::AddAssign for ReadStats {
    fn add_assign(&mut self, o: Self) {
        self.ios += o.ios;
        self.bytes += o.bytes;
        self.cache_hits += o.cache_hits;
        self.cache_misses += o.cache_misses;
    }
}

/// Called once per completed request with the request's index in the batch and its verified bytes
/// (`n_blocks * block_size`, trailers included). Completion order is unspecified. An error stops
/// the batch and is returned by `read_batch`.
pub type OnRead<'a> = dyn FnMut(usize, &[u8]) -> Result<()> + 'a;

/// The batched read primitive every index uses. One virtual call per batch.
pub trait BlockReader: Send + Sync {
    /// The file being read.
    fn path(&self) -> &Path;
    /// Block size in bytes.
    fn block_size(&self) -> usize;
    /// Number of readable blocks (header block + data blocks).
    fn readable_blocks(&self) -> u64;
    /// Reads every request, calling `on_read` once per request.
    fn read_batch(&self, reqs: &[ReadRequest], on_read: &mut OnRead<'_>) -> Result<ReadStats>;
}

/// Checks that every request lies inside the readable blocks.
pub(crate) fn check_bounds(path: &Path, readable: u64, reqs: &[ReadRequest]) -> Result<()> {
    for r in reqs {
        if r.first_block
            .checked_add(r.n_blocks as u64)
            .is_none_or(|e| e > readable)
        {
            return Err(StorageError::OutOfRange {
                path: path.into(),
                what: format!(
                    "blocks {}+{} beyond the {readable} readable blocks",
                    r.first_block, r.n_blocks
                ),
            });
        }
    }
    Ok(())
}

/// Which backend to read with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// `pread(2)` through the page cache with `POSIX_FADV_RANDOM`.
    #[default]
    Pread,
    /// A read-only memory map with `MADV_RANDOM` (immutable files only).
    Mmap,
    /// io_uring with O_DIRECT, registered file and buffers, `queue_depth` reads in flight.
    IoUring {
        /// Submission queue entries (and registered buffers) per ring.
        queue_depth: u32,
    },
}

impl std::str::FromStr for Backend {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pread" => Ok(Backend::Pread),
            "mmap" => Ok(Backend::Mmap),
            "uring" | "io_uring" | "io-uring" => Ok(Backend::IoUring { queue_depth: 64 }),
            _ => Err(StorageError::InvalidArgument(format!(
                "unknown I/O backend {s:?} (pread, mmap, uring)"
            ))),
        }
    }
}

/// Reads up to this size use io_uring's registered buffers unless a reader asks for more.
pub const DEFAULT_MAX_READ_BYTES: usize = 16 * 1024;

/// Opens a reader of `file` with `backend`. io_uring falls back to pread (logged once) where the
/// kernel refuses it.
pub fn open_reader(file: &BlockFile, backend: Backend) -> Result<Arc<dyn BlockReader>> {
    open_reader_for(file, backend, DEFAULT_MAX_READ_BYTES, 0)
}

/// As [`open_reader`], with io_uring's registered buffers sized for reads of up to
/// `max_read_bytes` (posting lists are several blocks; a larger read still works, through a
/// one-off buffer) and for a full queue of reads of `typical_read_bytes` (0: one block) in
/// flight at once.
pub fn open_reader_for(
    file: &BlockFile,
    backend: Backend,
    max_read_bytes: usize,
    typical_read_bytes: usize,
) -> Result<Arc<dyn BlockReader>> {
    // Only io_uring registers buffers.
    let _ = (max_read_bytes, typical_read_bytes);
    match backend {
        Backend::Pread => Ok(Arc::new(PreadReader::open(file)?)),
        // SAFETY: block files are written once (BlockFileWriter::finish) and never modified
        // afterwards; index directories are immutable once built.
        Backend::Mmap => Ok(Arc::new(unsafe { MmapReader::open(file)? })),
        #[cfg(target_os = "linux")]
        Backend::IoUring { queue_depth } => {
            match UringReader::with_read_sizes(
                file,
                queue_depth,
                max_read_bytes,
                typical_read_bytes,
            ) {
                Ok(r) => Ok(Arc::new(r)),
                Err(e) => {
                    log_fallback_once(&e);
                    Ok(Arc::new(PreadReader::open(file)?))
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        Backend::IoUring { .. } => {
            log_fallback_once(&"io_uring is Linux-only");
            Ok(Arc::new(PreadReader::open(file)?))
        }
    }
}

fn log_fallback_once(why: &dyn std::fmt::Display) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| log::warn!("io_uring unavailable ({why}); falling back to pread"));
}
