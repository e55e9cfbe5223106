//! The gRPC services over a [`Db`]: each handler checks the API key, converts the request, runs
//! the engine call on tokio's blocking pool (engine calls do disk I/O and fsync) and maps errors
//! to status codes (`ServerError` -> `tonic::Status`).

use crate::convert::{
    config_from_pb, field_from_pb, filter_from_pb, hit_to_pb, info_to_pb, params_from_pb,
    point_to_pb, stats_to_pb,
};
use crate::engine::collection::Query;
use crate::engine::Db;
use crate::error::ServerError;
use crate::metrics::Metrics;
use crate::pb;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status, Streaming};

/// Most searches in one batch request.
pub const MAX_BATCH_SEARCHES: usize = 1024;

/// Who may call what.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    /// Key for every call (None = no auth).
    pub api_key: Option<String>,
    /// Key for reads only (search, get, count, scroll, list, describe).
    pub read_only_key: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

impl Auth {
    fn check<T>(&self, req: &Request<T>, need: Access) -> Result<(), Status> {
        let Some(admin) = &self.api_key else {
            return Ok(());
        };
        let md = req.metadata();
        let given = md
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                md.get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::to_string)
            });
        match given {
            None => Err(Status::unauthenticated(
                "missing API key (metadata x-api-key or authorization: Bearer)",
            )),
            Some(k) if &k == admin => Ok(()),
            Some(k) if self.read_only_key.as_ref() == Some(&k) => {
                if need == Access::Read {
                    Ok(())
                } else {
                    Err(Status::permission_denied(
                        "the read-only API key cannot write",
                    ))
                }
            }
            Some(_) => Err(Status::unauthenticated("invalid API key")),
        }
    }
}

/// Shared state of the three services.
#[derive(Clone)]
pub struct Service {
    db: Arc<Db>,
    auth: Auth,
    metrics: Arc<Metrics>,
}

impl Service {
    /// Services over `db`.
    pub fn new(db: Arc<Db>, auth: Auth, metrics: Arc<Metrics>) -> Self {
        Service { db, auth, metrics }
    }

    /// Runs `f` (a write: it fsyncs) on the blocking pool, counting the call under `method`.
    async fn run<T: Send + 'static>(
        &self,
        method: &'static str,
        f: impl FnOnce(Arc<Db>) -> Result<T, ServerError> + Send + 'static,
    ) -> Result<T, Status> {
        let db = self.db.clone();
        let t0 = Instant::now();
        let r = tokio::task::spawn_blocking(move || f(db))
            .await
            .map_err(|e| Status::internal(format!("worker task failed: {e}")))?;
        self.metrics.record(method, t0.elapsed(), r.is_ok());
        r.map_err(Status::from)
    }

    /// Runs `f` (a read: search, get, count...) on this runtime thread. Reads take from tens
    /// of microseconds (HNSW in RAM) to a few milliseconds (DiskANN from SSD); handing each to
    /// the blocking pool cost more than the fast ones (two thread wake-ups per call: measured
    /// ~40% of server CPU in context switches at 16 concurrent searches). `quiver serve`
    /// gives the runtime at least 16 worker threads, so searches waiting on the SSD do not
    /// stall the others.
    async fn read<T: Send + 'static>(
        &self,
        method: &'static str,
        f: impl FnOnce(Arc<Db>) -> Result<T, ServerError> + Send + 'static,
    ) -> Result<T, Status> {
        let t0 = Instant::now();
        let r = f(self.db.clone());
        self.metrics.record(method, t0.elapsed(), r.is_ok());
        r.map_err(Status::from)
    }
}

fn search_one(db: &Db, r: pb::SearchRequest) -> Result<pb::SearchResponse, ServerError> {
    let c = db.get(&r.collection)?;
    let q = Query {
        vector: r.vector,
        k: r.k as usize,
        params: params_from_pb(r.params),
        score_threshold: r.score_threshold,
        filter: filter_from_pb(r.filter)?,
        with_payload: r.with_payload,
        with_vector: r.with_vector,
    };
    let (hits, stats) = c.search(&q)?;
    Ok(pb::SearchResponse {
        hits: hits.into_iter().map(hit_to_pb).collect(),
        stats: Some(stats_to_pb(&stats)),
    })
}

