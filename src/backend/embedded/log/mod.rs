//! Partition logs: segments, indexes, recovery, retention, producer state.
//!
//! # On-disk format (one directory per partition)
//!
//! * `<20-digit base offset>.log`: concatenated magic-v2 record batches exactly as produced, with
//!   `baseOffset` set to the assigned offset and `partitionLeaderEpoch` set to 0. The base offset
//!   of a segment is the offset of its first batch; segments are contiguous (the next segment
//!   starts at this segment's last offset + 1) and the newest one is the *active* segment.
//! * `<base>.index`: sparse offset index, entries of `relative offset u32 BE, file position u32 BE`
//!   (relative to the segment's base offset; the offset is the base offset of the batch at that
//!   position). An entry is added for a batch when more than `index.interval.bytes` were appended
//!   since the previous entry (Kafka's rule), so the first batch has none (position 0 is implied).
//! * `<base>.timeindex`: entries of `timestamp i64 BE, relative offset u32 BE`: at each offset
//!   index point, the largest batch max timestamp seen so far in the segment and the base offset of
//!   the first batch that reached it, if larger than the previous entry; a final entry is added when
//!   the segment is closed, so the last entry of a closed segment is its maximum timestamp.
//! * `<offset>.snapshot`: idempotent-producer state as of `offset` (written when a segment is
//!   rolled, for the new segment's base offset, and at clean close, for the log end offset):
//!   `"KGPS", version u16 = 1, u16 0, offset i64, count u32`, then per producer
//!   `producer id i64, epoch i16, last timestamp i64, n u8, n x (first seq i32, last seq i32,
//!   first offset i64, last offset i64)`, then a CRC-32C (u32) of everything before. Written to a
//!   `.tmp` file and renamed.
//! * `clean-shutdown`: written by [`PartitionLog::close`] (and on drop) after everything was
//!   flushed: `"KGCS", version u16 = 1, u16 0, log end offset i64, active base offset i64, active
//!   size u64, CRC-32C u32`. It is removed when the log is opened.
//!
//! # Recovery ([`PartitionLog::open`])
//!
//! * Closed segments are trusted when their index files have a sane size and their last entries
//!   point inside the segment; the batches after the last offset index entry are then re-read
//!   (headers + CRC) and must end exactly at the file end with the next segment's base offset.
//!   Missing or insane index files are rebuilt by scanning the segment. A closed segment whose
//!   batches are invalid or do not reach the next segment is cut at its last valid batch and all
//!   later segments are deleted (Kafka's unflushed-segment recovery: the log stays contiguous).
//! * The active segment is fully re-scanned (headers, contiguous offsets and CRC of every batch)
//!   and cut back to the last valid batch, its indexes rebuilt, unless a valid `clean-shutdown`
//!   marker matches it: then its index files are loaded and only its tail is verified.
//! * Producer state: the newest valid snapshot within `[log start, log end]` is loaded and the
//!   batch headers after it are replayed (normally none after a clean close, the active segment
//!   after a crash). Snapshots outside that range, and stray files, are deleted.
//!
//! Appends reach the OS (`writev`) before [`PartitionLog::append`] returns, so a killed process
//! loses nothing that was acknowledged; only [`PartitionLog::flush`] makes data durable against
//! power loss.

mod batch;
mod index;
mod producer;
mod recovery;
mod retention;
mod segment;
#[cfg(test)]
mod tests;

use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::records::{RecordBatchDecoder, TimestampType};

use batch::{ValidatedBatch, NO_TIMESTAMP, PATCHED_PREFIX};
use producer::{Check, PendingBatch, ProducerStates};
use segment::{invalid_data, BatchScanner, ScanStep, Segment};

/// Kafka's default `producer.id.expiration.ms` (1 day): idempotent-producer state is dropped by
/// [`PartitionLog::enforce_retention`] this long after the producer's last batch timestamp.
pub const PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;

/// Window of the streaming scanner used by recovery (bigger reads, fewer syscalls).
const RECOVERY_SCAN_CHUNK: usize = 256 * 1024;
/// Window of the scanner used by lookups that start at an index entry.
const LOOKUP_SCAN_CHUNK: usize = 16 * 1024;

