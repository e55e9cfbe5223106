//! Streaming reader of every supported vector file format.

use super::{npy, DType, FileFormat, Matrix, VecData};
use crate::error::{IndexError, Result};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Largest dimension accepted (a corrupt header must not make us allocate wildly).
pub const MAX_DIM: usize = 1 << 16;

/// Reads a vector file chunk by chunk.
pub struct VectorFileReader {
    path: PathBuf,
    format: FileFormat,
    dtype: DType,
    rows: usize,
    dim: usize,
    next_row: usize,
    data_offset: u64,
    file: BufReader<File>,
}

fn read_prefix(path: &Path, f: &mut File, n: usize) -> Result<Vec<u8>> {
    let mut b = Vec::with_capacity(n);
    f.take(n as u64)
        .read_to_end(&mut b)
        .map_err(|e| IndexError::io(path, e))?;
    Ok(b)
}

impl VectorFileReader {
    /// Opens `path`, parses and validates its header against the file length.
    pub fn open(path: &Path) -> Result<Self> {
        let format = FileFormat::from_path(path)?;
        let mut f = File::open(path).map_err(|e| IndexError::io(path, e))?;
        let len = f.metadata().map_err(|e| IndexError::io(path, e))?.len();
        let bad = |what: String| IndexError::bad_file(path, what);
        let (dtype, rows, dim, data_offset) = match format {
            FileFormat::Bin(dtype) => {
                let h = read_prefix(path, &mut f, 8)?;
                if h.len() < 8 {
                    return Err(bad(format!(
                        "truncated: {len} bytes, an 8-byte header (n, dim) is needed at offset 0"
                    )));
                }
                let n = i32::from_le_bytes([h[0], h[1], h[2], h[3]]);
                let d = i32::from_le_bytes([h[4], h[5], h[6], h[7]]);
                if n < 0 || d <= 0 || d as usize > MAX_DIM {
                    return Err(bad(format!("offset 0: header n={n}, dim={d} is invalid")));
                }
                (dtype, n as usize, d as usize, 8u64)
            }
            FileFormat::Fvecs | FileFormat::Ivecs | FileFormat::Bvecs => {
                let dtype = match format {
                    FileFormat::Fvecs => DType::F32,
                    FileFormat::Ivecs => DType::I32,
                    _ => DType::U8,
                };
                let h = read_prefix(path, &mut f, 4)?;
                if len == 0 {
                    return Err(bad("empty file: no rows, so no dimension".into()));
                }
                if h.len() < 4 {
                    return Err(bad(format!(
                        "truncated: {len} bytes, a 4-byte dimension is needed at offset 0"
                    )));
                }
                let d = i32::from_le_bytes([h[0], h[1], h[2], h[3]]);
                if d <= 0 || d as usize > MAX_DIM {
                    return Err(bad(format!("offset 0: row 0 dimension {d} is invalid")));
                }
                let row_bytes = 4 + d as u64 * dtype.size() as u64;
                if len % row_bytes != 0 {
                    let full = len / row_bytes;
                    return Err(bad(format!(
                        "truncated or mis-dimensioned: {len} bytes is not a whole number of {row_bytes}-byte rows (dim {d}); row {full} at offset {} is incomplete",
                        full * row_bytes
                    )));
                }
                f = File::open(path).map_err(|e| IndexError::io(path, e))?;
                (dtype, (len / row_bytes) as usize, d as usize, 0u64)
            }
            FileFormat::Npy => {
                let h = read_prefix(path, &mut f, 65536 + 12)?;
                let hdr = npy::parse(&h).map_err(bad)?;
                if hdr.dim == 0 || hdr.dim > MAX_DIM {
                    return Err(bad(format!(
                        "shape ({}, {}) has an invalid dimension",
                        hdr.rows, hdr.dim
                    )));
                }
                f = File::open(path).map_err(|e| IndexError::io(path, e))?;
                std::io::copy(
                    &mut (&mut f).take(hdr.data_offset as u64),
                    &mut std::io::sink(),
                )
                .map_err(|e| IndexError::io(path, e))?;
                (hdr.dtype, hdr.rows, hdr.dim, hdr.data_offset as u64)
            }
        };
        let row_bytes = Self::row_bytes_of(format, dtype, dim) as u64;
        let expected = (rows as u64)
            .checked_mul(row_bytes)
            .and_then(|b| b.checked_add(data_offset));
        match expected {
            Some(e) if e == len => {}
            Some(e) if e > len => {
                let full = (len.saturating_sub(data_offset)) / row_bytes;
                return Err(bad(format!(
                    "truncated: header says {rows} rows x {dim} = {e} bytes, file has {len}; row {full} at offset {} is incomplete",
                    data_offset + full * row_bytes
                )));
            }
            _ => {
                return Err(bad(format!(
                    "header says {rows} rows x dim {dim} ({} bytes) but the file has {len} bytes: wrong dimension or trailing data",
                    expected.map_or("overflowing".to_string(), |e| e.to_string())
                )))
            }
        }
        Ok(VectorFileReader {
            path: path.to_path_buf(),
            format,
            dtype,
            rows,
            dim,
            next_row: 0,
            data_offset,
            file: BufReader::with_capacity(1 << 20, f),
        })
    }

