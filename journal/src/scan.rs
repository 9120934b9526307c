//! Scanning a whole segment: the one place that decides what is a record, what is a torn tail
//! and what is corruption. Recovery (on open) and `verify` both use it, so they can never
//! disagree about the same bytes.

use std::path::Path;

use crate::error::JournalError;
use crate::frame::{FRAME_ALIGN_BYTES, FrameCheck, check_frame};
use crate::index::IndexEntry;
use crate::segment::SEGMENT_HEADER_BYTES;

/// What the scan expects of a segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanExpect {
    /// Sequence number of the first record (the header's first seq).
    pub first_seq: u64,
    /// Timestamp of the previous segment's last record, 0 for the first segment.
    pub prev_timestamp_ns: u64,
    /// Whether this is the last segment: only there can damage be a torn tail.
    pub is_last: bool,
    /// Stop after this sequence number (a live writer may be writing past it).
    pub limit_seq: u64,
    /// Record an index entry every this many records.
    pub index_interval: u64,
}

/// Bad bytes after the last good record of the last segment, with nothing valid after them: what
/// a crash in the middle of a write leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Offset of the first bad byte (where the next frame would have started).
    pub offset: u64,
    /// Bytes from `offset` to the end of the last non-zero byte.
    pub bytes: u64,
}

/// The result of scanning one segment.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    /// Valid records found.
    pub records: u64,
    /// Last valid record: (seq, crc, timestamp).
    pub last: Option<(u64, u32, u64)>,
    /// Offset just after the last valid frame.
    pub end_offset: u64,
    /// Sparse index entries of the valid records.
    pub index: Vec<IndexEntry>,
    /// Damage that is not a torn tail, in file order.
    pub problems: Vec<JournalError>,
    /// A torn tail, if the segment is the last one and ends with one.
    pub torn_tail: Option<TornTail>,
    /// Whether the scan stopped at `limit_seq` rather than at the end of the data.
    pub hit_limit: bool,
}

/// Finds the next frame-aligned offset at or after `from` holding a checksum-valid frame.
pub(crate) fn next_valid_frame(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + 4 <= bytes.len() {
        if matches!(check_frame(bytes, at), FrameCheck::Valid(_)) {
            return Some(at);
        }
        at += FRAME_ALIGN_BYTES;
    }
    None
}

/// End (exclusive) of the last non-zero byte at or after `from`, if any.
fn last_nonzero_end(bytes: &[u8], from: usize) -> Option<usize> {
    bytes[from..].iter().rposition(|&b| b != 0).map(|i| from + i + 1)
}

/// Scans `bytes` (a whole segment file) frame by frame.
pub(crate) fn scan_segment(path: &Path, bytes: &[u8], expect: ScanExpect) -> SegmentScan {
    let mut scan = SegmentScan {
        records: 0,
        last: None,
        end_offset: SEGMENT_HEADER_BYTES as u64,
        index: Vec::new(),
        problems: Vec::new(),
        torn_tail: None,
        hit_limit: false,
    };
    let mut next_seq = expect.first_seq;
    let mut prev_ts = expect.prev_timestamp_ns;
    let mut offset = SEGMENT_HEADER_BYTES;
    loop {
        if next_seq > expect.limit_seq {
            scan.hit_limit = true;
            return scan;
        }
        let defect = match check_frame(bytes, offset) {
            FrameCheck::Valid(record) => {
                if record.seq() != next_seq {
                    scan.problems.push(JournalError::SequenceGap {
                        path: path.to_path_buf(),
                        offset: offset as u64,
                        expected: next_seq,
                        found: record.seq(),
                    });
                }
                if record.timestamp_ns() < prev_ts {
                    scan.problems.push(JournalError::Corrupt {
                        path: path.to_path_buf(),
                        offset: offset as u64,
                        reason: format!(
                            "timestamp {} ns goes back from the previous record's {} ns",
                            record.timestamp_ns(),
                            prev_ts
                        ),
                    });
                }
                if (record.seq() - expect.first_seq).is_multiple_of(expect.index_interval.max(1)) {
                    scan.index.push(IndexEntry {
                        seq: record.seq(),
                        offset: offset as u64,
                    });
                }
                scan.records += 1;
                scan.last = Some((record.seq(), record.crc(), record.timestamp_ns()));
                next_seq = record.seq() + 1;
                prev_ts = record.timestamp_ns();
                offset += crate::frame::frame_bytes(record.payload().len());
                scan.end_offset = offset as u64;
                continue;
            }
            FrameCheck::End => None,
            FrameCheck::Invalid(defect) => Some(defect),
        };
        // Not a valid frame at `offset`: the clean end, a torn tail, or corruption.
        if let Some(resume) = next_valid_frame(bytes, offset + FRAME_ALIGN_BYTES) {
            let reason = match defect {
                Some(d) => d.describe().to_string(),
                None => "zero frame length followed by further records".to_string(),
            };
            scan.problems.push(JournalError::Corrupt {
                path: path.to_path_buf(),
                offset: offset as u64,
                reason,
            });
            // Resynchronise on the next valid frame so that `verify` can report every problem.
            offset = resume;
            if let FrameCheck::Valid(r) = check_frame(bytes, resume) {
                next_seq = r.seq();
            }
            continue;
        }
        match (last_nonzero_end(bytes, offset), expect.is_last) {
            (None, _) => {}
            (Some(end), true) => {
                scan.torn_tail = Some(TornTail {
                    offset: offset as u64,
                    bytes: (end - offset) as u64,
                });
            }
            (Some(_), false) => {
                let reason = match defect {
                    Some(d) => format!("{} at the end of a sealed segment", d.describe()),
                    None => "non-zero bytes after the last record of a sealed segment".to_string(),
                };
                scan.problems.push(JournalError::Corrupt {
                    path: path.to_path_buf(),
                    offset: offset as u64,
                    reason,
                });
            }
        }
        return scan;
    }
}
