//! Write-ahead log: numbered records, each checksummed, in a directory of log files.
//!
//! A record is `u32 len | u32 crc32c(lsn ++ payload) | u64 lsn | payload` (little-endian; byte
//! table in docs/FORMAT.md). Files are named `wal-<first lsn, 20 digits>.log`; a new file starts
//! at [`Wal::rotate`], and files whose records all precede a checkpoint are removed with
//! [`Wal::remove_before`].
//!
//! Durability: [`Wal::append`] writes the record to the file (one `write` call) and returns its
//! LSN; [`Wal::sync`] returns once that LSN is on disk. Concurrent callers share fsyncs (group
//! commit): whoever holds the sync lock fsyncs everything written so far, and the others find
//! their LSN already covered. A writer acknowledges only after `sync` returns.
//!
//! Recovery ([`Wal::open`]) reads every file in order. A record that is cut short or fails its
//! checksum at the end of the last file is a torn write from a crash: the file is truncated there
//! and the cut is logged. The same damage anywhere else is corruption and is reported with the
//! file and offset, since records after it were acknowledged.

use crate::error::{Result, StorageError};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes of a record header.
pub const HEADER_BYTES: usize = 16;
/// Largest record payload accepted (a corrupt length must not make recovery allocate wildly).
pub const MAX_RECORD_BYTES: usize = 1 << 30;

/// One record read back at recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Log sequence number (1, 2, ... in append order).
    pub lsn: u64,
    /// The bytes given to [`Wal::append`].
    pub payload: Vec<u8>,
}

struct Active {
    file: Arc<File>,
    path: PathBuf,
    next_lsn: u64,
}

