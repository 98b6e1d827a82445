//! One log segment: the `.log` file of concatenated batches plus its two sparse indexes, the
//! streaming batch scanner used by recovery and lookups, and the fetch read path.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::batch::{BatchHeader, CRC_START, HEADER_SIZE, NO_TIMESTAMP};
use super::index::{IndexFile, OffsetEntry, TimeEntry};

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";
pub(crate) const SNAPSHOT_SUFFIX: &str = "snapshot";

/// `dir/<20-digit offset>.<suffix>`.
pub(crate) fn file_path(dir: &Path, offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{offset:020}.{suffix}"))
}

/// Parses `<20 digits>.<suffix>` file names.
pub(crate) fn parse_file_name(name: &str) -> Option<(i64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix))
}

pub(crate) fn invalid_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Index bookkeeping of a segment, fed batch by batch (on append and when rebuilding).
#[derive(Debug)]
pub(crate) struct SegmentIndexes {
    pub index: IndexFile<OffsetEntry>,
    pub time_index: IndexFile<TimeEntry>,
    /// Largest batch max timestamp in the segment, `NO_TIMESTAMP` if none.
    pub max_timestamp: i64,
    /// Base offset of the first batch that reached `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// Bytes appended since the last offset index entry (Kafka's `bytesSinceLastIndexEntry`).
    pub bytes_since_index: u64,
}

impl SegmentIndexes {
    /// Kafka's `LogSegment.append` rule: update the max timestamp, then, once more than
    /// `index.interval.bytes` were appended since the last entry, index this batch (and the max
    /// timestamp so far) before counting its bytes.
    pub(crate) fn track(
        &mut self,
        segment_base: i64,
        position: u64,
        batch_base_offset: i64,
        batch_size: u64,
        batch_max_timestamp: i64,
        interval: u64,
    ) -> io::Result<()> {
        if batch_max_timestamp > self.max_timestamp {
            self.max_timestamp = batch_max_timestamp;
            self.offset_of_max_timestamp = batch_base_offset;
        }
        if self.bytes_since_index > interval {
            self.index.push(OffsetEntry {
                rel_offset: relative(segment_base, batch_base_offset)?,
                position: u32::try_from(position).map_err(|_| invalid_data("segment position exceeds u32"))?,
            })?;
            self.maybe_append_time_entry(segment_base)?;
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += batch_size;
        Ok(())
    }

    /// Appends `(max_timestamp, offset_of_max_timestamp)` if it is newer than the last entry
    /// (also done when a segment is closed, so that the last entry is the segment's maximum).
    pub(crate) fn maybe_append_time_entry(&mut self, segment_base: i64) -> io::Result<()> {
        if self.max_timestamp <= NO_TIMESTAMP {
            return Ok(());
        }
        let last_ts = self.time_index.last()?.map_or(NO_TIMESTAMP, |e| e.timestamp);
        if self.max_timestamp > last_ts {
            self.time_index.push(TimeEntry {
                timestamp: self.max_timestamp,
                rel_offset: relative(segment_base, self.offset_of_max_timestamp)?,
            })?;
        }
        Ok(())
    }
}

pub(crate) fn relative(base: i64, offset: i64) -> io::Result<u32> {
    offset
        .checked_sub(base)
        .and_then(|d| u32::try_from(d).ok())
        .ok_or_else(|| invalid_data(format!("offset {offset} not relative to base {base}")))
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    /// Offset after the last batch of this segment.
    pub next_offset: i64,
    /// Bytes in the `.log` file (all of them valid batches).
    pub size: u64,
    pub log: File,
    pub idx: SegmentIndexes,
    /// Wall/timestamp base for segment.ms rolling (active segment only).
    pub rolling_base_ms: Option<i64>,
    /// Written since the last fsync.
    pub dirty: bool,
}

impl Segment {
    /// Creates a new empty active segment at `base` (files created or truncated).
    pub(crate) fn create(dir: &Path, base: i64) -> io::Result<Segment> {
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(file_path(dir, base, LOG_SUFFIX))?;
        Ok(Segment {
            base_offset: base,
            next_offset: base,
            size: 0,
            log,
            idx: SegmentIndexes {
                index: IndexFile::create_active(&file_path(dir, base, INDEX_SUFFIX))?,
                time_index: IndexFile::create_active(&file_path(dir, base, TIME_INDEX_SUFFIX))?,
                max_timestamp: NO_TIMESTAMP,
                offset_of_max_timestamp: base,
                bytes_since_index: 0,
            },
            rolling_base_ms: None,
            dirty: true,
        })
    }

