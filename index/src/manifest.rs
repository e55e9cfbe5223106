//! The index manifest (`manifest.json`): kind, metric, element type, dim, n, format version, build
//! parameters and the files the index owns. Written atomically; a newer major version is refused.

use crate::error::{IndexError, Result};
use crate::metric::{ElementType, Metric};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File name of the manifest inside an index directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Index-directory format major version this build writes and reads.
pub const INDEX_FORMAT_MAJOR: u16 = 1;
/// Index-directory format minor version this build writes.
pub const INDEX_FORMAT_MINOR: u16 = 0;
/// Largest manifest accepted (a manifest is a few KiB; this bounds a corrupt or hostile file).
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// Describes an index directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[major, minor]` of the index-directory format.
    pub format_version: [u16; 2],
    /// Index kind (`flat`, later `diskann`, `hnsw`, `ivf`, `spann`).
    pub kind: String,
    /// Metric.
    pub metric: Metric,
    /// Element type of stored vectors.
    pub element: ElementType,
    /// Dimension.
    pub dim: usize,
    /// Number of vectors.
    pub n: usize,
    /// Whether external ids were given as strings (mapped to u64, map stored in `ids.qbf`).
    #[serde(default)]
    pub string_ids: bool,
    /// Whether `payloads.qbf` holds one JSON payload per row.
    #[serde(default)]
    pub has_payloads: bool,
    /// Kind-specific build parameters, as given (for reproducibility and `inspect`).
    pub build_params: serde_json::Value,
    /// Files of the index, relative to the directory.
    pub files: Vec<String>,
    /// Software that wrote it.
    pub created_by: String,
}

impl Manifest {
    /// Reads and validates `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        let len = std::fs::metadata(&path)
            .map_err(|e| IndexError::io(&path, e))?
            .len();
        if len > MAX_MANIFEST_BYTES {
            return Err(IndexError::Manifest {
                path,
                what: format!("{len} bytes is too large for a manifest"),
            });
        }
        let bytes = std::fs::read(&path).map_err(|e| IndexError::io(&path, e))?;
        Self::parse(&path, &bytes)
    }

    /// Parses manifest bytes; `path` is used in errors.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Manifest> {
        let err = |what: String| IndexError::Manifest {
            path: path.to_path_buf(),
            what,
        };
        // Check the version before the full schema, so a newer format gets the right message.
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            err(format!(
                "not valid JSON at line {} column {}: {e}",
                e.line(),
                e.column()
            ))
        })?;
        let ver = v
            .get("format_version")
            .and_then(|x| x.as_array())
            .and_then(|a| {
                let major = a.first()?.as_u64()?;
                let minor = a.get(1)?.as_u64()?;
                Some((major, minor))
            });
        match ver {
            None => return Err(err("missing or malformed \"format_version\" [major, minor]".into())),
            Some((major, minor)) if major > INDEX_FORMAT_MAJOR as u64 => {
                return Err(err(format!(
                    "index format version {major}.{minor} is newer than this build supports ({INDEX_FORMAT_MAJOR}.x); upgrade quiver or rebuild the index"
                )))
            }
            Some((0, _)) => return Err(err("index format major version 0 is invalid".into())),
            Some(_) => {}
        }
        let m: Manifest =
            serde_json::from_value(v).map_err(|e| err(format!("invalid manifest: {e}")))?;
        if m.dim == 0 || m.dim > crate::dataset::MAX_DIM {
            return Err(err(format!("dim {} out of range", m.dim)));
        }
        if m.n > u32::MAX as usize {
            return Err(err(format!(
                "n {} exceeds the 2^32 vectors one index can hold",
                m.n
            )));
        }
        for f in &m.files {
            let p = Path::new(f);
            if p.is_absolute()
                || p.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(err(format!(
                    "file entry {f:?} is not a plain relative name"
                )));
            }
        }
        Ok(m)
    }

    /// Writes `dir/manifest.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| IndexError::InvalidArgument(e.to_string()))?;
        quiver_storage::atomic::write_atomic(&dir.join(MANIFEST_FILE), &bytes)?;
        Ok(())
    }
}
