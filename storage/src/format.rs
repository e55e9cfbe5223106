//! The block-file format: byte layout, encoding and decoding. See `docs/FORMAT.md` for the tables.
//!
//! ```text
//! block 0            header block (magic, version, block size, kind), crc32c trailer
//! blocks 1..=D       data blocks: (block_size - 4) payload bytes + crc32c trailer
//! tail               section table (64 B per section) ... footer (64 B, last bytes of file)
//! ```
//! Every block's trailer is `crc32c(block_no as u64 LE ++ payload)`, so a block written at the
//! wrong place fails its check too. The footer checksum covers the header block, the section table
//! and the footer's own first 32 bytes; it is checked at open, before anything is parsed.

use crate::error::{Result, StorageError};
use std::path::Path;

/// Magic at byte 0 of every block file.
pub const MAGIC: [u8; 8] = *b"QUIVERBF";
/// Magic at the start of the footer.
pub const FOOTER_MAGIC: [u8; 8] = *b"QVFOOTER";
/// Major version: a reader refuses files with a larger major.
pub const FORMAT_MAJOR: u16 = 1;
/// Minor version: additive changes only.
pub const FORMAT_MINOR: u16 = 0;
/// Default (and v1's only written) block size.
pub const DEFAULT_BLOCK_SIZE: usize = 4096;
/// Bytes of checksum trailer at the end of every block.
pub const TRAILER_BYTES: usize = 4;
/// Size of one section-table entry.
pub const SECTION_ENTRY_BYTES: usize = 64;
/// Size of the footer.
pub const FOOTER_BYTES: usize = 64;
/// Longest section name (UTF-8 bytes).
pub const MAX_SECTION_NAME: usize = 40;
/// Length of the file-kind tag in the header.
pub const KIND_TAG_BYTES: usize = 16;
/// Upper bound on sections per file, so a corrupt count cannot make us allocate wildly.
pub const MAX_SECTIONS: u32 = 4096;

/// Payload bytes carried by one block of `block_size` bytes.
pub const fn payload_bytes(block_size: usize) -> usize {
    block_size - TRAILER_BYTES
}

/// Checksum of one block: crc32c over the block number then the payload.
pub fn block_crc(block_no: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&block_no.to_le_bytes()), payload)
}

/// Writes the trailer of a full block in place.
pub fn seal_block(block_no: u64, block: &mut [u8]) {
    let p = block.len() - TRAILER_BYTES;
    let crc = block_crc(block_no, &block[..p]);
    block[p..].copy_from_slice(&crc.to_le_bytes());
}

/// Verifies a run of consecutive blocks read from disk, starting at `first_block`.
pub fn verify_blocks(path: &Path, first_block: u64, block_size: usize, buf: &[u8]) -> Result<()> {
    for (i, block) in buf.chunks_exact(block_size).enumerate() {
        let block_no = first_block + i as u64;
        let p = block_size - TRAILER_BYTES;
        let stored = u32::from_le_bytes([block[p], block[p + 1], block[p + 2], block[p + 3]]);
        let computed = block_crc(block_no, &block[..p]);
        if stored != computed {
            return Err(StorageError::corrupt(
                path,
                block_no * block_size as u64,
                format!(
                    "block {block_no} checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                ),
            ));
        }
    }
    Ok(())
}

/// The decoded header block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Major format version.
    pub major: u16,
    /// Minor format version.
    pub minor: u16,
    /// Block size in bytes (power of two, 512..=1 MiB).
    pub block_size: u32,
    /// What this file is for (e.g. `flat.vectors`), ASCII.
    pub kind: String,
}

/// One named section: a run of whole data blocks holding `len` payload bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Section name (UTF-8, at most [`MAX_SECTION_NAME`] bytes).
    pub name: String,
    /// First block number of the section.
    pub first_block: u64,
    /// Number of blocks.
    pub n_blocks: u64,
    /// Payload bytes stored (the last block may be partly padding).
    pub len: u64,
}

/// The decoded footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footer {
    /// Byte offset of the section table.
    pub table_offset: u64,
    /// Number of sections.
    pub n_sections: u32,
    /// Number of data blocks (blocks 1..=data_blocks).
    pub data_blocks: u64,
    /// crc32c over header block, section table and footer bytes 0..32.
    pub checksum: u32,
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn padded_str(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    if b[end..].iter().any(|&c| c != 0) {
        return None;
    }
    String::from_utf8(b[..end].to_vec()).ok()
}

impl Header {
    /// Encodes into a full block (trailer sealed).
    pub fn encode(&self) -> Vec<u8> {
        let bs = self.block_size as usize;
        let mut b = vec![0u8; bs];
        put(&mut b, 0, &MAGIC);
        put(&mut b, 8, &self.major.to_le_bytes());
        put(&mut b, 10, &self.minor.to_le_bytes());
        put(&mut b, 12, &self.block_size.to_le_bytes());
        let kind = self.kind.as_bytes();
        put(&mut b, 16, &kind[..kind.len().min(KIND_TAG_BYTES)]);
        seal_block(0, &mut b);
        b
    }

