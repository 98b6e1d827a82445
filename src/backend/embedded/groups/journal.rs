//! Durable committed-offset store: an in-memory map backed by an append-only journal file.
//!
//! File `group-offsets.journal` in the broker's metadata directory. After a `#` header line,
//! every line is one record: `<crc32c of the JSON, 8 hex digits> <JSON>\n`. Each change (a whole
//! OffsetCommit request, a deletion, ...) is one line written with a single `write` call before
//! the coordinator answers, so a `kill -9` after the response cannot lose it (the page cache
//! survives the process); [`OffsetStore::sync`] adds the fsync. At load, a torn last line (no
//! newline) or a line failing its checksum is skipped. The journal is compacted (rewritten from
//! memory to a temporary file, fsynced, atomically renamed) at open and whenever it grows past
//! twice its compacted size plus [`COMPACT_MIN_BYTES`].

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub(super) const JOURNAL_FILE: &str = "group-offsets.journal";
const JOURNAL_TMP: &str = "group-offsets.journal.tmp";
const HEADER: &str = "# kgate consumer group offsets journal v1\n";
/// Growth allowed beyond twice the compacted size before the journal is rewritten.
pub(super) const COMPACT_MIN_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OffsetEntry {
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    /// Wall-clock commit time (ms).
    pub commit_ts: i64,
    /// Explicit expiration (OffsetCommit v2-v4 retention time), if any.
    pub expire_ts: Option<i64>,
}

/// What survives a restart of a group besides its offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GroupMeta {
    pub generation: i32,
    pub protocol_type: Option<String>,
    /// Wall-clock time (ms) the group entered its state when this was written.
    pub state_ts: i64,
    /// The group was Empty when this was written.
    pub empty: bool,
}

#[derive(Debug, Default)]
pub(super) struct StoredGroup {
    /// topic -> partition -> committed offset.
    pub offsets: BTreeMap<String, BTreeMap<i32, OffsetEntry>>,
    pub meta: Option<GroupMeta>,
}

impl StoredGroup {
    fn is_empty(&self) -> bool {
        self.offsets.is_empty() && self.meta.is_none()
    }

    pub fn num_offsets(&self) -> usize {
        self.offsets.values().map(BTreeMap::len).sum()
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<&OffsetEntry> {
        self.offsets.get(topic)?.get(&partition)
    }

    fn remove(&mut self, topic: &str, partition: i32) -> bool {
        let Some(parts) = self.offsets.get_mut(topic) else {
            return false;
        };
        let removed = parts.remove(&partition).is_some();
        if parts.is_empty() {
            self.offsets.remove(topic);
        }
        removed
    }
}

/// One committed offset in a record: topic, partition, offset, leader epoch, metadata,
/// commit timestamp, expire timestamp.
#[derive(Debug, Serialize, Deserialize)]
struct OffsetRec(String, i32, i64, i32, String, i64, Option<i64>);

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t")]
enum Record {
    /// Offsets committed by one request (or a compacted group).
    #[serde(rename = "c")]
    Commit { g: String, o: Vec<OffsetRec> },
    /// Offsets deleted (OffsetDelete, expiration).
    #[serde(rename = "d")]
    Delete { g: String, p: Vec<(String, i32)> },
    /// Group metadata written at each new generation.
    #[serde(rename = "m")]
    Meta {
        g: String,
        gen: i32,
        pt: Option<String>,
        ts: i64,
        empty: bool,
    },
    /// Group deleted: offsets and metadata.
    #[serde(rename = "x")]
    DeleteGroup { g: String },
    /// Topic deleted: its offsets in every group.
    #[serde(rename = "tp")]
    DeleteTopic { topic: String },
}

/// What a load found, for logging and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct LoadStats {
    pub records: usize,
    pub skipped: usize,
    pub torn_tail: bool,
}

pub(super) struct OffsetStore {
    dir: PathBuf,
    file: File,
    len: u64,
    base_len: u64,
    compact_min_bytes: u64,
    /// A failed write may have left a partial line: rewrite the file before the next append.
    dirty: bool,
    groups: HashMap<String, StoredGroup>,
    pub load_stats: LoadStats,
}

