//! The exact index: vectors in one block file, loaded into RAM at open, searched by a parallel
//! brute-force scan. Also the reference other indices are measured against.

use crate::build::{finish_index_dir, open_input, prepare_out_dir, BuildInput};
use crate::contract::{prepare_query, OpenOptions, SearchParams, SearchStats, VectorIndex};
use crate::dataset::Matrix;
use crate::distance::{normalize, Element};
use crate::error::{IndexError, Result};
use crate::manifest::Manifest;
use crate::metric::{ElementType, Metric};
use crate::scan::exact_topk;
use crate::topk::Neighbor;
use quiver_storage::io::open_reader;
use quiver_storage::{BlockFile, BlockFileWriter};
use roaring::RoaringBitmap;
use std::path::Path;

/// The vectors file of a flat index.
pub const VECTORS_FILE: &str = "vectors.qbf";

/// Rows read per chunk while building.
const BUILD_CHUNK_ROWS: usize = 65_536;

/// Bytes of a chunk as stored: float rows normalised for cosine, everything else as given.
pub fn stored_bytes(metric: Metric, chunk: &Matrix) -> Result<Vec<u8>> {
    let elem = chunk
        .data
        .dtype()
        .element()
        .ok_or_else(|| IndexError::InvalidArgument("i32 files hold ids, not vectors".into()))?;
    if metric != Metric::Cosine || !elem.is_float() {
        return Ok(chunk.data.as_bytes().to_vec());
    }
    let mut v = chunk.to_f32();
    v.chunks_exact_mut(chunk.dim).for_each(normalize);
    Ok(match elem {
        ElementType::F16 => {
            let h: Vec<half::f16> = v.iter().map(|&x| half::f16::from_f32(x)).collect();
            bytemuck::cast_slice(&h).to_vec()
        }
        _ => bytemuck::cast_slice(&v).to_vec(),
    })
}

/// Builds a flat index from `input` into `out`, streaming the data file; `progress` is called
/// with the rows written so far.
pub fn build(input: &BuildInput, out: &Path, progress: &dyn Fn(u64)) -> Result<Manifest> {
    let (mut reader, elem, n, dim) = open_input(input)?;
    prepare_out_dir(out)?;
    let mut w = BlockFileWriter::create(out.join(VECTORS_FILE), "flat.vectors")?;
    w.begin_section("vectors")?;
    while let Some(chunk) = reader.read_chunk(BUILD_CHUNK_ROWS)? {
        w.write(&stored_bytes(input.metric, &chunk)?)?;
        progress(reader.position() as u64);
    }
    w.end_section()?;
    w.finish()?;
    finish_index_dir(
        out,
        input,
        "flat",
        elem,
        dim,
        n,
        serde_json::json!({}),
        vec![VECTORS_FILE.into()],
    )
}

/// A flat index over element type `T`.
pub struct FlatIndex<T: Element> {
    manifest: Manifest,
    data: Vec<T>,
}

impl<T: Element> FlatIndex<T> {
    fn load(dir: &Path, manifest: Manifest, opts: &OpenOptions) -> Result<Self> {
        let file = BlockFile::open(dir.join(VECTORS_FILE))?;
        let reader = open_reader(&file, opts.backend)?;
        let have = file.section("vectors")?.len;
        let want = manifest.n * manifest.dim * T::TYPE.size();
        if have != want as u64 {
            return Err(IndexError::bad_file(
                file.path(),
                format!("section vectors holds {have} bytes, manifest implies {want}"),
            ));
        }
        // Read straight into the rows: a byte copy first would double the load's peak memory.
        let mut data = vec![T::zeroed(); manifest.n * manifest.dim];
        file.read_section_into(
            reader.as_ref(),
            "vectors",
            bytemuck::cast_slice_mut(&mut data),
        )?;
        Ok(FlatIndex { manifest, data })
    }

    /// The stored rows (normalised for float cosine).
    pub fn data(&self) -> &[T] {
        &self.data
    }
}

impl<T: Element> VectorIndex for FlatIndex<T> {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        _params: &SearchParams,
        allow: Option<&RoaringBitmap>,
    ) -> Result<(Vec<Neighbor>, SearchStats)> {
        let q = prepare_query::<T>(&self.manifest, query, k)?;
        let (top, computed) = exact_topk(
            self.manifest.metric,
            &self.data,
            self.manifest.dim,
            &q,
            k,
            allow,
        );
        Ok((
            top,
            SearchStats {
                distance_computations: computed,
                ..Default::default()
            },
        ))
    }

    fn default_grid(&self) -> Vec<SearchParams> {
        vec![SearchParams::default()]
    }

    fn memory(&self) -> Vec<(&'static str, u64)> {
        vec![(
            "vectors",
            std::mem::size_of_val(self.data.as_slice()) as u64,
        )]
    }

    fn vectors(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let dim = self.manifest.dim;
        crate::contract::check_ids(ids, self.manifest.n)?;
        Ok(ids
            .iter()
            .flat_map(|&i| self.data[i as usize * dim..(i as usize + 1) * dim].iter())
            .map(|x| x.to_f32())
            .collect())
    }
}

/// Opens a flat index directory whose manifest has been read.
pub fn open(dir: &Path, m: Manifest, opts: &OpenOptions) -> Result<Box<dyn VectorIndex>> {
    crate::contract::open_typed!(FlatIndex::load, dir, m, opts)
}
