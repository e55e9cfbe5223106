//! The gRPC server over loopback: create, stream ingest, search (recall against brute force),
//! filtered search at 1/10/50% selectivity, delete, overwrite, restart; bad input; concurrent
//! ingest and search; the engine's recovery from a WAL cut at arbitrary offsets.

use quiver_server::engine::payload::{FieldSchema, FieldType, FieldValue, Payload};
use quiver_server::engine::{CollectionConfig, Db, EngineOptions, IndexKind};
use quiver_server::pb;
use quiver_server::pb::collections_client::CollectionsClient;
use quiver_server::pb::points_client::PointsClient;
use quiver_server::pb::search_client::SearchClient;
use quiver_server::serve::ServeConfig;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use tonic::transport::Channel;
use tonic::Code;

const DIM: usize = 16;

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(cfg: ServeConfig) -> Server {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(quiver_server::serve::run(
        cfg,
        async move {
            let _ = stopped.await;
        },
        Some(tx),
    ));
    let addr = rx.await.expect("server did not start");
    Server {
        addr,
        stop: Some(stop),
        done,
    }
}

impl Server {
    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.done.await.expect("join").expect("server run");
    }
}

fn config(dir: &Path) -> ServeConfig {
    let mut c = ServeConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..Default::default()
    };
    // Small segments so a few thousand points make several, built as HNSW.
    c.engine.flush_points = 1500;
    c.engine.flat_below = 1000;
    c.engine.exact_scan_max = 50;
    c
}

fn point(i: u64, v: &[f32]) -> pb::Point {
    let val = |k: pb::value::Kind| pb::Value { kind: Some(k) };
    pb::Point {
        id: i,
        vector: v.to_vec(),
        text: format!("chunk {i}"),
        fields: [
            (
                "tag".to_string(),
                val(pb::value::Kind::Keyword(format!("t{}", i % 100))),
            ),
            (
                "bucket".to_string(),
                val(pb::value::Kind::Integer((i % 10) as i64)),
            ),
            (
                "half".to_string(),
                val(pb::value::Kind::Integer((i % 2) as i64)),
            ),
        ]
        .into_iter()
        .collect(),
    }
}

fn create_req(name: &str) -> pb::CreateCollectionRequest {
    let f = |n: &str, t: pb::FieldType| pb::FieldSchema {
        name: n.into(),
        r#type: t as i32,
    };
    pb::CreateCollectionRequest {
        name: name.into(),
        dim: DIM as u32,
        metric: pb::Metric::L2 as i32,
        index: pb::IndexKind::Hnsw as i32,
        params: None,
        fields: vec![
            f("tag", pb::FieldType::Keyword),
            f("bucket", pb::FieldType::Integer),
            f("half", pb::FieldType::Integer),
        ],
    }
}

fn search_req(name: &str, q: &[f32], k: u32, filter: Option<pb::Filter>) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: name.into(),
        vector: q.to_vec(),
        k,
        params: None,
        score_threshold: None,
        filter,
        with_payload: true,
        with_vector: false,
    }
}

fn int_match(field: &str, v: i64) -> pb::Filter {
    pb::Filter {
        kind: Some(pb::filter::Kind::Match(pb::Match {
            field: field.into(),
            any: vec![pb::Value {
                kind: Some(pb::value::Kind::Integer(v)),
            }],
        })),
    }
}

fn tag_match(tag: &str) -> pb::Filter {
    pb::Filter {
        kind: Some(pb::filter::Kind::Match(pb::Match {
            field: "tag".into(),
            any: vec![pb::Value {
                kind: Some(pb::value::Kind::Keyword(tag.into())),
            }],
        })),
    }
}

/// The exact top k ids among `live` passing `keep`.
fn exact(
    rows: &[f32],
    live: &HashSet<u64>,
    q: &[f32],
    k: usize,
    keep: impl Fn(u64) -> bool,
) -> Vec<u64> {
    let mut all: Vec<(f32, u64)> = rows
        .chunks_exact(DIM)
        .enumerate()
        .map(|(i, r)| (i as u64, r))
        .filter(|(i, _)| live.contains(i) && keep(*i))
        .map(|(i, r)| {
            (
                r.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(),
                i,
            )
        })
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|x| x.1).collect()
}

