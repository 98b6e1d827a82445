//! Tests of the partition log with real batches built by `kafka_protocol`'s encoder.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::batch::BatchHeader;
use super::*;

const NOW: i64 = 1_700_000_000_000;
const DAY: i64 = 24 * 60 * 60 * 1000;

/// Encodes one batch with one record per timestamp. `producer` is (id, epoch, base sequence).
fn encode_batch(
    timestamps: &[i64],
    producer: Option<(i64, i16, i32)>,
    compression: Compression,
    transactional: bool,
    value: impl Fn(usize) -> Vec<u8>,
) -> Vec<u8> {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &ts)| {
            let (pid, epoch, sequence) = match producer {
                Some((pid, epoch, seq)) => (pid, epoch, seq.wrapping_add(i as i32)),
                // The encoder keeps records in one batch while offset - sequence is constant; this
                // gives baseSequence -1.
                None => (-1, -1, i as i32 - 1),
            };
            Record {
                transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 5,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence,
                timestamp: ts,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(value(i))),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    assert_eq!(BatchHeader::parse(&buf).unwrap().record_count, timestamps.len() as i32);
    buf.to_vec()
}

fn plain(n: usize, ts: i64) -> Vec<u8> {
    let timestamps: Vec<i64> = (0..n as i64).map(|i| ts + i).collect();
    encode_batch(&timestamps, None, Compression::None, false, |i| {
        format!("value-{i}").into_bytes()
    })
}

fn with_ts(timestamps: &[i64], compression: Compression) -> Vec<u8> {
    encode_batch(timestamps, None, compression, false, |i| {
        format!("value-{i}-{}", "x".repeat(40)).into_bytes()
    })
}

fn idem(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let timestamps: Vec<i64> = (0..n as i64).map(|i| NOW + i).collect();
    encode_batch(&timestamps, Some((pid, epoch, seq)), Compression::None, false, |i| {
        format!("p{pid}-{seq}-{i}").into_bytes()
    })
}

/// (offset, timestamp, value) of every record in `bytes` (whole batches).
fn decode(bytes: &Bytes) -> Vec<(i64, i64, Bytes)> {
    let mut b = bytes.clone();
    RecordBatchDecoder::decode_all(&mut b)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| (r.offset, r.timestamp, r.value.unwrap_or_default()))
        .collect()
}

fn offsets(bytes: &Bytes) -> Vec<i64> {
    decode(bytes).into_iter().map(|(o, _, _)| o).collect()
}

/// Headers of the batches in `bytes`.
fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut p = 0;
    while let Some(h) = BatchHeader::parse(&bytes[p..]) {
        out.push(h);
        p += h.size() as usize;
    }
    assert_eq!(p, bytes.len(), "read returned a partial batch");
    out
}

fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config, NOW).unwrap()
}

fn small(segment_bytes: u64, interval: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: interval,
        ..LogConfig::default()
    }
}

fn log_file(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(suffix))
        .collect();
    v.sort();
    v
}

/// What a `kill -9` leaves: nothing beyond the writes already made.
fn crash(log: PartitionLog) {
    std::mem::forget(log);
}

/// Reads the whole log batch by batch; returns every offset seen at or after the fetch position.
fn consume_all(log: &PartitionLog, max_bytes: usize) -> Vec<(i64, Bytes)> {
    let mut out = Vec::new();
    let mut pos = log.log_start_offset();
    while pos < log.log_end_offset() {
        let bytes = log.read(pos, max_bytes, true).unwrap();
        assert!(!bytes.is_empty(), "no progress at {pos}");
        for (o, _, v) in decode(&bytes) {
            if o >= pos {
                out.push((o, v));
            }
        }
        pos = headers(&bytes).last().unwrap().last_offset() + 1;
    }
    out
}

#[test]
fn append_and_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    let batches = [plain(1, NOW), plain(5, NOW + 10), plain(3, NOW + 20)];
    let mut expected = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        let out = log.append(b, NOW).unwrap();
        expected.push(out);
        assert!(!out.duplicate);
        assert_eq!(out.log_start_offset, 0, "batch {i}");
    }
    assert_eq!(
        expected
            .iter()
            .map(|o| (o.base_offset, o.last_offset))
            .collect::<Vec<_>>(),
        vec![(0, 0), (1, 5), (6, 8)]
    );
    assert_eq!(log.log_end_offset(), 9);
    let total: usize = batches.iter().map(Vec::len).sum();
    assert_eq!(log.size_bytes(), total as u64);

    let bytes = log.read(0, 1 << 20, false).unwrap();
    assert_eq!(bytes.len(), total);
    assert_eq!(offsets(&bytes), (0..9).collect::<Vec<_>>());
    let recs = decode(&bytes);
    assert_eq!(recs[3].1, NOW + 12);
    assert_eq!(recs[3].2, Bytes::from("value-2"));
    // Stored as received except baseOffset and partitionLeaderEpoch.
    let mut p = 0;
    for (b, out) in batches.iter().zip(&expected) {
        let stored = &bytes[p..p + b.len()];
        assert_eq!(&stored[0..8], &out.base_offset.to_be_bytes());
        assert_eq!(&stored[8..12], &b[8..12]);
        assert_eq!(&stored[12..16], &0i32.to_be_bytes());
        assert_eq!(&b[12..16], &5i32.to_be_bytes());
        assert_eq!(&stored[16..], &b[16..]);
        p += b.len();
    }
}

