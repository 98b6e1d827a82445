//! Record batch v2 headers: hand parsing of the fixed 61-byte wire layout and validation of
//! producer input (the cheap parts of Kafka's `LogValidator` / `UnifiedLog.analyzeAndValidateRecords`).

use bytes::Buf;

use super::AppendError;

/// `baseOffset` (8) + `batchLength` (4): the bytes not counted by `batchLength`.
pub(crate) const LOG_OVERHEAD: usize = 12;
/// Size of the fixed v2 batch header (everything before the first record).
pub(crate) const HEADER_SIZE: usize = 61;
/// Smallest legal `batchLength` of a v2 batch.
pub(crate) const MIN_BATCH_LENGTH: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;
/// Bytes 0..16 of a batch (baseOffset, batchLength, partitionLeaderEpoch, magic without the byte itself)
/// are not covered by the CRC; the broker rewrites baseOffset and partitionLeaderEpoch in there.
pub(crate) const PATCHED_PREFIX: usize = 16;
const MAGIC_OFFSET: usize = 16;
/// The CRC covers attributes (offset 21) to the end of the batch.
pub(crate) const CRC_START: usize = 21;
/// Bytes needed to learn a batch's size and magic.
const PREFIX_FOR_SIZE_AND_MAGIC: usize = MAGIC_OFFSET + 1;

pub(crate) const CURRENT_MAGIC: i8 = 2;
pub(crate) const NO_PRODUCER_ID: i64 = -1;
pub(crate) const NO_PRODUCER_EPOCH: i16 = -1;
pub(crate) const NO_SEQUENCE: i32 = -1;
pub(crate) const NO_TIMESTAMP: i64 = -1;

const COMPRESSION_MASK: i16 = 0x07;
const MAX_COMPRESSION_CODEC: i16 = 4; // zstd
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// The fixed header of a record batch (magic v2), as laid out on the wire and on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf`; `None` when fewer than [`HEADER_SIZE`] bytes are
    /// available. No semantic check is made here.
    pub(crate) fn parse(buf: &[u8]) -> Option<BatchHeader> {
        let mut b = buf.get(..HEADER_SIZE)?;
        Some(BatchHeader {
            base_offset: b.get_i64(),
            batch_length: b.get_i32(),
            partition_leader_epoch: b.get_i32(),
            magic: b.get_i8(),
            crc: b.get_u32(),
            attributes: b.get_i16(),
            last_offset_delta: b.get_i32(),
            base_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            record_count: b.get_i32(),
        })
    }

    /// Total size of the batch in bytes, including the log overhead. Only meaningful once
    /// `batch_length >= MIN_BATCH_LENGTH` has been checked (negative lengths map to 0).
    pub(crate) fn size(&self) -> u64 {
        LOG_OVERHEAD as u64 + u64::try_from(self.batch_length).unwrap_or(0)
    }

    pub(crate) fn last_offset(&self) -> i64 {
        self.base_offset.saturating_add(i64::from(self.last_offset_delta))
    }

    pub(crate) fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub(crate) fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub(crate) fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub(crate) fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    pub(crate) fn has_producer_id(&self) -> bool {
        self.producer_id > NO_PRODUCER_ID
    }

    /// Sequence number of the last record (Kafka's `DefaultRecordBatch.lastSequence`).
    pub(crate) fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }

    /// Checks a header read back from a segment file: structural sanity only (the CRC is checked
    /// separately, by streaming). Returns a reason when it is not a plausible stored batch.
    pub(crate) fn check_stored(&self) -> Result<(), String> {
        if self.magic != CURRENT_MAGIC {
            return Err(format!("magic {}", self.magic));
        }
        if self.batch_length < MIN_BATCH_LENGTH {
            return Err(format!("batch length {}", self.batch_length));
        }
        if self.last_offset_delta < 0 || self.record_count != self.last_offset_delta.wrapping_add(1) {
            return Err(format!(
                "lastOffsetDelta {} with record count {}",
                self.last_offset_delta, self.record_count
            ));
        }
        Ok(())
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
pub(crate) fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// CRC-32C of a batch's checked range, i.e. `batch[21..]`.
pub(crate) fn batch_crc(batch: &[u8]) -> Option<u32> {
    batch.get(CRC_START..).map(crc32c::crc32c)
}

/// A batch of a producer's request that passed validation: where it is in the request buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ValidatedBatch {
    pub start: usize,
    pub header: BatchHeader,
}

impl ValidatedBatch {
    pub(crate) fn end(&self) -> usize {
        self.start + self.header.size() as usize
    }
}

fn read_i32_at(buf: &[u8], at: usize) -> Option<i32> {
    let mut b = buf.get(at..at + 4)?;
    Some(b.get_i32())
}

