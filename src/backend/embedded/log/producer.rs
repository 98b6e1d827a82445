//! Idempotent-producer state: per producer id, the epoch and the metadata of the last five
//! batches, following apache/kafka's `ProducerStateEntry` and `ProducerAppendInfo`
//! (storage/src/main/java/org/apache/kafka/storage/internals/log/), client-origin appends.
//!
//! Validation of a batch from producer `pid` with epoch `e` and sequences `[first, last]`:
//! 1. Duplicate: if the *committed* entry has epoch `e` and one of its cached batches has exactly
//!    `[first, last]`, the append is a duplicate and returns that batch's offsets (Kafka's
//!    `findDuplicateBatch`, checked before anything else).
//! 2. `e` lower than the current epoch -> `InvalidProducerEpoch`.
//! 3. `e` different from the current epoch (a bump, or a producer we have no state for): the first
//!    sequence must be 0, unless we know no epoch for the producer at all (unknown producer, e.g.
//!    expired or never seen): then any sequence is accepted, as Kafka does.
//! 4. Same epoch: `first` must be `lastSeq + 1` (wrapping from `i32::MAX` to 0) of the current
//!    entry, unless the committed entry has no epoch; else `OutOfOrderSequence`.
//!
//! "Current" includes batches of the same request validated before this one, "committed" does
//! not (Kafka's `updatedEntry` vs `currentEntry`). A bumped epoch clears the cached batches.
//! Entries expire `PRODUCER_ID_EXPIRATION_MS` after their last batch's max timestamp (Kafka's
//! `producer.id.expiration.ms` rule, applied by `enforce_retention`).

use std::collections::{HashMap, VecDeque};

use bytes::Buf;

use super::batch::{BatchHeader, NO_PRODUCER_EPOCH, NO_SEQUENCE};
use super::AppendError;

/// Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`.
pub(crate) const BATCHES_TO_RETAIN: usize = 5;

/// Metadata of one appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMeta>,
    /// Max timestamp of the last batch (drives expiration).
    pub last_timestamp: i64,
}

impl ProducerEntry {
    fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }
}

/// A validated, not yet applied batch of a producer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub meta: BatchMeta,
    pub max_timestamp: i64,
}

pub(crate) enum Check {
    Duplicate(BatchMeta),
    Append(PendingBatch),
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProducerStates {
    map: HashMap<i64, ProducerEntry>,
}

impl ProducerStates {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub(crate) fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.map.get(&producer_id)
    }

    /// Validates an idempotent batch that would get offsets `[first_offset, last_offset]`.
    /// `pending` are the earlier batches of the same request.
    pub(crate) fn check(
        &self,
        h: &BatchHeader,
        first_offset: i64,
        last_offset: i64,
        pending: &[PendingBatch],
    ) -> Result<Check, AppendError> {
        let pid = h.producer_id;
        let epoch = h.producer_epoch;
        let first_seq = h.base_sequence;
        let last_seq = h.last_sequence();
        let committed = self.map.get(&pid);
        if let Some(c) = committed {
            if c.epoch == epoch {
                if let Some(dup) = c
                    .batches
                    .iter()
                    .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
                {
                    return Ok(Check::Duplicate(*dup));
                }
            }
        }
        let (current_epoch, current_last_seq) = match (pending.iter().rev().find(|p| p.producer_id == pid), committed) {
            (Some(p), _) => (p.epoch, p.meta.last_seq),
            (None, Some(c)) => (c.epoch, c.last_seq()),
            (None, None) => (NO_PRODUCER_EPOCH, NO_SEQUENCE),
        };
        let committed_epoch = committed.map_or(NO_PRODUCER_EPOCH, |c| c.epoch);
        if epoch < current_epoch {
            return Err(AppendError::InvalidProducerEpoch {
                producer_id: pid,
                epoch,
                current_epoch,
            });
        }
        let out_of_order = if epoch != current_epoch {
            first_seq != 0 && current_epoch != NO_PRODUCER_EPOCH
        } else {
            committed_epoch != NO_PRODUCER_EPOCH && !in_sequence(current_last_seq, first_seq)
        };
        if out_of_order {
            return Err(AppendError::OutOfOrderSequence {
                producer_id: pid,
                epoch,
                first_seq,
                last_seq: current_last_seq,
            });
        }
        Ok(Check::Append(PendingBatch {
            producer_id: pid,
            epoch,
            meta: BatchMeta {
                first_seq,
                last_seq,
                first_offset,
                last_offset,
            },
            max_timestamp: h.max_timestamp,
        }))
    }

    /// Records an appended batch (also used, unvalidated, when replaying the log).
    pub(crate) fn apply(&mut self, p: &PendingBatch) {
        let entry = self.map.entry(p.producer_id).or_insert_with(|| ProducerEntry {
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::with_capacity(BATCHES_TO_RETAIN),
            last_timestamp: p.max_timestamp,
        });
        if entry.epoch != p.epoch {
            entry.batches.clear();
            entry.epoch = p.epoch;
        }
        if entry.batches.len() == BATCHES_TO_RETAIN {
            entry.batches.pop_front();
        }
        entry.batches.push_back(p.meta);
        entry.last_timestamp = p.max_timestamp;
    }