impl OffsetStore {
    /// Loads the journal in `dir` (creating `dir` if needed) and compacts it.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join(JOURNAL_FILE);
        let mut groups = HashMap::new();
        let load_stats = match fs::read(&path) {
            Ok(data) => {
                // Never compact away data this version cannot read.
                if !data.is_empty() && !data.starts_with(HEADER.as_bytes()) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: not a kgate offsets journal, or an unsupported version of it",
                            path.display()
                        ),
                    ));
                }
                load(&data, &mut groups)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => LoadStats::default(),
            Err(e) => return Err(e),
        };
        if load_stats.skipped > 0 || load_stats.torn_tail {
            tracing::warn!(
                "Offsets journal {}: skipped {} damaged record(s){}",
                path.display(),
                load_stats.skipped,
                if load_stats.torn_tail {
                    " and a torn last record"
                } else {
                    ""
                }
            );
        }
        let (file, len) = rewrite(dir, &groups)?;
        Ok(OffsetStore {
            dir: dir.to_path_buf(),
            file,
            len,
            base_len: len,
            compact_min_bytes: COMPACT_MIN_BYTES,
            dirty: false,
            groups,
            load_stats,
        })
    }

    #[cfg(test)]
    pub fn set_compact_min_bytes(&mut self, bytes: u64) {
        self.compact_min_bytes = bytes;
    }

    #[cfg(test)]
    pub fn file_len(&self) -> u64 {
        self.len
    }

    pub fn group(&self, group: &str) -> Option<&StoredGroup> {
        self.groups.get(group)
    }

    pub fn group_ids(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    pub fn has_offsets(&self, group: &str) -> bool {
        self.groups.get(group).map(|g| !g.offsets.is_empty()).unwrap_or(false)
    }

    /// Journals then applies one request's commits.
    pub fn commit(&mut self, group: &str, entries: Vec<(String, i32, OffsetEntry)>) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let rec = Record::Commit {
            g: group.to_string(),
            o: entries
                .iter()
                .map(|(t, p, e)| {
                    OffsetRec(
                        t.clone(),
                        *p,
                        e.offset,
                        e.leader_epoch,
                        e.metadata.clone(),
                        e.commit_ts,
                        e.expire_ts,
                    )
                })
                .collect(),
        };
        self.append(&rec)?;
        let g = self.groups.entry(group.to_string()).or_default();
        for (topic, partition, entry) in entries {
            g.offsets.entry(topic).or_default().insert(partition, entry);
        }
        self.maybe_compact();
        Ok(())
    }

    /// Deletes the given offsets; returns how many existed.
    pub fn delete_offsets(&mut self, group: &str, partitions: &[(String, i32)]) -> io::Result<usize> {
        let Some(g) = self.groups.get(group) else {
            return Ok(0);
        };
        let present: Vec<(String, i32)> = partitions
            .iter()
            .filter(|(t, p)| g.get(t, *p).is_some())
            .cloned()
            .collect();
        if present.is_empty() {
            return Ok(0);
        }
        self.append(&Record::Delete {
            g: group.to_string(),
            p: present.clone(),
        })?;
        apply(
            &mut self.groups,
            Record::Delete {
                g: group.to_string(),
                p: present.clone(),
            },
        );
        self.maybe_compact();
        Ok(present.len())
    }

    /// Deletes a group's offsets and metadata; returns how many offsets it had.
    pub fn delete_group(&mut self, group: &str) -> io::Result<usize> {
        let Some(g) = self.groups.get(group) else {
            return Ok(0);
        };
        let n = g.num_offsets();
        self.append(&Record::DeleteGroup { g: group.to_string() })?;
        self.groups.remove(group);
        self.maybe_compact();
        Ok(n)
    }

    /// Deletes a topic's offsets in every group; returns the groups that had some.
    pub fn delete_topic(&mut self, topic: &str) -> io::Result<Vec<String>> {
        let affected: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.offsets.contains_key(topic))
            .map(|(id, _)| id.clone())
            .collect();
        if affected.is_empty() {
            return Ok(affected);
        }
        self.append(&Record::DeleteTopic {
            topic: topic.to_string(),
        })?;
        apply(
            &mut self.groups,
            Record::DeleteTopic {
                topic: topic.to_string(),
            },
        );
        self.maybe_compact();
        Ok(affected)
    }

    pub fn set_meta(&mut self, group: &str, meta: GroupMeta) -> io::Result<()> {
        if self.groups.get(group).and_then(|g| g.meta.as_ref()) == Some(&meta) {
            return Ok(());
        }
        let rec = Record::Meta {
            g: group.to_string(),
            gen: meta.generation,
            pt: meta.protocol_type.clone(),
            ts: meta.state_ts,
            empty: meta.empty,
        };
        self.append(&rec)?;
        self.groups.entry(group.to_string()).or_default().meta = Some(meta);
        self.maybe_compact();
        Ok(())
    }

    /// A handle on the journal file, to fsync it without holding the store's lock.
    pub fn file_handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Rewrites the journal from memory.
    pub fn compact(&mut self) -> io::Result<()> {
        let (file, len) = rewrite(&self.dir, &self.groups)?;
        self.file = file;
        self.len = len;
        self.base_len = len;
        self.dirty = false;
        Ok(())
    }

    fn append(&mut self, rec: &Record) -> io::Result<()> {
        if self.dirty {
            self.compact()?;
        }
        let line = encode_line(rec)?;
        match self.file.write_all(line.as_bytes()) {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.dirty = true;
                Err(e)
            }
        }
    }

    fn maybe_compact(&mut self) {
        let limit = self.base_len.saturating_mul(2).saturating_add(self.compact_min_bytes);
        if self.len > limit {
            if let Err(e) = self.compact() {
                tracing::warn!("Failed to compact the offsets journal: {e}");
            }
        }
    }
}

