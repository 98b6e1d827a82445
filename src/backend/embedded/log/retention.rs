//! Retention, after Kafka's `UnifiedLog.deleteOldSegments`: whole segments are deleted from the
//! oldest on, first while they breach `retention.ms` (now - the segment's largest timestamp, or
//! its file mtime when it has no timestamps, > retention.ms), then while the log minus the oldest
//! segment is still at least `retention.bytes`. An empty active segment is never deleted; when
//! the non-empty active segment itself is due, the log is rolled first so that it can go (a log
//! always keeps one segment, its log start offset then being the log end offset).

use std::fs;
use std::io;

use super::segment::{file_path, parse_file_name, Segment, SNAPSHOT_SUFFIX};
use super::{LogError, PartitionLog, PRODUCER_ID_EXPIRATION_MS};

pub(crate) fn enforce(log: &mut PartitionLog, now_ms: i64) -> Result<usize, LogError> {
    log.producers.expire(now_ms, PRODUCER_ID_EXPIRATION_MS);
    let mut deleted = 0;
    let retention_ms = log.config.retention_ms;
    if retention_ms >= 0 {
        let mut n = 0;
        for seg in &log.segments {
            if seg.size == 0 || now_ms.saturating_sub(seg.largest_timestamp()?) <= retention_ms {
                break;
            }
            n += 1;
        }
        deleted += delete_oldest(log, n)?;
    }
    if let Ok(retention_bytes) = u64::try_from(log.config.retention_bytes) {
        if log.total_size >= retention_bytes {
            let mut excess = log.total_size - retention_bytes;
            let mut n = 0;
            for seg in &log.segments {
                if seg.size == 0 || excess < seg.size {
                    break;
                }
                excess -= seg.size;
                n += 1;
            }
            deleted += delete_oldest(log, n)?;
        }
    }
    Ok(deleted)
}

fn delete_oldest(log: &mut PartitionLog, n: usize) -> io::Result<usize> {
    if n == 0 {
        return Ok(0);
    }
    if n >= log.segments.len() {
        log.roll()?;
    }
    for seg in log.segments.drain(..n) {
        log.total_size -= seg.size;
        let base = seg.base_offset;
        drop(seg);
        Segment::delete_files(&log.dir, base)?;
    }
    log.dir_dirty = true;
    if let Some(first) = log.segments.first() {
        log.log_start_offset = log.log_start_offset.max(first.base_offset);
    }
    // Producer snapshots below the new log start are of no use any more.
    for entry in fs::read_dir(&log.dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some((offset, SNAPSHOT_SUFFIX)) = name.to_str().and_then(parse_file_name) {
            if offset < log.log_start_offset {
                match fs::remove_file(file_path(&log.dir, offset, SNAPSHOT_SUFFIX)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(n)
}