fn recall(got: &[u64], want: &[u64]) -> f64 {
    let w: HashSet<_> = want.iter().collect();
    got.iter().filter(|g| w.contains(g)).count() as f64 / want.len().max(1) as f64
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn wait_flushed(ch: &Channel, name: &str) -> pb::CollectionInfo {
    let mut c = CollectionsClient::new(ch.clone());
    for _ in 0..2000 {
        let info = c
            .describe(pb::CollectionName { name: name.into() })
            .await
            .expect("describe")
            .into_inner();
        if info.segments >= 2 {
            return info;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("segments were not built");
}

#[test]
fn ingest_search_filter_delete_restart_over_grpc() {
    let dir = tempfile::tempdir().expect("tmp");
    let n = 4000usize;
    let (rows, queries) = crate::synth(n, DIM, false, 7);
    runtime().block_on(async {
        let srv = start(config(dir.path())).await;
        let ch = srv.channel().await;
        CollectionsClient::new(ch.clone())
            .create(create_req("docs"))
            .await
            .expect("create");
        // Stream ingest in batches of 500.
        let batches: Vec<pb::UpsertRequest> = rows
            .chunks(500 * DIM)
            .enumerate()
            .map(|(b, chunk)| pb::UpsertRequest {
                collection: "docs".into(),
                points: chunk
                    .chunks_exact(DIM)
                    .enumerate()
                    .map(|(j, v)| point((b * 500 + j) as u64, v))
                    .collect(),
            })
            .collect();
        let up = PointsClient::new(ch.clone())
            .upsert_stream(tokio_stream::iter(batches))
            .await
            .expect("stream")
            .into_inner();
        assert_eq!(up.upserted, n as u64);
        let info = wait_flushed(&ch, "docs").await;
        assert_eq!(info.points, n as u64);
        let mut live: HashSet<u64> = (0..n as u64).collect();
        let mut search = SearchClient::new(ch.clone());

        // Unfiltered and filtered recall against brute force; exactly k hits when >= k match.
        type Keep = Box<dyn Fn(u64) -> bool>;
        let cases: Vec<(&str, Option<pb::Filter>, Keep)> = vec![
            ("none", None, Box::new(|_| true)),
            ("1%", Some(tag_match("t7")), Box::new(|i| i % 100 == 7)),
            (
                "10%",
                Some(int_match("bucket", 3)),
                Box::new(|i| i % 10 == 3),
            ),
            ("50%", Some(int_match("half", 1)), Box::new(|i| i % 2 == 1)),
        ];
        for (name, filter, keep) in &cases {
            let mut total = 0.0;
            for q in queries.chunks_exact(DIM) {
                let r = search
                    .search(search_req("docs", q, 10, filter.clone()))
                    .await
                    .expect("search")
                    .into_inner();
                assert_eq!(r.hits.len(), 10, "{name}: exactly k hits");
                assert!(
                    r.hits.iter().all(|h| keep(h.id)),
                    "{name}: hit outside the filter"
                );
                assert!(r.hits.iter().all(|h| h.text == format!("chunk {}", h.id)));
                assert!(
                    r.hits.windows(2).all(|w| w[0].score <= w[1].score),
                    "L2 scores ascend"
                );
                let st = r.stats.expect("stats");
                assert!(st.segments >= 2 && st.distance_computations > 0);
                let got: Vec<u64> = r.hits.iter().map(|h| h.id).collect();
                total += recall(&got, &exact(&rows, &live, q, 10, keep));
            }
            let mean = total / (queries.len() / DIM) as f64;
            assert!(mean >= 0.9, "{name}: recall@10 {mean}");
        }

        // Delete the current top hits of every query and 10% more; none may come back.
        let mut gone: Vec<u64> = (0..n as u64).filter(|i| i % 10 == 9).collect();
        for q in queries.chunks_exact(DIM) {
            gone.extend(exact(&rows, &live, q, 3, |_| true));
        }
        gone.sort_unstable();
        gone.dedup();
        let del = PointsClient::new(ch.clone())
            .delete(pb::DeleteRequest {
                collection: "docs".into(),
                ids: gone.clone(),
            })
            .await
            .expect("delete")
            .into_inner();
        assert_eq!(del.deleted, gone.len() as u64);
        for g in &gone {
            live.remove(g);
        }
        let gone_set: HashSet<u64> = gone.iter().copied().collect();
        let (r_before, answers_before) =
            check_after_delete(search.clone(), &rows, &queries, &live, &gone_set).await;
        assert!(r_before >= 0.9, "recall after delete {r_before}");

        // Overwrite: point 5 moves onto the first query.
        let q0 = queries[..DIM].to_vec();
        PointsClient::new(ch.clone())
            .upsert(pb::UpsertRequest {
                collection: "docs".into(),
                points: vec![point(5, &q0)],
            })
            .await
            .expect("overwrite");
        let top = search
            .search(search_req("docs", &q0, 1, None))
            .await
            .expect("search")
            .into_inner();
        assert_eq!(top.hits[0].id, 5);
        assert!(top.hits[0].score.abs() < 1e-6);
        let mut rows = rows;
        rows[5 * DIM..6 * DIM].copy_from_slice(&q0);
        live.insert(5);

        // Count, get, scroll.
        let mut points = PointsClient::new(ch.clone());
        let count = points
            .count(pb::CountRequest {
                collection: "docs".into(),
                filter: None,
            })
            .await
            .expect("count")
            .into_inner()
            .count;
        assert_eq!(count, live.len() as u64);
        let got = points
            .get(pb::GetRequest {
                collection: "docs".into(),
                ids: vec![5, 9, 11],
                with_vector: true,
            })
            .await
            .expect("get")
            .into_inner();
        let ids: Vec<u64> = got.points.iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![5, 11], "9 was deleted");
        assert_eq!(got.points[0].vector, q0);
        let mut after = None;
        let mut scrolled = Vec::new();
        loop {
            let page = points
                .scroll(pb::ScrollRequest {
                    collection: "docs".into(),
                    after,
                    limit: 700,
                    filter: Some(int_match("half", 0)),
                    with_vector: false,
                })
                .await
                .expect("scroll")
                .into_inner();
            scrolled.extend(page.points.iter().map(|p| p.id));
            match page.next_after {
                Some(a) => after = Some(a),
                None => break,
            }
        }
        let mut want: Vec<u64> = live.iter().copied().filter(|i| i % 2 == 0).collect();
        want.sort_unstable();
        assert_eq!(scrolled, want);
        srv.stop().await;

        // Restart on the same directory: same points, same answers.
        let srv = start(config(dir.path())).await;
        let ch = srv.channel().await;
        let info = CollectionsClient::new(ch.clone())
            .describe(pb::CollectionName {
                name: "docs".into(),
            })
            .await
            .expect("describe")
            .into_inner();
        assert_eq!(info.points, live.len() as u64);
        let (r_after, answers_after) = check_after_delete(
            SearchClient::new(ch.clone()),
            &rows,
            &queries,
            &live,
            &gone_set,
        )
        .await;
        assert!(r_after >= 0.9, "recall after restart {r_after}");
        // Query 0's answer changed by the overwrite; the others barely move (a replayed
        // memtable may be flushed into an approximate segment at open).
        let same: f64 = answers_after[1..]
            .iter()
            .zip(&answers_before[1..])
            .map(|(a, b)| recall(a, b))
            .sum::<f64>()
            / (answers_before.len() - 1) as f64;
        assert!(
            same >= 0.9,
            "answers moved across the restart: overlap {same}"
        );
        srv.stop().await;
    });
}

/// Recall of unfiltered searches against the live points, asserting no deleted id comes back;
/// returns it and the answers.
async fn check_after_delete(
    mut search: SearchClient<Channel>,
    rows: &[f32],
    queries: &[f32],
    live: &HashSet<u64>,
    gone: &HashSet<u64>,
) -> (f64, Vec<Vec<u64>>) {
    let mut total = 0.0;
    let mut answers = Vec::new();
    for q in queries.chunks_exact(DIM) {
        let r = search
            .search(search_req("docs", q, 10, None))
            .await
            .expect("search")
            .into_inner();
        let got: Vec<u64> = r.hits.iter().map(|h| h.id).collect();
        assert!(got.iter().all(|g| !gone.contains(g)), "deleted id returned");
        total += recall(&got, &exact(rows, live, q, 10, |_| true));
        answers.push(got);
    }
    (total / (queries.len() / DIM) as f64, answers)
}

/// Asserts a call failed with `code` and a message containing `needle`.
fn expect_status<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    needle: &str,
) {
    let e = r.expect_err("should fail");
    assert_eq!(e.code(), code, "{e:?}");
    assert!(
        e.message().contains(needle),
        "{:?} lacks {needle:?}",
        e.message()
    );
}

#[test]
fn bad_requests_get_the_right_status_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path());
    cfg.engine.max_batch_points = 100;
    cfg.engine.max_k = 50;
    cfg.max_message_bytes = 64 << 10;
    cfg.api_key = Some("admin-key".into());
    cfg.read_only_key = Some("reader-key".into());
    runtime().block_on(async {
        let srv = start(cfg).await;
        let ch = srv.channel().await;
        let with_key = |key: &str| {
            let key: tonic::metadata::MetadataValue<_> = key.parse().expect("key");
            move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("x-api-key", key.clone());
                Ok(r)
            }
        };
        let mut admin_c = CollectionsClient::with_interceptor(ch.clone(), with_key("admin-key"));
        let mut admin_p = PointsClient::with_interceptor(ch.clone(), with_key("admin-key"));
        let mut admin_s = SearchClient::with_interceptor(ch.clone(), with_key("admin-key"));
        admin_c.create(create_req("c")).await.expect("create");
        let v = vec![0.5f32; DIM];
        admin_p
            .upsert(pb::UpsertRequest {
                collection: "c".into(),
                points: vec![point(1, &v), point(2, &v)],
            })
            .await
            .expect("upsert");
        let count = |mut p: PointsClient<_>| async move {
            p.count(pb::CountRequest {
                collection: "c".into(),
                filter: None,
            })
            .await
            .expect("count")
            .into_inner()
            .count
        };
        let up = |points: Vec<pb::Point>| pb::UpsertRequest {
            collection: "c".into(),
            points,
        };
        // A batch whose last point is bad is refused whole.
        let mut bad = vec![point(3, &v), point(4, &[0.1; DIM - 1])];
        expect_status(
            admin_p.upsert(up(bad.clone())).await,
            Code::InvalidArgument,
            "dimension 15",
        );
        bad[1] = point(4, &{
            let mut x = v.clone();
            x[3] = f32::NAN;
            x
        });
        expect_status(
            admin_p.upsert(up(bad)).await,
            Code::InvalidArgument,
            "component 3 is NaN",
        );
        let mut wrong_type = point(5, &v);
        wrong_type.fields.insert(
            "bucket".into(),
            pb::Value {
                kind: Some(pb::value::Kind::Keyword("x".into())),
            },
        );
        expect_status(
            admin_p.upsert(up(vec![wrong_type])).await,
            Code::InvalidArgument,
            "bucket",
        );
        let many: Vec<pb::Point> = (10..111).map(|i| point(i, &v)).collect();
        expect_status(
            admin_p.upsert(up(many)).await,
            Code::ResourceExhausted,
            "101 points",
        );
        let huge = vec![point(7, &[0.25; DIM])];
        let mut huge_req = up(huge);
        huge_req.points[0].text = "x".repeat(100 << 10);
        let e = admin_p.upsert(huge_req).await.expect_err("too big");
        assert!(
            matches!(e.code(), Code::ResourceExhausted | Code::OutOfRange),
            "{e:?}"
        );
        assert_eq!(
            count(admin_p.clone()).await,
            2,
            "rejected writes changed nothing"
        );

        expect_status(
            admin_p
                .upsert(pb::UpsertRequest {
                    collection: "nope".into(),
                    points: vec![point(1, &v)],
                })
                .await,
            Code::NotFound,
            "\"nope\"",
        );
        expect_status(
            admin_c.create(create_req("c")).await,
            Code::AlreadyExists,
            "\"c\"",
        );
        let mut bad_dim = create_req("d");
        bad_dim.dim = 0;
        expect_status(
            admin_c.create(bad_dim).await,
            Code::InvalidArgument,
            "dim 0",
        );
        expect_status(
            admin_s.search(search_req("c", &v, 0, None)).await,
            Code::InvalidArgument,
            "k = 0",
        );
        expect_status(
            admin_s.search(search_req("c", &v, 51, None)).await,
            Code::InvalidArgument,
            "k = 51",
        );
        expect_status(
            admin_s.search(search_req("c", &v[1..], 5, None)).await,
            Code::InvalidArgument,
            "dimension 15",
        );
        let mut huge_rerank = search_req("c", &v, 5, None);
        huge_rerank.params = Some(pb::SearchParams {
            rerank: Some(200_000),
            ..Default::default()
        });
        expect_status(
            admin_s.search(huge_rerank).await,
            Code::InvalidArgument,
            "rerank = 200000 must be at most 100000",
        );
        let unindexed = pb::Filter {
            kind: Some(pb::filter::Kind::Range(pb::Range {
                field: "price".into(),
                gte: Some(1.0),
                ..Default::default()
            })),
        };
        expect_status(
            admin_s
                .search(search_req("c", &v, 5, Some(unindexed)))
                .await,
            Code::InvalidArgument,
            "\"price\", which has no payload index",
        );

        // Keys: none, wrong, read-only writing.
        let mut anon = SearchClient::new(ch.clone());
        expect_status(
            anon.search(search_req("c", &v, 5, None)).await,
            Code::Unauthenticated,
            "missing",
        );
        let mut wrong = SearchClient::with_interceptor(ch.clone(), with_key("guess"));
        expect_status(
            wrong.search(search_req("c", &v, 5, None)).await,
            Code::Unauthenticated,
            "invalid",
        );
        let mut reader_s = SearchClient::with_interceptor(ch.clone(), with_key("reader-key"));
        assert_eq!(
            reader_s
                .search(search_req("c", &v, 5, None))
                .await
                .expect("reader may search")
                .into_inner()
                .hits
                .len(),
            2
        );
        let mut reader_p = PointsClient::with_interceptor(ch.clone(), with_key("reader-key"));
        expect_status(
            reader_p.upsert(up(vec![point(9, &v)])).await,
            Code::PermissionDenied,
            "read-only",
        );
        assert_eq!(count(admin_p.clone()).await, 2);
        // Drop: the collection is gone, its name free again.
        admin_c
            .drop(pb::CollectionName { name: "c".into() })
            .await
            .expect("drop");
        expect_status(
            admin_s.search(search_req("c", &v, 5, None)).await,
            Code::NotFound,
            "\"c\"",
        );
        admin_c.create(create_req("c")).await.expect("re-create");
        assert_eq!(count(admin_p.clone()).await, 0);
        srv.stop().await;
    });
}

