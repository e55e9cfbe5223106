//! One collection: write-ahead log -> in-memory segment -> immutable on-disk segments.
//!
//! Directory `<data>/collections/<name>/`:
//! - `config.json`: dim, metric, index kind and parameters, declared fields;
//! - `state.json`: the segment list, the next segment number and the checkpoint LSN (WAL records
//!   from there on are not in any segment), replaced atomically;
//! - `wal/`: the write-ahead log ([`quiver_storage::wal`]);
//! - `segments/<number>/`: index directories, each with its `deleted.roar` tombstones.
//!
//! Writes: validate -> append to the WAL and apply to the in-memory segment under the write lock
//! (so log order = apply order) -> fsync outside it (group commit) -> acknowledge. A point's
//! location lives in `idmap` (external id -> memtable row or segment + internal id), so an
//! overwrite or delete marks the old copy dead in O(1).
//!
//! Flush: when the in-memory segment reaches the configured points or bytes, it is frozen (still
//! searched), the WAL rotates, and the background worker builds a segment of the collection's
//! index kind (flat below `flat_below` points) from its live rows. The swap persists changed
//! tombstones, then `state.json` with the new checkpoint, then drops the old WAL files. Deletes
//! that hit frozen rows while the build ran become tombstones of the new segment.
//!
//! Recovery: open the segments of `state.json`, rebuild `idmap`, replay the WAL from the
//! checkpoint. A segment records the LSN from which it is visible, so a replayed write older
//! than a bulk-imported segment does not shadow the import.

use super::memtable::MemTable;
use super::payload::{FieldSchema, Filter, Payload};
use super::segment::{read_deleted, write_deleted, Segment};
use super::worker::Worker;
use super::EngineOptions;
use crate::error::{Result, ServerError};
use crate::pb;
use prost::Message;
use quiver_index::build::BuildInput;
use quiver_index::dataset::{DType, Matrix, VectorFileWriter};
use quiver_index::distance::normalize;
use quiver_index::{Metric, Neighbor, SearchParams, SearchStats};
use quiver_storage::wal::Wal;
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

/// Index kinds a collection can build its segments with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// Exact scan.
    Flat,
    /// DiskANN on SSD.
    Diskann,
    /// HNSW.
    Hnsw,
    /// SPANN on SSD.
    Spann,
    /// IVF-Flat on SSD.
    Ivf,
}

/// Build parameters (None = the kind's default).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexParams {
    /// DiskANN R.
    pub max_degree: Option<usize>,
    /// DiskANN L.
    pub build_list: Option<usize>,
    /// DiskANN alpha.
    pub alpha: Option<f32>,
    /// DiskANN PQ bytes.
    pub pq_bytes: Option<usize>,
    /// HNSW M.
    pub m: Option<usize>,
    /// HNSW efConstruction.
    pub ef_construction: Option<usize>,
    /// SPANN / IVF posting-list byte cap.
    #[serde(default)]
    pub max_list_bytes: Option<usize>,
    /// SPANN most lists per vector.
    #[serde(default)]
    pub replicas: Option<usize>,
}

/// What `config.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionConfig {
    /// Name.
    pub name: String,
    /// Dimension.
    pub dim: usize,
    /// Metric.
    pub metric: Metric,
    /// Index kind of segments.
    pub kind: IndexKind,
    /// Its build parameters.
    #[serde(default)]
    pub params: IndexParams,
    /// Declared (indexed) payload fields.
    #[serde(default)]
    pub fields: Vec<FieldSchema>,
}

/// Longest collection name.
pub const MAX_NAME: usize = 128;

impl CollectionConfig {
    /// Checks name, dimension and fields.
    pub fn validate(&self) -> Result<()> {
        let ok_name = !self.name.is_empty()
            && self.name.len() <= MAX_NAME
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok_name {
            return Err(ServerError::invalid(format!(
                "collection name {:?} must be 1..={MAX_NAME} characters of [A-Za-z0-9_-]",
                self.name
            )));
        }
        if self.dim == 0 || self.dim > quiver_index::dataset::MAX_DIM {
            return Err(ServerError::invalid(format!(
                "dim {} must be in 1..={}",
                self.dim,
                quiver_index::dataset::MAX_DIM
            )));
        }
        let mut seen = HashSet::new();
        for f in &self.fields {
            f.validate()?;
            if !seen.insert(&f.name) {
                return Err(ServerError::invalid(format!(
                    "field {:?} declared twice",
                    f.name
                )));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SegmentEntry {
    id: u64,
    /// Writes with a lower LSN never shadow this segment's points (see the module docs).
    visible_from: u64,
}

/// What `state.json` holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    segments: Vec<SegmentEntry>,
    next_segment: u64,
    /// WAL records from this LSN on are not in any segment.
    checkpoint_lsn: u64,
}

/// Where a point's live copy is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    Mem(u32),
    Frozen(u32),
    Seg(u64, u32),
}

/// A memtable being turned into a segment.
struct Frozen {
    table: MemTable,
    /// First LSN after it (the checkpoint once its segment is persisted).
    next_lsn: u64,
}

struct Inner {
    mem: MemTable,
    frozen: Option<Arc<Frozen>>,
    /// Frozen rows killed since freezing.
    frozen_dead: RoaringBitmap,
    segments: Vec<Arc<Segment>>,
    deleted: HashMap<u64, RoaringBitmap>,
    /// Segments whose tombstones changed since they were last written.
    dirty: HashSet<u64>,
    idmap: BTreeMap<u64, Loc>,
    state: State,
    fields: Vec<FieldSchema>,
}

/// A search request, validated by [`Collection::search`].
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// The vector.
    pub vector: Vec<f32>,
    /// Hits wanted.
    pub k: usize,
    /// Index knobs.
    pub params: SearchParams,
    /// Keep hits at least this close (in the score's direction).
    pub score_threshold: Option<f32>,
    /// Payload filter.
    pub filter: Option<Filter>,
    /// Return payloads.
    pub with_payload: bool,
    /// Return vectors.
    pub with_vector: bool,
}

/// One hit.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// External id.
    pub id: u64,
    /// Score (direction per metric, see [`score`]).
    pub score: f32,
    /// Payload, when asked for.
    pub payload: Option<Payload>,
    /// Vector, when asked for.
    pub vector: Option<Vec<f32>>,
}