#[test]
fn concatenated_batches_get_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    log.append(&plain(2, NOW), NOW).unwrap();
    let mut req = plain(3, NOW);
    req.extend_from_slice(&with_ts(&[NOW, NOW + 1], Compression::Gzip));
    let out = log.append(&req, NOW).unwrap();
    assert_eq!((out.base_offset, out.last_offset), (2, 6));
    let bytes = log.read(0, 1 << 20, false).unwrap();
    assert_eq!(offsets(&bytes), (0..7).collect::<Vec<_>>());
    assert_eq!(
        headers(&bytes).iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![0, 2, 5]
    );
}

#[test]
fn read_from_the_middle_of_a_batch_returns_that_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small(1 << 20, 64));
    for i in 0..20 {
        log.append(&plain(5, NOW + i), NOW).unwrap();
    }
    for fetch in [0, 3, 4, 5, 7, 52, 99] {
        let bytes = log.read(fetch, 1, true).unwrap();
        let hs = headers(&bytes);
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].base_offset, fetch / 5 * 5, "fetch {fetch}");
        assert!(offsets(&bytes).contains(&fetch));
    }
}

#[test]
fn max_bytes_and_min_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let a = plain(4, NOW);
    let b = plain(4, NOW);
    let c = plain(4, NOW);
    for x in [&a, &b, &c] {
        log.append(x, NOW).unwrap();
    }
    // Exactly two batches fit; one byte less and only one does.
    let two = log.read(0, a.len() + b.len(), false).unwrap();
    assert_eq!(headers(&two).len(), 2);
    let one = log.read(0, a.len() + b.len() - 1, false).unwrap();
    assert_eq!(headers(&one).len(), 1);
    // First batch larger than max_bytes.
    assert!(log.read(5, 10, false).unwrap().is_empty());
    let forced = log.read(5, 10, true).unwrap();
    assert_eq!(forced.len(), b.len());
    assert_eq!(headers(&forced)[0].base_offset, 4);
    assert!(log.read(5, 0, false).unwrap().is_empty());
    assert_eq!(log.read(5, 0, true).unwrap().len(), b.len());
    // Everything.
    assert_eq!(log.read(0, usize::MAX / 2, false).unwrap().len(), a.len() * 3);
}

#[test]
fn out_of_range_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    assert!(log.read(0, 100, true).unwrap().is_empty());
    log.append(&plain(3, NOW), NOW).unwrap();
    assert!(log.read(3, 100, true).unwrap().is_empty());
    for bad in [-1, 4, i64::MAX] {
        let err = log.read(bad, 100, true).unwrap_err();
        assert!(
            matches!(err, ReadError::OffsetOutOfRange { offset, start: 0, end: 3 } if offset == bad),
            "{err:?}"
        );
        assert_eq!(err.error_code(), 1);
    }
}

#[test]
fn segments_roll_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let batch = plain(3, NOW);
    let segment_bytes = batch.len() as u64 * 3;
    let mut log = open(dir.path(), small(segment_bytes, 64));
    for _ in 0..10 {
        log.append(&batch, NOW).unwrap();
    }
    assert_eq!(log.segment_count(), 4);
    let logs = files_with_suffix(dir.path(), "log");
    assert_eq!(logs.len(), 4);
    for (p, base) in logs.iter().zip([0, 9, 18, 27]) {
        assert_eq!(p, &log_file(dir.path(), base));
        assert!(fs::metadata(p).unwrap().len() <= segment_bytes);
    }
    assert_eq!(
        consume_all(&log, 100).iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        (0..30).collect::<Vec<_>>()
    );
    // A batch larger than segment.bytes still goes in (alone).
    let big = plain(40, NOW);
    assert!(big.len() as u64 > segment_bytes);
    let out = log.append(&big, NOW).unwrap();
    assert_eq!(out.base_offset, 30);
    assert_eq!(log.segment_count(), 5);
    // Snapshots were written at every roll.
    assert_eq!(files_with_suffix(dir.path(), "snapshot").len(), 4);
}