#[test]
fn batch_search_threshold_field_index_and_metrics() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path());
    // The metrics listener's port is not reported; bind a known free one instead.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    cfg.metrics_listen = Some(format!("127.0.0.1:{port}").parse().expect("addr"));
    let rows = crate::random_rows(200, DIM, 9);
    runtime().block_on(async {
        let srv = start(cfg).await;
        let ch = srv.channel().await;
        let mut cols = CollectionsClient::new(ch.clone());
        let mut req = create_req("m");
        req.fields.clear();
        cols.create(req).await.expect("create");
        let mut p = PointsClient::new(ch.clone());
        p.upsert(pb::UpsertRequest {
            collection: "m".into(),
            points: (0..200)
                .map(|i| point(i, &rows[i as usize * DIM..(i as usize + 1) * DIM]))
                .collect(),
        })
        .await
        .expect("upsert");
        let mut s = SearchClient::new(ch.clone());
        // A field without a payload index cannot filter; after CreateFieldIndex it can.
        let e = s
            .search(search_req(
                "m",
                &rows[..DIM],
                5,
                Some(int_match("bucket", 2)),
            ))
            .await
            .expect_err("no index yet");
        assert_eq!(e.code(), Code::InvalidArgument);
        let info = cols
            .create_field_index(pb::CreateFieldIndexRequest {
                collection: "m".into(),
                field: Some(pb::FieldSchema {
                    name: "bucket".into(),
                    r#type: pb::FieldType::Integer as i32,
                }),
            })
            .await
            .expect("create field index")
            .into_inner();
        assert_eq!(info.fields.len(), 1);
        let r = s
            .search(search_req(
                "m",
                &rows[..DIM],
                5,
                Some(int_match("bucket", 2)),
            ))
            .await
            .expect("filtered")
            .into_inner();
        assert_eq!(r.hits.len(), 5);
        assert!(r.hits.iter().all(|h| h.id % 10 == 2));
        // Batch search answers each query as a single search would.
        let batch = s
            .search_batch(pb::SearchBatchRequest {
                searches: (0..3)
                    .map(|i| search_req("m", &rows[i * DIM..(i + 1) * DIM], 3, None))
                    .collect(),
            })
            .await
            .expect("batch")
            .into_inner();
        assert_eq!(batch.results.len(), 3);
        for (i, r) in batch.results.iter().enumerate() {
            assert_eq!(r.hits[0].id, i as u64);
            assert!(r.stats.is_some());
        }
        // score_threshold (L2: keep scores <= it): only the point itself is within 1e-6.
        let mut th = search_req("m", &rows[7 * DIM..8 * DIM], 10, None);
        th.score_threshold = Some(1e-6);
        let r = s.search(th).await.expect("threshold").into_inner();
        assert_eq!(r.hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![7]);
        // Prometheus text.
        use std::io::{Read, Write};
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics");
        sock.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .expect("send");
        let mut text = String::new();
        sock.read_to_string(&mut text).expect("read");
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(
            text.contains("quiver_requests_total{method=\"search\"} "),
            "{text}"
        );
        assert!(
            text.contains("quiver_collection_points{collection=\"m\"} 200"),
            "{text}"
        );
        assert!(
            text.contains("quiver_request_errors_total{method=\"search\"} 1"),
            "{text}"
        );
        srv.stop().await;
    });
}