/// A point as stored and returned.
#[derive(Clone, Debug, PartialEq)]
pub struct PointData {
    /// External id.
    pub id: u64,
    /// Vector (empty unless asked for).
    pub vector: Vec<f32>,
    /// Payload.
    pub payload: Payload,
}

/// Per-query work.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryStats {
    /// Index counters summed over segments.
    pub index: SearchStats,
    /// Segments searched, in-memory ones included.
    pub segments: u32,
    /// Server-side time.
    pub micros: u64,
}

/// The score reported for an index distance: squared L2 (smaller closer), inner product or
/// cosine similarity (larger closer).
pub fn score(metric: Metric, dist: f32) -> f32 {
    match metric {
        Metric::L2 => dist,
        Metric::Ip => -dist,
        Metric::Cosine => 1.0 - dist,
    }
}

/// Below this fraction of a segment eligible, it is scanned exactly.
const EXACT_SCAN_FRACTION: f64 = 0.01;
/// Cap on the scaled candidate list of a filtered graph search.
const MAX_SCALED_LIST: usize = 4096;

/// A collection.
pub struct Collection {
    config: CollectionConfig,
    dir: PathBuf,
    wal: Wal,
    inner: RwLock<Inner>,
    opts: EngineOptions,
    worker: Arc<Worker>,
    building: AtomicBool,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| ServerError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ServerError::Storage(quiver_storage::StorageError::corrupt(
            path,
            e.column() as u64,
            format!("line {}: {e}", e.line()),
        ))
    })
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| ServerError::Internal(e.to_string()))?;
    quiver_storage::atomic::write_atomic(path, &bytes)?;
    Ok(())
}

fn seg_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join("segments").join(format!("{id:010}"))
}

impl Collection {
    /// Creates a collection directory (fails if it exists) and opens it.
    pub fn create(
        dir: &Path,
        config: CollectionConfig,
        opts: EngineOptions,
        worker: Arc<Worker>,
    ) -> Result<Arc<Collection>> {
        config.validate()?;
        std::fs::create_dir_all(dir.join("segments")).map_err(|e| ServerError::io(dir, e))?;
        write_json(&dir.join("state.json"), &State::default())?;
        // config.json last: a directory without it is an unfinished create, removed at startup.
        write_json(&dir.join("config.json"), &config)?;
        Self::open(dir, opts, worker)
    }

