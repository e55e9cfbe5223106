//! `quiver serve`: configuration (defaults < TOML file < `QUIVER_*` environment < flags) and
//! the server's run loop (gRPC on `listen` with TCP_NODELAY, health service, metrics listener,
//! graceful shutdown on SIGINT/SIGTERM).

use crate::engine::{Db, EngineOptions};
use crate::metrics::{serve_metrics, Metrics};
use crate::pb;
use crate::service::{Auth, Service};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Server configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Prometheus metrics listen address (None = off).
    pub metrics_listen: Option<SocketAddr>,
    /// API key for every call (None = no auth).
    pub api_key: Option<String>,
    /// API key for read calls only.
    pub read_only_key: Option<String>,
    /// TLS certificate chain (PEM); TLS is on when this and `tls_key` are set.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Largest gRPC message accepted or sent.
    pub max_message_bytes: usize,
    /// How segments read their on-disk structures: pread, mmap or uring (O_DIRECT io_uring,
    /// the SSD path; falls back to pread where the kernel refuses it).
    pub backend: String,
    /// Block-cache budget per segment, bytes (indices that read from disk).
    pub cache_bytes: u64,
    /// Engine thresholds and limits.
    pub engine: EngineOptions,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            data_dir: PathBuf::from("quiver-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 6334)),
            metrics_listen: None,
            api_key: None,
            read_only_key: None,
            tls_cert: None,
            tls_key: None,
            max_message_bytes: 64 << 20,
            backend: "pread".into(),
            cache_bytes: 0,
            engine: EngineOptions::default(),
        }
    }
}

impl ServeConfig {
    /// Defaults, overlaid by `file` (TOML) when given, then by `QUIVER_*` variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<ServeConfig> {
        let mut c = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing config {}", p.display()))?
            }
            None => ServeConfig::default(),
        };
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = var("QUIVER_DATA_DIR") {
            c.data_dir = v.into();
        }
        if let Some(v) = var("QUIVER_LISTEN") {
            c.listen = v.parse().with_context(|| format!("QUIVER_LISTEN={v}"))?;
        }
        if let Some(v) = var("QUIVER_METRICS_LISTEN") {
            c.metrics_listen = Some(
                v.parse()
                    .with_context(|| format!("QUIVER_METRICS_LISTEN={v}"))?,
            );
        }
        if let Some(v) = var("QUIVER_API_KEY") {
            c.api_key = Some(v);
        }
        if let Some(v) = var("QUIVER_READ_ONLY_KEY") {
            c.read_only_key = Some(v);
        }
        if let Some(v) = var("QUIVER_TLS_CERT") {
            c.tls_cert = Some(v.into());
        }
        if let Some(v) = var("QUIVER_TLS_KEY") {
            c.tls_key = Some(v.into());
        }
        if let Some(v) = var("QUIVER_BACKEND") {
            c.backend = v;
        }
        if let Some(v) = var("QUIVER_MAX_MESSAGE_BYTES") {
            c.max_message_bytes = v
                .parse()
                .with_context(|| format!("QUIVER_MAX_MESSAGE_BYTES={v}"))?;
        }
        Ok(c)
    }

    /// Refuses inconsistent settings.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.read_only_key.is_some() && self.api_key.is_none() {
            anyhow::bail!("read_only_key needs api_key too (without api_key there is no auth)");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            anyhow::bail!("TLS needs both tls_cert and tls_key");
        }
        if self.max_message_bytes < 1024 {
            anyhow::bail!("max_message_bytes {} is too small", self.max_message_bytes);
        }
        let e = &self.engine;
        if e.flush_points == 0 || e.max_batch_points == 0 || e.max_k == 0 {
            anyhow::bail!("engine flush_points, max_batch_points and max_k must be positive");
        }
        Ok(())
    }
}

/// Runs the server until `shutdown` completes; `bound` receives the gRPC address once listening
/// (useful with port 0).
pub async fn run(
    cfg: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    cfg.validate()?;
    let data = cfg.data_dir.clone();
    let mut engine = cfg.engine;
    engine.open.backend = cfg
        .backend
        .parse()
        .map_err(|e| anyhow::anyhow!("backend {:?}: {e}", cfg.backend))?;
    engine.open.cache_bytes = cfg.cache_bytes;
    let db = Arc::new(
        tokio::task::spawn_blocking(move || Db::open(&data, engine))
            .await?
            .with_context(|| format!("opening data directory {}", cfg.data_dir.display()))?,
    );
    let metrics = Arc::new(Metrics::default());
    let svc = Service::new(
        db.clone(),
        Auth {
            api_key: cfg.api_key.clone(),
            read_only_key: cfg.read_only_key.clone(),
        },
        metrics.clone(),
    );
    if let Some(addr) = cfg.metrics_listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding metrics listener {addr}"))?;
        log::info!("metrics on http://{}/metrics", l.local_addr()?);
        tokio::spawn(serve_metrics(l, metrics.clone(), db.clone()));
    }
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<pb::search_server::SearchServer<Service>>()
        .await;
    reporter
        .set_serving::<pb::points_server::PointsServer<Service>>()
        .await;
    reporter
        .set_serving::<pb::collections_server::CollectionsServer<Service>>()
        .await;
    let max = cfg.max_message_bytes;
    let mut builder = tonic::transport::Server::builder();
    if let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) {
        let cert = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
        let key = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
        builder = builder
            .tls_config(
                tonic::transport::ServerTlsConfig::new()
                    .identity(tonic::transport::Identity::from_pem(cert, key)),
            )
            .context("TLS configuration")?;
    }
    let incoming = tonic::transport::server::TcpIncoming::bind(cfg.listen)
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", cfg.listen))?
        .with_nodelay(Some(true));
    let addr = incoming
        .local_addr()
        .map_err(|e| anyhow::anyhow!("listener address: {e}"))?;
    log::info!(
        "serving gRPC on {addr} (data in {})",
        cfg.data_dir.display()
    );
    if let Some(tx) = bound {
        let _ = tx.send(addr);
    }
    builder
        .add_service(health)
        .add_service(
            pb::collections_server::CollectionsServer::new(svc.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            pb::points_server::PointsServer::new(svc.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            pb::search_server::SearchServer::new(svc)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .context("gRPC server")?;
    log::info!("shut down");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}
