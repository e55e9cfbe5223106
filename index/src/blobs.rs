//! Variable-length records in a block file: a `<name>.offsets` section of n+1 u64 byte offsets
//! and a `<name>.data` section of concatenated bytes. Used for payloads and string ids.

use crate::error::{IndexError, Result};
use quiver_storage::io::BlockReader;
use quiver_storage::{BlockFile, BlockFileWriter};
use std::sync::Arc;

/// Writes records into two sections of an open block-file writer.
pub fn write_blobs<'a>(
    w: &mut BlockFileWriter,
    name: &str,
    records: impl IntoIterator<Item = &'a [u8]>,
) -> Result<()> {
    let mut offsets: Vec<u64> = vec![0];
    w.begin_section(&format!("{name}.data"))?;
    for r in records {
        w.write(r)?;
        offsets.push(offsets[offsets.len() - 1] + r.len() as u64);
    }
    w.end_section()?;
    w.write_section(&format!("{name}.offsets"), bytemuck::cast_slice(&offsets))?;
    Ok(())
}

/// Reads records written by [`write_blobs`]; offsets stay in RAM, data is read on demand.
pub struct BlobReader {
    file: BlockFile,
    reader: Arc<dyn BlockReader>,
    name: String,
    offsets: Vec<u64>,
}

impl BlobReader {
    /// Loads the offsets of `name` and checks them against the data section.
    pub fn open(file: BlockFile, reader: Arc<dyn BlockReader>, name: &str) -> Result<Self> {
        let raw = file.read_section(reader.as_ref(), &format!("{name}.offsets"))?;
        let data_len = file.section(&format!("{name}.data"))?.len;
        let bad = |what: String| IndexError::bad_file(file.path(), what);
        if raw.len() % 8 != 0 || raw.len() < 8 {
            return Err(bad(format!(
                "section {name}.offsets has {} bytes, not n+1 u64s",
                raw.len()
            )));
        }
        let offsets: Vec<u64> = bytemuck::pod_collect_to_vec(&raw);
        if offsets[0] != 0
            || offsets.windows(2).any(|w| w[0] > w[1])
            || offsets[offsets.len() - 1] != data_len
        {
            return Err(bad(format!("section {name}.offsets is not a monotone list ending at the data length {data_len}")));
        }
        Ok(BlobReader {
            file,
            reader,
            name: name.to_string(),
            offsets,
        })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record `i`'s bytes.
    pub fn get(&self, i: usize) -> Result<Vec<u8>> {
        if i >= self.len() {
            return Err(IndexError::InvalidArgument(format!(
                "record {i} of {} in {}",
                self.len(),
                self.name
            )));
        }
        let (a, b) = (self.offsets[i], self.offsets[i + 1]);
        Ok(self.file.read_section_range(
            self.reader.as_ref(),
            &format!("{}.data", self.name),
            a,
            b - a,
        )?)
    }
}
