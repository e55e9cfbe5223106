//! Payloads: one JSON object per row (`--payloads FILE.jsonl`), stored in `payloads.qbf` so a
//! server can fetch the payloads of the k winners without loading them all.

use crate::blobs::{write_blobs, BlobReader};
use crate::error::{IndexError, Result};
use quiver_storage::io::{open_reader, Backend};
use quiver_storage::{BlockFile, BlockFileWriter};
use std::io::BufRead;
use std::path::Path;

/// File of payloads inside an index directory.
pub const PAYLOADS_FILE: &str = "payloads.qbf";

/// Copies a JSONL file into `dir/payloads.qbf`, checking each line is a JSON object and that there
/// are exactly `n` lines.
pub fn write_payloads(jsonl: &Path, n: usize, dir: &Path) -> Result<()> {
    let f = std::fs::File::open(jsonl).map_err(|e| IndexError::io(jsonl, e))?;
    let mut lines = Vec::with_capacity(n);
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| IndexError::bad_file(jsonl, format!("line {}: {e}", i + 1)))?;
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(serde_json::Value::Object(_)) => lines.push(line),
            Ok(_) => {
                return Err(IndexError::bad_file(
                    jsonl,
                    format!("line {}: not a JSON object", i + 1),
                ))
            }
            Err(e) => return Err(IndexError::bad_file(jsonl, format!("line {}: {e}", i + 1))),
        }
    }
    if lines.len() != n {
        return Err(IndexError::bad_file(
            jsonl,
            format!("{} payload lines for {n} vectors", lines.len()),
        ));
    }
    let mut w = BlockFileWriter::create(dir.join(PAYLOADS_FILE), "payloads")?;
    write_blobs(&mut w, "payloads", lines.iter().map(|l| l.as_bytes()))?;
    w.finish()?;
    Ok(())
}

/// Random access to stored payloads.
pub struct PayloadStore {
    blobs: BlobReader,
}

impl PayloadStore {
    /// Opens `dir/payloads.qbf`.
    pub fn open(dir: &Path) -> Result<Self> {
        let file = BlockFile::open(dir.join(PAYLOADS_FILE))?;
        let reader = open_reader(&file, Backend::Pread)?;
        Ok(PayloadStore {
            blobs: BlobReader::open(file, reader, "payloads")?,
        })
    }

    /// Number of payloads.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Payload of row `i`.
    pub fn get(&self, i: usize) -> Result<serde_json::Value> {
        let b = self.blobs.get(i)?;
        serde_json::from_slice(&b)
            .map_err(|e| IndexError::InvalidArgument(format!("payload {i}: {e}")))
    }
}
