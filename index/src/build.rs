//! What every index build shares: the input description and the files beside the index proper
//! (external ids, payloads, manifest).

use crate::dataset::VectorFileReader;
use crate::error::{IndexError, Result};
use crate::ids::ExternalIds;
use crate::manifest::{Manifest, INDEX_FORMAT_MAJOR, INDEX_FORMAT_MINOR};
use crate::metric::{ElementType, Metric};
use std::path::{Path, PathBuf};

/// Inputs of `quiver build`.
#[derive(Clone, Debug)]
pub struct BuildInput {
    /// Vector file (any supported format).
    pub data: PathBuf,
    /// Optional ids file (one u64 or string per row).
    pub ids: Option<PathBuf>,
    /// Optional JSONL payloads file (one object per row).
    pub payloads: Option<PathBuf>,
    /// Metric.
    pub metric: Metric,
}

/// Opens the input's vector file for a build: its reader, element type, rows and
/// dimension. Refuses id files, empty files and more rows than u32 ids can name (2^32 - 1).
pub fn open_input(input: &BuildInput) -> Result<(VectorFileReader, ElementType, usize, usize)> {
    let reader = VectorFileReader::open(&input.data)?;
    let elem = reader
        .dtype()
        .element()
        .ok_or_else(|| IndexError::bad_file(&input.data, "holds i32 ids, not vectors"))?;
    let (n, dim) = (reader.rows(), reader.dim());
    if n == 0 {
        return Err(IndexError::bad_file(
            &input.data,
            "empty dataset: no vectors to index",
        ));
    }
    if n >= u32::MAX as usize {
        return Err(IndexError::bad_file(
            &input.data,
            format!("{n} rows exceed the 2^32 - 1 one index holds"),
        ));
    }
    Ok((reader, elem, n, dim))
}

/// Creates the output directory; refuses to build over a directory that holds other files.
pub fn prepare_out_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| IndexError::io(out, e))?;
    let entries = std::fs::read_dir(out).map_err(|e| IndexError::io(out, e))?;
    let foreign: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !n.ends_with(".qbf") && n != crate::manifest::MANIFEST_FILE && !n.starts_with('.')
        })
        .collect();
    if !foreign.is_empty() {
        return Err(IndexError::InvalidArgument(format!(
            "{}: output directory holds other files ({})",
            out.display(),
            foreign.join(", ")
        )));
    }
    Ok(())
}

/// Writes ids and payloads next to the index, then the manifest (last, atomically, so a
/// directory without a manifest is an unfinished build).
#[allow(clippy::too_many_arguments)]
pub fn finish_index_dir(
    out: &Path,
    input: &BuildInput,
    kind: &str,
    element: ElementType,
    dim: usize,
    n: usize,
    build_params: serde_json::Value,
    mut files: Vec<String>,
) -> Result<Manifest> {
    let ids = match &input.ids {
        Some(p) => ExternalIds::read_file(p, n)?,
        None => ExternalIds::sequential(n),
    };
    ids.write(out)?;
    files.push(crate::ids::IDS_FILE.into());
    if let Some(p) = &input.payloads {
        crate::payloads::write_payloads(p, n, out)?;
        files.push(crate::payloads::PAYLOADS_FILE.into());
    }
    let m = Manifest {
        format_version: [INDEX_FORMAT_MAJOR, INDEX_FORMAT_MINOR],
        kind: kind.into(),
        metric: input.metric,
        element,
        dim,
        n,
        string_ids: ids.strings.is_some(),
        has_payloads: input.payloads.is_some(),
        build_params,
        files,
        created_by: format!("quiver {}", env!("CARGO_PKG_VERSION")),
    };
    quiver_storage::atomic::sync_dir(out)?;
    m.write(out)?;
    Ok(m)
}