/// Per-partition log settings (Kafka topic config names in the field docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll before an append that would make the active segment exceed it.
    pub segment_bytes: u64,
    /// `segment.ms`: roll before an append when the active segment is older than this.
    pub segment_ms: i64,
    /// `retention.ms`; -1 = unlimited.
    pub retention_ms: i64,
    /// `retention.bytes` per partition; -1 = unlimited.
    pub retention_bytes: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: largest accepted batch (including its 12-byte log overhead).
    pub max_message_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
        }
    }
}

/// Offsets assigned to (or, for a duplicate, previously assigned to) an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
    /// The batch was a retry of one of the producer's last five batches: nothing was written.
    pub duplicate: bool,
}

/// Why an append was refused. Nothing is written when an error is returned (the one exception:
/// an `Io` error from updating the index after the data write, which also takes the log offline
/// until it is reopened and recovered).
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge { size: usize, max: usize },
    #[error("record batch magic {0} is not supported (only magic 2)")]
    UnsupportedMagic(i8),
    #[error("transactional record batches are not supported")]
    TransactionalNotSupported,
    #[error("out of order sequence number for producer {producer_id} (epoch {epoch}): got {first_seq}, last appended {last_seq}")]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    },
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current_epoch}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    #[error("log storage error: {0}")]
    Io(#[from] io::Error),
}