#[test]
fn segments_roll_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    log.append(&plain(1, NOW), NOW).unwrap();
    log.append(&plain(1, NOW), NOW + 1000).unwrap();
    assert_eq!(log.segment_count(), 1);
    let out = log.append(&plain(1, NOW), NOW + 1001).unwrap();
    assert_eq!(out.base_offset, 2);
    assert_eq!(log.segment_count(), 2);
    // The new segment's clock starts at its first append.
    log.append(&plain(1, NOW), NOW + 2001).unwrap();
    assert_eq!(log.segment_count(), 2);
    log.append(&plain(1, NOW), NOW + 2002).unwrap();
    assert_eq!(log.segment_count(), 3);
}

#[test]
fn retention_by_time_moves_log_start_and_rolls_an_expired_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    // segment.bytes 1: every append after the first starts a new segment.
    let mut log = open(dir.path(), small(1, 4096));
    for _ in 0..3 {
        log.append(&plain(1, NOW - 10 * DAY), NOW).unwrap();
    }
    for _ in 0..2 {
        log.append(&plain(1, NOW - DAY), NOW).unwrap();
    }
    assert_eq!(log.segment_count(), 5);
    assert_eq!(log.enforce_retention(NOW).unwrap(), 3);
    assert_eq!(log.log_start_offset(), 3);
    assert_eq!(log.segment_count(), 2);
    assert!(!log_file(dir.path(), 0).exists());
    assert!(matches!(
        log.read(2, 100, true),
        Err(ReadError::OffsetOutOfRange { start: 3, .. })
    ));
    // One segment per batch here, and a read never spans segments.
    assert_eq!(offsets(&log.read(3, 1000, true).unwrap()), vec![3]);
    assert_eq!(offsets(&log.read(4, 1000, true).unwrap()), vec![4]);
    assert_eq!(log.size_bytes(), 2 * plain(1, NOW - DAY).len() as u64);
    // Nothing more is due.
    assert_eq!(log.enforce_retention(NOW).unwrap(), 0);
    // Later everything is expired, the active segment included: it is rolled and deleted.
    assert_eq!(log.enforce_retention(NOW + 7 * DAY).unwrap(), 2);
    assert_eq!(log.segment_count(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));
    assert_eq!(log.size_bytes(), 0);
    assert!(log.read(5, 100, true).unwrap().is_empty());
    let out = log.append(&plain(2, NOW + 7 * DAY), NOW + 7 * DAY).unwrap();
    assert_eq!((out.base_offset, out.log_start_offset), (5, 5));
    // Unlimited retention deletes nothing.
    log.update_config(LogConfig {
        retention_ms: -1,
        ..log.config().clone()
    });
    assert_eq!(log.enforce_retention(NOW + 100 * DAY).unwrap(), 0);
    drop(log);
    let log = open(dir.path(), small(1, 4096));
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 7));
}

#[test]
fn retention_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let batch = plain(2, NOW);
    let s = batch.len() as i64;
    let config = LogConfig {
        retention_bytes: 2 * s + 1,
        ..small(1, 4096)
    };
    let mut log = open(dir.path(), config);
    for _ in 0..5 {
        log.append(&batch, NOW).unwrap();
    }
    assert_eq!(log.size_bytes(), 5 * s as u64);
    // Delete while what remains would still be >= retention.bytes.
    assert_eq!(log.enforce_retention(NOW).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(log.size_bytes(), 3 * s as u64);
    assert_eq!(log.enforce_retention(NOW).unwrap(), 0);
    log.update_config(LogConfig {
        retention_bytes: 0,
        ..log.config().clone()
    });
    assert_eq!(log.enforce_retention(NOW).unwrap(), 3);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
}

#[test]
fn reopen_after_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let config = small(2000, 100);
    let mut log = open(dir.path(), config.clone());
    for i in 0..30 {
        log.append(&plain(3, NOW + i), NOW).unwrap();
    }
    let before = log.read(0, 1 << 20, false).unwrap();
    let all_before = consume_all(&log, 500);
    let segments = log.segment_count();
    log.close().unwrap();
    assert!(dir.path().join("clean-shutdown").exists());

    let mut log = open(dir.path(), config.clone());
    assert!(!dir.path().join("clean-shutdown").exists());
    assert_eq!(log.log_end_offset(), 90);
    assert_eq!(log.segment_count(), segments);
    assert_eq!(log.read(0, 1 << 20, false).unwrap(), before);
    assert_eq!(consume_all(&log, 500), all_before);
    assert_eq!(log.append(&plain(1, NOW), NOW).unwrap().base_offset, 90);
    drop(log); // drop is a clean close too
    assert!(dir.path().join("clean-shutdown").exists());
    let log = open(dir.path(), config);
    assert_eq!(log.log_end_offset(), 91);
}

