//! `quiver bench-storage`: 4 KiB random reads on a block file of at least 4 GiB, page cache
//! dropped before each run; io_uring at queue depth d (one thread), pread and mmap with d reader
//! threads; IOPS and p50/p99 latency, and with `--fio` fio's figures at the same depth on the same
//! file. Every read goes through our checksum-verifying readers, so the figure is what an index
//! gets, not a raw syscall rate.

use crate::parse_list;
use anyhow::{bail, Context, Result};
use clap::Args;
use quiver_storage::io::{open_reader, Backend, BlockReader, ReadRequest, UringReader};
use quiver_storage::{BlockFile, BlockFileWriter};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `quiver bench-storage`.
#[derive(Debug, Args)]
pub struct IoBenchArgs {
    /// Block file to read (created with random content if missing or too small).
    #[arg(long)]
    pub file: PathBuf,
    /// Size of the data section in GiB.
    #[arg(long, default_value_t = 4)]
    pub size_gib: u64,
    /// Backends (uring, pread, mmap).
    #[arg(long, default_value = "uring,pread,mmap")]
    pub backends: String,
    /// Depths: queue depth for io_uring, reader threads for pread and mmap.
    #[arg(long, default_value = "1,32,128")]
    pub depths: String,
    /// Seconds per run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Also run fio at the same depth on the same file.
    #[arg(long)]
    pub fio: bool,
    /// Do not drop the page cache before each run.
    #[arg(long)]
    pub no_drop_caches: bool,
    /// Rounds per backend and depth. Quiver and fio alternate within a round, so a drift in the
    /// disk's speed hits both; with `--fio` a summary line gives the median ratio over rounds.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
}

#[derive(Debug, serde::Serialize)]
struct IoRow {
    tool: String,
    backend: String,
    depth: usize,
    iops: f64,
    p50_us: f64,
    p99_us: f64,
    seconds: f64,
    cache_dropped: bool,
}

fn prepare(path: &Path, size: u64) -> Result<BlockFile> {
    if let Ok(f) = BlockFile::open(path) {
        if f.section("data").is_ok_and(|s| s.len >= size) {
            return Ok(f);
        }
    }
    eprintln!(
        "writing {} ({} GiB of random blocks)...",
        path.display(),
        size >> 30
    );
    let mut w = BlockFileWriter::create(path, "bench.data")?;
    w.begin_section("data")?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut chunk = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < size {
        rng.fill(&mut chunk[..]);
        w.write(&chunk)?;
        written += chunk.len() as u64;
    }
    w.end_section()?;
    w.finish()?;
    Ok(BlockFile::open(path)?)
}

fn drop_caches() -> bool {
    // sync(1), then the documented procfs knob; fails (returns false) without root.
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// io_uring: one thread keeps `depth` reads in flight with batches of 256 x depth requests (a batch drains to zero at its end; long batches keep that tail small). A
/// request's latency is its completion time minus its submission time, where request i >= depth
/// is submitted when the (i - depth)-th completion of its batch frees a slot.
fn run_uring(file: &BlockFile, depth: usize, secs: u64) -> Result<(f64, Vec<f64>)> {
    let reader = UringReader::open(file, depth as u32)?;
    if !reader.is_direct() {
        eprintln!("warning: O_DIRECT refused; io_uring reads use the page cache");
    }
    let (first, last) = data_range(file)?;
    let mut rng = ChaCha8Rng::seed_from_u64(depth as u64);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let t0 = Instant::now();
    let (mut done, mut lat) = (0u64, Vec::new());
    let batch = 256 * depth;
    let mut completions: Vec<Instant> = Vec::with_capacity(batch);
    while Instant::now() < deadline {
        let reqs: Vec<ReadRequest> = (0..batch)
            .map(|_| ReadRequest::block(rng.random_range(first..last)))
            .collect();
        let mut finished: Vec<(usize, Instant)> = Vec::with_capacity(batch);
        completions.clear();
        let start = Instant::now();
        reader.read_batch(&reqs, &mut |i, _| {
            let now = Instant::now();
            finished.push((i, now));
            Ok(())
        })?;
        completions.extend(finished.iter().map(|f| f.1));
        for &(i, t) in &finished {
            let submitted = if i < depth {
                start
            } else {
                completions[i - depth]
            };
            lat.push(t.saturating_duration_since(submitted).as_secs_f64() * 1e6);
        }
        done += batch as u64;
    }
    Ok((done as f64 / t0.elapsed().as_secs_f64(), lat))
}

/// pread / mmap: `threads` threads, each issuing one 4 KiB read at a time.
fn run_threads(
    reader: Arc<dyn BlockReader>,
    file: &BlockFile,
    threads: usize,
    secs: u64,
) -> Result<(f64, Vec<f64>)> {
    let (first, last) = data_range(file)?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let t0 = Instant::now();
    let per: Vec<Result<Vec<f64>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let reader = reader.clone();
                s.spawn(move || -> Result<Vec<f64>> {
                    let mut rng = ChaCha8Rng::seed_from_u64(1000 + t as u64);
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let r = ReadRequest::block(rng.random_range(first..last));
                        let t = Instant::now();
                        reader.read_batch(&[r], &mut |_, _| Ok(()))?;
                        lat.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                    Ok(lat)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("reader thread panicked")))
            })
            .collect()
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    for p in per {
        lat.extend(p?);
    }
    Ok((lat.len() as f64 / elapsed, lat))
}

