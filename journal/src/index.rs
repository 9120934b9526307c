//! The sparse index: `<first seq>.idx` beside each sealed segment, mapping every
//! `index_interval`-th sequence number to its frame's byte offset, so that opening a reader at
//! any sequence number scans at most `index_interval` frames.
//!
//! ```text
//! offset field
//!  0     magic "ORDOIDX\0"
//!  8     version u32 = 1
//! 12     entry count u32
//! 16     first seq of the segment u64
//! 24     last seq of the segment u64
//! 32     end offset u64: just after the segment's last frame
//! 40     last record's timestamp u64
//! 48     last record's crc u32 (what the next segment's header chains to)
//! 52     reserved u32 = 0
//! 56     entries: (seq u64, offset u64) * count, strictly increasing
//! end    crc32 u32 of every byte before it
//! ```
//! The index is derived data: a missing or damaged index costs a scan, never correctness, and
//! `verify` reports it. Only sealed segments have one; the summary lets `open` check the chain of
//! segments without reading them.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{JournalError, Result};

const MAGIC: [u8; 8] = *b"ORDOIDX\0";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 56;

/// One index entry: the frame of `seq` starts at byte `offset` of the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Sequence number.
    pub seq: u64,
    /// Byte offset of its frame in the segment file.
    pub offset: u64,
}

/// What an index says about its sealed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentIndex {
    /// First sequence number of the segment.
    pub first_seq: u64,
    /// Last sequence number of the segment.
    pub last_seq: u64,
    /// Offset just after the last frame.
    pub end_offset: u64,
    /// Timestamp of the last record.
    pub last_timestamp_ns: u64,
    /// crc of the last record.
    pub last_crc: u32,
    /// Sparse entries.
    pub entries: Vec<IndexEntry>,
}

/// Path of the index of the segment starting at `first_seq`.
pub fn index_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.idx"))
}

/// Writes the index of a sealed segment (atomically: temporary file, then rename).
pub fn write_index(dir: &Path, index: &SegmentIndex, sync: bool) -> Result<()> {
    let count =
        u32::try_from(index.entries.len()).map_err(|_| JournalError::Config("index too large".into()))?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + index.entries.len() * 16 + 4);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes.extend_from_slice(&index.first_seq.to_le_bytes());
    bytes.extend_from_slice(&index.last_seq.to_le_bytes());
    bytes.extend_from_slice(&index.end_offset.to_le_bytes());
    bytes.extend_from_slice(&index.last_timestamp_ns.to_le_bytes());
    bytes.extend_from_slice(&index.last_crc.to_le_bytes());
    bytes.extend_from_slice(&0u32.to_le_bytes());
    debug_assert_eq!(bytes.len(), HEADER_BYTES);
    for e in &index.entries {
        bytes.extend_from_slice(&e.seq.to_le_bytes());
        bytes.extend_from_slice(&e.offset.to_le_bytes());
    }
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let path = index_path(dir, index.first_seq);
    let tmp = path.with_extension("idx.tmp");
    fs::write(&tmp, &bytes).map_err(|e| JournalError::io("write", &tmp, e))?;
    if sync {
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| JournalError::io("fsync", &tmp, e))?;
    }
    fs::rename(&tmp, &path).map_err(|e| JournalError::io("rename", &tmp, e))
}

/// Reads and validates an index. `Ok(None)` if there is none.
pub fn read_index(dir: &Path, first_seq: u64) -> Result<Option<SegmentIndex>> {
    let path = index_path(dir, first_seq);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(JournalError::io("read", &path, e)),
    };
    let bad = |offset: usize, reason: &str| JournalError::BadHeader {
        path: path.clone(),
        offset: offset as u64,
        reason: reason.to_string(),
    };
    if bytes.len() < HEADER_BYTES + 4 {
        return Err(bad(0, "index file too short"));
    }
    if bytes[..8] != MAGIC {
        return Err(bad(0, "bad magic: not an ordo index"));
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let version = u32_at(8);
    if version > VERSION {
        return Err(JournalError::NewerFormat {
            path,
            found: version,
            supported: VERSION,
        });
    }
    let count = u32_at(12) as usize;
    let expected_len = HEADER_BYTES + count * 16 + 4;
    if bytes.len() != expected_len {
        return Err(bad(12, "entry count does not match the file size"));
    }
    let crc_at = expected_len - 4;
    if crc32fast::hash(&bytes[..crc_at]) != u32_at(crc_at) {
        return Err(bad(crc_at, "index checksum mismatch"));
    }
    if u64_at(16) != first_seq {
        return Err(bad(16, "index belongs to another segment"));
    }
    if u32_at(52) != 0 {
        return Err(bad(52, "reserved field is set"));
    }
    let entries: Vec<IndexEntry> = (0..count)
        .map(|i| IndexEntry {
            seq: u64_at(HEADER_BYTES + i * 16),
            offset: u64_at(HEADER_BYTES + i * 16 + 8),
        })
        .collect();
    if entries
        .windows(2)
        .any(|w| w[0].seq >= w[1].seq || w[0].offset >= w[1].offset)
    {
        return Err(bad(HEADER_BYTES, "index entries are not strictly increasing"));
    }
    let index = SegmentIndex {
        first_seq,
        last_seq: u64_at(24),
        end_offset: u64_at(32),
        last_timestamp_ns: u64_at(40),
        last_crc: u32_at(48),
        entries,
    };
    if index.last_seq < index.first_seq {
        return Err(bad(24, "last sequence number before the first"));
    }
    Ok(Some(index))
}

/// The last entry at or before `seq`, if any.
pub fn lookup(entries: &[IndexEntry], seq: u64) -> Option<IndexEntry> {
    let after = entries.partition_point(|e| e.seq <= seq);
    after.checked_sub(1).map(|i| entries[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_lookup_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![
            IndexEntry { seq: 1, offset: 128 },
            IndexEntry {
                seq: 11,
                offset: 1024,
            },
        ];
        let index = SegmentIndex {
            first_seq: 1,
            last_seq: 12,
            end_offset: 2048,
            last_timestamp_ns: 5,
            last_crc: 0xabcd,
            entries: entries.clone(),
        };
        write_index(dir.path(), &index, false).unwrap();
        let read = read_index(dir.path(), 1).unwrap().unwrap();
        assert_eq!(read, index);
        let read = read.entries;
        assert_eq!(lookup(&read, 0), None);
        assert_eq!(lookup(&read, 10).unwrap().seq, 1);
        assert_eq!(lookup(&read, 11).unwrap().seq, 11);
        assert_eq!(lookup(&read, 99).unwrap().seq, 11);
        assert!(read_index(dir.path(), 2).unwrap().is_none());

        let path = index_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        bytes[60] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            read_index(dir.path(), 1),
            Err(JournalError::BadHeader { .. })
        ));
    }
}