    /// Replays a stored batch header.
    pub(crate) fn replay(&mut self, h: &BatchHeader) {
        if !h.has_producer_id() {
            return;
        }
        self.apply(&PendingBatch {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            meta: BatchMeta {
                first_seq: h.base_sequence,
                last_seq: h.last_sequence(),
                first_offset: h.base_offset,
                last_offset: h.last_offset(),
            },
            max_timestamp: h.max_timestamp,
        });
    }

    /// Drops producers whose last batch is `expiration_ms` or more older than `now_ms`.
    pub(crate) fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.map.len();
        self.map
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.map.len()
    }

    /// Snapshot file content (see the module docs of `log` for the layout).
    pub(crate) fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.map.len() * (19 + BATCHES_TO_RETAIN * 24) + 4);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(self.map.len() as u32).to_be_bytes());
        for (pid, e) in &self.map {
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses a snapshot written by [`encode_snapshot`](Self::encode_snapshot) for `offset`.
    pub(crate) fn decode_snapshot(data: &[u8], offset: i64) -> Result<ProducerStates, String> {
        let body_len = data
            .len()
            .checked_sub(4)
            .ok_or_else(|| "snapshot too short".to_string())?;
        let (body, mut crc_bytes) = data.split_at(body_len);
        if crc32c::crc32c(body) != crc_bytes.get_u32() {
            return Err("snapshot CRC mismatch".into());
        }
        let mut b = body;
        let need = |b: &[u8], n: usize| {
            if b.remaining() < n {
                Err("snapshot truncated".to_string())
            } else {
                Ok(())
            }
        };
        need(b, 20)?;
        if &b[..4] != SNAPSHOT_MAGIC {
            return Err("not a producer snapshot".into());
        }
        b.advance(4);
        let version = b.get_u16();
        if version != SNAPSHOT_VERSION {
            return Err(format!("unsupported snapshot version {version}"));
        }
        b.advance(2);
        let at = b.get_i64();
        if at != offset {
            return Err(format!("snapshot is for offset {at}, not {offset}"));
        }
        let count = b.get_u32() as usize;
        let mut map = HashMap::with_capacity(count.min(body.len() / 19));
        for _ in 0..count {
            need(b, 19)?;
            let pid = b.get_i64();
            let epoch = b.get_i16();
            let last_timestamp = b.get_i64();
            let n = b.get_u8() as usize;
            if n > BATCHES_TO_RETAIN {
                return Err(format!("{n} batches for producer {pid}"));
            }
            need(b, n * 24)?;
            let mut batches = VecDeque::with_capacity(BATCHES_TO_RETAIN);
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: b.get_i32(),
                    last_seq: b.get_i32(),
                    first_offset: b.get_i64(),
                    last_offset: b.get_i64(),
                });
            }
            map.insert(
                pid,
                ProducerEntry {
                    epoch,
                    batches,
                    last_timestamp,
                },
            );
        }
        if b.has_remaining() {
            return Err("trailing bytes in snapshot".into());
        }
        Ok(ProducerStates { map })
    }
}

const SNAPSHOT_MAGIC: &[u8; 4] = b"KGPS";
const SNAPSHOT_VERSION: u16 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 1,
            max_timestamp: 1,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    fn append(s: &mut ProducerStates, h: &BatchHeader, off: i64) -> Result<Check, AppendError> {
        let c = s.check(h, off, off + i64::from(h.record_count) - 1, &[])?;
        if let Check::Append(p) = &c {
            s.apply(p);
        }
        Ok(c)
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            append(&mut s, &header(1, 0, i * 2, 2), i64::from(i) * 2).unwrap();
        }
        append(&mut s, &header(9, 3, 100, 1), 50).unwrap();
        let bytes = s.encode_snapshot(42);
        let back = ProducerStates::decode_snapshot(&bytes, 42).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.get(1).unwrap().batches.len(), BATCHES_TO_RETAIN);
        assert!(ProducerStates::decode_snapshot(&bytes, 43).is_err());
        let mut bad = bytes.clone();
        bad[25] ^= 1;
        assert!(ProducerStates::decode_snapshot(&bad, 42).is_err());
        assert!(ProducerStates::decode_snapshot(&bytes[..bytes.len() - 1], 42).is_err());
    }

    #[test]
    fn sequence_wraps_and_unknown_producer_starts_anywhere() {
        let mut s = ProducerStates::default();
        assert!(matches!(
            append(&mut s, &header(5, 0, i32::MAX - 1, 2), 0),
            Ok(Check::Append(_))
        ));
        assert!(matches!(append(&mut s, &header(5, 0, 0, 1), 2), Ok(Check::Append(_))));
        assert!(matches!(
            append(&mut s, &header(5, 0, 5, 1), 3),
            Err(AppendError::OutOfOrderSequence { .. })
        ));
    }

    #[test]
    fn expiry_uses_last_timestamp() {
        let mut s = ProducerStates::default();
        append(&mut s, &header(5, 0, 0, 1), 0).unwrap();
        assert_eq!(s.expire(1 + 999, 1000), 0);
        assert_eq!(s.expire(1 + 1000, 1000), 1);
        assert_eq!(s.len(), 0);
    }
}