#[test]
fn reopen_after_crash_rebuilds_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = small(1 << 20, 64);
    let mut log = open(dir.path(), config.clone());
    for i in 0..50 {
        log.append(&plain(2, NOW + i), NOW).unwrap();
    }
    let all = consume_all(&log, 300);
    crash(log);
    // The lazily written active index never reached the file.
    assert_eq!(
        fs::metadata(dir.path().join(format!("{:020}.index", 0))).unwrap().len(),
        0
    );
    let mut log = open(dir.path(), config.clone());
    assert_eq!(log.log_end_offset(), 100);
    assert_eq!(consume_all(&log, 300), all);
    assert_eq!(log.append(&plain(1, NOW), NOW).unwrap().base_offset, 100);
    log.close().unwrap();
    assert!(fs::metadata(dir.path().join(format!("{:020}.index", 0))).unwrap().len() > 0);
}

fn torn_tail_case(damage: impl Fn(&Path), clean_close: bool) {
    let dir = tempfile::tempdir().unwrap();
    let config = small(1 << 20, 64);
    let mut log = open(dir.path(), config.clone());
    for i in 0..5 {
        log.append(&plain(3, NOW + i), NOW).unwrap();
    }
    let first_four = log.read(0, 4 * plain(3, NOW).len(), false).unwrap();
    assert_eq!(offsets(&first_four), (0..12).collect::<Vec<_>>());
    if clean_close {
        log.close().unwrap();
    } else {
        crash(log);
    }
    damage(&log_file(dir.path(), 0));

    let mut log = open(dir.path(), config.clone());
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(log.size_bytes(), first_four.len() as u64);
    assert_eq!(
        fs::metadata(log_file(dir.path(), 0)).unwrap().len(),
        first_four.len() as u64
    );
    assert_eq!(log.read(0, 1 << 20, false).unwrap(), first_four);
    let out = log.append(&plain(2, NOW), NOW).unwrap();
    assert_eq!((out.base_offset, out.last_offset), (12, 13));
    crash(log);
    let log = open(dir.path(), config);
    assert_eq!(log.log_end_offset(), 14);
    assert_eq!(
        consume_all(&log, 100).iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        (0..14).collect::<Vec<_>>()
    );
}

fn truncate_mid_last_batch(path: &Path) {
    let len = fs::metadata(path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
}

fn flip_byte_in_last_batch(path: &Path) {
    let mut data = fs::read(path).unwrap();
    let n = data.len();
    data[n - 5] ^= 0x40;
    fs::write(path, data).unwrap();
}

#[test]
fn torn_tail_truncated_mid_batch_after_crash() {
    torn_tail_case(truncate_mid_last_batch, false);
}

#[test]
fn torn_tail_flipped_byte_after_crash() {
    torn_tail_case(flip_byte_in_last_batch, false);
}

#[test]
fn torn_tail_is_found_even_after_clean_close() {
    torn_tail_case(truncate_mid_last_batch, true);
    torn_tail_case(flip_byte_in_last_batch, true);
}

#[test]
fn garbage_after_the_last_batch_is_cut() {
    torn_tail_case(
        |p| {
            let mut data = fs::read(p).unwrap();
            let n = data.len();
            // Drop the last batch, then append zeros (a preallocated or torn tail).
            let last = plain(3, NOW).len();
            data.truncate(n - last);
            data.extend_from_slice(&[0u8; 100]);
            fs::write(p, data).unwrap();
        },
        false,
    );
}

#[test]
fn torn_closed_segment_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = small(1, 4096);
    let mut log = open(dir.path(), config.clone());
    for _ in 0..4 {
        log.append(&plain(2, NOW), NOW).unwrap();
    }
    assert_eq!(log.segment_count(), 4);
    crash(log);
    truncate_mid_last_batch(&log_file(dir.path(), 2));
    let mut log = open(dir.path(), config);
    // Segment 2 lost its only batch and is the (empty) active segment now.
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(fs::metadata(log_file(dir.path(), 2)).unwrap().len(), 0);
    assert!(!log_file(dir.path(), 4).exists());
    assert!(!log_file(dir.path(), 6).exists());
    assert_eq!(log.append(&plain(1, NOW), NOW).unwrap().base_offset, 2);
}