/// Validates every batch of a producer's `records` (concatenated v2 batches) before anything is
/// written; fills `out` with the batches in order. Rules (Kafka's, where they need no record-level
/// work): magic 2 (0/1 -> UnsupportedMagic, anything else is corrupt), a batch length that is at
/// least a header and fits the buffer, size <= max.message.bytes, CRC-32C, a known compression
/// codec, baseOffset 0, recordCount > 0 and == lastOffsetDelta + 1, no control batch, no
/// LogAppendTime set by a producer, a sequence number for idempotent batches, no transactions.
pub(crate) fn validate_producer_batches(
    records: &[u8],
    max_message_bytes: usize,
    out: &mut Vec<ValidatedBatch>,
) -> Result<(), AppendError> {
    out.clear();
    if records.is_empty() {
        return Err(AppendError::InvalidRecord(
            "produce data must hold at least one record batch".into(),
        ));
    }
    let mut start = 0usize;
    while start < records.len() {
        let rest = &records[start..];
        if rest.len() < PREFIX_FOR_SIZE_AND_MAGIC {
            return Err(AppendError::Corrupt(format!(
                "truncated record batch at byte {start}: {} bytes left",
                rest.len()
            )));
        }
        let magic = rest[MAGIC_OFFSET] as i8;
        if magic != CURRENT_MAGIC {
            return Err(if magic == 0 || magic == 1 {
                AppendError::UnsupportedMagic(magic)
            } else {
                AppendError::Corrupt(format!("invalid magic {magic} at byte {start}"))
            });
        }
        let batch_length = read_i32_at(rest, 8).unwrap_or(-1);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(AppendError::Corrupt(format!(
                "batch length {batch_length} at byte {start} is below the minimum {MIN_BATCH_LENGTH}"
            )));
        }
        let size = LOG_OVERHEAD + batch_length as usize;
        if size > rest.len() {
            return Err(AppendError::Corrupt(format!(
                "batch at byte {start} declares {size} bytes but only {} remain",
                rest.len()
            )));
        }
        if size > max_message_bytes {
            return Err(AppendError::RecordTooLarge {
                size,
                max: max_message_bytes,
            });
        }
        let batch = &rest[..size];
        let header = BatchHeader::parse(batch)
            .ok_or_else(|| AppendError::Corrupt(format!("truncated batch header at byte {start}")))?;
        if batch_crc(batch) != Some(header.crc) {
            return Err(AppendError::Corrupt(format!("CRC mismatch in batch at byte {start}")));
        }
        if header.compression() > MAX_COMPRESSION_CODEC {
            return Err(AppendError::Corrupt(format!(
                "unknown compression codec {}",
                header.compression()
            )));
        }
        if header.base_offset != 0 {
            return Err(AppendError::InvalidRecord(format!(
                "the baseOffset of a produced record batch must be 0, got {}",
                header.base_offset
            )));
        }
        if header.last_offset_delta < 0 {
            return Err(AppendError::InvalidRecord(format!(
                "invalid lastOffsetDelta {}",
                header.last_offset_delta
            )));
        }
        if header.record_count <= 0 {
            return Err(AppendError::InvalidRecord(format!(
                "invalid record count {}",
                header.record_count
            )));
        }
        if i64::from(header.last_offset_delta) + 1 != i64::from(header.record_count) {
            return Err(AppendError::InvalidRecord(format!(
                "inconsistent batch: lastOffsetDelta {} but {} records",
                header.last_offset_delta, header.record_count
            )));
        }
        if header.is_control() {
            return Err(AppendError::InvalidRecord(
                "clients may not write control batches".into(),
            ));
        }
        if header.is_transactional() {
            return Err(AppendError::TransactionalNotSupported);
        }
        if header.is_log_append_time() {
            return Err(AppendError::InvalidRecord(
                "producers may not set the LogAppendTime timestamp type".into(),
            ));
        }
        if header.has_producer_id() && header.base_sequence < 0 {
            return Err(AppendError::InvalidRecord(format!(
                "invalid sequence number {} for producer {}",
                header.base_sequence, header.producer_id
            )));
        }
        out.push(ValidatedBatch { start, header });
        start += size;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_wraps_like_kafka() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(i32::MAX, 0), i32::MAX);
    }

    #[test]
    fn crc_append_matches_one_shot() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let streamed = data.chunks(33).fold(0u32, crc32c::crc32c_append);
        assert_eq!(streamed, crc32c::crc32c(&data));
    }

    #[test]
    fn short_header_is_none() {
        assert!(BatchHeader::parse(&[0u8; HEADER_SIZE - 1]).is_none());
        assert!(BatchHeader::parse(&[0u8; HEADER_SIZE]).is_some());
    }
}