#[test]
fn concurrent_ingest_and_search_stay_correct() {
    let dir = tempfile::tempdir().expect("tmp");
    let (rows, _) = crate::synth(3000, DIM, false, 11);
    runtime().block_on(async {
        let srv = start(config(dir.path())).await;
        let ch = srv.channel().await;
        CollectionsClient::new(ch.clone())
            .create(create_req("cc"))
            .await
            .expect("create");
        let mut tasks = Vec::new();
        for w in 0..3u64 {
            let (ch, rows) = (ch.clone(), rows.clone());
            tasks.push(tokio::spawn(async move {
                let mut p = PointsClient::new(ch.clone());
                let mut s = SearchClient::new(ch);
                for b in 0..10u64 {
                    let ids: Vec<u64> = (0..100).map(|j| w * 1000 + b * 100 + j).collect();
                    let pts: Vec<pb::Point> = ids
                        .iter()
                        .map(|&i| point(i, &rows[i as usize * DIM..(i as usize + 1) * DIM]))
                        .collect();
                    p.upsert(pb::UpsertRequest {
                        collection: "cc".into(),
                        points: pts,
                    })
                    .await
                    .expect("upsert");
                    // An acknowledged point is found by the next search for its own vector.
                    let i = ids[37] as usize;
                    let r = s
                        .search(search_req("cc", &rows[i * DIM..(i + 1) * DIM], 1, None))
                        .await
                        .expect("search")
                        .into_inner();
                    assert_eq!(r.hits[0].id, i as u64, "writer {w} batch {b}");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let n = PointsClient::new(ch.clone())
            .count(pb::CountRequest {
                collection: "cc".into(),
                filter: None,
            })
            .await
            .expect("count")
            .into_inner()
            .count;
        assert_eq!(n, 3000);
        srv.stop().await;
    });
}

fn engine_opts() -> EngineOptions {
    EngineOptions {
        flush_points: 1_000_000,
        ..Default::default()
    }
}

#[test]
fn wal_cut_at_any_offset_recovers_a_prefix_of_acknowledged_writes() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("db");
    let cfg = CollectionConfig {
        name: "w".into(),
        dim: 4,
        metric: quiver_index::Metric::L2,
        kind: IndexKind::Flat,
        params: Default::default(),
        fields: vec![FieldSchema {
            name: "n".into(),
            ty: FieldType::Integer,
        }],
    };
    {
        let db = Db::open(&root, engine_opts()).expect("open");
        let c = db.create(cfg).expect("create");
        for i in 0..12u64 {
            let p = pb::Point {
                id: i,
                vector: vec![i as f32; 4],
                text: format!("p{i}"),
                fields: [(
                    "n".to_string(),
                    pb::Value {
                        kind: Some(pb::value::Kind::Integer(i as i64)),
                    },
                )]
                .into_iter()
                .collect(),
            };
            c.upsert(vec![p]).expect("upsert");
        }
        c.delete(vec![3]).expect("delete");
    }
    let wal_dir = root.join("collections/w/wal");
    let wal_file = std::fs::read_dir(&wal_dir)
        .expect("wal dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .expect("a wal file");
    let full = std::fs::read(&wal_file).expect("read wal");
    // Record boundaries, from the header lengths.
    let mut ends = Vec::new();
    let mut at = 0usize;
    while at < full.len() {
        let len = u32::from_le_bytes(full[at..at + 4].try_into().expect("4")) as usize;
        at += quiver_storage::wal::HEADER_BYTES + len;
        ends.push(at);
    }
    assert_eq!(ends.len(), 13);
    let step = (full.len() / 60).max(1);
    for cut in (0..=full.len()).step_by(step).chain([full.len() - 1]) {
        let copy = tempfile::tempdir().expect("tmp");
        let croot = copy.path().join("db");
        copy_dir(&root, &croot);
        let cw = croot
            .join("collections/w/wal")
            .join(wal_file.file_name().expect("name"));
        std::fs::write(&cw, &full[..cut]).expect("cut");
        let db = Db::open(&croot, engine_opts()).expect("recover");
        let c = db.get("w").expect("collection");
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        // Records 0..12 upsert ids 0..12; record 12 deletes id 3.
        let mut want: Vec<u64> = (0..whole.min(12) as u64).collect();
        if whole == 13 {
            want.retain(|&i| i != 3);
        }
        let ids: Vec<u64> = (0..12).collect();
        let got = c.get(&ids, true).expect("get");
        let got_ids: Vec<u64> = got.iter().map(|p| p.id).collect();
        assert_eq!(got_ids, want, "cut at byte {cut}");
        for p in &got {
            assert_eq!(p.vector, vec![p.id as f32; 4]);
            let mut expect_payload = Payload {
                text: format!("p{}", p.id),
                ..Default::default()
            };
            expect_payload
                .fields
                .insert("n".into(), FieldValue::Integer(p.id as i64));
            assert_eq!(p.payload, expect_payload);
        }
        // The recovered log takes new writes.
        c.upsert(vec![pb::Point {
            id: 100,
            vector: vec![1.0; 4],
            ..Default::default()
        }])
        .expect("write after recovery");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let t = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).expect("copy");
        }
    }
}

#[test]
fn bulk_import_attaches_a_built_directory_and_replaces_existing_ids() {
    let dir = tempfile::tempdir().expect("tmp");
    let rows = crate::random_rows(300, DIM, 21);
    let mut input = crate::write_input(
        dir.path(),
        &quiver_index::dataset::Matrix::from_f32(DIM, rows.clone()),
        quiver_index::Metric::L2,
    );
    let ids = dir.path().join("ids.txt");
    let pays = dir.path().join("payloads.jsonl");
    let ids_text: String = (0..300).map(|i| format!("{}\n", 1000 + i)).collect();
    let pays_text: String = (0..300)
        .map(|i| {
            format!(
                "{{\"text\": \"imported {}\", \"bucket\": {}}}\n",
                1000 + i,
                i % 10
            )
        })
        .collect();
    std::fs::write(&ids, ids_text).expect("ids");
    std::fs::write(&pays, pays_text).expect("payloads");
    input.ids = Some(ids);
    input.payloads = Some(pays);
    let built = dir.path().join("built");
    quiver_index::flat::build(&input, &built, &|_| {}).expect("build");
    let data = dir.path().join("data");
    runtime().block_on(async {
        let srv = start(config(&data)).await;
        let ch = srv.channel().await;
        let mut cols = CollectionsClient::new(ch.clone());
        cols.create(create_req("imp")).await.expect("create");
        let mut p = PointsClient::new(ch.clone());
        p.upsert(pb::UpsertRequest {
            collection: "imp".into(),
            points: vec![point(1000, &[9.0; DIM]), point(7, &[8.0; DIM])],
        })
        .await
        .expect("upsert");
        let mut bad = create_req("other");
        bad.dim = 8;
        cols.create(bad).await.expect("create other");
        let e = cols
            .import(pb::ImportRequest {
                collection: "other".into(),
                path: built.display().to_string(),
            })
            .await
            .expect_err("dimension mismatch");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("dim 16"), "{}", e.message());
        let n = cols
            .import(pb::ImportRequest {
                collection: "imp".into(),
                path: built.display().to_string(),
            })
            .await
            .expect("import")
            .into_inner()
            .points;
        assert_eq!(n, 300);
        let text_of = |p: PointsClient<Channel>, id: u64| async move {
            let mut p = p;
            p.get(pb::GetRequest {
                collection: "imp".into(),
                ids: vec![id],
                with_vector: false,
            })
            .await
            .expect("get")
            .into_inner()
            .points
            .first()
            .map(|x| x.text.clone())
        };
        assert_eq!(
            text_of(p.clone(), 1000).await.as_deref(),
            Some("imported 1000")
        );
        let filtered = p
            .count(pb::CountRequest {
                collection: "imp".into(),
                filter: Some(int_match("bucket", 4)),
            })
            .await
            .expect("count")
            .into_inner()
            .count;
        assert_eq!(filtered, 30, "imported payload fields are indexed");
        srv.stop().await;
        // The import survives a restart and is not shadowed by the replayed older upsert;
        // a newer upsert replaces an imported point, also across a restart.
        let srv = start(config(&data)).await;
        let ch = srv.channel().await;
        let mut p = PointsClient::new(ch.clone());
        assert_eq!(
            text_of(p.clone(), 1000).await.as_deref(),
            Some("imported 1000")
        );
        let count = p
            .count(pb::CountRequest {
                collection: "imp".into(),
                filter: None,
            })
            .await
            .expect("count")
            .into_inner()
            .count;
        assert_eq!(count, 301);
        p.upsert(pb::UpsertRequest {
            collection: "imp".into(),
            points: vec![point(1001, &[7.0; DIM])],
        })
        .await
        .expect("upsert");
        srv.stop().await;
        let srv = start(config(&data)).await;
        let ch = srv.channel().await;
        assert_eq!(
            text_of(PointsClient::new(ch.clone()), 1001)
                .await
                .as_deref(),
            Some("chunk 1001")
        );
        let mut s = SearchClient::new(ch.clone());
        let r = s
            .search(search_req("imp", &rows[5 * DIM..6 * DIM], 1, None))
            .await
            .expect("search")
            .into_inner();
        assert_eq!(r.hits[0].id, 1005);
        srv.stop().await;
    });
}

#[test]
fn compaction_merges_small_segments_and_drops_tombstones() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("db");
    let opts = EngineOptions {
        flush_points: 1000,
        ..Default::default()
    };
    let cfg = CollectionConfig {
        name: "k".into(),
        dim: DIM,
        metric: quiver_index::Metric::L2,
        kind: IndexKind::Hnsw,
        params: Default::default(),
        fields: vec![],
    };
    let rows = crate::random_rows(600, DIM, 3);
    let pts = |r: std::ops::Range<usize>| -> Vec<pb::Point> {
        r.map(|i| point(i as u64, &rows[i * DIM..(i + 1) * DIM]))
            .collect()
    };
    let search_self = |c: &quiver_server::engine::Collection, i: usize| {
        let q = quiver_server::engine::collection::Query {
            vector: rows[i * DIM..(i + 1) * DIM].to_vec(),
            k: 1,
            ..Default::default()
        };
        c.search(&q).expect("search").0.first().map(|h| h.id)
    };
    {
        let db = Db::open(&root, opts).expect("open");
        let c = db.create(cfg).expect("create");
        c.upsert(pts(0..300)).expect("upsert");
        c.flush_now().expect("flush");
        c.upsert(pts(300..600)).expect("upsert");
        c.flush_now().expect("flush");
        assert_eq!(c.describe().1, 2, "two small segments");
        assert!(c.compact().expect("compact"), "small segments merge");
        assert!(!c.compact().expect("compact"), "nothing left to do");
        let (points, segments, unflushed, _, _) = c.describe();
        assert_eq!((points, segments, unflushed), (600, 1, 0));
        let gone: Vec<u64> = (0..600).filter(|i| i % 3 == 0).collect();
        assert_eq!(c.delete(gone.clone()).expect("delete"), 200);
        assert!(c.compact().expect("compact"), "a third deleted: rewritten");
        assert_eq!(c.describe().0, 400);
        assert!(c.get(&gone, false).expect("get").is_empty());
        for i in (0..600).filter(|i| i % 3 != 0).step_by(7) {
            assert_eq!(search_self(&c, i), Some(i as u64));
        }
    }
    let db = Db::open(&root, opts).expect("reopen");
    let c = db.get("k").expect("collection");
    let (points, segments, _, _, _) = c.describe();
    assert_eq!((points, segments), (400, 1));
    let dirs = std::fs::read_dir(root.join("collections/k/segments"))
        .expect("segments")
        .count();
    assert_eq!(dirs, 1, "old segment directories are gone");
    for i in (0..600).filter(|i| i % 3 != 0).step_by(11) {
        assert_eq!(search_self(&c, i), Some(i as u64));
    }
}

#[test]
fn tls_serves_tls_clients_only_and_reports_health() {
    let dir = tempfile::tempdir().expect("tmp");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_pem = ck.cert.pem();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).expect("cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("key");
    let mut cfg = config(&dir.path().join("data"));
    cfg.tls_cert = Some(cert);
    cfg.tls_key = Some(key);
    runtime().block_on(async {
        let srv = start(cfg).await;
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&cert_pem))
            .domain_name("localhost");
        let ch = Channel::from_shared(format!("https://{}", srv.addr))
            .expect("uri")
            .tls_config(tls)
            .expect("tls config")
            .connect()
            .await
            .expect("TLS connect");
        CollectionsClient::new(ch.clone())
            .create(create_req("secure"))
            .await
            .expect("create over TLS");
        let health = tonic_health::pb::health_client::HealthClient::new(ch.clone())
            .check(tonic_health::pb::HealthCheckRequest {
                service: "quiver.v1.Search".into(),
            })
            .await
            .expect("health")
            .into_inner();
        assert_eq!(
            health.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
        // A plaintext client gets no answer.
        let plain = Channel::from_shared(format!("http://{}", srv.addr))
            .expect("uri")
            .connect()
            .await;
        let refused = match plain {
            Err(_) => true,
            Ok(ch) => CollectionsClient::new(ch)
                .list(pb::ListRequest {})
                .await
                .is_err(),
        };
        assert!(refused, "plaintext call succeeded against a TLS server");
        srv.stop().await;
    });
}