#[test]
fn deleted_or_corrupt_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = small(3000, 64);
    let mut log = open(dir.path(), config.clone());
    for i in 0..60 {
        log.append(&with_ts(&[NOW + i * 10, NOW + i * 10 + 5], Compression::None), NOW)
            .unwrap();
    }
    assert!(log.segment_count() >= 3);
    let leo = log.log_end_offset();
    let firsts: Vec<Bytes> = (0..leo).map(|o| log.read(o, 1, true).unwrap()).collect();
    let by_time: Vec<_> = (0..60)
        .map(|i| log.offset_for_timestamp(NOW + i * 10 + 3).unwrap())
        .collect();
    log.close().unwrap();
    let index_files = files_with_suffix(dir.path(), "index");
    assert!(fs::metadata(&index_files[0]).unwrap().len() > 0);
    for p in index_files
        .iter()
        .chain(files_with_suffix(dir.path(), "timeindex").iter())
    {
        fs::remove_file(p).unwrap();
    }
    // And a ragged one for good measure.
    fs::write(&index_files[1], [1u8; 7]).unwrap();

    let check = |log: &PartitionLog| {
        assert_eq!(log.log_end_offset(), leo);
        for o in 0..leo {
            assert_eq!(log.read(o, 1, true).unwrap(), firsts[o as usize], "offset {o}");
        }
        for i in 0..60 {
            assert_eq!(log.offset_for_timestamp(NOW + i * 10 + 3).unwrap(), by_time[i as usize]);
        }
    };
    let log = open(dir.path(), config.clone());
    check(&log);
    // Closed segments' indexes were rewritten right away.
    let rebuilt = files_with_suffix(dir.path(), "index");
    assert_eq!(rebuilt.len(), log.segment_count());
    assert!(fs::metadata(&rebuilt[0]).unwrap().len() > 0);
    assert!(
        fs::metadata(&files_with_suffix(dir.path(), "timeindex")[0])
            .unwrap()
            .len()
            > 0
    );
    // Same after a crash that loses the active index.
    crash(log);
    for p in files_with_suffix(dir.path(), "index") {
        fs::remove_file(p).unwrap();
    }
    let log = open(dir.path(), config);
    check(&log);
}

#[test]
fn idempotent_duplicates_return_the_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let b0 = idem(7, 0, 0, 3);
    let b1 = idem(7, 0, 3, 2);
    assert_eq!(log.append(&b0, NOW).unwrap().base_offset, 0);
    log.append(&plain(4, NOW), NOW).unwrap(); // someone else in between
    let first = log.append(&b1, NOW).unwrap();
    assert_eq!((first.base_offset, first.last_offset), (7, 8));
    let size = log.size_bytes();
    for (b, range) in [(&b0, (0, 2)), (&b1, (7, 8))] {
        let dup = log.append(b, NOW).unwrap();
        assert!(dup.duplicate);
        assert_eq!((dup.base_offset, dup.last_offset), range);
    }
    assert_eq!((log.log_end_offset(), log.size_bytes()), (9, size));
    assert_eq!(log.append(&idem(7, 0, 5, 1), NOW).unwrap().base_offset, 9);
    // Only the last five batches are remembered.
    for seq in 6..11 {
        log.append(&idem(7, 0, seq, 1), NOW).unwrap();
    }
    let err = log.append(&b1, NOW).unwrap_err();
    assert_eq!(err.error_code(), 45, "{err}");
    // A duplicate of another epoch is not a duplicate.
    let err = log.append(&idem(7, 1, 10, 1), NOW).unwrap_err();
    assert!(matches!(err, AppendError::OutOfOrderSequence { .. }), "{err}");
}

#[test]
fn out_of_order_sequence_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    // An unknown producer may start anywhere (Kafka accepts any sequence without state).
    assert_eq!(log.append(&idem(3, 0, 100, 2), NOW).unwrap().base_offset, 0);
    for seq in [103, 101, 0, 99] {
        let err = log.append(&idem(3, 0, seq, 1), NOW).unwrap_err();
        assert!(
            matches!(err, AppendError::OutOfOrderSequence { producer_id: 3, first_seq, last_seq: 101, .. } if first_seq == seq),
            "{err:?}"
        );
        assert_eq!(err.error_code(), 45);
    }
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.append(&idem(3, 0, 102, 1), NOW).unwrap().base_offset, 2);
    // Within one request the second batch must follow the first.
    let mut req = idem(3, 0, 103, 2);
    req.extend_from_slice(&idem(3, 0, 106, 1));
    assert!(matches!(
        log.append(&req, NOW),
        Err(AppendError::OutOfOrderSequence {
            first_seq: 106,
            last_seq: 104,
            ..
        })
    ));
    let mut req = idem(3, 0, 103, 2);
    req.extend_from_slice(&idem(3, 0, 105, 1));
    let out = log.append(&req, NOW).unwrap();
    assert_eq!((out.base_offset, out.last_offset), (3, 5));
}

#[test]
fn stale_epoch_and_epoch_bump() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    log.append(&idem(9, 2, 0, 5), NOW).unwrap();
    let err = log.append(&idem(9, 1, 5, 1), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::InvalidProducerEpoch {
                producer_id: 9,
                epoch: 1,
                current_epoch: 2
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.error_code(), 47);
    // A new epoch must start at sequence 0.
    let err = log.append(&idem(9, 3, 5, 1), NOW).unwrap_err();
    assert_eq!(err.error_code(), 45);
    let out = log.append(&idem(9, 3, 0, 2), NOW).unwrap();
    assert_eq!(out.base_offset, 5);
    assert_eq!(log.append(&idem(9, 3, 2, 1), NOW).unwrap().base_offset, 7);
    // The old epoch is fenced now, and its batches are no longer duplicates.
    assert_eq!(log.append(&idem(9, 2, 0, 5), NOW).unwrap_err().error_code(), 47);
    assert_eq!(log.log_end_offset(), 8);
}