    fn row_bytes_of(format: FileFormat, dtype: DType, dim: usize) -> usize {
        let prefix = matches!(
            format,
            FileFormat::Fvecs | FileFormat::Ivecs | FileFormat::Bvecs
        ) as usize
            * 4;
        prefix + dim * dtype.size()
    }

    /// Total rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Components per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Component type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Index of the next row [`read_chunk`](Self::read_chunk) returns.
    pub fn position(&self) -> usize {
        self.next_row
    }

    /// Reads up to `max_rows` further rows; `None` at the end. Float rows are checked finite.
    pub fn read_chunk(&mut self, max_rows: usize) -> Result<Option<Matrix>> {
        let n = (self.rows - self.next_row).min(max_rows.max(1));
        if n == 0 {
            return Ok(None);
        }
        let row_bytes = Self::row_bytes_of(self.format, self.dtype, self.dim);
        let mut buf = vec![0u8; n * row_bytes];
        self.file
            .read_exact(&mut buf)
            .map_err(|e| IndexError::io(&self.path, e))?;
        let payload = if row_bytes == self.dim * self.dtype.size() {
            buf
        } else {
            let mut out = Vec::with_capacity(n * self.dim * self.dtype.size());
            for (i, row) in buf.chunks_exact(row_bytes).enumerate() {
                let d = i32::from_le_bytes([row[0], row[1], row[2], row[3]]);
                if d as usize != self.dim {
                    let r = self.next_row + i;
                    return Err(IndexError::bad_file(
                        &self.path,
                        format!(
                            "row {r} at offset {}: dimension {d}, expected {} (from row 0)",
                            self.data_offset + (r * row_bytes) as u64,
                            self.dim
                        ),
                    ));
                }
                out.extend_from_slice(&row[4..]);
            }
            out
        };
        let data = VecData::from_le_bytes(self.dtype, &payload);
        let first = self.next_row;
        let check = |i: usize, x: f32| -> Result<()> {
            if x.is_finite() {
                return Ok(());
            }
            let r = first + i / self.dim;
            Err(IndexError::bad_file(
                &self.path,
                format!(
                    "row {r}, component {}: value {x} is not finite (offset {})",
                    i % self.dim,
                    self.data_offset + (r * row_bytes) as u64
                ),
            ))
        };
        match &data {
            VecData::F32(v) => v.iter().enumerate().try_for_each(|(i, &x)| check(i, x))?,
            VecData::F16(v) => v
                .iter()
                .enumerate()
                .try_for_each(|(i, x)| check(i, x.to_f32()))?,
            _ => {}
        }
        self.next_row += n;
        Ok(Some(Matrix {
            dim: self.dim,
            data,
        }))
    }
}
