//! The server commands: `quiver serve` runs the gRPC server; `quiver ingest` streams a vector
//! file (with ids and payloads) into a collection, creating it if asked; `quiver query` searches
//! one; `quiver collections` lists them.

use anyhow::{bail, Context, Result};
use clap::Args;
use quiver_index::dataset::VectorFileReader;
use quiver_server::pb;
use quiver_server::pb::collections_client::CollectionsClient;
use quiver_server::pb::points_client::PointsClient;
use quiver_server::pb::search_client::SearchClient;
use quiver_server::serve::ServeConfig;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;
use tonic::transport::Channel;

/// `quiver serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file (keys as in `ServeConfig`: data_dir, listen, metrics_listen, api_key,
    /// read_only_key, tls_cert, tls_key, max_message_bytes, `[engine]` flush_points, flush_bytes,
    /// flat_below, max_batch_points, max_k). `QUIVER_*` variables override it; flags override
    /// both.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory [default: quiver-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:6334].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Prometheus metrics listen address [default: off].
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Flush the in-memory segment at this many points [default: 100000].
    #[arg(long)]
    pub flush_points: Option<usize>,
    /// Segments with fewer points are built flat [default: 50000].
    #[arg(long)]
    pub flat_below: Option<usize>,
    /// Segment read backend: pread, mmap or uring [default: pread].
    #[arg(long)]
    pub backend: Option<String>,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn serve(a: ServeArgs) -> Result<()> {
    let mut cfg = ServeConfig::load(a.config.as_deref())?;
    if let Some(d) = a.data_dir {
        cfg.data_dir = d;
    }
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(m) = a.metrics_listen {
        cfg.metrics_listen = Some(m);
    }
    if let Some(f) = a.flush_points {
        cfg.engine.flush_points = f;
    }
    if let Some(f) = a.flat_below {
        cfg.engine.flat_below = f;
    }
    if let Some(b) = a.backend {
        cfg.backend = b;
    }
    // Reads run on the runtime's threads (see quiver_server::service), and a DiskANN search
    // waits on the SSD most of its time: enough threads that 16 searches can wait at once.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads((2 * cores).max(16))
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(quiver_server::serve::run(
        cfg,
        quiver_server::serve::shutdown_signal(),
        None,
    ))
}

/// Where the server is.
#[derive(Debug, Args)]
pub struct ServerArg {
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:6334")]
    pub server: String,
    /// API key, if the server wants one (also QUIVER_API_KEY).
    #[arg(long, env = "QUIVER_API_KEY")]
    pub api_key: Option<String>,
}

impl ServerArg {
    /// Connects, retrying for up to 30 s (a server started just before may still be opening
    /// its data directory).
    async fn channel(&self) -> Result<Channel> {
        let ep = Channel::from_shared(self.server.clone())
            .with_context(|| format!("server address {:?}", self.server))?
            .tcp_nodelay(true);
        let t0 = Instant::now();
        loop {
            match ep.connect().await {
                Ok(c) => return Ok(c),
                Err(_) if t0.elapsed().as_secs() < 30 => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await
                }
                Err(e) => return Err(e).with_context(|| format!("connecting to {}", self.server)),
            }
        }
    }

    fn request<T>(&self, msg: T) -> Result<tonic::Request<T>> {
        let mut r = tonic::Request::new(msg);
        if let Some(k) = &self.api_key {
            r.metadata_mut().insert(
                "x-api-key",
                k.parse().context("API key is not valid metadata")?,
            );
        }
        Ok(r)
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn status(e: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("server said {:?}: {}", e.code(), e.message())
}

/// `quiver ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    server: ServerArg,
    /// Collection.
    #[arg(long)]
    pub collection: String,
    /// Vector file.
    #[arg(long)]
    pub data: PathBuf,
    /// Ids file (one u64 per line; default: row numbers).
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// Payloads (JSONL, one object per row: "text" is the chunk, other keys fields).
    #[arg(long)]
    pub payloads: Option<PathBuf>,
    /// Create the collection first (fails if it exists).
    #[arg(long)]
    pub create: bool,
    /// With --create: metric (l2, ip, cosine).
    #[arg(long, default_value = "l2")]
    pub metric: String,
    /// With --create: index kind of segments (flat, diskann, hnsw, spann, ivf).
    #[arg(long, default_value = "hnsw")]
    pub index: String,
    /// With --create: keyword fields to index (comma list).
    #[arg(long, default_value = "")]
    pub keyword_fields: String,
    /// With --create: integer fields to index (comma list).
    #[arg(long, default_value = "")]
    pub integer_fields: String,
    /// Points per streamed batch.
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
}