    /// Opens a collection directory: segments, tombstones, WAL replay.
    pub fn open(dir: &Path, opts: EngineOptions, worker: Arc<Worker>) -> Result<Arc<Collection>> {
        let config: CollectionConfig = read_json(&dir.join("config.json"))?;
        let state: State = read_json(&dir.join("state.json"))?;
        // Segment directories not in the state are unfinished builds.
        let listed: HashSet<PathBuf> = state.segments.iter().map(|s| seg_dir(dir, s.id)).collect();
        let sdir = dir.join("segments");
        std::fs::create_dir_all(&sdir).map_err(|e| ServerError::io(&sdir, e))?;
        for e in std::fs::read_dir(&sdir).map_err(|e| ServerError::io(&sdir, e))? {
            let p = e.map_err(|e| ServerError::io(&sdir, e))?.path();
            if !listed.contains(&p) {
                log::warn!(
                    "{}: not in state.json (unfinished build); removing",
                    p.display()
                );
                std::fs::remove_dir_all(&p).map_err(|e| ServerError::io(&p, e))?;
            }
        }
        let mut inner = Inner {
            mem: MemTable::new(config.dim),
            frozen: None,
            frozen_dead: RoaringBitmap::new(),
            segments: Vec::new(),
            deleted: HashMap::new(),
            dirty: HashSet::new(),
            idmap: BTreeMap::new(),
            state: state.clone(),
            fields: config.fields.clone(),
        };
        for s in &state.segments {
            let d = seg_dir(dir, s.id);
            let seg = Segment::open(s.id, &d, &config.fields, &opts.open)?;
            let del = read_deleted(&d)?;
            for (i, &ext) in seg.ids.iter().enumerate() {
                if del.contains(i as u32) {
                    continue;
                }
                // Two live copies: keep the newer segment's (ours).
                if let Some(Loc::Seg(o, oi)) = inner.idmap.insert(ext, Loc::Seg(s.id, i as u32)) {
                    inner.deleted.entry(o).or_default().insert(oi);
                    inner.dirty.insert(o);
                }
            }
            inner.deleted.insert(s.id, del);
            inner.segments.push(Arc::new(seg));
        }
        let (wal, records) = Wal::open(&dir.join("wal"))?;
        // Records were validated when logged; a field index created since must not make an
        // old record fail its type check now (field indexes skip values of another type).
        let replay_cfg = CollectionConfig {
            fields: Vec::new(),
            ..config.clone()
        };
        let mut replayed = 0usize;
        for r in records.iter().filter(|r| r.lsn >= state.checkpoint_lsn) {
            let rec = pb::WalRecord::decode(r.payload.as_slice()).map_err(|e| {
                ServerError::Internal(format!(
                    "{}: WAL record {} does not decode: {e}",
                    dir.display(),
                    r.lsn
                ))
            })?;
            match rec.op {
                Some(pb::wal_record::Op::Upsert(u)) => {
                    let pts = points_from_pb(&replay_cfg, u.points)?;
                    inner.apply_upsert(r.lsn, pts);
                }
                Some(pb::wal_record::Op::Delete(d)) => {
                    inner.apply_delete(r.lsn, &d.ids);
                }
                None => {}
            }
            replayed += 1;
        }
        if replayed > 0 {
            log::info!(
                "{}: replayed {replayed} WAL records from LSN {}",
                config.name,
                state.checkpoint_lsn
            );
        }
        wal.remove_before(state.checkpoint_lsn)?;
        let c = Arc::new(Collection {
            config,
            dir: dir.to_path_buf(),
            wal,
            inner: RwLock::new(inner),
            opts,
            worker,
            building: AtomicBool::new(false),
        });
        c.maybe_flush()?;
        Ok(c)
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration (fields as currently declared).
    pub fn config(&self) -> CollectionConfig {
        let mut c = self.config.clone();
        c.fields = self.read().fields.clone();
        c
    }

    /// Validates and durably applies an upsert; returns the points written. On error nothing
    /// is written.
    pub fn upsert(self: &Arc<Self>, points: Vec<pb::Point>) -> Result<usize> {
        let n = points.len();
        if n > self.opts.max_batch_points {
            return Err(ServerError::TooLarge(format!(
                "batch of {n} points exceeds the limit of {}",
                self.opts.max_batch_points
            )));
        }
        if n == 0 {
            return Ok(0);
        }
        let fields = self.read().fields.clone();
        let mut cfg = self.config.clone();
        cfg.fields = fields;
        // Encode the log record first (it borrows nothing, so the batch is not copied), then
        // validate everything - consuming the batch - before anything reaches the log.
        let rec = pb::WalRecord {
            op: Some(pb::wal_record::Op::Upsert(pb::UpsertRequest {
                collection: String::new(),
                points,
            })),
        };
        let bytes = rec.encode_to_vec();
        let Some(pb::wal_record::Op::Upsert(req)) = rec.op else {
            return Err(ServerError::Internal("WAL record lost its batch".into()));
        };
        let parsed = points_from_pb(&cfg, req.points)?;
        let rec = bytes;
        let lsn = {
            let mut inner = self.write();
            let lsn = self.wal.append(&rec)?;
            inner.apply_upsert(lsn, parsed);
            lsn
        };
        self.wal.sync(lsn)?;
        self.maybe_flush()?;
        Ok(n)
    }

    /// Durably deletes `ids`; returns how many existed.
    pub fn delete(&self, ids: Vec<u64>) -> Result<u64> {
        if ids.len() > self.opts.max_batch_points {
            return Err(ServerError::TooLarge(format!(
                "delete of {} ids exceeds the limit of {}",
                ids.len(),
                self.opts.max_batch_points
            )));
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let rec = pb::WalRecord {
            op: Some(pb::wal_record::Op::Delete(pb::DeleteRequest {
                collection: String::new(),
                ids: ids.clone(),
            })),
        }
        .encode_to_vec();
        let (lsn, n) = {
            let mut inner = self.write();
            let lsn = self.wal.append(&rec)?;
            (lsn, inner.apply_delete(lsn, &ids))
        };
        self.wal.sync(lsn)?;
        Ok(n)
    }

    /// Freezes the memtable and queues its build when it is over the thresholds and no build is
    /// running.
    fn maybe_flush(self: &Arc<Self>) -> Result<()> {
        {
            let inner = self.read();
            let over = inner.mem.rows() >= self.opts.flush_points
                || inner.mem.bytes() >= self.opts.flush_bytes;
            if !(over || inner.frozen.is_some()) || self.building.load(Ordering::Acquire) {
                return Ok(());
            }
        }
        if self.building.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            let mut inner = self.write();
            if inner.frozen.is_none() {
                if inner.mem.rows() == 0 {
                    self.building.store(false, Ordering::Release);
                    return Ok(());
                }
                if let Err(e) = self.freeze(&mut inner) {
                    self.building.store(false, Ordering::Release);
                    return Err(e);
                }
            }
        }
        let me = self.clone();
        self.worker.submit(Box::new(move || {
            if let Err(e) = me.flush_frozen() {
                log::error!("{}: segment build failed (will retry): {e}", me.config.name);
                me.building.store(false, Ordering::Release);
                return;
            }
            // Compaction runs on the same thread, between builds.
            loop {
                match me.compact() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        log::error!("{}: compaction failed: {e}", me.config.name);
                        break;
                    }
                }
            }
            me.building.store(false, Ordering::Release);
            // Writes that arrived during the build may have filled the memtable again.
            if let Err(e) = me.maybe_flush() {
                log::error!("{}: could not queue the next flush: {e}", me.config.name);
            }
        }));
        Ok(())
    }

    /// Writes the frozen memtable's live rows as a segment and swaps it in (worker thread).
    fn flush_frozen(self: &Arc<Self>) -> Result<()> {
        let Some(frozen) = self.read().frozen.clone() else {
            return Ok(());
        };
        let (dead_then, seg_id, fields) = {
            let mut inner = self.write();
            let id = inner.state.next_segment;
            inner.state.next_segment += 1;
            (
                &frozen.table.dead | &inner.frozen_dead,
                id,
                inner.fields.clone(),
            )
        };
        let t = &frozen.table;
        let rows: Vec<u32> = (0..t.rows() as u32)
            .filter(|r| !dead_then.contains(*r))
            .collect();
        let seg = if rows.is_empty() {
            None
        } else {
            let src = rows.iter().map(|&r| {
                (
                    t.ids[r as usize],
                    t.vector(r).to_vec(),
                    t.payloads[r as usize].clone(),
                )
            });
            Some(self.write_segment(seg_id, rows.len(), src, &fields)?)
        };
        let mut inner = self.write();
        let inner = &mut *inner;
        if let Some(seg) = seg {
            let mut del = RoaringBitmap::new();
            let dead_now = &t.dead | &inner.frozen_dead;
            for (i, &r) in rows.iter().enumerate() {
                let id = t.ids[r as usize];
                if dead_now.contains(r) {
                    del.insert(i as u32);
                } else if inner.idmap.get(&id) == Some(&Loc::Frozen(r)) {
                    inner.idmap.insert(id, Loc::Seg(seg_id, i as u32));
                }
            }
            inner.add_segment(seg, del, frozen.next_lsn);
        }
        inner.state.checkpoint_lsn = frozen.next_lsn;
        self.persist(inner)?;
        inner.frozen = None;
        inner.frozen_dead = RoaringBitmap::new();
        self.wal.remove_before(frozen.next_lsn)?;
        log::info!(
            "{}: flushed {} points into segment {seg_id}",
            self.config.name,
            rows.len()
        );
        Ok(())
    }

    /// The segments worth rewriting now: one whose tombstones exceed the configured fraction of
    /// its points, else every segment under half the flush size when there are two or more.
    fn compaction_plan(&self, inner: &Inner) -> Vec<u64> {
        let dead = |s: &Segment| inner.deleted.get(&s.id).map_or(0, |d| d.len());
        if let Some(s) = inner.segments.iter().find(|s| {
            s.n() > 0 && dead(s) as f64 > self.opts.compact_deleted_fraction * s.n() as f64
        }) {
            return vec![s.id];
        }
        let small: Vec<u64> = inner
            .segments
            .iter()
            .filter(|s| ((s.n() as u64 - dead(s)) as usize) < self.opts.flush_points / 2)
            .map(|s| s.id)
            .collect();
        if small.len() >= 2 {
            small
        } else {
            Vec::new()
        }
    }

    /// Rewrites the segments of `compaction_plan` into one (live
    /// points only); deletes that land meanwhile become tombstones of the new segment. Returns
    /// whether it did anything. Runs on the worker.
    pub fn compact(&self) -> Result<bool> {
        let (victims, snapshot, seg_id, fields) = {
            let mut inner = self.write();
            let ids = self.compaction_plan(&inner);
            if ids.is_empty() {
                return Ok(false);
            }
            let victims: Vec<Arc<Segment>> = inner
                .segments
                .iter()
                .filter(|s| ids.contains(&s.id))
                .cloned()
                .collect();
            let snapshot: Vec<RoaringBitmap> = victims
                .iter()
                .map(|s| inner.deleted.get(&s.id).cloned().unwrap_or_default())
                .collect();
            let id = inner.state.next_segment;
            inner.state.next_segment += 1;
            (victims, snapshot, id, inner.fields.clone())
        };
        // (victim index, internal id) of every live point, in the new segment's order.
        let mut origin: Vec<(usize, u32)> = Vec::new();
        let mut points: Vec<(u64, Vec<f32>, Payload)> = Vec::new();
        for (vi, seg) in victims.iter().enumerate() {
            let live: Vec<u32> = (0..seg.n())
                .filter(|i| !snapshot[vi].contains(*i))
                .collect();
            for chunk in live.chunks(4096) {
                let vs = seg.index.vectors(chunk)?;
                for (j, &i) in chunk.iter().enumerate() {
                    let v = vs[j * self.config.dim..(j + 1) * self.config.dim].to_vec();
                    points.push((seg.ids[i as usize], v, seg.payload(i)?));
                    origin.push((vi, i));
                }
            }
        }
        let n = points.len();
        let merged = if n > 0 {
            Some(self.write_segment(seg_id, n, points.into_iter(), &fields)?)
        } else {
            None
        };
        let victim_ids: Vec<u64> = victims.iter().map(|s| s.id).collect();
        {
            let mut inner = self.write();
            let inner = &mut *inner;
            let visible_from = inner
                .state
                .segments
                .iter()
                .filter(|e| victim_ids.contains(&e.id))
                .map(|e| e.visible_from)
                .max()
                .unwrap_or(0);
            if let Some(seg) = merged {
                let mut del = RoaringBitmap::new();
                for (j, &(vi, i)) in origin.iter().enumerate() {
                    let old = Loc::Seg(victim_ids[vi], i);
                    let ext = victims[vi].ids[i as usize];
                    if inner.idmap.get(&ext) == Some(&old) {
                        inner.idmap.insert(ext, Loc::Seg(seg_id, j as u32));
                    } else {
                        del.insert(j as u32); // deleted or overwritten during the rewrite
                    }
                }
                inner.add_segment(seg, del, visible_from);
            }
            inner.segments.retain(|s| !victim_ids.contains(&s.id));
            inner.state.segments.retain(|e| !victim_ids.contains(&e.id));
            for v in &victim_ids {
                inner.deleted.remove(v);
                inner.dirty.remove(v);
            }
            self.persist(inner)?;
        }
        // Searches still holding a victim keep reading its open files; the names go now.
        for v in &victim_ids {
            let d = seg_dir(&self.dir, *v);
            std::fs::remove_dir_all(&d).map_err(|e| ServerError::io(&d, e))?;
        }
        log::info!(
            "{}: compacted segments {victim_ids:?} into {seg_id} ({n} live points)",
            self.config.name
        );
        Ok(true)
    }

    /// Writes dirty tombstones, then `state.json`.
    fn persist(&self, inner: &mut Inner) -> Result<()> {
        for id in std::mem::take(&mut inner.dirty) {
            if let Some(d) = inner.deleted.get(&id) {
                write_deleted(&seg_dir(&self.dir, id), d)?;
            }
        }
        write_json(&self.dir.join("state.json"), &inner.state)
    }

    /// Builds segment `seg_id` from `n` points (id, vector, payload) and opens it.
    fn write_segment(
        &self,
        seg_id: u64,
        n: usize,
        points: impl Iterator<Item = (u64, Vec<f32>, Payload)>,
        fields: &[FieldSchema],
    ) -> Result<Segment> {
        let out = seg_dir(&self.dir, seg_id);
        let tmp = self
            .dir
            .join("segments")
            .join(format!("{seg_id:010}.input"));
        std::fs::create_dir_all(&tmp).map_err(|e| ServerError::io(&tmp, e))?;
        let input = BuildInput {
            data: tmp.join("vectors.fbin"),
            ids: Some(tmp.join("ids.txt")),
            payloads: Some(tmp.join("payloads.jsonl")),
            metric: self.config.metric,
        };
        {
            let dim = self.config.dim;
            let mut vw = VectorFileWriter::create(&input.data, DType::F32, dim)?;
            let mut ids = String::new();
            let mut pays = String::new();
            let mut buf: Vec<f32> = Vec::with_capacity(4096 * dim);
            for (id, v, p) in points {
                ids.push_str(&id.to_string());
                ids.push('\n');
                pays.push_str(&p.to_json());
                pays.push('\n');
                buf.extend_from_slice(&v);
                if buf.len() >= 4096 * dim {
                    vw.write(&Matrix::from_f32(dim, std::mem::take(&mut buf)))?;
                }
            }
            if !buf.is_empty() {
                vw.write(&Matrix::from_f32(dim, buf))?;
            }
            vw.finish()?;
            for (path, text) in [(&input.ids, ids), (&input.payloads, pays)] {
                if let Some(p) = path {
                    std::fs::write(p, text).map_err(|e| ServerError::io(p, e))?;
                }
            }
        }
        let kind = if n < self.opts.flat_below {
            IndexKind::Flat
        } else {
            self.config.kind
        };
        build_index(kind, &self.config.params, &input, &out)?;
        std::fs::remove_dir_all(&tmp).map_err(|e| ServerError::io(&tmp, e))?;
        quiver_storage::atomic::sync_dir(&self.dir.join("segments"))?;
        Segment::open(seg_id, &out, fields, &self.opts.open)
    }

    /// Top-k search over every segment. Errors name the bad field; nothing is changed.
    pub fn search(&self, q: &Query) -> Result<(Vec<Hit>, QueryStats)> {
        let t0 = Instant::now();
        let metric = self.config.metric;
        check_vector(self.config.dim, &q.vector, "query vector")?;
        if q.k == 0 || q.k > self.opts.max_k {
            return Err(ServerError::invalid(format!(
                "k = {} must be in 1..={}",
                q.k, self.opts.max_k
            )));
        }
        // Checked here too, not only by a SPANN segment: the same request must fail the same
        // way whatever segments the collection has today.
        let most = quiver_index::spann::MAX_RERANK;
        if let Some(r) = q.params.rerank.filter(|&r| r > most) {
            return Err(ServerError::invalid(format!(
                "rerank = {r} must be at most {most}"
            )));
        }
        let mut qn = q.vector.clone();
        if metric == Metric::Cosine {
            normalize(&mut qn);
        }
        let filter = q.filter.as_ref();
        let mut stats = QueryStats::default();
        // (distance, external id, where) of every candidate hit.
        let mut cands: Vec<(f32, u64, Loc)> = Vec::new();
        let mut work: Vec<(Arc<Segment>, Option<RoaringBitmap>)> = Vec::new();
        {
            let inner = self.read();
            if let Some(f) = filter {
                f.validate(&inner.fields)?;
            }
            let (hits, c) = inner.mem.search(metric, &qn, q.k, filter, None);
            stats.index.distance_computations += c;
            stats.segments += 1;
            cands.extend(
                hits.iter()
                    .map(|h| (h.dist, inner.mem.ids[h.id as usize], Loc::Mem(h.id))),
            );
            if let Some(fz) = &inner.frozen {
                let (hits, c) = fz
                    .table
                    .search(metric, &qn, q.k, filter, Some(&inner.frozen_dead));
                stats.index.distance_computations += c;
                stats.segments += 1;
                cands.extend(
                    hits.iter()
                        .map(|h| (h.dist, fz.table.ids[h.id as usize], Loc::Frozen(h.id))),
                );
            }
            for seg in &inner.segments {
                let empty = RoaringBitmap::new();
                let del = inner.deleted.get(&seg.id).unwrap_or(&empty);
                work.push((seg.clone(), seg.allowed(filter, del)));
            }
        }
        for (seg, allow) in work {
            let eligible = allow.as_ref().map_or(seg.n() as u64, |a| a.len());
            if eligible == 0 {
                continue;
            }
            stats.segments += 1;
            let exact = allow.is_some()
                && (eligible <= self.opts.exact_scan_max
                    || (eligible as f64) < EXACT_SCAN_FRACTION * seg.n() as f64);
            let (hits, s) = search_segment(
                &seg,
                (&q.vector, &qn),
                q.k,
                &q.params,
                allow.as_ref(),
                eligible,
                exact,
            )?;
            stats.index += s;
            cands.extend(
                hits.iter()
                    .map(|h| (h.dist, seg.ids[h.id as usize], Loc::Seg(seg.id, h.id))),
            );
        }
        cands.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        cands.dedup_by_key(|c| c.1);
        cands.truncate(q.k);
        if let Some(th) = q.score_threshold {
            cands.retain(|c| {
                let s = score(metric, c.0);
                if metric == Metric::L2 {
                    s <= th
                } else {
                    s >= th
                }
            });
        }
        let mut hits = Vec::with_capacity(cands.len());
        for (dist, id, loc) in cands {
            let (payload, vector) = if q.with_payload || q.with_vector {
                let Some(p) = self.fetch(id, loc, q.with_vector)? else {
                    continue; // deleted since the search saw it
                };
                (
                    q.with_payload.then_some(p.payload),
                    q.with_vector.then_some(p.vector),
                )
            } else {
                (None, None)
            };
            hits.push(Hit {
                id,
                score: score(metric, dist),
                payload,
                vector,
            });
        }
        stats.micros = t0.elapsed().as_micros() as u64;
        Ok((hits, stats))
    }

    /// Payload and (when asked) vector of point `id`, found at `loc` when nothing moved it
    /// since, else looked up again; None if it was deleted meanwhile.
    fn fetch(&self, id: u64, loc: Loc, with_vector: bool) -> Result<Option<PointData>> {
        let from_table = |t: &MemTable, r: u32| PointData {
            id,
            vector: if with_vector {
                t.vector(r).to_vec()
            } else {
                Vec::new()
            },
            payload: t.payloads[r as usize].clone(),
        };
        for attempt in 0..2 {
            let inner = self.read();
            let loc = if attempt == 0 {
                loc
            } else {
                match inner.idmap.get(&id) {
                    Some(&l) => l,
                    None => return Ok(None),
                }
            };
            match loc {
                Loc::Mem(r) if inner.mem.ids.get(r as usize) == Some(&id) => {
                    return Ok(Some(from_table(&inner.mem, r)))
                }
                Loc::Frozen(r) => {
                    if let Some(f) = inner
                        .frozen
                        .as_ref()
                        .filter(|f| f.table.ids.get(r as usize) == Some(&id))
                    {
                        return Ok(Some(from_table(&f.table, r)));
                    }
                }
                Loc::Seg(s, i) => {
                    if let Some(seg) = inner.segments.iter().find(|x| x.id == s).cloned() {
                        drop(inner);
                        return Ok(Some(PointData {
                            id,
                            vector: if with_vector {
                                seg.index.vectors(&[i])?
                            } else {
                                Vec::new()
                            },
                            payload: seg.payload(i)?,
                        }));
                    }
                }
                Loc::Mem(_) => {}
            }
        }
        Ok(None)
    }

    /// The points with these ids that exist, in the order asked.
    pub fn get(&self, ids: &[u64], with_vector: bool) -> Result<Vec<PointData>> {
        let locs: Vec<(u64, Loc)> = {
            let inner = self.read();
            ids.iter()
                .filter_map(|&id| Some((id, *inner.idmap.get(&id)?)))
                .collect()
        };
        let mut out = Vec::with_capacity(locs.len());
        for (id, l) in locs {
            out.extend(self.fetch(id, l, with_vector)?);
        }
        Ok(out)
    }

    /// Live points passing `filter`.
    pub fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        let inner = self.read();
        let Some(f) = filter else {
            return Ok(inner.idmap.len() as u64);
        };
        f.validate(&inner.fields)?;
        let mut n = inner.mem.allowed(Some(f)).len();
        if let Some(fz) = &inner.frozen {
            n += (fz.table.allowed(Some(f)) - &inner.frozen_dead).len();
        }
        let empty = RoaringBitmap::new();
        for seg in &inner.segments {
            let del = inner.deleted.get(&seg.id).unwrap_or(&empty);
            n += seg
                .allowed(Some(f), del)
                .map_or(seg.n() as u64, |a| a.len());
        }
        Ok(n)
    }

    /// Up to `limit` live points with id > `after`, in id order, passing `filter`; and the id
    /// to continue after, if any remain.
    pub fn scroll(
        &self,
        after: Option<u64>,
        limit: usize,
        filter: Option<&Filter>,
        with_vector: bool,
    ) -> Result<(Vec<PointData>, Option<u64>)> {
        let locs: Vec<(u64, Loc)> = {
            let inner = self.read();
            if let Some(f) = filter {
                f.validate(&inner.fields)?;
            }
            let mem_ok = inner.mem.allowed(filter);
            let fz_ok = inner
                .frozen
                .as_ref()
                .map(|f| f.table.allowed(filter) - &inner.frozen_dead);
            let empty = RoaringBitmap::new();
            let seg_ok: HashMap<u64, Option<RoaringBitmap>> = inner
                .segments
                .iter()
                .map(|s| {
                    (
                        s.id,
                        s.allowed(filter, inner.deleted.get(&s.id).unwrap_or(&empty)),
                    )
                })
                .collect();
            let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
            inner
                .idmap
                .range((start, std::ops::Bound::Unbounded))
                .map(|(&id, &l)| (id, l))
                .filter(|(_, l)| match *l {
                    Loc::Mem(r) => mem_ok.contains(r),
                    Loc::Frozen(r) => fz_ok.as_ref().is_some_and(|b| b.contains(r)),
                    Loc::Seg(s, i) => seg_ok
                        .get(&s)
                        .is_some_and(|b| b.as_ref().is_none_or(|b| b.contains(i))),
                })
                .take(limit + 1)
                .collect()
        };
        let more = locs.len() > limit;
        let mut pts = Vec::with_capacity(limit.min(locs.len()));
        for &(id, l) in locs.iter().take(limit) {
            pts.extend(self.fetch(id, l, with_vector)?);
        }
        let next = if more {
            locs.get(limit.saturating_sub(1)).map(|p| p.0)
        } else {
            None
        };
        Ok((pts, next))
    }

    /// Attaches an index directory written by `quiver build` (with its ids and payloads) as a
    /// new segment; ids that already exist are tombstoned where they were. Returns the points
    /// attached. The directory is copied; the source is left as it was.
    pub fn attach(&self, src: &Path) -> Result<u64> {
        let m = quiver_index::manifest::Manifest::read(src)?;
        if m.dim != self.config.dim || m.metric != self.config.metric {
            return Err(ServerError::invalid(format!(
                "{}: index of dim {} {} cannot join collection {} (dim {} {})",
                src.display(),
                m.dim,
                m.metric,
                self.config.name,
                self.config.dim,
                self.config.metric
            )));
        }
        let seg_id = {
            let mut inner = self.write();
            let id = inner.state.next_segment;
            inner.state.next_segment += 1;
            id
        };
        let out = seg_dir(&self.dir, seg_id);
        let tmp = self
            .dir
            .join("segments")
            .join(format!("{seg_id:010}.import"));
        std::fs::create_dir_all(&tmp).map_err(|e| ServerError::io(&tmp, e))?;
        for f in m.files.iter().map(String::as_str).chain(["manifest.json"]) {
            let (from, to) = (src.join(f), tmp.join(f));
            std::fs::copy(&from, &to).map_err(|e| ServerError::io(&from, e))?;
            std::fs::File::open(&to)
                .and_then(|x| x.sync_all())
                .map_err(|e| ServerError::io(&to, e))?;
        }
        quiver_storage::atomic::sync_dir(&tmp)?;
        std::fs::rename(&tmp, &out).map_err(|e| ServerError::io(&out, e))?;
        quiver_storage::atomic::sync_dir(&self.dir.join("segments"))?;
        let fields = self.read().fields.clone();
        let seg = Segment::open(seg_id, &out, &fields, &self.opts.open)?;
        let n = seg.n() as u64;
        let mut inner = self.write();
        let inner = &mut *inner;
        // Every write logged before this point is applied; later ones may shadow the import.
        let visible_from = self.wal.next_lsn();
        for (i, &ext) in seg.ids.iter().enumerate() {
            if let Some(old) = inner.idmap.insert(ext, Loc::Seg(seg_id, i as u32)) {
                inner.kill(old);
            }
        }
        inner.add_segment(seg, RoaringBitmap::new(), visible_from);
        self.persist(inner)?;
        Ok(n)
    }

    /// Declares and indexes a new payload field.
    pub fn create_field_index(&self, f: FieldSchema) -> Result<()> {
        f.validate()?;
        let segs = {
            let mut inner = self.write();
            if inner.fields.iter().any(|x| x.name == f.name) {
                return Err(ServerError::invalid(format!(
                    "field {:?} already has a payload index",
                    f.name
                )));
            }
            inner.fields.push(f.clone());
            let mut cfg = self.config.clone();
            cfg.fields = inner.fields.clone();
            write_json(&self.dir.join("config.json"), &cfg)?;
            inner.segments.clone()
        };
        for s in segs {
            s.index_fields(std::slice::from_ref(&f))?;
        }
        Ok(())
    }

    /// Counts for describe: (live points, segments, unflushed points, disk bytes, RAM parts).
    pub fn describe(&self) -> (u64, u32, u64, u64, Vec<(String, u64)>) {
        let inner = self.read();
        let unflushed = inner.mem.live()
            + inner.frozen.as_ref().map_or(0, |f| {
                f.table.live() - (&inner.frozen_dead - &f.table.dead).len()
            });
        let mut disk = self.wal.bytes();
        let mut ram: BTreeMap<String, u64> = BTreeMap::new();
        for s in &inner.segments {
            disk += s.disk_bytes();
            for (k, b) in s.ram() {
                *ram.entry(k).or_default() += b;
            }
        }
        *ram.entry("memtable".into()).or_default() +=
            inner.mem.bytes() as u64 + inner.frozen.as_ref().map_or(0, |f| f.table.bytes() as u64);
        *ram.entry("id_map".into()).or_default() += inner.idmap.len() as u64 * 40;
        (
            inner.idmap.len() as u64,
            inner.segments.len() as u32,
            unflushed,
            disk,
            ram.into_iter().collect(),
        )
    }

    /// Waits until no build is queued or running (tests, shutdown).
    pub fn wait_idle(&self) {
        while self.building.load(Ordering::Acquire) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Flushes the memtable now, whatever its size, on the worker, and waits for the segment.
    pub fn flush_now(self: &Arc<Self>) -> Result<()> {
        loop {
            self.wait_idle();
            if !self.building.swap(true, Ordering::AcqRel) {
                break;
            }
        }
        let frozen = {
            let mut inner = self.write();
            if inner.frozen.is_none() && inner.mem.rows() > 0 {
                self.freeze(&mut inner)?;
            }
            inner.frozen.is_some()
        };
        if !frozen {
            self.building.store(false, Ordering::Release);
            return Ok(());
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let me = self.clone();
        self.worker.submit(Box::new(move || {
            let r = me.flush_frozen();
            me.building.store(false, Ordering::Release);
            let _ = tx.send(r);
        }));
        rx.recv()
            .map_err(|_| ServerError::Internal("background worker stopped".into()))?
    }

    /// Moves the memtable to `frozen` and rotates the WAL (caller holds the write lock).
    fn freeze(&self, inner: &mut Inner) -> Result<()> {
        let next_lsn = self.wal.rotate()?;
        let table = std::mem::replace(&mut inner.mem, MemTable::new(self.config.dim));
        for (r, &id) in table.ids.iter().enumerate() {
            if inner.idmap.get(&id) == Some(&Loc::Mem(r as u32)) {
                inner.idmap.insert(id, Loc::Frozen(r as u32));
            }
        }
        inner.frozen = Some(Arc::new(Frozen { table, next_lsn }));
        inner.frozen_dead = RoaringBitmap::new();
        Ok(())
    }

    /// The collection's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Inner {
    /// Adds a built segment with its tombstones to the live set and to the state (persisted by
    /// the caller's next `persist`).
    fn add_segment(&mut self, seg: Segment, deleted: RoaringBitmap, visible_from: u64) {
        let id = seg.id;
        if !deleted.is_empty() {
            self.dirty.insert(id);
        }
        self.deleted.insert(id, deleted);
        self.segments.push(Arc::new(seg));
        self.state.segments.push(SegmentEntry { id, visible_from });
    }

    fn segment_visible_from(&self, seg: u64) -> u64 {
        self.state
            .segments
            .iter()
            .find(|s| s.id == seg)
            .map_or(0, |s| s.visible_from)
    }

    /// Marks the copy at `loc` dead.
    fn kill(&mut self, loc: Loc) {
        match loc {
            Loc::Mem(r) => {
                self.mem.dead.insert(r);
            }
            Loc::Frozen(r) => {
                self.frozen_dead.insert(r);
            }
            Loc::Seg(s, i) => {
                self.deleted.entry(s).or_default().insert(i);
                self.dirty.insert(s);
            }
        }
    }

    /// Whether a write at `lsn` is older than the segment holding `loc` (a replayed write
    /// that a later bulk import supersedes).
    fn shadowed(&self, lsn: u64, loc: Loc) -> bool {
        matches!(loc, Loc::Seg(s, _) if self.segment_visible_from(s) > lsn)
    }

    fn apply_upsert(&mut self, lsn: u64, points: Vec<PointData>) {
        for p in points {
            match self.idmap.get(&p.id).copied() {
                Some(old) if self.shadowed(lsn, old) => continue,
                Some(old) => self.kill(old),
                None => {}
            }
            let row = self.mem.push(p.id, &p.vector, p.payload);
            self.idmap.insert(p.id, Loc::Mem(row));
        }
    }

    fn apply_delete(&mut self, lsn: u64, ids: &[u64]) -> u64 {
        let mut n = 0;
        for id in ids {
            if let Some(&old) = self.idmap.get(id) {
                if self.shadowed(lsn, old) {
                    continue;
                }
                self.idmap.remove(id);
                self.kill(old);
                n += 1;
            }
        }
        n
    }
}

/// Checks a vector's dimension and that every component is finite.
pub fn check_vector(dim: usize, v: &[f32], what: &str) -> Result<()> {
    if v.len() != dim {
        return Err(ServerError::invalid(format!(
            "{what} has dimension {}, the collection's is {dim}",
            v.len()
        )));
    }
    if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(ServerError::invalid(format!(
            "{what} component {i} is {x}: vectors must be finite"
        )));
    }
    Ok(())
}

