//! # quiver-storage: bytes on disk and nothing else
//!
//! - [`format`](mod@format) defines the block-file layout: a header block, data blocks that each end in a
//!   crc32c trailer, a section table and a checksummed footer (byte tables in `docs/FORMAT.md`).
//! - [`BlockFileWriter`] writes such a file section by section; [`BlockFile::open`] validates
//!   header, footer and section table without reading any data block.
//! - [`io::BlockReader`] is the one batched read interface; [`io::open_reader`] picks a backend:
//!   [`io::PreadReader`], [`io::MmapReader`] or [`io::UringReader`] (O_DIRECT, falls back to
//!   pread where the kernel refuses io_uring). Every backend verifies block checksums.
//! - [`cache::CachedReader`] puts a [`cache::BlockCache`] (v1: [`cache::MokaBlockCache`]) in front
//!   of any backend.
//! - [`wal::Wal`] is the write-ahead log (checksummed records, group-commit fsync, torn-tail
//!   truncation at recovery).
//! - [`aligned::AlignedBuf`] provides O_DIRECT-aligned memory; [`atomic::write_atomic`] replaces
//!   metadata files crash-safely.
//!
//! The crate knows nothing about vectors. It holds almost all of Quiver's `unsafe` (aligned
//! allocation, mmap, io_uring), each block with a `// SAFETY:` comment.

pub mod aligned;
pub mod atomic;
pub mod cache;
pub mod error;
pub mod file;
pub mod format;
pub mod io;
pub mod wal;
pub mod writer;

pub use error::{Result, StorageError};
pub use file::BlockFile;
pub use writer::BlockFileWriter;
