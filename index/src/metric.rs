//! Metrics and element types. Distances are "smaller is closer" everywhere:
//! L2 = squared Euclidean; inner product = `-dot`; cosine = `1 - cos` (on float data the vectors
//! are normalised once at ingest and `1 - dot` is used; on i8/u8 simsimd's cosine kernel).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Similarity measure of an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Squared Euclidean distance.
    L2,
    /// Inner product (maximum inner product search); distance = -dot.
    Ip,
    /// Cosine; distance = 1 - cos.
    Cosine,
}

impl FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Ok(Metric::L2),
            "ip" | "dot" | "inner_product" | "mips" => Ok(Metric::Ip),
            "cosine" | "cos" => Ok(Metric::Cosine),
            _ => Err(format!("unknown metric {s:?} (l2, ip, cosine)")),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::L2 => "l2",
            Metric::Ip => "ip",
            Metric::Cosine => "cosine",
        })
    }
}

impl Metric {
    /// The code index files store (0 L2, 1 IP, 2 cosine; docs/FORMAT.md).
    pub fn code(self) -> u32 {
        match self {
            Metric::L2 => 0,
            Metric::Ip => 1,
            Metric::Cosine => 2,
        }
    }

    /// The metric of a stored code.
    pub fn from_code(c: u32) -> Option<Metric> {
        [Metric::L2, Metric::Ip, Metric::Cosine]
            .into_iter()
            .find(|m| m.code() == c)
    }

    /// Converts an internal distance into the user-facing score, and documents its direction:
    /// L2 -> squared distance (lower is better); IP -> dot product (higher is better);
    /// cosine -> cosine similarity (higher is better).
    pub fn score(self, dist: f32) -> f32 {
        match self {
            Metric::L2 => dist,
            Metric::Ip => -dist,
            Metric::Cosine => 1.0 - dist,
        }
    }
}

/// Element type of stored vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementType {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// Signed byte.
    I8,
    /// Unsigned byte.
    U8,
}

impl ElementType {
    /// The code index files store (0 f32, 1 f16, 2 i8, 3 u8; docs/FORMAT.md).
    pub fn code(self) -> u32 {
        match self {
            ElementType::F32 => 0,
            ElementType::F16 => 1,
            ElementType::I8 => 2,
            ElementType::U8 => 3,
        }
    }

    /// The element type of a stored code.
    pub fn from_code(c: u32) -> Option<ElementType> {
        [
            ElementType::F32,
            ElementType::F16,
            ElementType::I8,
            ElementType::U8,
        ]
        .into_iter()
        .find(|e| e.code() == c)
    }

    /// Bytes per component.
    pub fn size(self) -> usize {
        match self {
            ElementType::F32 => 4,
            ElementType::F16 => 2,
            ElementType::I8 | ElementType::U8 => 1,
        }
    }

    /// Whether the type is a float type (cosine = normalise + inner product).
    pub fn is_float(self) -> bool {
        matches!(self, ElementType::F32 | ElementType::F16)
    }
}

impl FromStr for ElementType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(ElementType::F32),
            "f16" | "float16" => Ok(ElementType::F16),
            "i8" | "int8" => Ok(ElementType::I8),
            "u8" | "uint8" => Ok(ElementType::U8),
            _ => Err(format!("unknown element type {s:?} (f32, f16, i8, u8)")),
        }
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ElementType::F32 => "f32",
            ElementType::F16 => "f16",
            ElementType::I8 => "i8",
            ElementType::U8 => "u8",
        })
    }
}
