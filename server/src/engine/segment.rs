//! An immutable on-disk segment: an index directory written by `quiver-index` (any kind), with
//! its external ids and payloads, plus the segment's field indexes (built at open from the
//! payloads) and its tombstones (`deleted.roar`, rewritten atomically whenever a flush persists
//! them).

use super::payload::{FieldIndex, FieldIndexes, FieldSchema, Filter, Payload};
use crate::error::{Result, ServerError};
use quiver_index::contract::{OpenOptions, VectorIndex};
use quiver_index::ids::ExternalIds;
use quiver_index::manifest::Manifest;
use quiver_index::payloads::PayloadStore;
use roaring::RoaringBitmap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// File of a segment's tombstones: u32 crc32c of the rest, then a serialized roaring bitmap.
pub const DELETED_FILE: &str = "deleted.roar";

/// One immutable segment.
pub struct Segment {
    /// Segment number (unique in its collection, increasing).
    pub id: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// The vector index.
    pub index: Box<dyn VectorIndex>,
    /// External id of each internal id.
    pub ids: Vec<u64>,
    payloads: Option<PayloadStore>,
    /// Field indexes over internal ids.
    pub fields: RwLock<FieldIndexes>,
}

/// Reads `dir/deleted.roar` (empty when absent).
pub fn read_deleted(dir: &Path) -> Result<RoaringBitmap> {
    let path = dir.join(DELETED_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RoaringBitmap::new()),
        Err(e) => return Err(ServerError::io(&path, e)),
    };
    let corrupt =
        |what: &str| ServerError::Storage(quiver_storage::StorageError::corrupt(&path, 0, what));
    if bytes.len() < 4 {
        return Err(corrupt("shorter than its checksum"));
    }
    let sum = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if crc32c::crc32c(&bytes[4..]) != sum {
        return Err(corrupt("checksum mismatch"));
    }
    RoaringBitmap::deserialize_from(&bytes[4..]).map_err(|_| corrupt("not a roaring bitmap"))
}

/// Writes `dir/deleted.roar` atomically.
pub fn write_deleted(dir: &Path, deleted: &RoaringBitmap) -> Result<()> {
    let mut body = Vec::with_capacity(deleted.serialized_size());
    deleted
        .serialize_into(&mut body)
        .map_err(|e| ServerError::io(dir, e))?;
    let mut bytes = crc32c::crc32c(&body).to_le_bytes().to_vec();
    bytes.extend_from_slice(&body);
    quiver_storage::atomic::write_atomic(&dir.join(DELETED_FILE), &bytes)?;
    Ok(())
}

impl Segment {
    /// Opens segment `id` in `dir`, indexing the `schema` fields.
    pub fn open(id: u64, dir: &Path, schema: &[FieldSchema], opts: &OpenOptions) -> Result<Self> {
        let manifest = Manifest::read(dir)?;
        let index = quiver_index::open(dir, opts)?;
        let ids = ExternalIds::read(dir, manifest.n, manifest.string_ids)?.ids;
        let payloads = if manifest.has_payloads {
            Some(PayloadStore::open(dir)?)
        } else {
            None
        };
        let seg = Segment {
            id,
            dir: dir.to_path_buf(),
            index,
            ids,
            payloads,
            fields: RwLock::new(FieldIndexes::new()),
        };
        seg.index_fields(schema)?;
        Ok(seg)
    }

    /// Points (internal ids), dead ones included.
    pub fn n(&self) -> u32 {
        self.ids.len() as u32
    }

    /// Payload of internal id `i` (empty when the segment has none).
    pub fn payload(&self, i: u32) -> Result<Payload> {
        match &self.payloads {
            Some(p) => Ok(Payload::from_json(&p.get(i as usize)?)),
            None => Ok(Payload::default()),
        }
    }

    /// Builds the field indexes of `schema` not built yet (reads every payload once).
    pub fn index_fields(&self, schema: &[FieldSchema]) -> Result<()> {
        let missing: Vec<&FieldSchema> = {
            let have = self.fields.read().unwrap_or_else(|e| e.into_inner());
            schema
                .iter()
                .filter(|f| !have.contains_key(&f.name))
                .collect()
        };
        if missing.is_empty() || self.payloads.is_none() {
            let mut have = self.fields.write().unwrap_or_else(|e| e.into_inner());
            for f in missing {
                have.insert(f.name.clone(), FieldIndex::build(f, std::iter::empty()));
            }
            return Ok(());
        }
        let all: Vec<Payload> = (0..self.n())
            .map(|i| self.payload(i))
            .collect::<Result<_>>()?;
        let mut have = self.fields.write().unwrap_or_else(|e| e.into_inner());
        for f in missing {
            let fi = FieldIndex::build(f, all.iter().enumerate().map(|(i, p)| (i as u32, p)));
            have.insert(f.name.clone(), fi);
        }
        Ok(())
    }

    /// Live internal ids passing `filter`, or None when that is every id (no filter, nothing
    /// deleted).
    pub fn allowed(
        &self,
        filter: Option<&Filter>,
        deleted: &RoaringBitmap,
    ) -> Option<RoaringBitmap> {
        match filter {
            None if deleted.is_empty() => None,
            None => Some(super::payload::full(self.n()) - deleted),
            Some(f) => {
                let fields = self.fields.read().unwrap_or_else(|e| e.into_inner());
                Some(f.eval(&fields, self.n()) - deleted)
            }
        }
    }

    /// Bytes of the segment's files.
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }

    /// RAM by design: the index's components, the id array and field indexes.
    pub fn ram(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .index
            .memory()
            .into_iter()
            .map(|(k, b)| (k.to_string(), b))
            .collect();
        v.push(("ids".into(), (self.ids.capacity() * 8) as u64));
        let f = self.fields.read().unwrap_or_else(|e| e.into_inner());
        v.push((
            "field_indexes".into(),
            f.values().map(FieldIndex::bytes).sum(),
        ));
        v
    }
}

/// Bytes of the files directly in `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
