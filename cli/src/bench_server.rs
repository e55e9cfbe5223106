//! `quiver bench --server ADDR --collection C`: the same sweep and JSON rows as the in-process
//! bench, each query a unary gRPC Search; `--threads` requests in flight (one task each, on a
//! two-thread client runtime). Reports the client's CPU use, so gRPC overhead can be told from
//! server time.

use crate::bench::{emit, hit_ratio, percentile, rss_bytes, BenchArgs, BenchRow, GroundTruth};
use crate::channel::OneFrame;
use crate::parse_list;
use anyhow::{Context, Result};
use quiver_index::{Metric, Neighbor};
use quiver_server::pb;
use quiver_server::pb::collections_client::CollectionsClient;
use quiver_server::pb::search_client::SearchClient;
use rayon::prelude::*;
use std::time::Instant;
use tonic::transport::Channel;

/// CPU seconds (user + system) this process has used, from /proc/self/stat (in USER_HZ = 100
/// ticks per second, the fixed unit of that file); 0 where unavailable.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Runs the sweep against `server`.
pub fn run(
    a: &BenchArgs,
    server: &str,
    queries: &[f32],
    dim: usize,
    gt: &GroundTruth,
    dataset: &str,
) -> Result<()> {
    let collection = a
        .collection
        .clone()
        .context("--server needs --collection")?;
    // One knob swept: HNSW ef / DiskANN L, or SPANN / IVF lists.
    let by_lists = a.nprobe.is_some() || a.max_lists.is_some();
    let lists: Vec<u32> = match (
        &a.ef,
        &a.search_list,
        a.nprobe.as_ref().or(a.max_lists.as_ref()),
    ) {
        (Some(e), _, _) | (None, Some(e), _) | (None, None, Some(e)) => parse_list(e)?,
        (None, None, None) => vec![16, 32, 64, 128],
    };
    // One client thread at concurrency 1 (no cross-thread wake-ups on the client side), two
    // otherwise.
    let rt = if a.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
    };
    rt.block_on(async {
        let ch = Channel::from_shared(server.to_string())
            .with_context(|| format!("server address {server:?}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {server}"))?;
        let info = CollectionsClient::new(ch.clone())
            .describe(pb::CollectionName {
                name: collection.clone(),
            })
            .await
            .map_err(|e| anyhow::anyhow!("describe {collection}: {}", e.message()))?
            .into_inner();
        if info.dim as usize != dim {
            anyhow::bail!(
                "queries have dimension {dim}, collection {collection} {}",
                info.dim
            );
        }
        let metric = match pb::Metric::try_from(info.metric) {
            Ok(pb::Metric::Ip) => Metric::Ip,
            Ok(pb::Metric::Cosine) => Metric::Cosine,
            _ => Metric::L2,
        };
        let nq = queries.len() / dim;
        let conc = a.threads.max(1);
        // Paired mode: the same segment opened here too, searched in alternating phases.
        let local = match &a.index {
            Some(dir) => {
                let backend: quiver_storage::io::Backend = a.backend.parse()?;
                let index = quiver_index::open(
                    dir,
                    &quiver_index::OpenOptions {
                        backend,
                        cache_bytes: 0,
                        hot_nodes: a.hot_nodes,
                    },
                )?;
                let pool = rayon::ThreadPoolBuilder::new().num_threads(conc).build()?;
                Some((index, pool))
            }
            None => None,
        };
        // Queries per phase: all of them, or with --index `--pair-queries` per request in flight.
        let phase = match local {
            Some(_) => (conc * a.pair_queries.max(1)).min(nq.max(1)),
            None => nq.max(1),
        };
        for &l in &lists {
            let (graph, probe) = if by_lists { (0, l) } else { (l, 0) };
            let params = pb::SearchParams {
                search_list: graph,
                beam_width: 0,
                ef: graph,
                nprobe: probe,
                max_lists: probe,
                eps: 0.0,
                rerank: None,
            };
            let local_params = quiver_server::convert::params_from_pb(Some(params));
            let mut remote = Side::default();
            let mut here = Side::default();
            for (p, start) in (0..nq).step_by(phase).enumerate() {
                let end = (start + phase).min(nq);
                // Alternate which side goes first, so neither always follows the other.
                for turn in [p % 2, 1 - p % 2] {
                    match (turn, &local) {
                        (0, _) => {
                            let cpu0 = cpu_seconds();
                            let t0 = Instant::now();
                            let mut tasks = Vec::new();
                            for t in 0..conc {
                                let mut client = SearchClient::new(OneFrame(ch.clone()));
                                let (coll, params) = (collection.clone(), params);
                                let mine: Vec<(usize, Vec<f32>)> = (start + t..end)
                                    .step_by(conc)
                                    .map(|q| (q, queries[q * dim..(q + 1) * dim].to_vec()))
                                    .collect();
                                let k = a.k as u32;
                                tasks.push(tokio::spawn(async move {
                                    let mut out = Vec::with_capacity(mine.len());
                                    for (q, v) in mine {
                                        let ts = Instant::now();
                                        let r = client
                                            .search(pb::SearchRequest {
                                                collection: coll.clone(),
                                                vector: v,
                                                k,
                                                params: Some(params),
                                                ..Default::default()
                                            })
                                            .await
                                            .map_err(|e| {
                                                anyhow::anyhow!("search {q}: {}", e.message())
                                            })?
                                            .into_inner();
                                        out.push((q, r, ts.elapsed().as_secs_f64() * 1e6));
                                    }
                                    anyhow::Ok(out)
                                }));
                            }
                            for t in tasks {
                                for (q, r, us) in t.await.context("client task")?? {
                                    let res: Vec<Neighbor> = r
                                        .hits
                                        .iter()
                                        .map(|h| Neighbor {
                                            id: h.id as u32,
                                            dist: match metric {
                                                Metric::L2 => h.score,
                                                Metric::Ip => -h.score,
                                                Metric::Cosine => 1.0 - h.score,
                                            },
                                        })
                                        .collect();
                                    let s = r.stats.unwrap_or_default();
                                    remote.add(gt.recall(q, &res, a.k), us, &s);
                                }
                            }
                            remote.wall += t0.elapsed().as_secs_f64();
                            remote.cpu += cpu_seconds() - cpu0;
                        }
                        (_, Some((index, pool))) => {
                            let t0 = Instant::now();
                            let found = pool.install(|| {
                                (start..end)
                                    .into_par_iter()
                                    .with_max_len(1)
                                    .map(|q| {
                                        let ts = Instant::now();
                                        let v = &queries[q * dim..(q + 1) * dim];
                                        let (res, s) = index.search(v, a.k, &local_params, None)?;
                                        Ok((q, res, s, ts.elapsed().as_secs_f64() * 1e6))
                                    })
                                    .collect::<Result<Vec<_>>>()
                            })?;
                            here.wall += t0.elapsed().as_secs_f64();
                            for (q, res, s, us) in found {
                                let s = pb::QueryStats {
                                    reads: s.reads,
                                    read_bytes: s.read_bytes,
                                    cache_hits: s.cache_hits,
                                    distance_computations: s.distance_computations,
                                    lists_probed: s.lists,
                                    ..Default::default()
                                };
                                here.add(gt.recall(q, &res, a.k), us, &s);
                            }
                        }
                        (_, None) => {}
                    }
                }
            }
            let knob = if by_lists {
                serde_json::json!({"nprobe": l, "max_lists": l})
            } else {
                serde_json::json!({"ef": l, "search_list": l})
            };
            let memory: serde_json::Map<String, serde_json::Value> = info
                .ram_bytes
                .iter()
                .map(|(k, v)| (k.clone(), (*v).into()))
                .collect();
            let mut row = remote.row(a, dataset, dim, metric, conc);
            row.n = info.points as usize;
            row.index = format!("server:{}", collection);
            row.params = knob.clone();
            row.index_memory_bytes = info.ram_bytes.values().sum();
            row.index_memory = memory;
            row.client_cpu_cores = Some(remote.cpu / remote.wall.max(1e-9));
            // The server's segments are opened by the server: --hot-nodes is this process's.
            row.hot_nodes = None;
            row.pair_phase_queries = local.is_some().then_some(phase);
            remote.server_us.sort_by(f64::total_cmp);
            row.server_p50_us = Some(percentile(&remote.server_us, 0.50));
            emit(&row, a.json)?;
            if let Some((index, _)) = &local {
                let mut row = here.row(a, dataset, dim, metric, conc);
                row.n = index.manifest().n;
                row.index = index.manifest().kind.clone();
                row.params = knob;
                let memory = index.memory();
                row.index_memory_bytes = memory.iter().map(|(_, b)| b).sum();
                row.index_memory = memory
                    .into_iter()
                    .map(|(k, b)| (k.to_string(), b.into()))
                    .collect();
                row.pair_phase_queries = Some(phase);
                emit(&row, a.json)?;
            }
        }
        Ok(())
    })
}