fn data_range(file: &BlockFile) -> Result<(u64, u64)> {
    let s = file.section("data")?;
    Ok((s.first_block, s.first_block + s.n_blocks))
}

fn run_fio(path: &Path, backend: &str, depth: usize, secs: u64) -> Result<(f64, f64, f64)> {
    let mut c = Command::new("fio");
    c.args([
        "--name=r",
        "--rw=randread",
        "--bs=4k",
        "--time_based",
        "--output-format=json",
        "--group_reporting",
    ]);
    c.arg(format!("--filename={}", path.display()));
    c.arg(format!("--runtime={secs}"));
    match backend {
        "uring" => c
            .args(["--ioengine=io_uring", "--direct=1", "--numjobs=1"])
            .arg(format!("--iodepth={depth}")),
        "pread" => c
            .args(["--ioengine=psync", "--direct=0", "--fadvise_hint=1"])
            .arg(format!("--numjobs={depth}")),
        "mmap" => c
            .args(["--ioengine=mmap", "--fadvise_hint=1"])
            .arg(format!("--numjobs={depth}")),
        _ => bail!("no fio equivalent of {backend}"),
    };
    let out = c.output().context("running fio (apt-get install fio)")?;
    if !out.status.success() {
        bail!("fio failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("parsing fio JSON")?;
    let read = &v["jobs"][0]["read"];
    let p = &read["clat_ns"]["percentile"];
    let us = |k: &str| p[k].as_f64().unwrap_or(0.0) / 1000.0;
    Ok((
        read["iops"].as_f64().unwrap_or(0.0),
        us("50.000000"),
        us("99.000000"),
    ))
}

/// Runs `quiver bench-storage`, printing one JSON line per run.
pub fn run(a: IoBenchArgs) -> Result<()> {
    let file = prepare(&a.file, a.size_gib << 30)?;
    let depths: Vec<usize> = parse_list(&a.depths)?;
    for backend in a.backends.split(',').map(str::trim) {
        for &depth in &depths {
            if depth == 0 {
                bail!("depth must be >= 1");
            }
            let mut ratios = Vec::new();
            for _ in 0..a.repeat.max(1) {
                let dropped = !a.no_drop_caches && drop_caches();
                let t = Instant::now();
                let (iops, mut lat) = match backend {
                    "uring" => run_uring(&file, depth, a.seconds)?,
                    "pread" => {
                        run_threads(open_reader(&file, Backend::Pread)?, &file, depth, a.seconds)?
                    }
                    "mmap" => {
                        run_threads(open_reader(&file, Backend::Mmap)?, &file, depth, a.seconds)?
                    }
                    other => bail!("unknown backend {other:?}"),
                };
                let row = IoRow {
                    tool: "quiver".into(),
                    backend: backend.into(),
                    depth,
                    iops,
                    p50_us: pct(&mut lat, 0.5),
                    p99_us: pct(&mut lat, 0.99),
                    seconds: t.elapsed().as_secs_f64(),
                    cache_dropped: dropped,
                };
                println!("{}", serde_json::to_string(&row)?);
                if a.fio {
                    let dropped = !a.no_drop_caches && drop_caches();
                    let t = Instant::now();
                    let (fio_iops, p50, p99) = run_fio(&a.file, backend, depth, a.seconds)?;
                    let row = IoRow {
                        tool: "fio".into(),
                        backend: backend.into(),
                        depth,
                        iops: fio_iops,
                        p50_us: p50,
                        p99_us: p99,
                        seconds: t.elapsed().as_secs_f64(),
                        cache_dropped: dropped,
                    };
                    println!("{}", serde_json::to_string(&row)?);
                    ratios.push(iops / fio_iops);
                }
            }
            if a.fio && a.repeat > 1 {
                let median = pct(&mut ratios, 0.5);
                let summary = serde_json::json!({
                    "tool": "summary", "backend": backend, "depth": depth,
                    "rounds": ratios.len(), "median_ratio_to_fio": median,
                    "min_ratio": ratios.iter().copied().fold(f64::INFINITY, f64::min),
                    "max_ratio": ratios.iter().copied().fold(0.0, f64::max),
                });
                println!("{summary}");
            }
        }
    }
    Ok(())
}
