//! Crash safety of `quiver serve`: SIGKILL in the middle of a streaming ingest (with unary
//! upserts acknowledged alongside and a segment build under way), restart, and check that every
//! acknowledged point is there and searchable, and that each streamed batch is all there or all
//! absent, in stream order. Also: a closed stdout ends a command quietly, not in a panic.

use quiver_server::pb;
use quiver_server::pb::collections_client::CollectionsClient;
use quiver_server::pb::points_client::PointsClient;
use quiver_server::pb::search_client::SearchClient;
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const DIM: usize = 8;
const STREAM_BATCH: u64 = 200;
const UNARY_BASE: u64 = 10_000_000;

fn vector(id: u64) -> Vec<f32> {
    (0..DIM)
        .map(|j| ((id.wrapping_mul(2654435761).wrapping_add(j as u64 * 97)) % 1000) as f32 / 1000.0)
        .collect()
}

fn spawn(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--flush-points",
            "3000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn quiver serve")
}

async fn connect(port: u16) -> Channel {
    let t0 = Instant::now();
    loop {
        match Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("uri")
            .connect()
            .await
        {
            Ok(c) => return c,
            Err(_) if t0.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("server did not come up: {e}"),
        }
    }
}

/// A free port below Linux's ephemeral range (32768-60999). A port the kernel hands out for
/// `:0` is also one it can pick as the source port of the client's own connect retries while
/// the server starts; a client whose source port equals the destination connects to itself
/// (TCP simultaneous open), takes the port from the server and then fails with a reset. One CI
/// run failed so.
fn free_port() -> u16 {
    let start = 20_000 + (std::process::id() % 10_000) as u16;
    (0..12_000u16)
        .map(|i| 20_000 + (start - 20_000 + i) % 12_000)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port below 32000")
}

fn points(ids: impl Iterator<Item = u64>) -> Vec<pb::Point> {
    ids.map(|id| pb::Point {
        id,
        vector: vector(id),
        text: format!("doc {id}"),
        fields: Default::default(),
    })
    .collect()
}

#[test]
fn sigkill_during_streaming_ingest_loses_no_acknowledged_point() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut child = spawn(dir.path(), port);
    let acked: Vec<u64> = rt.block_on(async {
        let ch = connect(port).await;
        CollectionsClient::new(ch.clone())
            .create(pb::CreateCollectionRequest {
                name: "crash".into(),
                dim: DIM as u32,
                metric: pb::Metric::L2 as i32,
                index: pb::IndexKind::Hnsw as i32,
                params: None,
                fields: vec![],
            })
            .await
            .expect("create");
        // The stream: batches of 200 ids, 0.., sent as fast as the server takes them.
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::UpsertRequest>(2);
        let mut p = PointsClient::new(ch.clone());
        let stream = tokio::spawn(async move {
            let _ = p
                .upsert_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await;
        });
        tokio::spawn(async move {
            for b in 0.. {
                let req = pb::UpsertRequest {
                    collection: "crash".into(),
                    points: points(b * STREAM_BATCH..(b + 1) * STREAM_BATCH),
                };
                if tx.send(req).await.is_err() {
                    break;
                }
            }
        });
        // Unary upserts alongside; remember what was acknowledged.
        let mut p = PointsClient::new(ch.clone());
        let mut acked = Vec::new();
        let t0 = Instant::now();
        for b in 0u64.. {
            let ids: Vec<u64> = (0..50).map(|j| UNARY_BASE + b * 50 + j).collect();
            let r = p
                .upsert(pb::UpsertRequest {
                    collection: "crash".into(),
                    points: points(ids.iter().copied()),
                })
                .await;
            match r {
                Ok(_) => acked.extend(ids),
                Err(_) => break,
            }
            if t0.elapsed() > Duration::from_millis(2500) && acked.len() >= 500 {
                break;
            }
        }
        // SIGKILL mid-stream.
        child.kill().expect("kill");
        let _ = child.wait();
        let _ = stream.await;
        acked
    });
    assert!(acked.len() >= 500);
    let mut child = spawn(dir.path(), port);
    rt.block_on(async {
        let ch = connect(port).await;
        let mut p = PointsClient::new(ch.clone());
        // Every acknowledged unary point is there with its payload...
        for chunk in acked.chunks(1000) {
            let got = p
                .get(pb::GetRequest {
                    collection: "crash".into(),
                    ids: chunk.to_vec(),
                    with_vector: true,
                })
                .await
                .expect("get")
                .into_inner();
            assert_eq!(got.points.len(), chunk.len(), "acknowledged points missing");
            for pt in &got.points {
                assert_eq!(pt.vector, vector(pt.id));
                assert_eq!(pt.text, format!("doc {}", pt.id));
            }
        }
        // ...and searchable.
        let mut s = SearchClient::new(ch.clone());
        for &id in acked.iter().step_by(97) {
            let r = s
                .search(pb::SearchRequest {
                    collection: "crash".into(),
                    vector: vector(id),
                    k: 1,
                    ..Default::default()
                })
                .await
                .expect("search")
                .into_inner();
            assert_eq!(
                r.hits[0].score, 0.0,
                "point {id} not found by its own vector"
            );
        }
        // Stream batches: all-or-nothing, and a prefix of the stream.
        let mut present = Vec::new();
        let mut after = None;
        loop {
            let page = p
                .scroll(pb::ScrollRequest {
                    collection: "crash".into(),
                    after,
                    limit: 5000,
                    filter: None,
                    with_vector: false,
                })
                .await
                .expect("scroll")
                .into_inner();
            present.extend(page.points.iter().map(|p| p.id).filter(|&i| i < UNARY_BASE));
            match page.next_after {
                Some(a) => after = Some(a),
                None => break,
            }
        }
        let set: HashSet<u64> = present.iter().copied().collect();
        let batches = present.len() as u64 / STREAM_BATCH;
        assert_eq!(
            present.len() as u64 % STREAM_BATCH,
            0,
            "a stream batch is half there"
        );
        assert!(
            (0..batches * STREAM_BATCH).all(|i| set.contains(&i)),
            "not a prefix"
        );
        assert!(batches > 0, "the stream stored nothing before the kill");
    });
    child.kill().expect("kill");
    let _ = child.wait();
}

/// A reader that closes stdout early (`quiver ... | head`) ends the command quietly with exit 0,
/// not with a "Broken pipe" panic.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let dir = tempfile::tempdir().expect("tmp");
    let bin = env!("CARGO_BIN_EXE_quiver");
    let data = dir.path().join("d");
    let ok = Command::new(bin)
        .args([
            "dataset",
            "gen",
            "--n",
            "300",
            "--dim",
            "4",
            "--queries",
            "2",
            "--out",
        ])
        .arg(&data)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("gen");
    assert!(ok.success());
    let mut child = Command::new(bin)
        .args(["dataset", "info"])
        .arg(data.join("base.fbin"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take()); // the reader goes away before the first line
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