#[test]
fn duplicates_are_detected_after_reopen_across_rolls() {
    for clean in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        // Every append after the first rolls a segment (and writes a snapshot).
        let config = small(1, 4096);
        let mut log = open(dir.path(), config.clone());
        let batches: Vec<Vec<u8>> = (0..3).map(|i| idem(1, 0, i * 2, 2)).collect();
        for b in &batches {
            log.append(b, NOW).unwrap();
        }
        log.append(&idem(2, 0, 0, 1), NOW).unwrap();
        assert_eq!(log.segment_count(), 4);
        assert!(dir.path().join(format!("{:020}.snapshot", 6)).exists());
        if clean {
            log.close().unwrap();
        } else {
            crash(log);
        }
        let mut log = open(dir.path(), config.clone());
        assert_eq!(log.producer_count(), 2);
        for (i, b) in batches.iter().enumerate() {
            let dup = log.append(b, NOW).unwrap();
            assert!(dup.duplicate, "clean={clean} batch {i}");
            assert_eq!(dup.base_offset, i as i64 * 2);
        }
        assert!(log.append(&idem(2, 0, 0, 1), NOW).unwrap().duplicate);
        assert_eq!(log.append(&idem(1, 0, 6, 1), NOW).unwrap().base_offset, 7);
        assert_eq!(log.append(&idem(1, 0, 9, 1), NOW).unwrap_err().error_code(), 45);
        crash(log);
        // Without any snapshot the whole log is replayed.
        for p in files_with_suffix(dir.path(), "snapshot") {
            fs::remove_file(p).unwrap();
        }
        let mut log = open(dir.path(), config.clone());
        assert!(log.append(&batches[0], NOW).unwrap().duplicate);
        assert!(log.append(&idem(1, 0, 6, 1), NOW).unwrap().duplicate);
        // A corrupt newest snapshot falls back to an older one plus replay.
        log.append(&idem(1, 0, 7, 1), NOW).unwrap();
        log.append(&idem(1, 0, 8, 1), NOW).unwrap();
        crash(log);
        let newest = files_with_suffix(dir.path(), "snapshot").pop().unwrap();
        fs::write(&newest, b"garbage").unwrap();
        let mut log = open(dir.path(), config);
        assert!(!newest.exists());
        assert!(log.append(&idem(1, 0, 8, 1), NOW).unwrap().duplicate);
        assert_eq!(log.append(&idem(1, 0, 9, 1), NOW).unwrap().base_offset, 10);
    }
}

#[test]
fn duplicates_survive_retention_through_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let config = small(1, 4096);
    let mut log = open(dir.path(), config.clone());
    let b0 = idem(1, 0, 0, 2);
    let b1 = idem(1, 0, 2, 2);
    log.append(&b0, NOW).unwrap(); // segment 0
    log.append(&b1, NOW).unwrap(); // segment 2
    log.append(&plain(2, NOW), NOW).unwrap(); // segment 4
    log.append(&plain(2, NOW), NOW).unwrap(); // segment 6 (active)
    log.update_config(LogConfig {
        retention_bytes: 2 * plain(2, NOW).len() as i64,
        ..config.clone()
    });
    assert_eq!(log.enforce_retention(NOW).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 4);
    assert!(!dir.path().join(format!("{:020}.snapshot", 2)).exists());
    crash(log);
    // The producer's batches are gone from the log: only the snapshot at offset 4 knows them.
    let mut log = open(dir.path(), config);
    let dup = log.append(&b0, NOW).unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.base_offset, dup.last_offset, dup.log_start_offset), (0, 1, 4));
    assert!(log.append(&b1, NOW).unwrap().duplicate);
    assert_eq!(log.append(&idem(1, 0, 4, 1), NOW).unwrap().base_offset, 8);
}

#[test]
fn reads_start_at_the_sparse_index_not_the_segment_start() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small(1 << 20, 64));
    for i in 0..100 {
        log.append(&plain(2, NOW + i), NOW).unwrap();
    }
    // Break the first batch's header behind the log's back: a walk from position 0 would fail.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(log_file(dir.path(), 0))
        .unwrap();
    f.write_all_at(&(-5i32).to_be_bytes(), 8).unwrap();
    assert!(matches!(log.read(0, 100, true), Err(ReadError::Io(_))));
    for o in [20, 101, 150, 199] {
        let bytes = log.read(o, 100, true).unwrap();
        assert_eq!(headers(&bytes)[0].base_offset, o / 2 * 2);
    }
    // Batch 74 holds offsets 148..=149 with timestamps NOW+74, NOW+75.
    assert_eq!(log.offset_for_timestamp(NOW + 75).unwrap(), Some((149, NOW + 75)));
}

