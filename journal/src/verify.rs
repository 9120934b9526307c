//! Full verification: every header, every frame, the chain of segments, the indexes and the
//! positions file. Reports every problem it finds (it resynchronises after damage), each with
//! the file and byte offset, and modifies nothing.

use std::path::{Path, PathBuf};

use crate::error::{JournalError, Result};
use crate::frame::{FrameCheck, check_frame};
use crate::index::read_index;
use crate::lock::writer_is_live;
use crate::positions::{POSITIONS_FILE, Positions};
use crate::recovery::map_file;
use crate::scan::{ScanExpect, scan_segment};
use crate::segment::{SEGMENT_HEADER_BYTES, SegmentHeader, check_name, list_segments};

/// What verification found in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// The file.
    pub path: PathBuf,
    /// First sequence number (from the name).
    pub first_seq: u64,
    /// Last valid sequence number, if the segment holds any record.
    pub last_seq: Option<u64>,
    /// Valid records.
    pub records: u64,
    /// Offset just after the last valid frame.
    pub end_offset: u64,
    /// Size of the file.
    pub file_bytes: u64,
}

/// The result of [`verify`].
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Per segment, in log order.
    pub segments: Vec<SegmentReport>,
    /// Valid records in all segments.
    pub records: u64,
    /// Last valid sequence number (0 if none).
    pub last_seq: u64,
    /// Everything wrong, in file order.
    pub problems: Vec<JournalError>,
    /// Things worth knowing that are not damage (a missing index, a live writer).
    pub notes: Vec<String>,
    /// If a writer holds the journal: the published position verification stopped at.
    pub live_limit: Option<u64>,
}

impl VerifyReport {
    /// No problems found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the journal in `dir`. `Err` only if the directory cannot be read at all.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    if !dir.is_dir() {
        return Err(JournalError::io(
            "open journal directory",
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        ));
    }
    let mut report = VerifyReport::default();
    let segments = match list_segments(dir) {
        Ok(s) => s,
        Err(e) => {
            report.problems.push(e);
            return Ok(report);
        }
    };
    let positions = if dir.join(POSITIONS_FILE).exists() {
        match Positions::open_read_only(dir) {
            Ok(p) => Some(p),
            Err(e) => {
                report.problems.push(e);
                None
            }
        }
    } else {
        None
    };
    let limit = match (&positions, writer_is_live(dir)) {
        (Some(p), true) => {
            let written = p.written();
            report.live_limit = Some(written);
            report.notes.push(format!(
                "a writer holds the journal: verified up to its published seq {written}"
            ));
            written
        }
        _ => u64::MAX,
    };
    if segments.is_empty() {
        report.notes.push("no segments: the journal is empty".into());
    }

    // (last seq, last crc) of the previous segment; None when it could not be read, in which
    // case the chain check of the next segment is skipped rather than reported twice.
    let mut prev: Option<(u64, u32)> = Some((0, 0));
    let mut prev_ts = 0u64;
    for (i, segment) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let map = match map_file(&segment.path) {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(e);
                prev = None;
                continue;
            }
        };
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        let header = match SegmentHeader::decode(&segment.path, bytes)
            .and_then(|h| check_name(segment, &h).map(|()| h))
        {
            Ok(h) => h,
            Err(e) => {
                report.problems.push(e);
                prev = None;
                continue;
            }
        };
        if let Some((last_seq, last_crc)) = prev {
            if header.first_seq != last_seq + 1 {
                report.problems.push(JournalError::SequenceGap {
                    path: segment.path.clone(),
                    offset: 24,
                    expected: last_seq + 1,
                    found: header.first_seq,
                });
            } else if header.prev_last_crc != last_crc {
                report.problems.push(JournalError::BrokenChain {
                    path: segment.path.clone(),
                    expected: header.prev_last_crc,
                    found: last_crc,
                });
            }
        }
        if header.first_seq > limit {
            // Created by the live writer after the position we read: not ours to judge.
            break;
        }
        let mut scan = scan_segment(
            &segment.path,
            bytes,
            ScanExpect {
                first_seq: header.first_seq,
                prev_timestamp_ns: prev_ts,
                is_last,
                limit_seq: limit,
                index_interval: u64::MAX,
            },
        );
        report.problems.extend(std::mem::take(&mut scan.problems));
        if let Some(tail) = scan.torn_tail {
            report.problems.push(JournalError::Corrupt {
                path: segment.path.clone(),
                offset: tail.offset,
                reason: format!(
                    "torn tail: {} bytes after the last valid record (a crash mid-write; the writer truncates it when it next opens the journal)",
                    tail.bytes
                ),
            });
        }
        if !is_last && scan.records == 0 {
            report.problems.push(JournalError::Corrupt {
                path: segment.path.clone(),
                offset: SEGMENT_HEADER_BYTES as u64,
                reason: "a segment that is not the last holds no records".into(),
            });
        }
        if !is_last {
            check_index(dir, segment.first_seq, bytes, &scan, &mut report);
        }
        report.records += scan.records;
        match scan.last {
            Some((seq, crc, ts)) => {
                prev = Some((seq, crc));
                prev_ts = ts;
                report.last_seq = seq;
            }
            None => prev = Some((header.first_seq - 1, header.prev_last_crc)),
        }
        report.segments.push(SegmentReport {
            path: segment.path.clone(),
            first_seq: segment.first_seq,
            last_seq: scan.last.map(|(s, _, _)| s),
            records: scan.records,
            end_offset: scan.end_offset,
            file_bytes: bytes.len() as u64,
        });
    }

    if let (Some(p), None) = (&positions, report.live_limit)
        && p.written() > report.last_seq
    {
        report.problems.push(JournalError::Corrupt {
            path: p.path().to_path_buf(),
            offset: 64,
            reason: format!(
                "positions file says records up to {} were written, the segments hold up to {}",
                p.written(),
                report.last_seq
            ),
        });
    }
    Ok(report)
}

/// Checks a sealed segment's index against what the scan found.
fn check_index(
    dir: &Path,
    first_seq: u64,
    bytes: &[u8],
    scan: &crate::scan::SegmentScan,
    report: &mut VerifyReport,
) {
    match read_index(dir, first_seq) {
        Ok(None) => report.notes.push(format!(
            "{}: no index for a sealed segment (rebuilt when a writer next opens the journal)",
            crate::index::index_path(dir, first_seq).display()
        )),
        Err(e) => report.problems.push(e),
        Ok(Some(index)) => {
            let path = crate::index::index_path(dir, first_seq);
            let mut wrong = |what: &str| {
                report.problems.push(JournalError::BadHeader {
                    path: path.clone(),
                    offset: 0,
                    reason: format!("index disagrees with its segment: {what}"),
                })
            };
            match scan.last {
                Some((seq, crc, ts)) => {
                    if index.last_seq != seq || index.last_crc != crc || index.last_timestamp_ns != ts {
                        wrong("last record");
                    }
                }
                None => wrong("segment holds no records"),
            }
            if index.end_offset != scan.end_offset {
                wrong("end offset");
            }
            for entry in &index.entries {
                let ok = usize::try_from(entry.offset).is_ok_and(|o| {
                    o % crate::frame::FRAME_ALIGN_BYTES == 0
                        && matches!(check_frame(bytes, o), FrameCheck::Valid(r) if r.seq() == entry.seq)
                });
                if !ok {
                    wrong(&format!("entry seq {} at offset {}", entry.seq, entry.offset));
                    break;
                }
            }
        }
    }
}