#[test]
fn a_field_index_created_later_does_not_break_wal_replay() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("db");
    let cfg = CollectionConfig {
        name: "f".into(),
        dim: 4,
        metric: quiver_index::Metric::L2,
        kind: IndexKind::Flat,
        params: Default::default(),
        fields: vec![],
    };
    let p = |id: u64, v: pb::value::Kind| pb::Point {
        id,
        vector: vec![id as f32; 4],
        text: String::new(),
        fields: [("x".to_string(), pb::Value { kind: Some(v) })]
            .into_iter()
            .collect(),
    };
    {
        let db = Db::open(&root, engine_opts()).expect("open");
        let c = db.create(cfg).expect("create");
        c.upsert(vec![p(1, pb::value::Kind::Keyword("a".into()))])
            .expect("keyword while unindexed");
        c.create_field_index(FieldSchema {
            name: "x".into(),
            ty: FieldType::Integer,
        })
        .expect("index x as integer");
        c.upsert(vec![p(2, pb::value::Kind::Integer(5))])
            .expect("integer");
        assert!(c
            .upsert(vec![p(3, pb::value::Kind::Keyword("b".into()))])
            .is_err());
    }
    let db = Db::open(&root, engine_opts()).expect("replay with the new index");
    let c = db.get("f").expect("collection");
    assert_eq!(c.count(None).expect("count"), 2);
    let f = quiver_server::engine::payload::Filter::Range {
        field: "x".into(),
        lo: Some((1.0, true)),
        hi: None,
    };
    assert_eq!(c.count(Some(&f)).expect("filtered"), 1);
}