/// Validates wire points into stored form (vectors normalised for cosine, fields typed).
fn points_from_pb(cfg: &CollectionConfig, points: Vec<pb::Point>) -> Result<Vec<PointData>> {
    points
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            check_vector(cfg.dim, &p.vector, &format!("point {i} (id {})", p.id))?;
            let mut payload = Payload {
                text: p.text,
                fields: p
                    .fields
                    .into_iter()
                    .map(|(k, v)| Ok((k.clone(), crate::convert::value_from_pb(&k, v)?)))
                    .collect::<Result<_>>()?,
            };
            payload
                .check(&cfg.fields)
                .map_err(|e| ServerError::invalid(format!("point {i} (id {}): {e}", p.id)))?;
            let mut vector = p.vector;
            if cfg.metric == Metric::Cosine {
                normalize(&mut vector);
            }
            Ok(PointData {
                id: p.id,
                vector,
                payload,
            })
        })
        .collect()
}

/// Builds an index of `kind` from `input` into `out`.
pub fn build_index(kind: IndexKind, p: &IndexParams, input: &BuildInput, out: &Path) -> Result<()> {
    match kind {
        IndexKind::Flat => {
            quiver_index::flat::build(input, out, &|_| {})?;
        }
        IndexKind::Diskann => {
            let d = quiver_index::diskann::DiskAnnParams::default();
            let params = quiver_index::diskann::DiskAnnParams {
                max_degree: p.max_degree.unwrap_or(d.max_degree),
                build_list: p.build_list.unwrap_or(d.build_list),
                alpha: p.alpha.unwrap_or(d.alpha),
                pq_bytes: p.pq_bytes.or(d.pq_bytes),
                seed: d.seed,
            };
            quiver_index::diskann::build(input, &params, out, &|_, _, _| {})?;
        }
        IndexKind::Hnsw => {
            let d = quiver_index::hnsw::HnswParams::default();
            let params = quiver_index::hnsw::HnswParams {
                m: p.m.unwrap_or(d.m),
                ef_construction: p.ef_construction.unwrap_or(d.ef_construction),
                seed: d.seed,
            };
            quiver_index::hnsw::build(input, &params, out, &|_, _, _| {})?;
        }
        IndexKind::Spann | IndexKind::Ivf => {
            use quiver_index::spann::{ClusterKind, SpannParams};
            let ck = if kind == IndexKind::Spann {
                ClusterKind::Spann
            } else {
                ClusterKind::Ivf
            };
            let d = SpannParams::defaults(ck);
            let params = SpannParams {
                max_list_bytes: p.max_list_bytes.unwrap_or(d.max_list_bytes),
                replicas: p.replicas.or(d.replicas),
                ..d
            };
            quiver_index::spann::build(input, ck, &params, out, &|_, _, _| {})?;
        }
    }
    Ok(())
}