    /// Writes `slices` at the end of the file with `writev` (the file cursor is kept at `size`).
    /// On failure the file is cut back to its previous size; the flag in the error tells whether
    /// that worked (if not, the segment's file state is unknown).
    pub(crate) fn write_vectored(&mut self, slices: &mut [IoSlice<'_>], total: u64) -> Result<(), (io::Error, bool)> {
        let mut bufs = slices;
        let mut result = Ok(());
        while !bufs.is_empty() {
            match (&self.log).write_vectored(bufs) {
                Ok(0) => {
                    result = Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
                    break;
                }
                Ok(n) => IoSlice::advance_slices(&mut bufs, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        match result {
            Ok(()) => {
                self.size += total;
                self.dirty = true;
                Ok(())
            }
            Err(e) => {
                let restored =
                    self.log.set_len(self.size).is_ok() && (&self.log).seek(SeekFrom::Start(self.size)).is_ok();
                Err((e, restored))
            }
        }
    }

    /// Moves the file cursor to the end of the valid data (after open or truncation).
    pub(crate) fn seek_to_end(&mut self) -> io::Result<()> {
        (&self.log).seek(SeekFrom::Start(self.size)).map(|_| ())
    }

    /// Closes the segment for writing: final time index entry, indexes written out and dropped
    /// from memory.
    pub(crate) fn close_for_append(&mut self) -> io::Result<()> {
        self.idx.maybe_append_time_entry(self.base_offset)?;
        self.idx.index.release_memory()?;
        self.idx.time_index.release_memory()?;
        self.rolling_base_ms = None;
        Ok(())
    }

    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.idx.index.persist()?;
        self.idx.time_index.persist()?;
        if self.dirty {
            self.log.sync_data()?;
            self.idx.index.sync()?;
            self.idx.time_index.sync()?;
            self.dirty = false;
        }
        Ok(())
    }

    pub(crate) fn delete_files(dir: &Path, base: i64) -> io::Result<()> {
        // The .log first: an index without a log is swept up at open, the reverse would be rebuilt.
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            match std::fs::remove_file(file_path(dir, base, suffix)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// File position of a batch at or before the batch holding `offset` (sparse index lookup).
    pub(crate) fn lookup_position(&self, offset: i64) -> io::Result<u64> {
        let rel = offset.saturating_sub(self.base_offset).clamp(0, u32::MAX as i64) as u32;
        Ok(self
            .idx
            .index
            .floor(rel, |e| e.rel_offset)?
            .map_or(0, |e| u64::from(e.position)))
    }

    /// Largest timestamp for retention: the max record timestamp, else the file's mtime.
    pub(crate) fn largest_timestamp(&self) -> io::Result<i64> {
        if self.idx.max_timestamp > NO_TIMESTAMP {
            return Ok(self.idx.max_timestamp);
        }
        let modified = self.log.metadata()?.modified()?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }

    /// Reads the whole batch that starts at `position`.
    pub(crate) fn read_batch_at(&self, position: u64, header: &BatchHeader) -> io::Result<Bytes> {
        let size = header.size();
        if position.saturating_add(size) > self.size {
            return Err(invalid_data("batch extends past the segment end"));
        }
        let mut buf = vec![0u8; size as usize];
        self.log.read_exact_at(&mut buf, position)?;
        Ok(Bytes::from(buf))
    }

    /// Whole batches from the one holding `fetch_offset`, at most `max_bytes` (or the first batch
    /// alone if it is larger and `min_one_batch`). `Ok(None)` when this segment does not hold the
    /// offset. Usually a single `read_at` of `[index position, + interval + max_bytes)`: batches at
    /// an index entry are at most `interval` bytes before the one that holds any later offset.
    pub(crate) fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        interval: u64,
    ) -> io::Result<Option<Bytes>> {
        if fetch_offset < self.base_offset || fetch_offset >= self.next_offset {
            return Ok(None);
        }
        let want = interval.saturating_add(max_bytes as u64).max(HEADER_SIZE as u64);
        let mut chunk_start = self.lookup_position(fetch_offset)?;
        // Find the batch holding fetch_offset.
        let (buf, at, first) = loop {
            if chunk_start >= self.size {
                return Ok(None);
            }
            let len = (self.size - chunk_start).min(want) as usize;
            let mut buf = vec![0u8; len];
            self.log.read_exact_at(&mut buf, chunk_start)?;
            let mut p = 0usize;
            let mut found = None;
            while let Some(h) = buf.get(p..).and_then(BatchHeader::parse) {
                h.check_stored().map_err(invalid_data)?;
                if h.last_offset() >= fetch_offset {
                    found = Some(h);
                    break;
                }
                p += h.size() as usize;
            }
            match found {
                Some(h) => break (buf, p, h),
                // Not in this chunk: continue at the first header we could not parse.
                None if p > 0 => chunk_start += p as u64,
                None => return Err(invalid_data("unreadable batch header")),
            }
        };
        let first_size = first.size() as usize;
        let batch_pos = chunk_start + at as u64;
        if first_size > max_bytes {
            if !min_one_batch {
                return Ok(Some(Bytes::new()));
            }
            if at + first_size <= buf.len() {
                return Ok(Some(Bytes::from(buf).slice(at..at + first_size)));
            }
            return self.read_batch_at(batch_pos, &first).map(Some);
        }
        // Make sure the buffer covers [batch_pos, min(batch_pos + max_bytes, size)).
        let limit = batch_pos.saturating_add(max_bytes as u64).min(self.size);
        let (buf, at) = if chunk_start + buf.len() as u64 >= limit {
            (buf, at)
        } else {
            let mut fresh = vec![0u8; (limit - batch_pos) as usize];
            self.log.read_exact_at(&mut fresh, batch_pos)?;
            (fresh, 0)
        };
        let mut end = at;
        while let Some(h) = buf.get(end..).and_then(BatchHeader::parse) {
            h.check_stored().map_err(invalid_data)?;
            let s = h.size() as usize;
            if end + s > buf.len() || end + s - at > max_bytes {
                break;
            }
            end += s;
        }
        Ok(Some(Bytes::from(buf).slice(at..end)))
    }
}

/// Result of one scanner step.
pub(crate) enum ScanStep {
    Batch {
        position: u64,
        header: BatchHeader,
    },
    End,
    /// The bytes at `position` are not a valid batch (torn write, corruption).
    Invalid {
        position: u64,
        reason: String,
    },
}

/// Streams batch headers of a segment file through a reusable window, optionally verifying each
/// batch's CRC without holding whole batches in memory. Batches larger than the window are skipped
/// over (header-only walks) or streamed through it (CRC).
pub(crate) struct BatchScanner<'a> {
    file: &'a File,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
    chunk: usize,
    pos: u64,
    expected_offset: Option<i64>,
}

impl<'a> BatchScanner<'a> {
    /// Scans `[start, end)` of `file`; `expected_offset` (if any) is the base offset the batch at
    /// `start` must have, later batches must follow contiguously.
    pub(crate) fn new(file: &'a File, start: u64, end: u64, chunk: usize, expected_offset: Option<i64>) -> Self {
        BatchScanner {
            file,
            end,
            buf: Vec::new(),
            buf_start: 0,
            chunk: chunk.max(HEADER_SIZE),
            pos: start,
            expected_offset,
        }
    }

    /// Position of the next batch (after the last one returned).
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// Offset the next batch must start at (after the last one returned), if known.
    pub(crate) fn expected_offset(&self) -> Option<i64> {
        self.expected_offset
    }

    /// Makes `[from, from + n)` available in the window; false if past the end of the range.
    fn ensure(&mut self, from: u64, n: usize) -> io::Result<bool> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        if from >= self.buf_start && from + n as u64 <= buf_end {
            return Ok(true);
        }
        if from + n as u64 > self.end {
            return Ok(false);
        }
        let len = (self.end - from).min(n.max(self.chunk) as u64) as usize;
        self.buf.resize(len, 0);
        self.file.read_exact_at(&mut self.buf, from)?;
        self.buf_start = from;
        Ok(true)
    }

    fn window(&self, from: u64, n: usize) -> &[u8] {
        let s = (from - self.buf_start) as usize;
        &self.buf[s..s + n]
    }

    pub(crate) fn next_batch(&mut self, verify_crc: bool) -> io::Result<ScanStep> {
        let position = self.pos;
        if position >= self.end {
            return Ok(ScanStep::End);
        }
        let invalid = |reason: String| Ok(ScanStep::Invalid { position, reason });
        if !self.ensure(position, HEADER_SIZE)? {
            return invalid(format!("{} trailing bytes", self.end - position));
        }
        let Some(header) = BatchHeader::parse(self.window(position, HEADER_SIZE)) else {
            return invalid("short header".into());
        };
        if let Err(reason) = header.check_stored() {
            return invalid(reason);
        }
        if let Some(expected) = self.expected_offset {
            if header.base_offset != expected {
                return invalid(format!(
                    "base offset {} where {expected} was expected",
                    header.base_offset
                ));
            }
        }
        let size = header.size();
        let batch_end = position + size;
        if batch_end > self.end {
            return invalid(format!("batch of {size} bytes is cut short"));
        }
        if verify_crc {
            let mut crc = 0u32;
            let mut p = position + CRC_START as u64;
            while p < batch_end {
                let n = (batch_end - p).min(self.chunk as u64) as usize;
                if !self.ensure(p, n)? {
                    return invalid("batch cut short".into());
                }
                crc = crc32c::crc32c_append(crc, self.window(p, n));
                p += n as u64;
            }
            if crc != header.crc {
                return invalid("CRC mismatch".into());
            }
        }
        self.pos = batch_end;
        self.expected_offset = Some(header.last_offset() + 1);
        Ok(ScanStep::Batch { position, header })
    }
}
