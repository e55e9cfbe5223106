//! `quiver bench --server ADDR --collection C`: the same sweep and JSON rows as the in-process
//! bench, each query a unary gRPC Search; `--threads` requests in flight (one task each, on a
//! two-thread client runtime). Reports the client's CPU use, so gRPC overhead can be told from
//! server time.

use crate::bench::{emit, percentile, rss_bytes, BenchArgs, BenchRow, GroundTruth};
use crate::parse_list;
use anyhow::{Context, Result};
use quiver_index::{Metric, Neighbor};
use quiver_server::pb;
use quiver_server::pb::collections_client::CollectionsClient;
use quiver_server::pb::search_client::SearchClient;
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
        for &l in &lists {
            let (graph, probe) = if by_lists { (0, l) } else { (l, 0) };
            let params = pb::SearchParams {
                search_list: graph,
                beam_width: 0,
                ef: graph,
                nprobe: probe,
                max_lists: probe,
                eps: 0.0,
            };
            let cpu0 = cpu_seconds();
            let t0 = Instant::now();
            let mut tasks = Vec::new();
            for t in 0..conc {
                let mut client = SearchClient::new(ch.clone());
                let (coll, params) = (collection.clone(), params);
                let mine: Vec<(usize, Vec<f32>)> = (t..nq)
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
                            .map_err(|e| anyhow::anyhow!("search {q}: {}", e.message()))?
                            .into_inner();
                        out.push((q, r, ts.elapsed().as_secs_f64() * 1e6));
                    }
                    anyhow::Ok(out)
                }));
            }
            let mut all = Vec::with_capacity(nq);
            for t in tasks {
                all.extend(t.await.context("client task")??);
            }
            let wall = t0.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu0;
            all.sort_by_key(|x| x.0);
            let mut recall = 0.0;
            let mut lat = Vec::with_capacity(nq);
            let (mut reads, mut bytes, mut hits, mut dists, mut lists) =
                (0u64, 0u64, 0u64, 0u64, 0u64);
            for (q, r, us) in &all {
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
                recall += gt.recall(*q, &res, a.k);
                lat.push(*us);
                if let Some(s) = &r.stats {
                    reads += s.reads;
                    bytes += s.read_bytes;
                    hits += s.cache_hits;
                    dists += s.distance_computations;
                    lists += s.lists_probed;
                }
            }
            lat.sort_by(f64::total_cmp);
            let n = nq.max(1) as f64;
            let memory: serde_json::Map<String, serde_json::Value> = info
                .ram_bytes
                .iter()
                .map(|(k, v)| (k.clone(), (*v).into()))
                .collect();
            let row = BenchRow {
                dataset: dataset.to_string(),
                n: info.points as usize,
                dim,
                metric: metric.to_string(),
                k: a.k,
                index: format!("server:{}", collection),
                params: if by_lists {
                    serde_json::json!({"nprobe": l, "max_lists": l})
                } else {
                    serde_json::json!({"ef": l, "search_list": l})
                },
                threads: conc,
                interleave: 1,
                cache_bytes: 0,
                hot_nodes: None,
                recall: recall / n,
                qps: n / wall,
                p50_us: percentile(&lat, 0.50),
                p95_us: percentile(&lat, 0.95),
                p99_us: percentile(&lat, 0.99),
                mean_ios: reads as f64 / n,
                mean_read_bytes: bytes as f64 / n,
                cache_hit_ratio: if reads + hits == 0 {
                    0.0
                } else {
                    hits as f64 / (reads + hits) as f64
                },
                rss_bytes: rss_bytes(),
                index_rss_bytes: 0,
                index_memory_bytes: info.ram_bytes.values().sum(),
                index_memory: memory,
                queries: nq,
                mean_distances: dists as f64 / n,
                mean_lists: lists as f64 / n,
                client_cpu_cores: Some(cpu / wall),
            };
            emit(&row, a.json)?;
        }
        Ok(())
    })
}
