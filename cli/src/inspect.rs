//! `quiver inspect DIR [--verify]`: the manifest, each block file's header and sections, and with
//! `--verify` a read of every block through the checksum-verifying reader.

use anyhow::{bail, Result};
use clap::Args;
use quiver_index::manifest::Manifest;
use quiver_storage::io::{open_reader, Backend, ReadRequest};
use quiver_storage::BlockFile;
use std::path::PathBuf;

/// `quiver inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Index directory (or a single .qbf file).
    pub path: PathBuf,
    /// Read every block and check its checksum.
    #[arg(long)]
    pub verify: bool,
}

/// Checks every block of `file`; returns the number of blocks verified.
pub fn verify_file(file: &BlockFile) -> Result<u64> {
    let reader = open_reader(file, Backend::Pread)?;
    let total = file.readable_blocks();
    let mut b = 0;
    while b < total {
        let n = (total - b).min(256) as u32;
        reader.read_batch(&[ReadRequest::blocks(b, n)?], &mut |_, _| Ok(()))?;
        b += n as u64;
    }
    Ok(total)
}

fn show(file: &BlockFile, verify: bool) -> Result<()> {
    let h = file.header();
    println!(
        "{}: kind {:?}, format {}.{}, block {} B, {} data blocks, {} bytes",
        file.path().display(),
        h.kind,
        h.major,
        h.minor,
        h.block_size,
        file.footer().data_blocks,
        file.file_len()
    );
    for s in file.sections() {
        println!(
            "  section {:<24} blocks {:>10}+{:<10} {:>14} bytes",
            s.name, s.first_block, s.n_blocks, s.len
        );
    }
    if verify {
        let n = verify_file(file)?;
        println!("  verified {n} blocks: all checksums match");
    }
    Ok(())
}

/// Runs `quiver inspect`.
pub fn run(a: InspectArgs) -> Result<()> {
    if a.path.is_file() {
        return show(&BlockFile::open(&a.path)?, a.verify);
    }
    let m = Manifest::read(&a.path)?;
    println!("{}", serde_json::to_string_pretty(&m)?);
    let mut missing = Vec::new();
    for f in &m.files {
        let p = a.path.join(f);
        if !p.exists() {
            missing.push(f.clone());
            continue;
        }
        show(&BlockFile::open(&p)?, a.verify)?;
    }
    if !missing.is_empty() {
        bail!(
            "{}: manifest lists missing files: {}",
            a.path.display(),
            missing.join(", ")
        );
    }
    Ok(())
}
