//! Streaming writer of every supported vector file format. Headers that need the row count
//! (fbin family, npy) are patched in [`VectorFileWriter::finish`].

use super::{npy, DType, FileFormat, Matrix};
use crate::error::{IndexError, Result};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Writes vectors to a file chunk by chunk.
pub struct VectorFileWriter {
    path: PathBuf,
    format: FileFormat,
    dtype: DType,
    dim: usize,
    rows: usize,
    out: BufWriter<File>,
}

impl VectorFileWriter {
    /// Creates `path` for `dim`-dimensional rows of `dtype`.
    pub fn create(path: &Path, dtype: DType, dim: usize) -> Result<Self> {
        let format = FileFormat::from_path(path)?;
        let ok = match format {
            FileFormat::Fvecs => dtype == DType::F32,
            FileFormat::Ivecs => dtype == DType::I32,
            FileFormat::Bvecs => dtype == DType::U8,
            FileFormat::Bin(d) => d == dtype,
            FileFormat::Npy => true,
        };
        if !ok {
            return Err(IndexError::InvalidArgument(format!(
                "{}: cannot hold {dtype:?} data",
                path.display()
            )));
        }
        if dim == 0 || dim > super::reader::MAX_DIM {
            return Err(IndexError::InvalidArgument(format!(
                "dimension {dim} out of range"
            )));
        }
        let f = File::create(path).map_err(|e| IndexError::io(path, e))?;
        let mut w = VectorFileWriter {
            path: path.to_path_buf(),
            format,
            dtype,
            dim,
            rows: 0,
            out: BufWriter::with_capacity(1 << 20, f),
        };
        let header = w.header();
        w.out
            .write_all(&header)
            .map_err(|e| IndexError::io(path, e))?;
        Ok(w)
    }

    fn header(&self) -> Vec<u8> {
        match self.format {
            FileFormat::Bin(_) => {
                let mut h = (self.rows as i32).to_le_bytes().to_vec();
                h.extend_from_slice(&(self.dim as i32).to_le_bytes());
                h
            }
            FileFormat::Npy => npy::encode(self.dtype, self.rows, self.dim),
            _ => Vec::new(),
        }
    }

    /// Appends rows.
    pub fn write(&mut self, m: &Matrix) -> Result<()> {
        if m.dim != self.dim || m.data.dtype() != self.dtype {
            return Err(IndexError::InvalidArgument(format!(
                "{}: writing {:?} x {} rows into a {:?} x {} file",
                self.path.display(),
                m.data.dtype(),
                m.dim,
                self.dtype,
                self.dim
            )));
        }
        let io = |e| IndexError::io(&self.path, e);
        let bytes = m.data.as_bytes();
        let row_bytes = self.dim * self.dtype.size();
        match self.format {
            FileFormat::Fvecs | FileFormat::Ivecs | FileFormat::Bvecs => {
                for row in bytes.chunks_exact(row_bytes) {
                    self.out
                        .write_all(&(self.dim as i32).to_le_bytes())
                        .map_err(io)?;
                    self.out.write_all(row).map_err(io)?;
                }
            }
            _ => self.out.write_all(bytes).map_err(io)?,
        }
        self.rows += m.rows();
        if self.rows > i32::MAX as usize {
            return Err(IndexError::InvalidArgument(format!(
                "{}: more than 2^31 rows",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Patches the header with the row count, flushes and fsyncs.
    pub fn finish(mut self) -> Result<()> {
        let header = self.header();
        let path = self.path.clone();
        let io = |e| IndexError::io(&path, e);
        if !header.is_empty() {
            self.out.seek(SeekFrom::Start(0)).map_err(io)?;
            self.out.write_all(&header).map_err(io)?;
        }
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_all().map_err(io)?;
        Ok(())
    }
}
