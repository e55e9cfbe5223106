//! Vector files in and out: fvecs/ivecs/bvecs, big-ann fbin/ibin/u8bin/i8bin and npy, read in
//! chunks ([`VectorFileReader`]) so a file larger than RAM streams, and written the same way
//! ([`VectorFileWriter`]). Malformed files give errors naming the file and the offset or row.

mod npy;
mod reader;
mod writer;

pub use reader::VectorFileReader;
pub use reader::MAX_DIM;
pub use writer::VectorFileWriter;

use crate::error::{IndexError, Result};
use crate::metric::ElementType;
use std::path::Path;

/// On-disk vector file formats, chosen by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// `.fvecs`: per row int32 dim then f32 values.
    Fvecs,
    /// `.ivecs`: per row int32 dim then int32 values.
    Ivecs,
    /// `.bvecs`: per row int32 dim then u8 values.
    Bvecs,
    /// big-ann `.fbin` / `.ibin` / `.u8bin` / `.i8bin` / `.f16bin`: int32 n, int32 dim, values.
    Bin(DType),
    /// NumPy `.npy`, 2-D, C order, little-endian.
    Npy,
}

/// Component type of a vector file (ground-truth files hold i32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// f32.
    F32,
    /// f16.
    F16,
    /// i8.
    I8,
    /// u8.
    U8,
    /// i32 (ids).
    I32,
}

impl DType {
    /// Bytes per component.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
            DType::I8 | DType::U8 => 1,
        }
    }

    /// The element type, for vector (not id) data.
    pub fn element(self) -> Option<ElementType> {
        match self {
            DType::F32 => Some(ElementType::F32),
            DType::F16 => Some(ElementType::F16),
            DType::I8 => Some(ElementType::I8),
            DType::U8 => Some(ElementType::U8),
            DType::I32 => None,
        }
    }

    /// From an element type.
    pub fn from_element(e: ElementType) -> DType {
        match e {
            ElementType::F32 => DType::F32,
            ElementType::F16 => DType::F16,
            ElementType::I8 => DType::I8,
            ElementType::U8 => DType::U8,
        }
    }
}

impl FileFormat {
    /// Picks the format from the file extension.
    pub fn from_path(path: &Path) -> Result<FileFormat> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        Ok(match ext.as_str() {
            "fvecs" => FileFormat::Fvecs,
            "ivecs" => FileFormat::Ivecs,
            "bvecs" => FileFormat::Bvecs,
            "fbin" => FileFormat::Bin(DType::F32),
            "ibin" => FileFormat::Bin(DType::I32),
            "u8bin" => FileFormat::Bin(DType::U8),
            "i8bin" => FileFormat::Bin(DType::I8),
            "f16bin" | "hbin" => FileFormat::Bin(DType::F16),
            "npy" => FileFormat::Npy,
            _ => {
                return Err(IndexError::bad_file(
                    path,
                    format!("unknown vector file extension {ext:?} (fvecs, ivecs, bvecs, fbin, ibin, u8bin, i8bin, f16bin, npy)"),
                ))
            }
        })
    }
}

/// Row-major vector data of one component type.
#[derive(Clone, Debug, PartialEq)]
pub enum VecData {
    /// f32 components.
    F32(Vec<f32>),
    /// f16 components.
    F16(Vec<half::f16>),
    /// i8 components.
    I8(Vec<i8>),
    /// u8 components.
    U8(Vec<u8>),
    /// i32 components (ground-truth ids).
    I32(Vec<i32>),
}

/// `rows x dim` vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// Components per row.
    pub dim: usize,
    /// The components, row-major.
    pub data: VecData,
}

impl VecData {
    /// Number of components.
    pub fn len(&self) -> usize {
        match self {
            VecData::F32(v) => v.len(),
            VecData::F16(v) => v.len(),
            VecData::I8(v) => v.len(),
            VecData::U8(v) => v.len(),
            VecData::I32(v) => v.len(),
        }
    }

    /// Whether there are no components.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The component type.
    pub fn dtype(&self) -> DType {
        match self {
            VecData::F32(_) => DType::F32,
            VecData::F16(_) => DType::F16,
            VecData::I8(_) => DType::I8,
            VecData::U8(_) => DType::U8,
            VecData::I32(_) => DType::I32,
        }
    }

    /// Little-endian bytes of the components.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            VecData::F32(v) => bytemuck::cast_slice(v),
            VecData::F16(v) => bytemuck::cast_slice(v),
            VecData::I8(v) => bytemuck::cast_slice(v),
            VecData::U8(v) => v,
            VecData::I32(v) => bytemuck::cast_slice(v),
        }
    }

    /// Components widened to f32.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            VecData::F32(v) => v.clone(),
            VecData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            VecData::I8(v) => v.iter().map(|&x| x as f32).collect(),
            VecData::U8(v) => v.iter().map(|&x| x as f32).collect(),
            VecData::I32(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    fn from_le_bytes(dtype: DType, b: &[u8]) -> VecData {
        fn cast<T: bytemuck::Pod>(b: &[u8]) -> Vec<T> {
            // pod_collect_to_vec copies, so the input needs no particular alignment.
            bytemuck::pod_collect_to_vec(b)
        }
        match dtype {
            DType::F32 => VecData::F32(cast(b)),
            DType::F16 => VecData::F16(cast(b)),
            DType::I8 => VecData::I8(cast(b)),
            DType::U8 => VecData::U8(b.to_vec()),
            DType::I32 => VecData::I32(cast(b)),
        }
    }

    fn extend(&mut self, o: VecData) -> bool {
        match (self, o) {
            (VecData::F32(a), VecData::F32(b)) => a.extend(b),
            (VecData::F16(a), VecData::F16(b)) => a.extend(b),
            (VecData::I8(a), VecData::I8(b)) => a.extend(b),
            (VecData::U8(a), VecData::U8(b)) => a.extend(b),
            (VecData::I32(a), VecData::I32(b)) => a.extend(b),
            _ => return false,
        }
        true
    }
}

impl Matrix {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// An f32 matrix.
    pub fn from_f32(dim: usize, v: Vec<f32>) -> Matrix {
        Matrix {
            dim,
            data: VecData::F32(v),
        }
    }

    /// Rows as f32 (widened if needed).
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.to_f32()
    }

    /// The i32 rows (ground-truth files); error if the matrix holds another type.
    pub fn as_i32(&self) -> Option<&[i32]> {
        match &self.data {
            VecData::I32(v) => Some(v),
            _ => None,
        }
    }
}

/// Reads a whole vector file (all chunks).
pub fn read_matrix(path: &Path) -> Result<Matrix> {
    let mut r = VectorFileReader::open(path)?;
    let mut m = Matrix {
        dim: r.dim(),
        data: VecData::from_le_bytes(r.dtype(), &[]),
    };
    while let Some(chunk) = r.read_chunk(1 << 16)? {
        m.data.extend(chunk.data);
    }
    Ok(m)
}

/// Writes a whole matrix to `path` in the format its extension names.
pub fn write_matrix(path: &Path, m: &Matrix) -> Result<()> {
    let mut w = VectorFileWriter::create(path, m.data.dtype(), m.dim)?;
    w.write(m)?;
    w.finish()
}