#[test]
fn spann_and_ivf_segments_search_filter_delete_and_reopen() {
    let (rows, qs) = crate::synth(4000, DIM, false, 21);
    for kind in [IndexKind::Spann, IndexKind::Ivf] {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("db");
        let opts = EngineOptions {
            flush_points: 2000,
            flat_below: 500,
            exact_scan_max: 10,
            ..Default::default()
        };
        let cfg = CollectionConfig {
            name: "s".into(),
            dim: DIM,
            metric: quiver_index::Metric::L2,
            kind,
            params: quiver_server::engine::IndexParams {
                max_list_bytes: Some(2048),
                ..Default::default()
            },
            fields: vec![FieldSchema {
                name: "bucket".into(),
                ty: FieldType::Integer,
            }],
        };
        let pts: Vec<pb::Point> = (0..4000)
            .map(|i| point(i as u64, &rows[i * DIM..(i + 1) * DIM]))
            .collect();
        let mut live: HashSet<u64> = (0..4000).collect();
        let query = |q: &[f32], filter: Option<quiver_server::engine::payload::Filter>| {
            quiver_server::engine::collection::Query {
                vector: q.to_vec(),
                k: 10,
                params: quiver_index::SearchParams {
                    max_lists: Some(16),
                    nprobe: Some(16),
                    ..Default::default()
                },
                filter,
                ..Default::default()
            }
        };
        let check = |c: &quiver_server::engine::Collection, live: &HashSet<u64>| {
            let (mut r_all, mut r_f) = (0.0, 0.0);
            let nq = qs.len() / DIM;
            for q in qs.chunks_exact(DIM) {
                let (hits, st) = c.search(&query(q, None)).expect("search");
                assert!(
                    st.index.lists > 0,
                    "{kind:?}: segments are {kind:?}: {st:?}"
                );
                let got: Vec<u64> = hits.iter().map(|h| h.id).collect();
                assert!(got.iter().all(|g| live.contains(g)), "deleted id returned");
                r_all += recall(&got, &exact(&rows, live, q, 10, |_| true));
                // bucket = 3: 10% of the points.
                let f = quiver_server::engine::payload::Filter::Match {
                    field: "bucket".into(),
                    any: vec![FieldValue::Integer(3)],
                };
                let (hits, _) = c.search(&query(q, Some(f))).expect("filtered");
                let got: Vec<u64> = hits.iter().map(|h| h.id).collect();
                assert_eq!(got.len(), 10, "k hits when k match");
                assert!(got.iter().all(|g| g % 10 == 3 && live.contains(g)));
                r_f += recall(&got, &exact(&rows, live, q, 10, |i| i % 10 == 3));
            }
            let (r_all, r_f) = (r_all / nq as f64, r_f / nq as f64);
            assert!(
                r_all >= 0.9 && r_f >= 0.9,
                "{kind:?}: recall {r_all}, filtered {r_f}"
            );
        };
        {
            let db = Db::open(&root, opts).expect("open");
            let c = db.create(cfg.clone()).expect("create");
            c.upsert(pts[..2000].to_vec()).expect("upsert");
            c.upsert(pts[2000..].to_vec()).expect("upsert");
            c.flush_now().expect("flush");
            let (points, segments, unflushed, _, _) = c.describe();
            assert_eq!((points, unflushed), (4000, 0));
            assert!(segments >= 2, "{segments} segments");
            check(&c, &live);
            let gone: Vec<u64> = (0..4000).filter(|i| i % 7 == 0).collect();
            c.delete(gone.clone()).expect("delete");
            gone.iter().for_each(|g| {
                live.remove(g);
            });
            check(&c, &live);
        }
        let db = Db::open(&root, opts).expect("reopen");
        let c = db.get("s").expect("collection");
        assert_eq!(c.describe().0, live.len() as u64);
        check(&c, &live);
    }
}