/// An open write-ahead log.
pub struct Wal {
    dir: PathBuf,
    active: Mutex<Active>,
    /// Highest LSN written to a file (not necessarily synced).
    written: AtomicU64,
    /// Highest LSN known durable; the lock serialises fsyncs.
    synced: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn file_name(first_lsn: u64) -> String {
    format!("wal-{first_lsn:020}.log")
}

/// The log files in `dir`, sorted by first LSN.
fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let e = e.map_err(|e| StorageError::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix("wal-")
            .and_then(|s| s.strip_suffix(".log"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((n, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn crc(lsn: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&lsn.to_le_bytes()), payload)
}

/// Encodes one record.
pub fn encode(lsn: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_BYTES + payload.len());
    b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend_from_slice(&crc(lsn, payload).to_le_bytes());
    b.extend_from_slice(&lsn.to_le_bytes());
    b.extend_from_slice(payload);
    b
}

/// Parses the records of one file's bytes. Returns them and, if the bytes end in a damaged or
/// partial record, its offset and what is wrong.
fn parse(bytes: &[u8], mut expect: Option<u64>) -> (Vec<Record>, Option<(u64, String)>) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < HEADER_BYTES {
            return (
                out,
                Some((at as u64, format!("{} header bytes of 16", rest.len()))),
            );
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([rest[o], rest[o + 1], rest[o + 2], rest[o + 3]]);
        let len = u32_at(0) as usize;
        let sum = u32_at(4);
        let mut lsn_b = [0u8; 8];
        lsn_b.copy_from_slice(&rest[8..16]);
        let lsn = u64::from_le_bytes(lsn_b);
        if len > MAX_RECORD_BYTES {
            return (
                out,
                Some((at as u64, format!("record length {len} too large"))),
            );
        }
        if rest.len() < HEADER_BYTES + len {
            return (
                out,
                Some((
                    at as u64,
                    format!(
                        "record of {len} bytes, {} present",
                        rest.len() - HEADER_BYTES
                    ),
                )),
            );
        }
        let payload = &rest[HEADER_BYTES..HEADER_BYTES + len];
        if crc(lsn, payload) != sum {
            return (out, Some((at as u64, "record checksum mismatch".into())));
        }
        if let Some(e) = expect {
            if lsn != e {
                return (out, Some((at as u64, format!("lsn {lsn}, expected {e}"))));
            }
        }
        expect = Some(lsn + 1);
        out.push(Record {
            lsn,
            payload: payload.to_vec(),
        });
        at += HEADER_BYTES + len;
    }
    (out, None)
}

impl Wal {
    /// Opens (creating) the log in `dir` and returns it with every record it holds, in LSN
    /// order. A torn tail of the last file is truncated (and logged); damage elsewhere is an
    /// error naming the file and offset.
    pub fn open(dir: &Path) -> Result<(Wal, Vec<Record>)> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let files = list(dir)?;
        let mut records: Vec<Record> = Vec::new();
        for (i, (first, path)) in files.iter().enumerate() {
            let mut bytes = Vec::new();
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| StorageError::io(path, e))?;
            let expect = records.last().map(|r| r.lsn + 1).or(Some(*first));
            let (recs, damage) = parse(&bytes, expect);
            records.extend(recs);
            if let Some((off, what)) = damage {
                if i + 1 < files.len() {
                    return Err(StorageError::corrupt(path, off, what));
                }
                log::warn!(
                    "{}: torn tail at byte {off} ({what}); truncating {} bytes",
                    path.display(),
                    bytes.len() as u64 - off
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| StorageError::io(path, e))?;
                f.set_len(off).map_err(|e| StorageError::io(path, e))?;
                f.sync_all().map_err(|e| StorageError::io(path, e))?;
            }
        }
        let next_lsn = records
            .last()
            .map(|r| r.lsn + 1)
            .or(files.last().map(|f| f.0))
            .unwrap_or(1);
        let path = match files.last() {
            Some((_, p)) => p.clone(),
            None => dir.join(file_name(next_lsn)),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        crate::atomic::sync_dir(dir)?;
        let last = next_lsn - 1;
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                active: Mutex::new(Active {
                    file: Arc::new(file),
                    path,
                    next_lsn,
                }),
                written: AtomicU64::new(last),
                synced: Mutex::new(last),
            },
            records,
        ))
    }

    /// Appends a record (not yet durable: call [`sync`](Self::sync) before acknowledging).
    pub fn append(&self, payload: &[u8]) -> Result<u64> {
        if payload.len() > MAX_RECORD_BYTES {
            return Err(StorageError::InvalidArgument(format!(
                "WAL record of {} bytes exceeds {MAX_RECORD_BYTES}",
                payload.len()
            )));
        }
        let mut a = lock(&self.active);
        let lsn = a.next_lsn;
        let rec = encode(lsn, payload);
        (&*a.file)
            .write_all(&rec)
            .map_err(|e| StorageError::io(&a.path, e))?;
        a.next_lsn += 1;
        self.written.store(lsn, Ordering::Release);
        Ok(lsn)
    }

    /// Returns once record `lsn` (and every earlier one) is on disk.
    pub fn sync(&self, lsn: u64) -> Result<()> {
        let mut synced = lock(&self.synced);
        if *synced >= lsn {
            return Ok(());
        }
        let (file, path) = {
            let a = lock(&self.active);
            (a.file.clone(), a.path.clone())
        };
        // Everything appended before this point is in `file` or in an older file that
        // `rotate` synced before switching.
        let upto = self.written.load(Ordering::Acquire);
        file.sync_data().map_err(|e| StorageError::io(&path, e))?;
        *synced = upto;
        Ok(())
    }

    /// Starts a new log file; returns the first LSN it will hold. Records before it are in
    /// older files, which [`remove_before`](Self::remove_before) can drop once they are
    /// checkpointed.
    pub fn rotate(&self) -> Result<u64> {
        let mut synced = lock(&self.synced);
        let mut a = lock(&self.active);
        a.file
            .sync_data()
            .map_err(|e| StorageError::io(&a.path, e))?;
        *synced = a.next_lsn - 1;
        let path = self.dir.join(file_name(a.next_lsn));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        crate::atomic::sync_dir(&self.dir)?;
        a.file = Arc::new(file);
        a.path = path;
        Ok(a.next_lsn)
    }

    /// Deletes the files that hold only records below `lsn`.
    pub fn remove_before(&self, lsn: u64) -> Result<()> {
        let files = list(&self.dir)?;
        for w in files.windows(2) {
            // A file's records end where the next file's begin.
            if w[1].0 <= lsn {
                std::fs::remove_file(&w[0].1).map_err(|e| StorageError::io(&w[0].1, e))?;
            }
        }
        crate::atomic::sync_dir(&self.dir)
    }

    /// The LSN the next append will get.
    pub fn next_lsn(&self) -> u64 {
        lock(&self.active).next_lsn
    }

    /// Bytes of all log files.
    pub fn bytes(&self) -> u64 {
        list(&self.dir)
            .map(|fs| {
                fs.iter()
                    .filter_map(|(_, p)| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(rs: &[Record]) -> Vec<Vec<u8>> {
        rs.iter().map(|r| r.payload.clone()).collect()
    }

    #[test]
    fn records_survive_reopen_and_rotation() -> Result<()> {
        let d = tempfile::tempdir().map_err(|e| StorageError::io("tmp", e))?;
        let (w, rs) = Wal::open(d.path())?;
        assert!(rs.is_empty());
        let a = w.append(b"one")?;
        let b = w.append(b"two")?;
        w.sync(b)?;
        let first_new = w.rotate()?;
        assert_eq!(first_new, 3);
        let c = w.append(b"three")?;
        w.sync(c)?;
        assert_eq!((a, b, c), (1, 2, 3));
        drop(w);
        let (w, rs) = Wal::open(d.path())?;
        assert_eq!(
            payloads(&rs),
            vec![b"one".to_vec(), b"two".into(), b"three".into()]
        );
        assert_eq!(w.next_lsn(), 4);
        w.remove_before(3)?;
        drop(w);
        let (_, rs) = Wal::open(d.path())?;
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].lsn, 3);
        Ok(())
    }

    #[test]
    fn a_cut_anywhere_in_the_tail_keeps_every_whole_record() -> Result<()> {
        let d = tempfile::tempdir().map_err(|e| StorageError::io("tmp", e))?;
        let (w, _) = Wal::open(d.path())?;
        let mut ends = Vec::new();
        let mut total = 0u64;
        for i in 0..5u8 {
            let lsn = w.append(&vec![i; 10 + i as usize * 7])?;
            w.sync(lsn)?;
            total += (HEADER_BYTES + 10 + i as usize * 7) as u64;
            ends.push(total);
        }
        drop(w);
        let path = d.path().join(file_name(1));
        let full = std::fs::read(&path).map_err(|e| StorageError::io(&path, e))?;
        for cut in 0..=full.len() as u64 {
            std::fs::write(&path, &full[..cut as usize]).map_err(|e| StorageError::io(&path, e))?;
            let (w, rs) = Wal::open(d.path())?;
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(rs.len(), whole, "cut at {cut}");
            // Appending after recovery continues the sequence and reads back.
            let lsn = w.append(b"after")?;
            w.sync(lsn)?;
            assert_eq!(lsn, whole as u64 + 1);
            drop(w);
            let (_, rs) = Wal::open(d.path())?;
            assert_eq!(rs.len(), whole + 1, "cut at {cut}, after append");
            assert_eq!(rs[whole].payload, b"after");
        }
        Ok(())
    }

    #[test]
    fn damage_before_the_last_file_is_reported_with_file_and_offset() -> Result<()> {
        let d = tempfile::tempdir().map_err(|e| StorageError::io("tmp", e))?;
        let (w, _) = Wal::open(d.path())?;
        w.sync(w.append(b"aaaa")?)?;
        w.sync(w.append(b"bbbb")?)?;
        w.rotate()?;
        w.sync(w.append(b"cccc")?)?;
        drop(w);
        let path = d.path().join(file_name(1));
        let mut bytes = std::fs::read(&path).map_err(|e| StorageError::io(&path, e))?;
        bytes[HEADER_BYTES + 4 + HEADER_BYTES] ^= 1; // first payload byte of record 2
        std::fs::write(&path, &bytes).map_err(|e| StorageError::io(&path, e))?;
        let e = Wal::open(d.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("wal-00000000000000000001.log"), "{e}");
        assert!(e.contains("offset 20") && e.contains("checksum"), "{e}");
        Ok(())
    }

    #[test]
    fn concurrent_appends_share_fsyncs_and_all_land() -> Result<()> {
        let d = tempfile::tempdir().map_err(|e| StorageError::io("tmp", e))?;
        let (w, _) = Wal::open(d.path())?;
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let w = &w;
                s.spawn(move || {
                    for i in 0..50u8 {
                        let lsn = w.append(&[t, i]).expect("append");
                        w.sync(lsn).expect("sync");
                    }
                });
            }
        });
        drop(w);
        let (_, rs) = Wal::open(d.path())?;
        assert_eq!(rs.len(), 200);
        assert!(rs.windows(2).all(|p| p[1].lsn == p[0].lsn + 1));
        let mut seen: Vec<Vec<u8>> = payloads(&rs);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 200);
        Ok(())
    }
}
