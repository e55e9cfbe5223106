//! `quiver dataset gen | gt | info`.

use crate::progress::bar;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use quiver_index::analysis::dataset_stats;
use quiver_index::dataset::{read_matrix, write_matrix, Matrix, VectorFileReader};
use quiver_index::gt::{dist_path, ground_truth, write_ground_truth};
use quiver_index::synth::{Mixture, QuerySkew, SynthParams};
use quiver_index::Metric;
use std::path::PathBuf;

/// Dataset subcommands.
#[derive(Debug, Subcommand)]
pub enum DatasetCmd {
    /// Generate a synthetic base set and queries (deterministic from the seed).
    Gen(GenArgs),
    /// Write exact top-k ground truth: ids to --out (ibin), distances next to it (X_dist.fbin).
    Gt(GtArgs),
    /// Report n, dim, norms, local intrinsic dimensionality and relative contrast.
    Info(InfoArgs),
}

/// `quiver dataset gen`.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Base vectors.
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Dimension.
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Queries.
    #[arg(long, default_value_t = 1_000)]
    pub queries: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory: writes base.FMT and query.FMT.
    #[arg(long)]
    pub out: PathBuf,
    /// File format extension (fbin, fvecs, npy).
    #[arg(long, default_value = "fbin")]
    pub format: String,
    /// Clusters (default n/500, clamped to 8..=4096).
    #[arg(long)]
    pub clusters: Option<usize>,
    /// Latent (intrinsic) dimension of the mixture.
    #[arg(long)]
    pub latent_dim: Option<usize>,
    /// Isotropic noise standard deviation per component (before normalisation).
    #[arg(long)]
    pub noise: Option<f32>,
    /// Spread of cluster centres relative to the within-cluster spread.
    #[arg(long)]
    pub center_spread: Option<f32>,
    /// Query traffic: `uniform`, or `zipf:S` (Zipf exponent S over clusters).
    #[arg(long, default_value = "uniform")]
    pub skew: String,
    /// Do not L2-normalise vectors.
    #[arg(long)]
    pub no_normalize: bool,
}

/// `quiver dataset gt`.
#[derive(Debug, Args)]
pub struct GtArgs {
    /// Base vector file.
    #[arg(long)]
    pub base: PathBuf,
    /// Query vector file.
    #[arg(long)]
    pub queries: PathBuf,
    /// Neighbours per query.
    #[arg(short, long, default_value_t = 100)]
    pub k: usize,
    /// Metric (l2, ip, cosine).
    #[arg(long, default_value = "l2")]
    pub metric: Metric,
    /// Output ids file (.ibin); distances go to STEM_dist.fbin beside it.
    #[arg(long)]
    pub out: PathBuf,
}

/// `quiver dataset info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Vector file.
    pub file: PathBuf,
    /// Points sampled for LID and relative contrast.
    #[arg(long, default_value_t = 1000)]
    pub sample: usize,
    /// Neighbours for the LID estimate.
    #[arg(long, default_value_t = 20)]
    pub lid_k: usize,
    /// Rows used as the neighbour pool (a prefix of the file).
    #[arg(long, default_value_t = 100_000)]
    pub reference_rows: usize,
    /// Seed of the sample.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs a dataset subcommand.
pub fn run(cmd: DatasetCmd) -> Result<()> {
    match cmd {
        DatasetCmd::Gen(a) => gen(a),
        DatasetCmd::Gt(a) => gt(a),
        DatasetCmd::Info(a) => info(a),
    }
}

fn parse_skew(s: &str) -> Result<QuerySkew> {
    if s == "uniform" {
        return Ok(QuerySkew::Uniform);
    }
    if let Some(x) = s
        .strip_prefix("zipf:")
        .or(if s == "zipf" { Some("1.0") } else { None })
    {
        let e: f64 = x
            .parse()
            .with_context(|| format!("bad Zipf exponent {x:?}"))?;
        if !(e.is_finite() && e > 0.0) {
            bail!("Zipf exponent must be > 0, got {e}");
        }
        return Ok(QuerySkew::Zipf(e));
    }
    bail!("--skew must be `uniform` or `zipf:S`, got {s:?}")
}

fn gen(a: GenArgs) -> Result<()> {
    if a.n == 0 || a.dim == 0 || a.dim > quiver_index::dataset::MAX_DIM {
        bail!(
            "--n must be > 0 and --dim in 1..={}",
            quiver_index::dataset::MAX_DIM
        );
    }
    let skew = parse_skew(&a.skew)?;
    let mut p = SynthParams::defaults(a.n, a.dim, a.seed);
    if let Some(c) = a.clusters {
        p.clusters = c.max(1);
    }
    if let Some(m) = a.latent_dim {
        p.latent_dim = m.clamp(1, a.dim);
    }
    if let Some(x) = a.noise {
        p.noise = x.max(0.0);
    }
    if let Some(x) = a.center_spread {
        p.center_spread = x.max(0.0);
    }
    p.normalize = !a.no_normalize;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mix = Mixture::new(p.clone());
    let pb = bar(2, "generating");
    let base = mix.base(a.n);
    pb.inc(1);
    let queries = mix.queries(a.queries, skew);
    pb.finish_and_clear();
    let bpath = a.out.join(format!("base.{}", a.format));
    let qpath = a.out.join(format!("query.{}", a.format));
    write_matrix(&bpath, &Matrix::from_f32(a.dim, base))?;
    write_matrix(&qpath, &Matrix::from_f32(a.dim, queries))?;
    let params =
        serde_json::json!({ "generator": p, "skew": skew, "n": a.n, "queries": a.queries });
    std::fs::write(a.out.join("gen.json"), serde_json::to_vec_pretty(&params)?)?;
    println!(
        "wrote {} ({} x {}) and {} ({} x {})",
        bpath.display(),
        a.n,
        a.dim,
        qpath.display(),
        a.queries,
        a.dim
    );
    Ok(())
}

fn gt(a: GtArgs) -> Result<()> {
    let n = VectorFileReader::open(&a.base)?.rows() as u64;
    let pb = bar(n, "ground truth");
    let t = std::time::Instant::now();
    let res = ground_truth(&a.base, &a.queries, a.k, a.metric, &|done, _| {
        pb.set_position(done)
    })?;
    pb.finish_and_clear();
    write_ground_truth(&a.out, &res, a.k)?;
    println!(
        "wrote exact top-{} of {} queries to {} and {} in {:.1}s",
        a.k,
        res.len(),
        a.out.display(),
        dist_path(&a.out).display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn info(a: InfoArgs) -> Result<()> {
    let m = read_matrix(&a.file)?;
    let data = m.to_f32();
    let s = dataset_stats(&data, m.dim, a.lid_k, a.sample, a.reference_rows, a.seed);
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!("file               {}", a.file.display());
        println!(
            "n x dim            {} x {} ({:?})",
            s.n,
            s.dim,
            m.data.dtype()
        );
        println!(
            "norm min/mean/max  {:.4} / {:.4} / {:.4}",
            s.norm_min, s.norm_mean, s.norm_max
        );
        println!(
            "LID (MLE, k={})    mean {:.2}, median {:.2}",
            s.lid_k, s.lid_mean, s.lid_median
        );
        println!("relative contrast  {:.3}", s.relative_contrast);
        println!(
            "sample             {} points against the first {} rows",
            s.sample, s.reference_rows
        );
    }
    Ok(())
}