#[test]
fn idle_producers_expire_with_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    log.append(&idem(4, 0, 0, 1), NOW).unwrap();
    log.enforce_retention(NOW + PRODUCER_ID_EXPIRATION_MS - 1).unwrap();
    assert_eq!(log.producer_count(), 1);
    log.enforce_retention(NOW + PRODUCER_ID_EXPIRATION_MS).unwrap();
    assert_eq!(log.producer_count(), 0);
    // Unknown again: any sequence is accepted.
    assert!(log.append(&idem(4, 0, 50, 1), NOW).is_ok());
}

/// Recomputes the CRC after editing covered bytes.
fn fix_crc(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn invalid_batches_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 300,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    let good = plain(2, NOW);

    let mut cases: Vec<(&str, Vec<u8>, i16)> = Vec::new();
    let mut b = good.clone();
    let n = b.len();
    b[n - 1] ^= 1;
    cases.push(("corrupt crc", b, 2));
    let mut b = good.clone();
    b[16] = 1;
    cases.push(("magic 1", b, 43));
    let mut b = good.clone();
    b[16] = 7;
    cases.push(("magic 7", b, 2));
    cases.push(("truncated", good[..good.len() - 1].to_vec(), 2));
    cases.push(("truncated header", good[..10].to_vec(), 2));
    let mut b = good.clone();
    b[8..12].copy_from_slice(&20i32.to_be_bytes());
    cases.push(("batch length below header", b, 2));
    cases.push(("empty", Vec::new(), 87));
    let mut b = good.clone();
    b[57..61].copy_from_slice(&0i32.to_be_bytes());
    fix_crc(&mut b);
    cases.push(("zero records", b, 87));
    let mut b = good.clone();
    b[57..61].copy_from_slice(&3i32.to_be_bytes());
    fix_crc(&mut b);
    cases.push(("count != lastOffsetDelta + 1", b, 87));
    let mut b = good.clone();
    b[0..8].copy_from_slice(&5i64.to_be_bytes());
    cases.push(("non-zero base offset", b, 87));
    let mut b = good.clone();
    b[22] |= 1 << 5;
    fix_crc(&mut b);
    cases.push(("control batch", b, 87));
    let mut b = good.clone();
    b[22] |= 1 << 3;
    fix_crc(&mut b);
    cases.push(("log append time", b, 87));
    let mut b = good.clone();
    b[22] |= 7;
    fix_crc(&mut b);
    cases.push(("unknown compression", b, 2));
    let mut b = idem(5, 0, 0, 1);
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    fix_crc(&mut b);
    cases.push(("idempotent without sequence", b, 87));
    let tx = encode_batch(&[NOW], Some((5, 0, 0)), Compression::None, true, |_| b"t".to_vec());
    cases.push(("transactional", tx, 48));
    let big = encode_batch(&[NOW], None, Compression::None, false, |_| vec![b'x'; 400]);
    cases.push(("too large", big.clone(), 10));
    let mut two = good.clone();
    let mut bad = good.clone();
    bad[n - 1] ^= 1;
    two.extend_from_slice(&bad);
    cases.push(("second batch corrupt", two, 2));
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0u8; 5]);
    cases.push(("trailing bytes", trailing, 2));

    for (what, bytes, code) in cases {
        let err = log.append(&bytes, NOW).unwrap_err();
        assert_eq!(err.error_code(), code, "{what}: {err}");
        assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0), "{what}");
    }
    assert!(matches!(
        log.append(&big, NOW),
        Err(AppendError::RecordTooLarge { size, max: 300 }) if size == big.len()
    ));
    let mut b = good.clone();
    b[16] = 0;
    assert!(matches!(log.append(&b, NOW), Err(AppendError::UnsupportedMagic(0))));
    assert!(matches!(
        log.append(
            &encode_batch(&[NOW], Some((5, 0, 0)), Compression::None, true, |_| vec![]),
            NOW
        ),
        Err(AppendError::TransactionalNotSupported)
    ));
    // The log still works.
    assert_eq!(log.append(&good, NOW).unwrap().base_offset, 0);
}

#[test]
fn offset_for_timestamp_across_segments_and_inside_compressed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small(400, 64));
    let batches = [
        with_ts(&[1000, 1001, 1002], Compression::None),             // 0..=2
        with_ts(&[2000, 2010, 2020, 2030], Compression::Gzip),       // 3..=6
        with_ts(&[3000, 3010, 3020], Compression::Lz4),              // 7..=9
        with_ts(&[1500], Compression::None),                         // 10 (out of order)
        with_ts(&[4000, 4005, 4010, 4020, 4030], Compression::Zstd), // 11..=15
        with_ts(&[5000, 5001], Compression::Snappy),                 // 16..=17
    ];
    for b in &batches {
        log.append(b, NOW).unwrap();
    }
    assert!(log.segment_count() >= 3, "{} segments", log.segment_count());
    let cases = [
        (0, Some((0, 1000))),
        (1000, Some((0, 1000))),
        (1001, Some((1, 1001))),
        (1003, Some((3, 2000))),
        (1500, Some((3, 2000))),
        (2015, Some((5, 2020))),
        (2030, Some((6, 2030))),
        (2031, Some((7, 3000))),
        (3011, Some((9, 3020))),
        (4011, Some((14, 4020))),
        (4030, Some((15, 4030))),
        (5001, Some((17, 5001))),
        (5002, None),
    ];
    for (ts, expected) in cases {
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), expected, "ts {ts}");
    }
    log.close().unwrap();
    let log = open(dir.path(), small(400, 64));
    for (ts, expected) in cases {
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), expected, "reopened, ts {ts}");
    }
}