    /// Checks magic, version and block size in the first 32 bytes; returns the block size.
    pub fn peek_block_size(path: &Path, bytes: &[u8]) -> Result<usize> {
        if bytes.len() < 32 {
            return Err(StorageError::Truncated {
                path: path.into(),
                offset: 0,
                needed: 32,
                len: bytes.len() as u64,
            });
        }
        if bytes[..8] != MAGIC {
            return Err(StorageError::corrupt(
                path,
                0,
                format!("bad magic {:02x?}, expected \"QUIVERBF\"", &bytes[..8]),
            ));
        }
        let major = u16_at(bytes, 8);
        let minor = u16_at(bytes, 10);
        if major > FORMAT_MAJOR || major == 0 {
            return Err(StorageError::UnsupportedVersion {
                path: path.into(),
                found_major: major,
                found_minor: minor,
                supported_major: FORMAT_MAJOR,
            });
        }
        let block_size = u32_at(bytes, 12);
        if !(512..=1 << 20).contains(&block_size) || !block_size.is_power_of_two() {
            return Err(StorageError::corrupt(
                path,
                12,
                format!("invalid block size {block_size}"),
            ));
        }
        Ok(block_size as usize)
    }

    /// Decodes and verifies a whole header block.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Header> {
        let bs = Self::peek_block_size(path, bytes)?;
        if bytes.len() < bs {
            return Err(StorageError::Truncated {
                path: path.into(),
                offset: 0,
                needed: bs as u64,
                len: bytes.len() as u64,
            });
        }
        verify_blocks(path, 0, bs, &bytes[..bs])?;
        let kind = padded_str(&bytes[16..16 + KIND_TAG_BYTES]).ok_or_else(|| {
            StorageError::corrupt(path, 16, "file kind tag is not NUL-padded UTF-8")
        })?;
        Ok(Header {
            major: u16_at(bytes, 8),
            minor: u16_at(bytes, 10),
            block_size: bs as u32,
            kind,
        })
    }
}

impl Section {
    /// Encodes one table entry.
    pub fn encode(&self) -> [u8; SECTION_ENTRY_BYTES] {
        let mut b = [0u8; SECTION_ENTRY_BYTES];
        let name = self.name.as_bytes();
        put(&mut b, 0, &name[..name.len().min(MAX_SECTION_NAME)]);
        put(&mut b, 40, &self.first_block.to_le_bytes());
        put(&mut b, 48, &self.n_blocks.to_le_bytes());
        put(&mut b, 56, &self.len.to_le_bytes());
        b
    }

    /// Decodes one table entry found at byte `offset` of the file, checking it against the
    /// data-block range and block payload size.
    pub fn decode(
        path: &Path,
        offset: u64,
        b: &[u8],
        data_blocks: u64,
        block_size: usize,
    ) -> Result<Section> {
        let name = padded_str(&b[..MAX_SECTION_NAME])
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                StorageError::corrupt(
                    path,
                    offset,
                    "section name is empty or not NUL-padded UTF-8",
                )
            })?;
        let first_block = u64_at(b, 40);
        let n_blocks = u64_at(b, 48);
        let len = u64_at(b, 56);
        let end = first_block.checked_add(n_blocks);
        let cap = n_blocks.checked_mul(payload_bytes(block_size) as u64);
        let ok = first_block >= 1
            && end.is_some_and(|e| e <= data_blocks + 1)
            && cap.is_some_and(|c| {
                len <= c && c.saturating_sub(len) < payload_bytes(block_size) as u64
                    || (n_blocks == 0 && len == 0)
            });
        if !ok {
            return Err(StorageError::corrupt(
                path,
                offset,
                format!("section {name:?}: blocks {first_block}+{n_blocks} holding {len} bytes do not fit the {data_blocks} data blocks"),
            ));
        }
        Ok(Section {
            name,
            first_block,
            n_blocks,
            len,
        })
    }
}

impl Footer {
    /// Encodes the footer (its checksum field must already be set).
    pub fn encode(&self) -> [u8; FOOTER_BYTES] {
        let mut b = [0u8; FOOTER_BYTES];
        put(&mut b, 0, &FOOTER_MAGIC);
        put(&mut b, 8, &self.table_offset.to_le_bytes());
        put(&mut b, 16, &self.n_sections.to_le_bytes());
        put(
            &mut b,
            20,
            &((self.n_sections as usize * SECTION_ENTRY_BYTES) as u32).to_le_bytes(),
        );
        put(&mut b, 24, &self.data_blocks.to_le_bytes());
        put(&mut b, 32, &self.checksum.to_le_bytes());
        b
    }

    /// Decodes the last [`FOOTER_BYTES`] of a file of length `file_len`.
    pub fn decode(path: &Path, file_len: u64, b: &[u8]) -> Result<Footer> {
        let at = file_len - FOOTER_BYTES as u64;
        if b[..8] != FOOTER_MAGIC {
            return Err(StorageError::corrupt(
                path,
                at,
                "bad footer magic (file truncated or not finished)",
            ));
        }
        let n_sections = u32_at(b, 16);
        let table_len = u32_at(b, 20);
        if n_sections > MAX_SECTIONS
            || table_len as usize != n_sections as usize * SECTION_ENTRY_BYTES
        {
            return Err(StorageError::corrupt(
                path,
                at + 16,
                format!("bad section count {n_sections} / table length {table_len}"),
            ));
        }
        Ok(Footer {
            table_offset: u64_at(b, 8),
            n_sections,
            data_blocks: u64_at(b, 24),
            checksum: u32_at(b, 32),
        })
    }

    /// The footer checksum: header block, section table, footer bytes 0..32.
    pub fn compute_checksum(header_block: &[u8], table: &[u8], footer_prefix: &[u8]) -> u32 {
        let c = crc32c::crc32c(header_block);
        let c = crc32c::crc32c_append(c, table);
        crc32c::crc32c_append(c, &footer_prefix[..32])
    }
}
