//! Sparse per-segment indexes: the offset index (`.index`) and the time index (`.timeindex`).
//!
//! Both are append-only arrays of fixed-size big-endian entries, sorted by their key. The active
//! segment keeps its entries in memory and writes them out lazily (at flush, roll and close: the
//! active segment's index is always rebuilt after an unclean shutdown, so nothing is lost by not
//! writing it on every append). Closed segments keep only the file and binary-search it with
//! `read_at`, so memory does not grow with the size of the log.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A fixed-size index entry.
pub(crate) trait IndexEntry: Copy {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    /// `buf` is exactly `SIZE` bytes.
    fn decode(buf: &[u8]) -> Self;
}

/// `.index` entry: the batch starting at file `position` has base offset `base + rel_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel_offset: u32,
    pub position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rel_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(buf: &[u8]) -> Self {
        OffsetEntry {
            rel_offset: be_u32(&buf[0..4]),
            position: be_u32(&buf[4..8]),
        }
    }
}

/// `.timeindex` entry: the largest timestamp seen up to and including the batch whose base offset
/// is `base + rel_offset` (the first batch that reached that timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub rel_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.rel_offset.to_be_bytes());
    }
    fn decode(buf: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&buf[0..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            rel_offset: be_u32(&buf[8..12]),
        }
    }
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

/// One index file, either memory-resident (active segment) or file-resident (closed segment).
#[derive(Debug)]
pub(crate) struct IndexFile<E: IndexEntry> {
    file: File,
    /// `Some` while the segment is active.
    mem: Option<Vec<E>>,
    /// Number of entries.
    len: usize,
    /// Number of entries already written to the file.
    persisted: usize,
}

fn open_rw(path: &Path, truncate: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
}

impl<E: IndexEntry> IndexFile<E> {
    /// A new, empty, memory-resident index (the file is created or truncated).
    pub(crate) fn create_active(path: &Path) -> io::Result<Self> {
        Ok(IndexFile {
            file: open_rw(path, true)?,
            mem: Some(Vec::new()),
            len: 0,
            persisted: 0,
        })
    }

    /// Opens an existing index file of a closed segment. `None` when it is missing or its size is
    /// not a whole number of entries.
    pub(crate) fn open_closed(path: &Path) -> io::Result<Option<Self>> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bytes = file.metadata()?.len();
        if bytes % E::SIZE as u64 != 0 {
            return Ok(None);
        }
        let len = usize::try_from(bytes / E::SIZE as u64)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "index too large"))?;
        Ok(Some(IndexFile {
            file,
            mem: None,
            len,
            persisted: len,
        }))
    }

    /// Loads an existing index file into memory (active segment after a clean shutdown). `None`
    /// when it is missing or its size is not a whole number of entries.
    pub(crate) fn open_active(path: &Path) -> io::Result<Option<Self>> {
        let Some(mut idx) = Self::open_closed(path)? else {
            return Ok(None);
        };
        let mut raw = vec![0u8; idx.len * E::SIZE];
        idx.file.read_exact_at(&mut raw, 0)?;
        idx.mem = Some(raw.chunks_exact(E::SIZE).map(E::decode).collect());
        Ok(Some(idx))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entries, when memory-resident.
    pub(crate) fn entries(&self) -> Option<&[E]> {
        self.mem.as_deref()
    }

    pub(crate) fn get(&self, i: usize) -> io::Result<E> {
        if let Some(mem) = &self.mem {
            return mem
                .get(i)
                .copied()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "index out of bounds"));
        }
        let mut buf = [0u8; 16];
        let buf = &mut buf[..E::SIZE];
        self.file.read_exact_at(buf, (i * E::SIZE) as u64)?;
        Ok(E::decode(buf))
    }

    pub(crate) fn last(&self) -> io::Result<Option<E>> {
        if self.len == 0 {
            Ok(None)
        } else {
            self.get(self.len - 1).map(Some)
        }
    }

    /// The last entry whose key is `<= target`, for a key that is non-decreasing over the entries.
    pub(crate) fn floor<K: Ord>(&self, target: K, key: impl Fn(&E) -> K) -> io::Result<Option<E>> {
        if let Some(mem) = &self.mem {
            let n = mem.partition_point(|e| key(e) <= target);
            return Ok(n.checked_sub(1).map(|i| mem[i]));
        }
        let (mut lo, mut hi) = (0usize, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(&self.get(mid)?) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        match lo.checked_sub(1) {
            Some(i) => self.get(i).map(Some),
            None => Ok(None),
        }
    }

    /// Adds an entry. Memory-resident indexes write lazily; file-resident ones write through.
    pub(crate) fn push(&mut self, entry: E) -> io::Result<()> {
        match &mut self.mem {
            Some(mem) => {
                mem.push(entry);
                self.len += 1;
            }
            None => {
                let mut buf = Vec::with_capacity(E::SIZE);
                entry.encode(&mut buf);
                self.file.write_all_at(&buf, (self.len * E::SIZE) as u64)?;
                self.len += 1;
                self.persisted = self.len;
            }
        }
        Ok(())
    }

    /// Writes the entries not yet in the file (one `write` call).
    pub(crate) fn persist(&mut self) -> io::Result<()> {
        let Some(mem) = &self.mem else {
            return Ok(());
        };
        if self.persisted == mem.len() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity((mem.len() - self.persisted) * E::SIZE);
        for e in &mem[self.persisted..] {
            e.encode(&mut buf);
        }
        self.file.write_all_at(&buf, (self.persisted * E::SIZE) as u64)?;
        self.file.set_len((mem.len() * E::SIZE) as u64)?;
        self.persisted = mem.len();
        Ok(())
    }

    /// Persists and drops the in-memory copy (segment becomes closed).
    pub(crate) fn release_memory(&mut self) -> io::Result<()> {
        self.persist()?;
        self.mem = None;
        Ok(())
    }

    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_in_memory_and_on_file_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut idx = IndexFile::<OffsetEntry>::create_active(&path).unwrap();
        for i in 0..100u32 {
            idx.push(OffsetEntry {
                rel_offset: i * 10,
                position: i * 100,
            })
            .unwrap();
        }
        let probes = [0u32, 5, 10, 11, 499, 500, 990, 5000];
        let mem: Vec<_> = probes
            .iter()
            .map(|&p| idx.floor(p, |e| e.rel_offset).unwrap())
            .collect();
        idx.release_memory().unwrap();
        let reopened = IndexFile::<OffsetEntry>::open_closed(&path).unwrap().unwrap();
        assert_eq!(reopened.len(), 100);
        for (p, m) in probes.iter().zip(mem) {
            let f = reopened.floor(*p, |e| e.rel_offset).unwrap();
            assert_eq!(f, m, "probe {p}");
            assert_eq!(f.map(|e| e.rel_offset), Some((p / 10 * 10).min(990)));
        }
        let mut t = IndexFile::<TimeEntry>::create_active(&dir.path().join("x.timeindex")).unwrap();
        t.push(TimeEntry {
            timestamp: -5,
            rel_offset: 7,
        })
        .unwrap();
        t.release_memory().unwrap();
        assert_eq!(
            t.last().unwrap(),
            Some(TimeEntry {
                timestamp: -5,
                rel_offset: 7
            })
        );
    }

    #[test]
    fn ragged_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.index");
        std::fs::write(&path, [0u8; 13]).unwrap();
        assert!(IndexFile::<OffsetEntry>::open_closed(&path).unwrap().is_none());
        assert!(IndexFile::<OffsetEntry>::open_closed(&dir.path().join("missing"))
            .unwrap()
            .is_none());
    }
}
