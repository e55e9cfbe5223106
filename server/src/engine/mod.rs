//! The storage engine: a catalog of collections under one data directory
//! (`<data>/collections/<name>/`, see [`collection`]).

pub mod collection;
pub mod memtable;
pub mod payload;
pub mod segment;
pub mod worker;

use crate::error::{Result, ServerError};
pub use collection::{Collection, CollectionConfig, IndexKind, IndexParams};
use quiver_index::OpenOptions;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use worker::Worker;

/// Engine limits and thresholds (all configurable; see `quiver serve --help`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineOptions {
    /// Flush the in-memory segment at this many points...
    pub flush_points: usize,
    /// ...or at this many bytes.
    pub flush_bytes: usize,
    /// Segments with fewer points are built flat (PQ and graphs need data).
    pub flat_below: usize,
    /// Most points (or ids) in one upsert or delete request.
    pub max_batch_points: usize,
    /// Largest k.
    pub max_k: usize,
    /// A filtered search scans a segment exactly when at most this many of its points pass
    /// (or under 1% of them); above, the index searches with the filter as an allow-list.
    pub exact_scan_max: u64,
    /// Rewrite a segment once this fraction of its points is deleted.
    pub compact_deleted_fraction: f64,
    /// How segments are opened (read backend, cache budget per segment).
    #[serde(skip)]
    pub open: OpenOptions,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            flush_points: 100_000,
            flush_bytes: 64 << 20,
            flat_below: 50_000,
            max_batch_points: 100_000,
            max_k: 10_000,
            exact_scan_max: 4096,
            compact_deleted_fraction: 0.2,
            open: OpenOptions::default(),
        }
    }
}

/// Every collection under a data directory.
pub struct Db {
    root: PathBuf,
    opts: EngineOptions,
    worker: Arc<Worker>,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
}

impl Db {
    /// Opens (creating) `root` and every collection in it, replaying their WALs.
    pub fn open(root: &Path, opts: EngineOptions) -> Result<Db> {
        let cdir = root.join("collections");
        std::fs::create_dir_all(&cdir).map_err(|e| ServerError::io(&cdir, e))?;
        let worker = Arc::new(Worker::start().map_err(|e| ServerError::io(root, e))?);
        let mut collections = BTreeMap::new();
        for e in std::fs::read_dir(&cdir).map_err(|e| ServerError::io(&cdir, e))? {
            let p = e.map_err(|e| ServerError::io(&cdir, e))?.path();
            if !p.is_dir() {
                continue;
            }
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                log::warn!("{}: left by an interrupted drop; removing", p.display());
                std::fs::remove_dir_all(&p).map_err(|e| ServerError::io(&p, e))?;
                continue;
            }
            if !p.join("config.json").exists() {
                log::warn!(
                    "{}: no config.json (unfinished create); removing",
                    p.display()
                );
                std::fs::remove_dir_all(&p).map_err(|e| ServerError::io(&p, e))?;
                continue;
            }
            let c = Collection::open(&p, opts, worker.clone())?;
            collections.insert(c.config().name, c);
        }
        Ok(Db {
            root: root.to_path_buf(),
            opts,
            worker,
            collections: RwLock::new(collections),
        })
    }

    /// The collection named `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Collection>> {
        self.collections
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| ServerError::NotFound(name.to_string()))
    }

    /// Creates a collection.
    pub fn create(&self, config: CollectionConfig) -> Result<Arc<Collection>> {
        config.validate()?;
        let mut all = self.collections.write().unwrap_or_else(|e| e.into_inner());
        if all.contains_key(&config.name) {
            return Err(ServerError::AlreadyExists(config.name));
        }
        let dir = self.root.join("collections").join(&config.name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| ServerError::io(&dir, e))?;
        }
        let c = Collection::create(&dir, config.clone(), self.opts, self.worker.clone())?;
        all.insert(config.name, c.clone());
        Ok(c)
    }

    /// Drops a collection and deletes its directory.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        let c = {
            let mut all = self.collections.write().unwrap_or_else(|e| e.into_inner());
            all.remove(name)
                .ok_or_else(|| ServerError::NotFound(name.to_string()))?
        };
        c.wait_idle();
        let dir = c.dir().to_path_buf();
        // Rename first, so a crash mid-delete leaves no half collection behind.
        let trash = self
            .root
            .join("collections")
            .join(format!(".{name}.dropped"));
        std::fs::rename(&dir, &trash).map_err(|e| ServerError::io(&dir, e))?;
        quiver_storage::atomic::sync_dir(&self.root.join("collections"))?;
        std::fs::remove_dir_all(&trash).map_err(|e| ServerError::io(&trash, e))?;
        Ok(())
    }

    /// All collections, by name.
    pub fn list(&self) -> Vec<Arc<Collection>> {
        self.collections
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The options collections run with.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }
}