#[tonic::async_trait]
impl pb::collections_server::Collections for Service {
    async fn create(
        &self,
        req: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::CollectionInfo>, Status> {
        self.auth.check(&req, Access::Write)?;
        let r = req.into_inner();
        self.run("create", move |db| {
            let cfg = config_from_pb(r)?;
            let c = db.create(cfg)?;
            Ok(info_to_pb(&c))
        })
        .await
        .map(Response::new)
    }

    async fn drop(
        &self,
        req: Request<pb::CollectionName>,
    ) -> Result<Response<pb::DropResponse>, Status> {
        self.auth.check(&req, Access::Write)?;
        let name = req.into_inner().name;
        self.run("drop", move |db| db.drop_collection(&name))
            .await
            .map(|_| Response::new(pb::DropResponse {}))
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        self.auth.check(&req, Access::Read)?;
        self.read("list", |db| {
            Ok(pb::ListResponse {
                collections: db.list().iter().map(|c| info_to_pb(c)).collect(),
            })
        })
        .await
        .map(Response::new)
    }

    async fn describe(
        &self,
        req: Request<pb::CollectionName>,
    ) -> Result<Response<pb::CollectionInfo>, Status> {
        self.auth.check(&req, Access::Read)?;
        let name = req.into_inner().name;
        self.read("describe", move |db| {
            Ok(info_to_pb(db.get(&name)?.as_ref()))
        })
        .await
        .map(Response::new)
    }

    async fn create_field_index(
        &self,
        req: Request<pb::CreateFieldIndexRequest>,
    ) -> Result<Response<pb::CollectionInfo>, Status> {
        self.auth.check(&req, Access::Write)?;
        let r = req.into_inner();
        self.run("create_field_index", move |db| {
            let c = db.get(&r.collection)?;
            let f = r
                .field
                .ok_or_else(|| ServerError::invalid("field is required"))?;
            c.create_field_index(field_from_pb(f)?)?;
            Ok(info_to_pb(&c))
        })
        .await
        .map(Response::new)
    }

    async fn import(
        &self,
        req: Request<pb::ImportRequest>,
    ) -> Result<Response<pb::ImportResponse>, Status> {
        self.auth.check(&req, Access::Write)?;
        let r = req.into_inner();
        self.run("import", move |db| {
            let points = db
                .get(&r.collection)?
                .attach(std::path::Path::new(&r.path))?;
            Ok(pb::ImportResponse { points })
        })
        .await
        .map(Response::new)
    }
}

#[tonic::async_trait]
impl pb::points_server::Points for Service {
    async fn upsert(
        &self,
        req: Request<pb::UpsertRequest>,
    ) -> Result<Response<pb::UpsertResponse>, Status> {
        self.auth.check(&req, Access::Write)?;
        let r = req.into_inner();
        let n = self
            .run("upsert", move |db| db.get(&r.collection)?.upsert(r.points))
            .await?;
        self.metrics.add_points(n as u64);
        Ok(Response::new(pb::UpsertResponse { upserted: n as u64 }))
    }

    async fn upsert_stream(
        &self,
        req: Request<Streaming<pb::UpsertRequest>>,
    ) -> Result<Response<pb::UpsertResponse>, Status> {
        self.auth.check(&req, Access::Write)?;
        let mut stream = req.into_inner();
        let mut total = 0u64;
        while let Some(batch) = stream.message().await? {
            let n = self
                .run("upsert_stream", move |db| {
                    db.get(&batch.collection)?.upsert(batch.points)
                })
                .await
                .map_err(|s| {
                    Status::new(
                        s.code(),
                        format!(
                            "{} ({total} points of earlier batches were stored)",
                            s.message()
                        ),
                    )
                })?;
            total += n as u64;
            self.metrics.add_points(n as u64);
        }
        Ok(Response::new(pb::UpsertResponse { upserted: total }))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        self.auth.check(&req, Access::Write)?;
        let r = req.into_inner();
        self.run("delete", move |db| db.get(&r.collection)?.delete(r.ids))
            .await
            .map(|deleted| Response::new(pb::DeleteResponse { deleted }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        self.auth.check(&req, Access::Read)?;
        let r = req.into_inner();
        self.read("get", move |db| {
            let c = db.get(&r.collection)?;
            if r.ids.len() > db.options().max_batch_points {
                return Err(ServerError::TooLarge(format!(
                    "get of {} ids exceeds the limit of {}",
                    r.ids.len(),
                    db.options().max_batch_points
                )));
            }
            let pts = c.get(&r.ids, r.with_vector)?;
            Ok(pb::GetResponse {
                points: pts.into_iter().map(point_to_pb).collect(),
            })
        })
        .await
        .map(Response::new)
    }

    async fn count(
        &self,
        req: Request<pb::CountRequest>,
    ) -> Result<Response<pb::CountResponse>, Status> {
        self.auth.check(&req, Access::Read)?;
        let r = req.into_inner();
        self.read("count", move |db| {
            let c = db.get(&r.collection)?;
            let f = filter_from_pb(r.filter)?;
            Ok(pb::CountResponse {
                count: c.count(f.as_ref())?,
            })
        })
        .await
        .map(Response::new)
    }

    async fn scroll(
        &self,
        req: Request<pb::ScrollRequest>,
    ) -> Result<Response<pb::ScrollResponse>, Status> {
        self.auth.check(&req, Access::Read)?;
        let r = req.into_inner();
        self.read("scroll", move |db| {
            let c = db.get(&r.collection)?;
            let limit = match r.limit {
                0 => 100,
                l if l as usize > db.options().max_batch_points => {
                    return Err(ServerError::TooLarge(format!(
                        "scroll limit {l} exceeds {}",
                        db.options().max_batch_points
                    )))
                }
                l => l as usize,
            };
            let f = filter_from_pb(r.filter)?;
            let (pts, next) = c.scroll(r.after, limit, f.as_ref(), r.with_vector)?;
            Ok(pb::ScrollResponse {
                points: pts.into_iter().map(point_to_pb).collect(),
                next_after: next,
            })
        })
        .await
        .map(Response::new)
    }
}

#[tonic::async_trait]
impl pb::search_server::Search for Service {
    async fn search(
        &self,
        req: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        self.auth.check(&req, Access::Read)?;
        let r = req.into_inner();
        self.read("search", move |db| search_one(&db, r))
            .await
            .map(Response::new)
    }

    async fn search_batch(
        &self,
        req: Request<pb::SearchBatchRequest>,
    ) -> Result<Response<pb::SearchBatchResponse>, Status> {
        self.auth.check(&req, Access::Read)?;
        let r = req.into_inner();
        if r.searches.len() > MAX_BATCH_SEARCHES {
            return Err(Status::resource_exhausted(format!(
                "batch of {} searches exceeds {MAX_BATCH_SEARCHES}",
                r.searches.len()
            )));
        }
        self.read("search_batch", move |db| {
            let results = r
                .searches
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    search_one(&db, s).map_err(|e| match e {
                        ServerError::InvalidArgument(m) => {
                            ServerError::InvalidArgument(format!("search {i}: {m}"))
                        }
                        other => other,
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(pb::SearchBatchResponse { results })
        })
        .await
        .map(Response::new)
    }
}