/// What one side of the comparison measured over a sweep point: summed over its phases.
#[derive(Default)]
struct Side {
    recall: f64,
    lat: Vec<f64>,
    /// Server-side time per query (gRPC side only).
    server_us: Vec<f64>,
    wall: f64,
    cpu: f64,
    reads: u64,
    bytes: u64,
    hits: u64,
    dists: u64,
    lists: u64,
}

impl Side {
    fn add(&mut self, recall: f64, us: f64, s: &pb::QueryStats) {
        self.recall += recall;
        self.lat.push(us);
        self.server_us.push(s.micros as f64);
        self.reads += s.reads;
        self.bytes += s.read_bytes;
        self.hits += s.cache_hits;
        self.dists += s.distance_computations;
        self.lists += s.lists_probed;
    }

    /// The row, less what only the caller knows (index, params, memory, n).
    fn row(
        &mut self,
        a: &BenchArgs,
        dataset: &str,
        dim: usize,
        metric: Metric,
        conc: usize,
    ) -> BenchRow {
        self.lat.sort_by(f64::total_cmp);
        let n = self.lat.len().max(1) as f64;
        BenchRow {
            dataset: dataset.to_string(),
            n: 0,
            dim,
            metric: metric.to_string(),
            k: a.k,
            index: String::new(),
            params: serde_json::Value::Null,
            threads: conc,
            interleave: 1,
            cache_bytes: 0,
            hot_nodes: a.hot_nodes,
            recall: self.recall / n,
            qps: self.lat.len() as f64 / self.wall.max(1e-9),
            p50_us: percentile(&self.lat, 0.50),
            p95_us: percentile(&self.lat, 0.95),
            p99_us: percentile(&self.lat, 0.99),
            mean_ios: self.reads as f64 / n,
            mean_read_bytes: self.bytes as f64 / n,
            cache_hit_ratio: hit_ratio(self.reads, self.hits),
            rss_bytes: rss_bytes(),
            index_rss_bytes: 0,
            index_memory_bytes: 0,
            index_memory: serde_json::Map::new(),
            queries: self.lat.len(),
            mean_distances: self.dists as f64 / n,
            mean_lists: self.lists as f64 / n,
            client_cpu_cores: None,
            pair_phase_queries: None,
            server_p50_us: None,
        }
    }
}