fn metric_pb(s: &str) -> Result<pb::Metric> {
    Ok(match s {
        "l2" => pb::Metric::L2,
        "ip" => pb::Metric::Ip,
        "cosine" => pb::Metric::Cosine,
        _ => bail!("metric {s:?} is not l2, ip or cosine"),
    })
}

fn kind_pb(s: &str) -> Result<pb::IndexKind> {
    Ok(match s {
        "flat" => pb::IndexKind::Flat,
        "diskann" => pb::IndexKind::Diskann,
        "hnsw" => pb::IndexKind::Hnsw,
        "spann" => pb::IndexKind::Spann,
        "ivf" => pb::IndexKind::Ivf,
        _ => bail!("index kind {s:?} is not flat, diskann, hnsw, spann or ivf"),
    })
}

/// A payload line as (text, fields), typed by the server's own rule
/// (`Payload::from_json`: "text" is the chunk, strings keywords, numbers integer or float).
fn payload_pb(
    line: &str,
    row: usize,
) -> Result<(String, std::collections::HashMap<String, pb::Value>)> {
    let v: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("payload line {}", row + 1))?;
    if !v.is_object() {
        bail!("payload line {}: not a JSON object", row + 1);
    }
    let p = quiver_server::engine::payload::Payload::from_json(&v);
    Ok((p.text.clone(), quiver_server::convert::fields_to_pb(&p)))
}

/// Streams the file into the collection; prints points/s.
pub fn ingest(a: IngestArgs) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let ch = a.server.channel().await?;
        let mut reader = VectorFileReader::open(&a.data)?;
        let (n, dim) = (reader.rows(), reader.dim());
        if a.create {
            let mut fields = Vec::new();
            for (list, ty) in [
                (&a.keyword_fields, pb::FieldType::Keyword),
                (&a.integer_fields, pb::FieldType::Integer),
            ] {
                for f in list.split(',').filter(|s| !s.is_empty()) {
                    fields.push(pb::FieldSchema {
                        name: f.to_string(),
                        r#type: ty as i32,
                    });
                }
            }
            CollectionsClient::new(ch.clone())
                .create(a.server.request(pb::CreateCollectionRequest {
                    name: a.collection.clone(),
                    dim: dim as u32,
                    metric: metric_pb(&a.metric)? as i32,
                    index: kind_pb(&a.index)? as i32,
                    params: None,
                    fields,
                })?)
                .await
                .map_err(status)?;
        }
        let ids: Option<Vec<u64>> = match &a.ids {
            Some(p) => Some(
                fs_err::read_to_string(p)?
                    .lines()
                    .enumerate()
                    .map(|(i, l)| {
                        l.trim()
                            .parse::<u64>()
                            .with_context(|| format!("{}: line {}", p.display(), i + 1))
                    })
                    .collect::<Result<_>>()?,
            ),
            None => None,
        };
        let mut payloads = match &a.payloads {
            Some(p) => Some(std::io::BufReader::new(fs_err::File::open(p)?).lines()),
            None => None,
        };
        let batch = a.batch.max(1);
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::UpsertRequest>(4);
        let t0 = Instant::now();
        let mut client = PointsClient::new(ch)
            .max_encoding_message_size(256 << 20)
            .max_decoding_message_size(256 << 20);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let call = tokio::spawn({
            let req = a.server.request(stream)?;
            async move { client.upsert_stream(req).await }
        });
        let mut row = 0usize;
        let mut pts = Vec::with_capacity(batch);
        while let Some(chunk) = reader.read_chunk(batch)? {
            let v = chunk.to_f32();
            for vec in v.chunks_exact(dim) {
                let (text, fields) = match payloads.as_mut() {
                    Some(lines) => {
                        let line = lines
                            .next()
                            .with_context(|| format!("payloads end before row {}", row + 1))??;
                        payload_pb(&line, row)?
                    }
                    None => Default::default(),
                };
                let id = match &ids {
                    Some(ids) => *ids
                        .get(row)
                        .with_context(|| format!("ids end before row {}", row + 1))?,
                    None => row as u64,
                };
                pts.push(pb::Point {
                    id,
                    vector: vec.to_vec(),
                    text,
                    fields,
                });
                row += 1;
            }
            if pts.len() >= batch || row == n {
                let msg = pb::UpsertRequest {
                    collection: a.collection.clone(),
                    points: std::mem::take(&mut pts),
                };
                if tx.send(msg).await.is_err() {
                    break; // the call ended early; its status says why
                }
            }
        }
        drop(tx);
        let resp = call.await.context("upload task")?.map_err(status)?.into_inner();
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "{{\"collection\":{:?},\"points\":{},\"seconds\":{secs:.3},\"points_per_second\":{:.0}}}",
            a.collection,
            resp.upserted,
            resp.upserted as f64 / secs
        );
        Ok(())
    })
}