/// One segment's top k among `allow`: exact when few points are eligible, otherwise the index
/// with its candidate list widened by the filter's selectivity; exact again if the index found
/// fewer than k of at least k eligible.
/// `query` is (as given, as prepared: normalised for cosine).
fn search_segment(
    seg: &Segment,
    (query, prepared): (&[f32], &[f32]),
    k: usize,
    params: &SearchParams,
    allow: Option<&RoaringBitmap>,
    eligible: u64,
    exact_first: bool,
) -> Result<(Vec<Neighbor>, SearchStats)> {
    let n = seg.n() as u64;
    let exact = |allow: &RoaringBitmap| -> Result<(Vec<Neighbor>, SearchStats)> {
        let ids: Vec<u32> = allow.iter().collect();
        let vs = seg.index.vectors(&ids)?;
        let metric = seg.index.manifest().metric;
        let (top, c) = quiver_index::scan::exact_topk(metric, &vs, query.len(), prepared, k, None);
        let hits = top
            .into_iter()
            .map(|h| Neighbor {
                id: ids[h.id as usize],
                dist: h.dist,
            })
            .collect();
        Ok((
            hits,
            SearchStats {
                distance_computations: c,
                ..Default::default()
            },
        ))
    };
    if let (Some(a), true) = (allow, exact_first) {
        return exact(a);
    }
    let mut p = params.clone();
    if allow.is_some() && eligible < n {
        let widen = |v: usize| {
            ((v as f64 * n as f64 / eligible as f64).ceil() as usize)
                .min(MAX_SCALED_LIST)
                .max(v)
        };
        let d_list = p
            .search_list
            .unwrap_or(quiver_index::diskann::DEFAULT_SEARCH_LIST);
        p.search_list = Some(widen(d_list.max(k)));
        let d_ef = p.ef.unwrap_or(quiver_index::hnsw::DEFAULT_EF);
        p.ef = Some(widen(d_ef.max(k)));
    }
    let (hits, stats) = seg.index.search(query, k, &p, allow)?;
    if let Some(a) = allow {
        if (hits.len() as u64) < eligible.min(k as u64) {
            let (h, s) = exact(a)?;
            let mut st = stats;
            st += s;
            return Ok((h, st));
        }
    }
    Ok((hits, stats))
}
