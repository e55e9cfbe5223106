//! External ids. Users give one id per row (`--ids FILE`: a u64 or a string per line; default the
//! row number). Strings are mapped to u64 with 64-bit FNV-1a, a fixed function, so the same string
//! maps to the same id in every segment; the strings are stored so they can be returned.

use crate::blobs::{write_blobs, BlobReader};
use crate::error::{IndexError, Result};
use quiver_storage::io::{open_reader, Backend};
use quiver_storage::{BlockFile, BlockFileWriter};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// File of ids inside an index directory.
pub const IDS_FILE: &str = "ids.qbf";

/// Maps a string id to its u64 (FNV-1a, 64 bit).
pub fn string_id(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The external ids of an index's rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalIds {
    /// u64 id of each row.
    pub ids: Vec<u64>,
    /// The original strings, when ids were given as strings.
    pub strings: Option<Vec<String>>,
}

impl ExternalIds {
    /// Row numbers as ids.
    pub fn sequential(n: usize) -> Self {
        ExternalIds {
            ids: (0..n as u64).collect(),
            strings: None,
        }
    }

    /// Reads an ids file: exactly `n` non-empty lines. If every line is a u64 the ids are numeric;
    /// otherwise every line is a string id. Duplicates are an error naming both lines.
    pub fn read_file(path: &Path, n: usize) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| IndexError::io(path, e))?;
        let mut lines = Vec::with_capacity(n);
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line =
                line.map_err(|e| IndexError::bad_file(path, format!("line {}: {e}", i + 1)))?;
            let t = line.trim();
            if t.is_empty() {
                return Err(IndexError::bad_file(
                    path,
                    format!("line {}: empty id", i + 1),
                ));
            }
            lines.push(t.to_string());
        }
        if lines.len() != n {
            return Err(IndexError::bad_file(
                path,
                format!("{} ids for {n} vectors", lines.len()),
            ));
        }
        let numeric: Option<Vec<u64>> = lines.iter().map(|l| l.parse::<u64>().ok()).collect();
        let (ids, strings) = match numeric {
            Some(ids) => (ids, None),
            None => (lines.iter().map(|s| string_id(s)).collect(), Some(lines)),
        };
        let mut seen: HashMap<u64, usize> = HashMap::with_capacity(n);
        for (row, id) in ids.iter().enumerate() {
            if let Some(prev) = seen.insert(*id, row) {
                return Err(IndexError::bad_file(
                    path,
                    format!(
                        "line {}: id duplicates line {} (u64 {id})",
                        row + 1,
                        prev + 1
                    ),
                ));
            }
        }
        Ok(ExternalIds { ids, strings })
    }

    /// Writes `dir/ids.qbf`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let mut w = BlockFileWriter::create(dir.join(IDS_FILE), "ids")?;
        w.write_section("ids", bytemuck::cast_slice(&self.ids))?;
        if let Some(s) = &self.strings {
            write_blobs(&mut w, "strings", s.iter().map(|s| s.as_bytes()))?;
        }
        w.finish()?;
        Ok(())
    }

    /// Reads `dir/ids.qbf` (ids, and strings if `strings` is set), expecting `n` rows.
    pub fn read(dir: &Path, n: usize, strings: bool) -> Result<Self> {
        let path = dir.join(IDS_FILE);
        let file = BlockFile::open(&path)?;
        let reader = open_reader(&file, Backend::Pread)?;
        let raw = file.read_section(reader.as_ref(), "ids")?;
        if raw.len() != n * 8 {
            return Err(IndexError::bad_file(
                &path,
                format!("section ids holds {} bytes, expected {n} u64", raw.len()),
            ));
        }
        let ids: Vec<u64> = bytemuck::pod_collect_to_vec(&raw);
        let strings = if strings {
            let blobs = BlobReader::open(file, reader, "strings")?;
            let mut v = Vec::with_capacity(n);
            for i in 0..blobs.len() {
                v.push(String::from_utf8(blobs.get(i)?).map_err(|_| {
                    IndexError::bad_file(&path, format!("string id {i} is not UTF-8"))
                })?);
            }
            Some(v)
        } else {
            None
        };
        Ok(ExternalIds { ids, strings })
    }
}