#[test]
fn one_frame_channel_gets_the_same_answers_and_statuses_as_the_plain_one() {
    use quiver_cli::channel::OneFrame;
    let dir = tempfile::tempdir().expect("tmp");
    let (rows, queries) = crate::synth(300, DIM, false, 11);
    runtime().block_on(async {
        let srv = start(config(dir.path())).await;
        let ch = srv.channel().await;
        CollectionsClient::new(ch.clone())
            .create(create_req("c"))
            .await
            .expect("create");
        let points = (0..300u64)
            .map(|i| point(i, &rows[i as usize * DIM..(i as usize + 1) * DIM]))
            .collect();
        PointsClient::new(ch.clone())
            .upsert(pb::UpsertRequest {
                collection: "c".into(),
                points,
            })
            .await
            .expect("upsert");
        let mut plain = SearchClient::new(ch.clone());
        let mut one = SearchClient::new(OneFrame(ch.clone()));
        for q in queries.chunks(DIM).take(20) {
            let a = plain
                .search(search_req("c", q, 10, None))
                .await
                .expect("plain");
            let b = one
                .search(search_req("c", q, 10, None))
                .await
                .expect("one frame");
            let key = |r: &pb::SearchResponse| -> Vec<(u64, u32)> {
                r.hits.iter().map(|h| (h.id, h.score.to_bits())).collect()
            };
            assert_eq!(key(a.get_ref()), key(b.get_ref()));
            assert_eq!(b.get_ref().hits.len(), 10);
            assert_eq!(b.get_ref().hits[0].text, a.get_ref().hits[0].text);
        }
        // A stored vector finds itself first.
        let r = one
            .search(search_req("c", &rows[42 * DIM..43 * DIM], 1, None))
            .await
            .expect("self");
        assert_eq!(r.get_ref().hits[0].id, 42);
        // Errors keep their status and message.
        expect_status(
            one.search(search_req("c", &[0.1; DIM - 1], 10, None)).await,
            Code::InvalidArgument,
            "dimension 15",
        );
        expect_status(
            one.search(search_req("nope", &rows[..DIM], 10, None)).await,
            Code::NotFound,
            "nope",
        );
        srv.stop().await;
    });
}
