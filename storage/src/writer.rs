//! [`BlockFileWriter`]: streams named sections into a new block file, sealing each block with
//! its checksum, then writes the section table and footer and makes the file durable.

use crate::error::{Result, StorageError};
use crate::format::{self, Footer, Header, Section, FOOTER_BYTES};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Writes one block file. Sections are written one after another; each starts on a block.
pub struct BlockFileWriter {
    path: PathBuf,
    out: BufWriter<File>,
    header: Header,
    block: Vec<u8>,
    /// Bytes filled in `block`'s payload.
    fill: usize,
    /// Number of the block currently being filled.
    block_no: u64,
    sections: Vec<Section>,
    open: Option<Section>,
}

impl BlockFileWriter {
    /// Creates (truncates) `path`, a file of the given kind tag (ASCII, at most 16 bytes).
    pub fn create(path: impl AsRef<Path>, kind: &str) -> Result<Self> {
        Self::with_block_size(path, kind, format::DEFAULT_BLOCK_SIZE)
    }

    /// As [`create`](Self::create) with an explicit block size (power of two, 512..=1 MiB).
    pub fn with_block_size(path: impl AsRef<Path>, kind: &str, block_size: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if !(512..=1 << 20).contains(&block_size) || !block_size.is_power_of_two() {
            return Err(StorageError::InvalidArgument(format!(
                "block size {block_size} is not a power of two in 512..=1MiB"
            )));
        }
        if kind.len() > format::KIND_TAG_BYTES || !kind.is_ascii() {
            return Err(StorageError::InvalidArgument(format!(
                "file kind {kind:?} must be ASCII of at most 16 bytes"
            )));
        }
        let file = File::create(&path).map_err(|e| StorageError::io(&path, e))?;
        let header = Header {
            major: format::FORMAT_MAJOR,
            minor: format::FORMAT_MINOR,
            block_size: block_size as u32,
            kind: kind.to_string(),
        };
        let mut out = BufWriter::with_capacity(1 << 20, file);
        // Placeholder header; the real one is identical, written again in finish() for clarity.
        out.write_all(&header.encode())
            .map_err(|e| StorageError::io(&path, e))?;
        Ok(BlockFileWriter {
            path,
            out,
            header,
            block: vec![0u8; block_size],
            fill: 0,
            block_no: 1,
            sections: Vec::new(),
            open: None,
        })
    }

    /// Payload bytes per block (block size minus the checksum trailer).
    pub fn payload_bytes(&self) -> usize {
        format::payload_bytes(self.header.block_size as usize)
    }

    /// Starts a new section; the previous one, if any, is closed.
    pub fn begin_section(&mut self, name: &str) -> Result<()> {
        self.end_section()?;
        if name.is_empty() || name.len() > format::MAX_SECTION_NAME || name.contains('\0') {
            return Err(StorageError::InvalidArgument(format!(
                "section name {name:?} must be 1..=40 bytes without NUL"
            )));
        }
        if self.sections.iter().any(|s| s.name == name) {
            return Err(StorageError::InvalidArgument(format!(
                "duplicate section {name:?}"
            )));
        }
        self.open = Some(Section {
            name: name.to_string(),
            first_block: self.block_no,
            n_blocks: 0,
            len: 0,
        });
        Ok(())
    }

    /// Appends payload bytes to the open section, crossing block boundaries as needed.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        let Some(sec) = self.open.as_mut() else {
            return Err(StorageError::InvalidArgument(
                "write() outside a section".into(),
            ));
        };
        sec.len += bytes.len() as u64;
        let p = format::payload_bytes(self.block.len());
        while !bytes.is_empty() {
            let n = (p - self.fill).min(bytes.len());
            self.block[self.fill..self.fill + n].copy_from_slice(&bytes[..n]);
            self.fill += n;
            bytes = &bytes[n..];
            if self.fill == p {
                self.flush_block()?;
            }
        }
        Ok(())
    }

    /// Pads the open section with zeros to the next block boundary (so the next record starts a
    /// block). Padding counts in the section length.
    pub fn pad_to_block(&mut self) -> Result<()> {
        if self.fill > 0 {
            let p = format::payload_bytes(self.block.len());
            let pad = vec![0u8; p - self.fill];
            self.write(&pad)?;
        }
        Ok(())
    }

    /// Writes a whole section in one call.
    pub fn write_section(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.begin_section(name)?;
        self.write(bytes)?;
        self.end_section()
    }

    fn flush_block(&mut self) -> Result<()> {
        let p = format::payload_bytes(self.block.len());
        self.block[self.fill..p].fill(0);
        format::seal_block(self.block_no, &mut self.block);
        self.out
            .write_all(&self.block)
            .map_err(|e| StorageError::io(&self.path, e))?;
        self.block_no += 1;
        self.fill = 0;
        Ok(())
    }

    /// Closes the open section (its last block is padded with zeros).
    pub fn end_section(&mut self) -> Result<()> {
        if let Some(mut sec) = self.open.take() {
            if self.fill > 0 {
                self.flush_block()?;
            }
            sec.n_blocks = self.block_no - sec.first_block;
            self.sections.push(sec);
        }
        Ok(())
    }

    /// Writes the section table and footer, fsyncs, and returns the file's length.
    pub fn finish(mut self) -> Result<u64> {
        self.end_section()?;
        let bs = self.header.block_size as usize;
        let data_blocks = self.block_no - 1;
        let table_offset = self.block_no * bs as u64;
        let mut table = Vec::with_capacity(self.sections.len() * format::SECTION_ENTRY_BYTES);
        for s in &self.sections {
            table.extend_from_slice(&s.encode());
        }
        let header_block = self.header.encode();
        let mut footer = Footer {
            table_offset,
            n_sections: self.sections.len() as u32,
            data_blocks,
            checksum: 0,
        };
        let prefix = footer.encode();
        footer.checksum = Footer::compute_checksum(&header_block, &table, &prefix);
        let tail_len = (table.len() + FOOTER_BYTES).div_ceil(bs) * bs;
        let mut tail = vec![0u8; tail_len];
        tail[..table.len()].copy_from_slice(&table);
        tail[tail_len - FOOTER_BYTES..].copy_from_slice(&footer.encode());
        let io = |e| StorageError::io(&self.path, e);
        self.out.write_all(&tail).map_err(io)?;
        self.out.seek(SeekFrom::Start(0)).map_err(io)?;
        self.out.write_all(&header_block).map_err(io)?;
        self.out.flush().map_err(io)?;
        let file = self.out.get_ref();
        file.sync_all().map_err(io)?;
        Ok(table_offset + tail_len as u64)
    }
}