impl AppendError {
    /// The Kafka error code for a ProduceResponse partition.
    pub fn error_code(&self) -> i16 {
        match self {
            AppendError::Corrupt(_) => 2,                   // CORRUPT_MESSAGE
            AppendError::InvalidRecord(_) => 87,            // INVALID_RECORD
            AppendError::RecordTooLarge { .. } => 10,       // MESSAGE_TOO_LARGE
            AppendError::UnsupportedMagic(_) => 43,         // UNSUPPORTED_FOR_MESSAGE_FORMAT
            AppendError::TransactionalNotSupported => 48,   // INVALID_TXN_STATE
            AppendError::OutOfOrderSequence { .. } => 45,   // OUT_OF_ORDER_SEQUENCE_NUMBER
            AppendError::InvalidProducerEpoch { .. } => 47, // INVALID_PRODUCER_EPOCH
            AppendError::Io(_) => 56,                       // KAFKA_STORAGE_ERROR
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("log storage error: {0}")]
    Io(#[from] io::Error),
}

impl ReadError {
    /// The Kafka error code for a FetchResponse partition.
    pub fn error_code(&self) -> i16 {
        match self {
            ReadError::OffsetOutOfRange { .. } => 1, // OFFSET_OUT_OF_RANGE
            ReadError::Io(_) => 56,                  // KAFKA_STORAGE_ERROR
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log storage error: {0}")]
    Io(#[from] io::Error),
    #[error("corrupt log: {0}")]
    Corrupt(String),
}

impl LogError {
    /// KAFKA_STORAGE_ERROR.
    pub fn error_code(&self) -> i16 {
        56
    }
}

/// The log of one partition. Not internally synchronized: callers serialize access (a `Mutex`).
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Sorted by base offset; never empty; the last one is the active segment.
    segments: Vec<Segment>,
    log_start_offset: i64,
    next_offset: i64,
    total_size: u64,
    producers: ProducerStates,
    /// Snapshot files written since the last flush.
    unsynced_snapshots: Vec<PathBuf>,
    /// Segment files created or removed since the last flush.
    dir_dirty: bool,
    /// Set when a failed write could not be rolled back: appends are refused from then on.
    failed: Option<String>,
    /// Closed (or deleted): nothing to do on drop.
    closed: bool,
    // Per-append scratch space, reused to avoid allocations on the hot path.
    scratch_batches: Vec<ValidatedBatch>,
    scratch_pending: Vec<PendingBatch>,
    scratch_prefixes: Vec<[u8; PATCHED_PREFIX]>,
}

impl PartitionLog {
    /// Opens (creating if missing) the log in `dir`, recovering it as described in the module docs.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<PartitionLog, LogError> {
        recovery::open(dir, config, now_ms)
    }

    /// Appends a producer's record batches (see the module docs); validates all of them first.
    pub fn append(&mut self, records: &[u8], now_ms: i64) -> Result<AppendOutcome, AppendError> {
        if let Some(why) = &self.failed {
            return Err(AppendError::Io(io::Error::other(format!(
                "log is offline after a failed write: {why}"
            ))));
        }
        let mut batches = std::mem::take(&mut self.scratch_batches);
        let mut pending = std::mem::take(&mut self.scratch_pending);
        let mut prefixes = std::mem::take(&mut self.scratch_prefixes);
        let result = self.append_inner(records, now_ms, &mut batches, &mut pending, &mut prefixes);
        self.scratch_batches = batches;
        self.scratch_pending = pending;
        self.scratch_prefixes = prefixes;
        result
    }

    fn append_inner(
        &mut self,
        records: &[u8],
        now_ms: i64,
        batches: &mut Vec<ValidatedBatch>,
        pending: &mut Vec<PendingBatch>,
        prefixes: &mut Vec<[u8; PATCHED_PREFIX]>,
    ) -> Result<AppendOutcome, AppendError> {
        batch::validate_producer_batches(records, self.config.max_message_bytes, batches)?;

        // Offsets and idempotence checks, against committed state plus earlier batches.
        pending.clear();
        let base_offset = self.next_offset;
        let mut next = base_offset;
        for b in batches.iter() {
            let first = next;
            let last = first + i64::from(b.header.last_offset_delta);
            if b.header.has_producer_id() {
                match self.producers.check(&b.header, first, last, pending)? {
                    Check::Duplicate(meta) => {
                        return Ok(AppendOutcome {
                            base_offset: meta.first_offset,
                            last_offset: meta.last_offset,
                            log_start_offset: self.log_start_offset,
                            duplicate: true,
                        })
                    }
                    Check::Append(p) => pending.push(p),
                }
            }
            next = last + 1;
        }
        let last_offset = next - 1;
        let total: u64 = batches.iter().map(|b| b.header.size()).sum();

        self.maybe_roll(total, last_offset, now_ms)?;

        // Patched prefixes (baseOffset, batchLength, partitionLeaderEpoch = 0) + original bodies.
        prefixes.clear();
        let mut offset = base_offset;
        for b in batches.iter() {
            let mut p = [0u8; PATCHED_PREFIX];
            p[..8].copy_from_slice(&offset.to_be_bytes());
            p[8..12].copy_from_slice(&records[b.start + 8..b.start + 12]);
            // bytes 12..16: partitionLeaderEpoch 0
            prefixes.push(p);
            offset += i64::from(b.header.last_offset_delta) + 1;
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(batches.len() * 2);
        for (b, p) in batches.iter().zip(prefixes.iter()) {
            slices.push(IoSlice::new(p));
            slices.push(IoSlice::new(&records[b.start + PATCHED_PREFIX..b.end()]));
        }
        let interval = u64::from(self.config.index_interval_bytes);
        let active = self.segments.last_mut().ok_or_else(no_segment)?;
        let start_position = active.size;
        if let Err((e, restored)) = active.write_vectored(&mut slices, total) {
            if !restored {
                self.failed = Some(e.to_string());
            }
            return Err(AppendError::Io(e));
        }
        drop(slices);

        // Indexes and in-memory state.
        let mut position = start_position;
        let mut offset = base_offset;
        for b in batches.iter() {
            let size = b.header.size();
            if let Err(e) = active.idx.track(
                active.base_offset,
                position,
                offset,
                size,
                b.header.max_timestamp,
                interval,
            ) {
                // The data is written; only the index is off. Rebuilt at next open.
                self.failed = Some(e.to_string());
                return Err(AppendError::Io(e));
            }
            position += size;
            offset += i64::from(b.header.last_offset_delta) + 1;
        }
        active.next_offset = next;
        if active.rolling_base_ms.is_none() {
            active.rolling_base_ms = Some(now_ms);
        }
        self.next_offset = next;
        self.total_size += total;
        for p in pending.iter() {
            self.producers.apply(p);
        }
        Ok(AppendOutcome {
            base_offset,
            last_offset,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Kafka's `shouldRoll`: a non-empty active segment is rolled when the append would overflow
    /// `segment.bytes` (or the u32 positions of the index), when it is older than `segment.ms`,
    /// or when the offsets would not fit a relative offset.
    fn maybe_roll(&mut self, append_bytes: u64, last_offset: i64, now_ms: i64) -> io::Result<()> {
        let active = self.segments.last().ok_or_else(no_segment)?;
        if active.size == 0 {
            return Ok(());
        }
        let max_size = self.config.segment_bytes.min(u64::from(u32::MAX));
        let too_big = active.size.saturating_add(append_bytes) > max_size;
        let too_old = active
            .rolling_base_ms
            .is_some_and(|base| now_ms.saturating_sub(base) > self.config.segment_ms);
        let offsets_overflow = last_offset - active.base_offset > i64::from(i32::MAX);
        if too_big || too_old || offsets_overflow {
            self.roll()?;
        }
        Ok(())
    }

    /// Closes the active segment and starts a new one at the log end offset, writing a producer
    /// state snapshot for that offset.
    fn roll(&mut self) -> io::Result<()> {
        let new_base = self.next_offset;
        let active = self.segments.last_mut().ok_or_else(no_segment)?;
        if active.base_offset == new_base {
            return Ok(()); // empty active segment: nothing to roll
        }
        active.close_for_append()?;
        self.write_snapshot(new_base)?;
        let mut seg = Segment::create(&self.dir, new_base)?;
        seg.seek_to_end()?;
        self.segments.push(seg);
        self.dir_dirty = true;
        Ok(())
    }

    fn write_snapshot(&mut self, offset: i64) -> io::Result<()> {
        let path = segment::file_path(&self.dir, offset, segment::SNAPSHOT_SUFFIX);
        let tmp = path.with_extension("snapshot.tmp");
        std::fs::write(&tmp, self.producers.encode_snapshot(offset))?;
        std::fs::rename(&tmp, &path)?;
        self.unsynced_snapshots.push(path);
        self.dir_dirty = true;
        Ok(())
    }

    /// Whole batches from the one holding `fetch_offset`, up to `max_bytes` (the first batch alone
    /// if larger and `min_one_batch`), from a single segment.
    pub fn read(&self, fetch_offset: i64, max_bytes: usize, min_one_batch: bool) -> Result<Bytes, ReadError> {
        if fetch_offset < self.log_start_offset || fetch_offset > self.next_offset {
            return Err(ReadError::OffsetOutOfRange {
                offset: fetch_offset,
                start: self.log_start_offset,
                end: self.next_offset,
            });
        }
        if fetch_offset == self.next_offset {
            return Ok(Bytes::new());
        }
        let interval = u64::from(self.config.index_interval_bytes);
        let first = self.segment_index_for(fetch_offset);
        for seg in &self.segments[first..] {
            if let Some(bytes) = seg.read(fetch_offset.max(seg.base_offset), max_bytes, min_one_batch, interval)? {
                return Ok(bytes);
            }
        }
        Ok(Bytes::new())
    }

    /// Index of the segment that holds `offset` (the last one whose base is `<= offset`).
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Next offset to assign (the high watermark on a single node).
    pub fn log_end_offset(&self) -> i64 {
        self.next_offset
    }

    /// ListOffsets by timestamp: `(offset, timestamp)` of the first record whose timestamp is
    /// `>= timestamp`, or `None`.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, LogError> {
        for seg in &self.segments {
            if seg.idx.max_timestamp < timestamp || seg.size == 0 {
                continue;
            }
            let start_offset = seg
                .idx
                .time_index
                .floor(timestamp, |e| e.timestamp)?
                .map_or(seg.base_offset, |e| seg.base_offset + i64::from(e.rel_offset));
            let position = seg.lookup_position(start_offset)?;
            let mut scanner = BatchScanner::new(&seg.log, position, seg.size, LOOKUP_SCAN_CHUNK, None);
            loop {
                let (position, header) = match scanner.next_batch(false)? {
                    ScanStep::Batch { position, header } => (position, header),
                    ScanStep::End => break,
                    ScanStep::Invalid { position, reason } => {
                        return Err(LogError::Corrupt(format!(
                            "segment {} at {position}: {reason}",
                            seg.base_offset
                        )))
                    }
                };
                if header.max_timestamp < timestamp || header.last_offset() < self.log_start_offset {
                    continue;
                }
                let found = self
                    .records_of(seg, position, &header)?
                    .find(|&(offset, ts)| ts >= timestamp && offset >= self.log_start_offset);
                if found.is_some() {
                    return Ok(found);
                }
            }
        }
        Ok(None)
    }

    /// Decodes the batch at `position` into `(offset, timestamp)` of its records.
    fn records_of(
        &self,
        seg: &Segment,
        position: u64,
        header: &batch::BatchHeader,
    ) -> Result<impl Iterator<Item = (i64, i64)>, LogError> {
        let mut bytes = seg.read_batch_at(position, header)?;
        let set = RecordBatchDecoder::decode(&mut bytes)
            .map_err(|e| LogError::Corrupt(format!("batch at offset {} does not decode: {e}", header.base_offset)))?;
        let max_ts = header.max_timestamp;
        Ok(set.records.into_iter().map(move |r| {
            let ts = match r.timestamp_type {
                TimestampType::LogAppend => max_ts,
                TimestampType::Creation => r.timestamp,
            };
            (r.offset, ts)
        }))
    }

    /// `(offset, timestamp)` of the first record with the largest timestamp (ListOffsets
    /// MAX_TIMESTAMP), `None` if the log has no record with a timestamp.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<&Segment> = None;
        for seg in &self.segments {
            if seg.size > 0
                && seg.idx.max_timestamp > NO_TIMESTAMP
                && best.is_none_or(|b| seg.idx.max_timestamp > b.idx.max_timestamp)
            {
                best = Some(seg);
            }
        }
        let seg = best?;
        let ts = seg.idx.max_timestamp;
        let batch_offset = seg.idx.offset_of_max_timestamp;
        match self.record_with_timestamp(seg, batch_offset, ts) {
            Ok(Some(offset)) => Some((offset, ts)),
            Ok(None) => Some((batch_offset, ts)),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "max timestamp lookup failed");
                Some((batch_offset, ts))
            }
        }
    }

    fn record_with_timestamp(&self, seg: &Segment, batch_offset: i64, ts: i64) -> Result<Option<i64>, LogError> {
        let position = seg.lookup_position(batch_offset)?;
        let mut scanner = BatchScanner::new(&seg.log, position, seg.size, LOOKUP_SCAN_CHUNK, None);
        while let ScanStep::Batch { position, header } = scanner.next_batch(false)? {
            if header.last_offset() < batch_offset {
                continue;
            }
            return Ok(self
                .records_of(seg, position, &header)?
                .find(|&(_, t)| t == ts)
                .map(|(o, _)| o));
        }
        Ok(None)
    }

    /// Deletes expired segments (time, then size; see [`retention`]) and expires idle producers.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        retention::enforce(self, now_ms)
    }

    /// Writes pending index entries and fsyncs data, index and snapshot files (and the directory
    /// when files were created or removed).
    pub fn flush(&mut self) -> Result<(), LogError> {
        for seg in &mut self.segments {
            seg.sync()?;
        }
        for path in std::mem::take(&mut self.unsynced_snapshots) {
            match std::fs::File::open(&path) {
                Ok(f) => f.sync_all()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        if self.dir_dirty {
            std::fs::File::open(&self.dir)?.sync_all()?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// Takes effect for the next appends and retention runs.
    pub fn update_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.total_size
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Number of idempotent producers with state.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Clean shutdown: flushes everything, writes a producer snapshot at the log end and the
    /// `clean-shutdown` marker so that the next open skips the full scan. Also done on drop.
    pub fn close(mut self) -> Result<(), LogError> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<(), LogError> {
        if self.closed || self.failed.is_some() {
            self.closed = true;
            return Ok(());
        }
        self.closed = true;
        let active = self.segments.last_mut().ok_or_else(no_segment)?;
        active.idx.maybe_append_time_entry(active.base_offset)?;
        let (base, size) = (active.base_offset, active.size);
        self.write_snapshot(self.next_offset)?;
        self.flush()?;
        recovery::write_clean_marker(&self.dir, self.next_offset, base, size)?;
        Ok(())
    }

    /// Removes the partition directory and everything in it.
    pub fn delete(mut self) -> Result<(), LogError> {
        self.closed = true;
        std::fs::remove_dir_all(&self.dir)?;
        Ok(())
    }
}

impl Drop for PartitionLog {
    fn drop(&mut self) {
        if let Err(e) = self.close_inner() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "closing partition log failed");
        }
    }
}

fn no_segment() -> io::Error {
    invalid_data("log has no segment")
}