fn encode_line(rec: &Record) -> io::Result<String> {
    let json = serde_json::to_string(rec).map_err(io::Error::other)?;
    Ok(format!("{:08x} {}\n", crc32c::crc32c(json.as_bytes()), json))
}

fn decode_line(line: &[u8]) -> Option<Record> {
    if line.len() < 10 || line[8] != b' ' {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(&line[..8]).ok()?, 16).ok()?;
    let json = &line[9..];
    if crc32c::crc32c(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

fn load(data: &[u8], groups: &mut HashMap<String, StoredGroup>) -> LoadStats {
    let mut stats = LoadStats::default();
    let mut rest = data;
    while !rest.is_empty() {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            // Last write cut short: the request it belonged to was never acknowledged.
            stats.torn_tail = true;
            break;
        };
        let line = &rest[..end];
        rest = &rest[end + 1..];
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        match decode_line(line) {
            Some(rec) => {
                stats.records += 1;
                apply(groups, rec);
            }
            None => stats.skipped += 1,
        }
    }
    stats
}

fn apply(groups: &mut HashMap<String, StoredGroup>, rec: Record) {
    match rec {
        Record::Commit { g, o } => {
            let group = groups.entry(g).or_default();
            for OffsetRec(topic, partition, offset, leader_epoch, metadata, commit_ts, expire_ts) in o {
                group.offsets.entry(topic).or_default().insert(
                    partition,
                    OffsetEntry {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_ts,
                        expire_ts,
                    },
                );
            }
        }
        Record::Delete { g, p } => {
            if let Some(group) = groups.get_mut(&g) {
                for (topic, partition) in p {
                    group.remove(&topic, partition);
                }
                if group.is_empty() {
                    groups.remove(&g);
                }
            }
        }
        Record::Meta { g, gen, pt, ts, empty } => {
            groups.entry(g).or_default().meta = Some(GroupMeta {
                generation: gen,
                protocol_type: pt,
                state_ts: ts,
                empty,
            });
        }
        Record::DeleteGroup { g } => {
            groups.remove(&g);
        }
        Record::DeleteTopic { topic } => {
            groups.retain(|_, group| {
                group.offsets.remove(&topic);
                !group.is_empty()
            });
        }
    }
}

/// Writes the whole store to a temporary file, fsyncs it and renames it over the journal.
/// Returns the new journal (positioned at its end) and its length.
fn rewrite(dir: &Path, groups: &HashMap<String, StoredGroup>) -> io::Result<(File, u64)> {
    let mut out = String::from(HEADER);
    let mut ids: Vec<&String> = groups.keys().collect();
    ids.sort();
    for id in ids {
        let group = &groups[id];
        if let Some(meta) = &group.meta {
            out.push_str(&encode_line(&Record::Meta {
                g: id.clone(),
                gen: meta.generation,
                pt: meta.protocol_type.clone(),
                ts: meta.state_ts,
                empty: meta.empty,
            })?);
        }
        if !group.offsets.is_empty() {
            let o = group
                .offsets
                .iter()
                .flat_map(|(topic, parts)| {
                    parts.iter().map(move |(p, e)| {
                        OffsetRec(
                            topic.clone(),
                            *p,
                            e.offset,
                            e.leader_epoch,
                            e.metadata.clone(),
                            e.commit_ts,
                            e.expire_ts,
                        )
                    })
                })
                .collect();
            out.push_str(&encode_line(&Record::Commit { g: id.clone(), o })?);
        }
    }
    let tmp = dir.join(JOURNAL_TMP);
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
    file.write_all(out.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(JOURNAL_FILE))?;
    // Make the rename durable; not all platforms can fsync a directory.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok((file, out.len() as u64))
}