/// `quiver query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    server: ServerArg,
    /// Collection.
    #[arg(long)]
    pub collection: String,
    /// Query vector as a comma list...
    #[arg(long, conflicts_with = "queries")]
    pub vector: Option<String>,
    /// ...or rows of a vector file (with --rows).
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// With --queries: how many rows, from the first.
    #[arg(long, default_value_t = 1)]
    pub rows: usize,
    /// Hits per query.
    #[arg(short, long, default_value_t = 10)]
    pub k: u32,
    /// HNSW ef / DiskANN search list (0 = default).
    #[arg(long, default_value_t = 0)]
    pub ef: u32,
    /// SPANN / IVF posting lists probed (0 = default).
    #[arg(long, default_value_t = 0)]
    pub lists: u32,
    /// SPANN with SQ8 lists: candidates re-ranked at full precision (default k; 0 = none, the
    /// scores are then the codes' estimates).
    #[arg(long)]
    pub rerank: Option<u32>,
    /// Return payloads.
    #[arg(long)]
    pub with_payload: bool,
}

/// Runs the searches and prints one JSON line per query.
pub fn query(a: QueryArgs) -> Result<()> {
    let vectors: Vec<Vec<f32>> = match (&a.vector, &a.queries) {
        (Some(v), _) => vec![crate::parse_list::<f32>(v)?],
        (None, Some(p)) => {
            let mut r = VectorFileReader::open(p)?;
            let dim = r.dim();
            let m = r
                .read_chunk(a.rows)?
                .with_context(|| format!("{} holds no rows", p.display()))?;
            m.to_f32().chunks_exact(dim).map(<[f32]>::to_vec).collect()
        }
        (None, None) => bail!("give --vector or --queries"),
    };
    let rt = runtime()?;
    rt.block_on(async {
        let mut client = SearchClient::new(crate::channel::OneFrame(a.server.channel().await?));
        for v in vectors {
            let t0 = Instant::now();
            let r = client
                .search(a.server.request(pb::SearchRequest {
                    collection: a.collection.clone(),
                    vector: v,
                    k: a.k,
                    params: Some(pb::SearchParams {
                        search_list: a.ef,
                        beam_width: 0,
                        ef: a.ef,
                        nprobe: a.lists,
                        max_lists: a.lists,
                        eps: 0.0,
                        rerank: a.rerank,
                    }),
                    score_threshold: None,
                    filter: None,
                    with_payload: a.with_payload,
                    with_vector: false,
                })?)
                .await
                .map_err(status)?
                .into_inner();
            let hits: Vec<serde_json::Value> = r
                .hits
                .iter()
                .map(|h| {
                    let mut o = serde_json::json!({"id": h.id, "score": h.score});
                    if a.with_payload {
                        o["text"] = serde_json::Value::String(h.text.clone());
                    }
                    o
                })
                .collect();
            let st = r.stats.unwrap_or_default();
            println!(
                "{}",
                serde_json::json!({
                    "hits": hits,
                    "stats": {"reads": st.reads, "cache_hits": st.cache_hits,
                              "segments": st.segments, "server_micros": st.micros},
                    "client_micros": t0.elapsed().as_micros() as u64,
                })
            );
        }
        Ok(())
    })
}

/// `quiver collections`.
#[derive(Debug, Args)]
pub struct CollectionsArgs {
    #[command(flatten)]
    server: ServerArg,
}

/// Prints each collection's description as a JSON line.
pub fn collections(a: CollectionsArgs) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let mut c = CollectionsClient::new(a.server.channel().await?);
        let list = c
            .list(a.server.request(pb::ListRequest {})?)
            .await
            .map_err(status)?
            .into_inner();
        for i in list.collections {
            println!(
                "{}",
                serde_json::json!({
                    "name": i.name, "dim": i.dim, "points": i.points, "segments": i.segments,
                    "unflushed_points": i.unflushed_points, "disk_bytes": i.disk_bytes,
                    "ram_bytes": i.ram_bytes,
                })
            );
        }
        Ok(())
    })
}
