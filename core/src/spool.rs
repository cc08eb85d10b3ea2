//! The on-disk spool: sealed batches that could not be delivered in time wait here and are sent
//! later, also after a restart. They are already encrypted, so the spool holds nothing in the clear.
//!
//! One file per batch, named `<unix-ns>-<sequence>-<n>-<span-count>.trxb` so that names sort oldest
//! first and carry the span count for accounting. The time is when the batch was sealed and the
//! sequence its place in its instance's sequence (batches sealed together share a time), not when
//! it was spooled: several batches are in flight at once and fail in any order, and the spool still
//! replays (and evicts) them in the order they were sealed. `n` counts this process's writes, so
//! names never collide. (Files named `<unix-ns>-<n>-<span-count>.trxb` by earlier versions are
//! read the same way.) Files are written to a temporary name, synced and renamed,
//! so a crash never leaves a half-written batch under a final name.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::seal::SealedBatch;

const EXT: &str = "trxb";

/// A directory of undelivered sealed batches with a size limit.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    used: u64,
    seq: u64,
}

/// One spooled batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) path: PathBuf,
    pub(crate) span_count: u32,
    len: u64,
}

impl Spool {
    /// Opens (creating if needed) a spool directory and measures what it already holds.
    pub(crate) fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)
            .map_err(|e| Error::Spool(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))))?;
        let mut spool = Self { dir, max_bytes, used: 0, seq: 0 };
        spool.used = spool.entries().map_err(Error::Spool)?.iter().map(|e| e.len).sum();
        Ok(spool)
    }

    fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for item in fs::read_dir(&self.dir)? {
            let item = item?;
            let path = item.path();
            if path.extension().and_then(|e| e.to_str()) != Some(EXT) {
                continue;
            }
            let span_count = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.rsplit('-').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            out.push(Entry { len: item.metadata()?.len(), path, span_count });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Stores a batch, evicting the oldest batches (by when they were sealed) when the limit would
    /// be exceeded (the newest telemetry is the most useful during an outage that outlasts the
    /// spool); returns the span counts of the evicted batches for the caller to count — this
    /// batch's own when it is older than every batch it would have to evict. Fails (and stores
    /// nothing) when the batch alone is over the limit or the disk refuses the write, e.g. when it
    /// is full.
    pub(crate) fn write(&mut self, batch: &SealedBatch) -> io::Result<Vec<u32>> {
        let len = batch.bytes.len() as u64;
        if len > self.max_bytes {
            return Err(io::Error::other(format!(
                "a batch of {len} bytes is over the spool limit of {} bytes",
                self.max_bytes
            )));
        }
        self.seq += 1;
        let name = format!(
            "{:020}-{:020}-{:08}-{}.{EXT}",
            batch.created_at_unix_nano, batch.sequence, self.seq, batch.span_count
        );
        let mut evicted = Vec::new();
        if self.used + len > self.max_bytes {
            for entry in self.entries()? {
                if self.used + len <= self.max_bytes {
                    break;
                }
                // The spool keeps the newest batches that fit. A batch sealed before those left is
                // the oldest itself (it was retried longest), so it is the one that goes.
                if entry.path.file_name().is_some_and(|n| n.to_string_lossy().as_ref() > name.as_str()) {
                    evicted.push(batch.span_count);
                    return Ok(evicted);
                }
                self.remove(&entry)?;
                evicted.push(entry.span_count);
            }
        }
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let result = write_synced(&tmp, &batch.bytes).and_then(|()| fs::rename(&tmp, self.dir.join(&name)));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        } else {
            self.used += len;
        }
        result.map(|()| evicted)
    }

    /// The oldest batch, if any.
    pub(crate) fn oldest(&self) -> io::Result<Option<Entry>> {
        Ok(self.entries()?.into_iter().next())
    }

    pub(crate) fn read(entry: &Entry) -> io::Result<Vec<u8>> {
        fs::read(&entry.path)
    }

    pub(crate) fn remove(&mut self, entry: &Entry) -> io::Result<()> {
        fs::remove_file(&entry.path)?;
        self.used = self.used.saturating_sub(entry.len);
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.used == 0
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: u32, len: usize, sealed_at: u64) -> SealedBatch {
        SealedBatch {
            bytes: vec![7; len],
            batch_id: [0; 16],
            sequence: u64::from(n),
            created_at_unix_nano: sealed_at,
            span_count: n,
        }
    }

    #[test]
    fn writes_in_order_and_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("tracex-spool-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut s = Spool::open(&dir, 1000).unwrap();
        s.write(&batch(3, 100, 1)).unwrap();
        s.write(&batch(5, 100, 2)).unwrap();
        let reopened = Spool::open(&dir, 1000).unwrap();
        assert_eq!(reopened.used, 200);
        let first = reopened.oldest().unwrap().unwrap();
        assert_eq!(first.span_count, 3);
        assert_eq!(Spool::read(&first).unwrap(), vec![7; 100]);
        s.remove(&first).unwrap();
        assert_eq!(s.oldest().unwrap().unwrap().span_count, 5);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_spool_evicts_the_oldest_and_says_how_many_spans() {
        let dir = std::env::temp_dir().join(format!("tracex-spool-full-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut s = Spool::open(&dir, 250).unwrap();
        assert_eq!(s.write(&batch(1, 100, 1)).unwrap(), Vec::<u32>::new());
        assert_eq!(s.write(&batch(2, 100, 2)).unwrap(), Vec::<u32>::new());
        assert_eq!(s.write(&batch(3, 120, 3)).unwrap(), vec![1]);
        let left: Vec<u32> = s.entries().unwrap().iter().map(|e| e.span_count).collect();
        assert_eq!(left, [2, 3]);
        assert_eq!(s.write(&batch(4, 250, 4)).unwrap(), vec![2, 3]);
        assert_eq!(s.used, 250);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_batch_sealed_before_everything_a_full_spool_holds_is_the_one_evicted() {
        let dir = std::env::temp_dir().join(format!("tracex-spool-late-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut s = Spool::open(&dir, 250).unwrap();
        s.write(&batch(2, 100, 20)).unwrap();
        s.write(&batch(3, 100, 30)).unwrap();
        // Sealed at 10, spooled last (retried longest while later batches failed faster).
        assert_eq!(s.write(&batch(1, 100, 10)).unwrap(), vec![1]);
        let left: Vec<u32> = s.entries().unwrap().iter().map(|e| e.span_count).collect();
        assert_eq!((left, s.used), (vec![2, 3], 200));
        // Sealed between the two: the older stored one goes, and it replays in sealing order.
        assert_eq!(s.write(&batch(4, 100, 25)).unwrap(), vec![2]);
        let left: Vec<u32> = s.entries().unwrap().iter().map(|e| e.span_count).collect();
        assert_eq!(left, [4, 3]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_batch_over_the_limit_is_refused_and_nothing_is_evicted() {
        let dir = std::env::temp_dir().join(format!("tracex-spool-over-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut s = Spool::open(&dir, 150).unwrap();
        s.write(&batch(1, 100, 1)).unwrap();
        let err = s.write(&batch(1, 151, 2)).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        assert_eq!(s.entries().unwrap().len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unusable_directory_is_a_clear_error() {
        let file = std::env::temp_dir().join(format!("tracex-spool-file-{}", std::process::id()));
        fs::write(&file, b"x").unwrap();
        let err = Spool::open(file.join("sub"), 10).unwrap_err();
        assert_eq!(err.code(), "TRACEX_SPOOL");
        fs::remove_file(&file).unwrap();
    }
}
