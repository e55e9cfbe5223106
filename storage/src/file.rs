//! [`BlockFile`]: an opened block file's metadata. Opening reads the header block and the tail
//! (section table + footer) only, checks the footer checksum, and never touches data blocks.

use crate::error::{Result, StorageError};
use crate::format::{self, Footer, Header, Section, FOOTER_BYTES, SECTION_ENTRY_BYTES};
use crate::io::{BlockReader, ReadRequest};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Metadata of an opened, verified block file.
#[derive(Clone, Debug)]
pub struct BlockFile {
    path: PathBuf,
    header: Header,
    footer: Footer,
    sections: Vec<Section>,
    file_len: u64,
}

fn read_at(file: &File, path: &Path, offset: u64, len: usize, file_len: u64) -> Result<Vec<u8>> {
    if offset
        .checked_add(len as u64)
        .is_none_or(|end| end > file_len)
    {
        return Err(StorageError::Truncated {
            path: path.into(),
            offset,
            needed: len as u64,
            len: file_len,
        });
    }
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| StorageError::io(path, e))?;
    Ok(buf)
}

impl BlockFile {
    /// Opens and validates `path`'s header, footer and section table.
    pub fn open(path: impl AsRef<Path>) -> Result<BlockFile> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| StorageError::io(path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| StorageError::io(path, e))?
            .len();
        let first = read_at(&file, path, 0, 32, file_len)?;
        let bs = Header::peek_block_size(path, &first)?;
        let header_block = read_at(&file, path, 0, bs, file_len)?;
        let header = Header::decode(path, &header_block)?;
        if file_len % bs as u64 != 0 || file_len < (bs + FOOTER_BYTES) as u64 {
            return Err(StorageError::corrupt(
                path,
                file_len,
                format!("file length {file_len} is not a whole number of {bs}-byte blocks"),
            ));
        }
        let footer_bytes = read_at(
            &file,
            path,
            file_len - FOOTER_BYTES as u64,
            FOOTER_BYTES,
            file_len,
        )?;
        let footer = Footer::decode(path, file_len, &footer_bytes)?;
        let table_len = footer.n_sections as usize * SECTION_ENTRY_BYTES;
        let expect_offset = footer
            .data_blocks
            .checked_add(1)
            .and_then(|b| b.checked_mul(bs as u64));
        if expect_offset != Some(footer.table_offset)
            || footer.table_offset + (table_len + FOOTER_BYTES) as u64 > file_len
        {
            return Err(StorageError::corrupt(
                path,
                file_len - FOOTER_BYTES as u64,
                format!("footer says {} data blocks and table at {}, inconsistent with file length {file_len}", footer.data_blocks, footer.table_offset),
            ));
        }
        let table = read_at(&file, path, footer.table_offset, table_len, file_len)?;
        let computed = Footer::compute_checksum(&header_block, &table, &footer_bytes);
        if computed != footer.checksum {
            return Err(StorageError::corrupt(
                path,
                file_len - FOOTER_BYTES as u64,
                format!("footer checksum mismatch (stored {:#010x}, computed {computed:#010x}) over header and section table", footer.checksum),
            ));
        }
        let mut sections = Vec::with_capacity(footer.n_sections as usize);
        for (i, entry) in table.chunks_exact(SECTION_ENTRY_BYTES).enumerate() {
            let at = footer.table_offset + (i * SECTION_ENTRY_BYTES) as u64;
            sections.push(Section::decode(path, at, entry, footer.data_blocks, bs)?);
        }
        Ok(BlockFile {
            path: path.to_path_buf(),
            header,
            footer,
            sections,
            file_len,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The decoded header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The decoded footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> usize {
        self.header.block_size as usize
    }

    /// Payload bytes per block.
    pub fn payload_bytes(&self) -> usize {
        format::payload_bytes(self.block_size())
    }

    /// Number of readable blocks: the header block plus the data blocks.
    pub fn readable_blocks(&self) -> u64 {
        self.footer.data_blocks + 1
    }

    /// Length of the file in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// All sections in file order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The section named `name`.
    pub fn section(&self, name: &str) -> Result<&Section> {
        self.sections
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| StorageError::OutOfRange {
                path: self.path.clone(),
                what: format!("no section named {name:?} (kind {:?})", self.header.kind),
            })
    }

    /// Reads `len` payload bytes of section `name` starting at payload offset `offset`, through
    /// `reader`, in batches of up to 256 blocks. Every block is checksum-verified by the reader.
    pub fn read_section_range(
        &self,
        reader: &dyn BlockReader,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        self.check_range(name, offset, len)?;
        let mut out = vec![0u8; len as usize];
        self.read_section_range_into(reader, name, offset, &mut out)?;
        Ok(out)
    }

    fn check_range(&self, name: &str, offset: u64, len: u64) -> Result<&Section> {
        let sec = self.section(name)?;
        if offset.checked_add(len).is_none_or(|e| e > sec.len) {
            return Err(StorageError::OutOfRange {
                path: self.path.clone(),
                what: format!(
                    "bytes {offset}+{len} of section {name:?} which holds {}",
                    sec.len
                ),
            });
        }
        Ok(sec)
    }

    /// As [`read_section_range`](Self::read_section_range), into `out` (`out.len()` bytes): lets
    /// a caller fill its final buffer (say a `Vec<f32>` seen as bytes) without a second copy,
    /// which on a large section would stay behind in the heap as resident memory.
    pub fn read_section_range_into(
        &self,
        reader: &dyn BlockReader,
        name: &str,
        offset: u64,
        out: &mut [u8],
    ) -> Result<()> {
        let len = out.len() as u64;
        let sec = self.check_range(name, offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let p = self.payload_bytes() as u64;
        let first = sec.first_block + offset / p;
        let last = sec.first_block + (offset + len - 1) / p;
        let skip = (offset % p) as usize;
        const BATCH: u64 = 256;
        let mut b = first;
        while b <= last {
            let n = (last + 1 - b).min(BATCH);
            let reqs: Vec<ReadRequest> = (b..b + n).map(ReadRequest::block).collect();
            reader.read_batch(&reqs, &mut |i, buf| {
                // Block `first` holds output bytes from 0, block `first + j` from j * p - skip.
                let blk = b - first + i as u64;
                let (src, dst) = if blk == 0 {
                    (skip, 0)
                } else {
                    (0, (blk * p) as usize - skip)
                };
                let want = (out.len() - dst).min(p as usize - src);
                out[dst..dst + want].copy_from_slice(&buf[src..src + want]);
                Ok(())
            })?;
            b += n;
        }
        Ok(())
    }

    /// Reads a whole section's payload into `out`, which must be exactly its length.
    pub fn read_section_into(
        &self,
        reader: &dyn BlockReader,
        name: &str,
        out: &mut [u8],
    ) -> Result<()> {
        let len = self.section(name)?.len;
        if out.len() as u64 != len {
            return Err(StorageError::OutOfRange {
                path: self.path.clone(),
                what: format!(
                    "section {name:?} holds {len} bytes, the caller expects {}",
                    out.len()
                ),
            });
        }
        self.read_section_range_into(reader, name, 0, out)
    }

    /// Reads a whole section's payload.
    pub fn read_section(&self, reader: &dyn BlockReader, name: &str) -> Result<Vec<u8>> {
        let len = self.section(name)?.len;
        self.read_section_range(reader, name, 0, len)
    }
}