#[test]
fn max_timestamp_finds_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = small(300, 64);
    let mut log = open(dir.path(), config.clone());
    assert_eq!(log.max_timestamp(), None);
    log.append(&with_ts(&[5, 9, 7], Compression::None), NOW).unwrap(); // 0..=2
    assert_eq!(log.max_timestamp(), Some((1, 9)));
    log.append(&with_ts(&[3, 12, 12, 4], Compression::Gzip), NOW).unwrap(); // 3..=6
    log.append(&with_ts(&[11], Compression::None), NOW).unwrap(); // 7
    log.append(&with_ts(&[12, 1], Compression::Lz4), NOW).unwrap(); // 8..=9
    assert!(log.segment_count() >= 2);
    assert_eq!(log.max_timestamp(), Some((4, 12)));
    log.close().unwrap();
    let mut log = open(dir.path(), config.clone());
    assert_eq!(log.max_timestamp(), Some((4, 12)));
    log.append(&with_ts(&[2, 13, 6], Compression::None), NOW).unwrap(); // 10..=12
    assert_eq!(log.max_timestamp(), Some((11, 13)));
    crash(log);
    let log = open(dir.path(), config);
    assert_eq!(log.max_timestamp(), Some((11, 13)));
}

#[test]
fn flush_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let mut log = open(&path, small(200, 64));
    for _ in 0..5 {
        log.append(&plain(2, NOW), NOW).unwrap();
    }
    log.flush().unwrap();
    assert!(fs::metadata(path.join(format!("{:020}.index", 0))).is_ok());
    log.delete().unwrap();
    assert!(!path.exists());
}

/// xorshift64*: deterministic randomness for the property test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_appends_read_back_exactly_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 6000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config.clone());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let compressions = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut next = 0i64;
    for _ in 0..400 {
        let mut req = Vec::new();
        let first = next;
        for _ in 0..=rng.below(3) {
            let n = 1 + rng.below(20) as usize;
            let pad = rng.below(300) as usize;
            let base = next;
            let timestamps: Vec<i64> = (0..n as i64).map(|i| NOW + base + i).collect();
            let compression = compressions[rng.below(5) as usize];
            req.extend(encode_batch(&timestamps, None, compression, false, |i| {
                let mut v = format!("{}:", base + i as i64).into_bytes();
                v.resize(v.len() + pad, b'.');
                v
            }));
            next += n as i64;
        }
        let out = log.append(&req, NOW).unwrap();
        assert_eq!((out.base_offset, out.last_offset), (first, next - 1));
    }
    assert!(log.segment_count() > 5);
    let check = |log: &PartitionLog, rng: &mut Rng| {
        assert_eq!(log.log_end_offset(), next);
        let max_bytes = 1 + rng.below(8000) as usize;
        let seen = consume_all(log, max_bytes);
        assert_eq!(seen.len() as i64, next, "max_bytes {max_bytes}");
        for (i, (o, v)) in seen.iter().enumerate() {
            assert_eq!(*o, i as i64);
            assert!(v.starts_with(format!("{o}:").as_bytes()));
        }
        for _ in 0..300 {
            let o = rng.below(next as u64) as i64;
            let max = rng.below(3000) as usize;
            let bytes = log.read(o, max, false).unwrap();
            assert!(bytes.len() <= max);
            if let Some(h) = headers(&bytes).first() {
                assert!(h.base_offset <= o && o <= h.last_offset(), "offset {o}");
            }
            let bytes = log.read(o, max, true).unwrap();
            let h = headers(&bytes)[0];
            assert!(h.base_offset <= o && o <= h.last_offset(), "offset {o}");
            let ts = NOW + o;
            assert_eq!(log.offset_for_timestamp(ts).unwrap(), Some((o, ts)));
        }
        assert_eq!(log.max_timestamp(), Some((next - 1, NOW + next - 1)));
    };
    check(&log, &mut rng);
    log.close().unwrap();
    let log = open(dir.path(), config.clone());
    check(&log, &mut rng);
    crash(log);
    let log = open(dir.path(), config);
    check(&log, &mut rng);
}

#[test]
fn partition_log_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<PartitionLog>();
    assert_send::<std::sync::Mutex<PartitionLog>>();
}
