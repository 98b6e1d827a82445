//! Opening a partition log: segment loading, torn-tail recovery, index rebuilds, producer state.
//! The rules are described in the `log` module docs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Buf;

use super::batch::{BatchHeader, HEADER_SIZE, NO_TIMESTAMP};
use super::index::{IndexFile, OffsetEntry, TimeEntry};
use super::producer::ProducerStates;
use super::segment::{
    file_path, parse_file_name, BatchScanner, ScanStep, Segment, SegmentIndexes, INDEX_SUFFIX, LOG_SUFFIX,
    SNAPSHOT_SUFFIX, TIME_INDEX_SUFFIX,
};
use super::{LogConfig, LogError, PartitionLog, RECOVERY_SCAN_CHUNK};

const CLEAN_MARKER: &str = "clean-shutdown";
const CLEAN_MARKER_MAGIC: &[u8; 4] = b"KGCS";
const CLEAN_MARKER_VERSION: u16 = 1;
const CLEAN_MARKER_LEN: usize = 4 + 2 + 2 + 8 + 8 + 8 + 4;

/// What a clean close recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CleanMarker {
    log_end_offset: i64,
    active_base: i64,
    active_size: u64,
}

pub(crate) fn write_clean_marker(
    dir: &Path,
    log_end_offset: i64,
    active_base: i64,
    active_size: u64,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(CLEAN_MARKER_LEN);
    out.extend_from_slice(CLEAN_MARKER_MAGIC);
    out.extend_from_slice(&CLEAN_MARKER_VERSION.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&log_end_offset.to_be_bytes());
    out.extend_from_slice(&active_base.to_be_bytes());
    out.extend_from_slice(&active_size.to_be_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    let path = dir.join(CLEAN_MARKER);
    let tmp = dir.join(format!("{CLEAN_MARKER}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(&out)?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()
}

/// Reads and removes the clean-shutdown marker; `None` if absent or invalid.
fn take_clean_marker(dir: &Path) -> io::Result<Option<CleanMarker>> {
    let path = dir.join(CLEAN_MARKER);
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    fs::remove_file(&path)?;
    if data.len() != CLEAN_MARKER_LEN {
        return Ok(None);
    }
    let (body, mut crc) = data.split_at(CLEAN_MARKER_LEN - 4);
    if crc32c::crc32c(body) != crc.get_u32() || &body[..4] != CLEAN_MARKER_MAGIC {
        return Ok(None);
    }
    let mut b = &body[4..];
    if b.get_u16() != CLEAN_MARKER_VERSION {
        return Ok(None);
    }
    b.advance(2);
    Ok(Some(CleanMarker {
        log_end_offset: b.get_i64(),
        active_base: b.get_i64(),
        active_size: b.get_u64(),
    }))
}

fn open_log_file(dir: &Path, base: i64) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(file_path(dir, base, LOG_SUFFIX))
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub(crate) fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<PartitionLog, LogError> {
    fs::create_dir_all(dir)?;
    let mut marker = take_clean_marker(dir)?;
    let mut bases = Vec::new();
    let mut snapshots = Vec::new();
    let mut index_files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            remove_if_exists(&entry.path())?;
            continue;
        }
        match parse_file_name(name) {
            Some((base, LOG_SUFFIX)) => bases.push(base),
            Some((offset, SNAPSHOT_SUFFIX)) => snapshots.push(offset),
            Some((base, INDEX_SUFFIX | TIME_INDEX_SUFFIX)) => index_files.push((base, entry.path())),
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            remove_if_exists(&path)?;
        }
    }
    let interval = u64::from(config.index_interval_bytes);

    let mut segments = Vec::with_capacity(bases.len().max(1));
    if bases.is_empty() {
        segments.push(Segment::create(dir, 0)?);
    } else {
        let last = bases.len() - 1;
        let mut active_at = last;
        for i in 0..last {
            match load_closed(dir, bases[i], bases[i + 1], interval)? {
                Some(seg) => segments.push(seg),
                None => {
                    tracing::warn!(
                        dir = %dir.display(),
                        segment = bases[i],
                        "closed segment is torn: truncating it and deleting later segments"
                    );
                    for &later in bases[i + 1..].iter().rev() {
                        Segment::delete_files(dir, later)?;
                    }
                    active_at = i;
                    marker = None;
                    break;
                }
            }
        }
        segments.push(load_active(dir, bases[active_at], marker, interval, now_ms)?);
    }

    let log_start_offset = segments[0].base_offset;
    let next_offset = segments.last().map_or(0, |s| s.next_offset);
    let total_size = segments.iter().map(|s| s.size).sum();
    let producers = load_producer_state(dir, &segments, &mut snapshots, log_start_offset, next_offset)?;

    Ok(PartitionLog {
        dir: dir.to_path_buf(),
        config,
        segments,
        log_start_offset,
        next_offset,
        total_size,
        producers,
        unsynced_snapshots: Vec::new(),
        dir_dirty: true,
        failed: None,
        closed: false,
        scratch_batches: Vec::new(),
        scratch_pending: Vec::new(),
        scratch_prefixes: Vec::new(),
    })
}

/// Loads a closed segment whose successor starts at `next_base`. `None` when the segment does not
/// hold exactly the valid batches `[base, next_base)`.
fn load_closed(dir: &Path, base: i64, next_base: i64, interval: u64) -> io::Result<Option<Segment>> {
    let log = open_log_file(dir, base)?;
    let size = log.metadata()?.len();
    let span = next_base - base;
    let index = IndexFile::<OffsetEntry>::open_closed(&file_path(dir, base, INDEX_SUFFIX))?;
    let time_index = IndexFile::<TimeEntry>::open_closed(&file_path(dir, base, TIME_INDEX_SUFFIX))?;
    if let (Some(index), Some(time_index)) = (index, time_index) {
        let last = index.last()?;
        let last_time = time_index.last()?;
        let sane = last.is_none_or(|e| i64::from(e.rel_offset) < span && u64::from(e.position) < size)
            && last_time.is_none_or(|e| i64::from(e.rel_offset) < span);
        if sane {
            let (start, start_offset) =
                last.map_or((0, base), |e| (u64::from(e.position), base + i64::from(e.rel_offset)));
            let (mut max_ts, mut offset_of_max) =
                last_time.map_or((NO_TIMESTAMP, base), |e| (e.timestamp, base + i64::from(e.rel_offset)));
            let mut scanner = BatchScanner::new(&log, start, size, RECOVERY_SCAN_CHUNK, Some(start_offset));
            let tail_ok = loop {
                match scanner.next_batch(true)? {
                    ScanStep::Batch { header, .. } => {
                        if header.max_timestamp > max_ts {
                            max_ts = header.max_timestamp;
                            offset_of_max = header.base_offset;
                        }
                    }
                    ScanStep::End => break scanner.expected_offset() == Some(next_base),
                    ScanStep::Invalid { .. } => break false,
                }
            };
            if tail_ok {
                return Ok(Some(Segment {
                    base_offset: base,
                    next_offset: next_base,
                    size,
                    log,
                    idx: SegmentIndexes {
                        index,
                        time_index,
                        max_timestamp: max_ts,
                        offset_of_max_timestamp: offset_of_max,
                        bytes_since_index: 0,
                    },
                    rolling_base_ms: None,
                    dirty: false,
                }));
            }
        }
    }
    tracing::info!(dir = %dir.display(), segment = base, "rebuilding segment indexes");
    let (seg, invalid) = scan_rebuild(dir, base, log, size, interval, false, |_| {})?;
    if invalid.is_none() && seg.size == size && seg.next_offset == next_base {
        Ok(Some(seg))
    } else {
        Ok(None)
    }
}

/// Scans a whole segment (headers, contiguous offsets, CRCs), rebuilding both indexes. The
/// returned segment ends after the last valid batch; the reason the scan stopped early, if it did,
/// comes along. The file itself is not truncated.
fn scan_rebuild(
    dir: &Path,
    base: i64,
    log: File,
    file_size: u64,
    interval: u64,
    keep_in_memory: bool,
    mut on_batch: impl FnMut(&BatchHeader),
) -> io::Result<(Segment, Option<String>)> {
    let mut idx = SegmentIndexes {
        index: IndexFile::create_active(&file_path(dir, base, INDEX_SUFFIX))?,
        time_index: IndexFile::create_active(&file_path(dir, base, TIME_INDEX_SUFFIX))?,
        max_timestamp: NO_TIMESTAMP,
        offset_of_max_timestamp: base,
        bytes_since_index: 0,
    };
    let mut scanner = BatchScanner::new(&log, 0, file_size, RECOVERY_SCAN_CHUNK, Some(base));
    let invalid = loop {
        match scanner.next_batch(true)? {
            ScanStep::Batch { position, header } => {
                idx.track(
                    base,
                    position,
                    header.base_offset,
                    header.size(),
                    header.max_timestamp,
                    interval,
                )?;
                on_batch(&header);
            }
            ScanStep::End => break None,
            ScanStep::Invalid { position, reason } => break Some(format!("byte {position}: {reason}")),
        }
    };
    let size = scanner.position();
    let next_offset = scanner.expected_offset().unwrap_or(base);
    if !keep_in_memory {
        idx.maybe_append_time_entry(base)?;
        idx.index.release_memory()?;
        idx.time_index.release_memory()?;
    }
    Ok((
        Segment {
            base_offset: base,
            next_offset,
            size,
            log,
            idx,
            rolling_base_ms: None,
            dirty: true,
        },
        invalid,
    ))
}

/// Loads the active segment: trusted after a matching clean shutdown (tail verified), else fully
/// scanned and cut back to its last valid batch.
fn load_active(dir: &Path, base: i64, marker: Option<CleanMarker>, interval: u64, now_ms: i64) -> io::Result<Segment> {
    let log = open_log_file(dir, base)?;
    let file_size = log.metadata()?.len();
    let mut clean = None;
    if let Some(m) = marker.filter(|m| m.active_base == base && m.active_size == file_size) {
        clean = load_active_clean(dir, base, log.try_clone()?, file_size, m.log_end_offset, interval)?;
        if clean.is_none() {
            tracing::warn!(dir = %dir.display(), "clean-shutdown state does not match the log: recovering");
        }
    }
    let mut seg = match clean {
        Some(seg) => seg,
        None => {
            let (seg, invalid) = scan_rebuild(dir, base, log, file_size, interval, true, |_| {})?;
            if let Some(reason) = invalid {
                tracing::warn!(
                    dir = %dir.display(),
                    segment = base,
                    valid_bytes = seg.size,
                    file_bytes = file_size,
                    %reason,
                    "truncating the log after its last valid batch"
                );
            }
            if seg.size < file_size {
                seg.log.set_len(seg.size)?;
            }
            seg
        }
    };
    if seg.size > 0 {
        let mut first = [0u8; HEADER_SIZE];
        seg.log.read_exact_at(&mut first, 0)?;
        let first_ts = BatchHeader::parse(&first).map_or(NO_TIMESTAMP, |h| h.max_timestamp);
        seg.rolling_base_ms = Some(if first_ts > NO_TIMESTAMP {
            first_ts.min(now_ms)
        } else {
            now_ms
        });
    }
    seg.seek_to_end()?;
    Ok(seg)
}

fn load_active_clean(
    dir: &Path,
    base: i64,
    log: File,
    size: u64,
    log_end_offset: i64,
    interval: u64,
) -> io::Result<Option<Segment>> {
    let Some(index) = IndexFile::<OffsetEntry>::open_active(&file_path(dir, base, INDEX_SUFFIX))? else {
        return Ok(None);
    };
    let Some(time_index) = IndexFile::<TimeEntry>::open_active(&file_path(dir, base, TIME_INDEX_SUFFIX))? else {
        return Ok(None);
    };
    let span = log_end_offset - base;
    let entries = index.entries().unwrap_or(&[]);
    let index_ok = entries
        .windows(2)
        .all(|w| w[0].rel_offset < w[1].rel_offset && w[0].position < w[1].position)
        && entries
            .last()
            .is_none_or(|e| i64::from(e.rel_offset) < span && u64::from(e.position) < size);
    let times = time_index.entries().unwrap_or(&[]);
    let time_ok = times
        .windows(2)
        .all(|w| w[0].timestamp < w[1].timestamp && w[0].rel_offset <= w[1].rel_offset)
        && times.last().is_none_or(|e| i64::from(e.rel_offset) < span);
    if !index_ok || !time_ok {
        return Ok(None);
    }
    let (start, start_offset) = entries
        .last()
        .map_or((0, base), |e| (u64::from(e.position), base + i64::from(e.rel_offset)));
    let (max_ts, offset_of_max) = times
        .last()
        .map_or((NO_TIMESTAMP, base), |e| (e.timestamp, base + i64::from(e.rel_offset)));
    let mut idx = SegmentIndexes {
        index,
        time_index,
        max_timestamp: max_ts,
        offset_of_max_timestamp: offset_of_max,
        bytes_since_index: 0,
    };
    let mut scanner = BatchScanner::new(&log, start, size, RECOVERY_SCAN_CHUNK, Some(start_offset));
    loop {
        match scanner.next_batch(true)? {
            // Re-tracking the tail reproduces the state the appends left (no entry for the batch at
            // `start`, which already has one: the byte count restarts at 0 there).
            ScanStep::Batch { position, header } => idx.track(
                base,
                position,
                header.base_offset,
                header.size(),
                header.max_timestamp,
                interval,
            )?,
            ScanStep::End => break,
            ScanStep::Invalid { .. } => return Ok(None),
        }
    }
    if scanner.expected_offset() != Some(log_end_offset) {
        return Ok(None);
    }
    Ok(Some(Segment {
        base_offset: base,
        next_offset: log_end_offset,
        size,
        log,
        idx,
        rolling_base_ms: None,
        dirty: false,
    }))
}

/// Loads the newest valid snapshot in `[log_start, log_end]` and replays the batch headers after
/// it. Deletes snapshots outside the range, unreadable ones, and older ones that are not at a
/// segment base.
fn load_producer_state(
    dir: &Path,
    segments: &[Segment],
    snapshots: &mut [i64],
    log_start: i64,
    log_end: i64,
) -> Result<ProducerStates, LogError> {
    snapshots.sort_unstable();
    let mut state = None;
    for &offset in snapshots.iter().rev() {
        let path = file_path(dir, offset, SNAPSHOT_SUFFIX);
        if offset < log_start || offset > log_end {
            remove_if_exists(&path)?;
            continue;
        }
        if state.is_some() {
            if segments.binary_search_by_key(&offset, |s| s.base_offset).is_err() {
                remove_if_exists(&path)?;
            }
            continue;
        }
        match fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|data| ProducerStates::decode_snapshot(&data, offset))
        {
            Ok(p) => state = Some((p, offset)),
            Err(reason) => {
                tracing::warn!(dir = %dir.display(), offset, %reason, "discarding producer snapshot");
                remove_if_exists(&path)?;
            }
        }
    }
    let (mut producers, from) = state.unwrap_or_else(|| (ProducerStates::default(), log_start));
    for seg in segments.iter().filter(|s| s.next_offset > from && s.size > 0) {
        let start = if from > seg.base_offset {
            seg.lookup_position(from)?
        } else {
            0
        };
        let mut scanner = BatchScanner::new(&seg.log, start, seg.size, RECOVERY_SCAN_CHUNK, None);
        loop {
            match scanner.next_batch(false)? {
                ScanStep::Batch { header, .. } => {
                    if header.base_offset >= from {
                        producers.replay(&header);
                    }
                }
                ScanStep::End => break,
                ScanStep::Invalid { position, reason } => {
                    return Err(LogError::Corrupt(format!(
                        "segment {} at byte {position}: {reason}",
                        seg.base_offset
                    )))
                }
            }
        }
    }
    Ok(producers)
}
