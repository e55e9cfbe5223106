//! Prometheus-format metrics: request counts, errors and latency per method, points ingested,
//! per-collection sizes; served as text on a plain HTTP listener (`GET /metrics`).

use crate::engine::Db;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A metric family: name, help text, and how to read its value from a source.
type Family<S, V> = (&'static str, &'static str, fn(&S) -> V);

/// What `Collection::describe` returns: points, segments, unflushed, disk bytes, RAM parts.
type Description = (u64, u32, u64, u64, Vec<(String, u64)>);

#[derive(Default)]
struct MethodStats {
    calls: u64,
    errors: u64,
    seconds: f64,
}

/// Counters the services update.
#[derive(Default)]
pub struct Metrics {
    methods: Mutex<BTreeMap<&'static str, MethodStats>>,
    points: AtomicU64,
}

impl Metrics {
    /// Counts one call.
    pub fn record(&self, method: &'static str, took: Duration, ok: bool) {
        let mut m = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        let s = m.entry(method).or_default();
        s.calls += 1;
        s.errors += u64::from(!ok);
        s.seconds += took.as_secs_f64();
    }

    /// Counts ingested points.
    pub fn add_points(&self, n: u64) {
        self.points.fetch_add(n, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, db: &Db) -> String {
        let mut out = String::new();
        let per_method: [Family<MethodStats, f64>; 3] = [
            ("quiver_requests_total", "gRPC calls by method.", |s| {
                s.calls as f64
            }),
            (
                "quiver_request_errors_total",
                "gRPC calls that failed, by method.",
                |s| s.errors as f64,
            ),
            (
                "quiver_request_seconds_total",
                "Time spent in calls, by method.",
                |s| s.seconds,
            ),
        ];
        {
            let m = self.methods.lock().unwrap_or_else(|e| e.into_inner());
            for (metric, help, value) in per_method {
                let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
                for (k, s) in m.iter() {
                    let _ = writeln!(out, "{metric}{{method=\"{k}\"}} {}", value(s));
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP quiver_points_ingested_total Points upserted.\n# TYPE quiver_points_ingested_total counter\nquiver_points_ingested_total {}",
            self.points.load(Ordering::Relaxed)
        );
        let described: Vec<(String, Description)> = db
            .list()
            .iter()
            .map(|c| (c.config().name, c.describe()))
            .collect();
        let per_collection: [Family<Description, u64>; 3] = [
            ("quiver_collection_points", "Live points.", |d| d.0),
            ("quiver_collection_segments", "On-disk segments.", |d| {
                d.1 as u64
            }),
            ("quiver_collection_disk_bytes", "Bytes on disk.", |d| d.3),
        ];
        for (metric, help, value) in per_collection {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} gauge");
            for (name, d) in &described {
                let _ = writeln!(out, "{metric}{{collection=\"{name}\"}} {}", value(d));
            }
        }
        out
    }
}

/// Serves `GET /metrics` (any path, in fact) until the listener fails.
pub async fn serve_metrics(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, db: Arc<Db>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let (metrics, db) = (metrics.clone(), db.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let _ = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
            let body = tokio::task::spawn_blocking(move || metrics.render(&db))
                .await
                .unwrap_or_default();
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}
