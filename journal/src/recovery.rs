//! Recovery on open: find where the log ends, check that the segments chain, truncate a torn
//! tail, and refuse (with file and offset) anything that is damage rather than a torn tail.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use memmap2::Mmap;

use crate::config::JournalConfig;
use crate::error::{JournalError, Result};
use crate::index::{IndexEntry, SegmentIndex, index_path, read_index, write_index};
use crate::scan::{ScanExpect, TornTail, scan_segment};
use crate::segment::{
    SEGMENT_HEADER_BYTES, SegmentFile, SegmentHeader, check_name, create_segment, list_segments, read_header,
    remove_stale_temporaries,
};

/// What recovery found and did, for the log and for operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments in the journal after recovery.
    pub segments: usize,
    /// Last sequence number held (0 if the journal is empty).
    pub last_seq: u64,
    /// A torn tail that was truncated: the segment, the offset and the byte count.
    pub torn_tail: Option<(PathBuf, TornTail)>,
    /// Files removed: temporaries of an interrupted segment creation, a blank (all-zero) last
    /// segment, the index of the segment that is active again.
    pub removed_files: Vec<PathBuf>,
    /// Indexes rebuilt because they were missing or damaged.
    pub rebuilt_indexes: Vec<PathBuf>,
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} segment(s), last seq {}", self.segments, self.last_seq)?;
        if let Some((path, tail)) = &self.torn_tail {
            write!(
                f,
                "; truncated torn tail of {} bytes at offset {} of {}",
                tail.bytes,
                tail.offset,
                path.display()
            )?;
        }
        for p in &self.removed_files {
            write!(f, "; removed {}", p.display())?;
        }
        for p in &self.rebuilt_indexes {
            write!(f, "; rebuilt {}", p.display())?;
        }
        Ok(())
    }
}

/// The state a writer resumes from.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub report: RecoveryReport,
    /// The last segment: the writer appends to it.
    pub active: SegmentFile,
    pub active_header: SegmentHeader,
    /// Offset just after its last frame.
    pub end_offset: u64,
    pub next_seq: u64,
    pub last_crc: u32,
    pub last_timestamp_ns: u64,
    /// Sparse index entries of the active segment so far.
    pub index: Vec<IndexEntry>,
}

/// Maps a whole file read-only (an empty file maps to an empty slice).
pub(crate) fn map_file(path: &std::path::Path) -> Result<Option<Mmap>> {
    let file = File::open(path).map_err(|e| JournalError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| JournalError::io("stat", path, e))?
        .len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: segments are only modified by the single writer (which holds the directory lock
    // and is us, during recovery), and a concurrent reader only looks at validated bytes.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| JournalError::io("mmap", path, e))?;
    Ok(Some(map))
}

/// A last segment that is all zeros (or empty) holds neither a header nor records: what a crash
/// during creation leaves on a file system that kept the rename but lost the contents. Anything
/// else without a valid header is an error, never removed.
fn is_blank(path: &std::path::Path) -> Result<bool> {
    let Some(map) = map_file(path)? else {
        return Ok(true);
    };
    Ok(map.iter().all(|&b| b == 0))
}

fn first_error(problems: Vec<JournalError>) -> Result<()> {
    match problems.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Checks that `header` continues the log where the previous segment ended.
fn check_chain(segment: &SegmentFile, header: &SegmentHeader, prev: Option<(u64, u32)>) -> Result<()> {
    let (expected_first, expected_crc) = match prev {
        Some((last_seq, last_crc)) => (last_seq + 1, last_crc),
        None => (1, 0),
    };
    if header.first_seq != expected_first {
        return Err(JournalError::SequenceGap {
            path: segment.path.clone(),
            offset: 24,
            expected: expected_first,
            found: header.first_seq,
        });
    }
    if header.prev_last_crc != expected_crc {
        return Err(JournalError::BrokenChain {
            path: segment.path.clone(),
            expected: header.prev_last_crc,
            found: expected_crc,
        });
    }
    Ok(())
}

/// Summary of a sealed segment: from its index when that is sound, else from a full scan (and
/// the index is rebuilt).
fn sealed_summary(
    config: &JournalConfig,
    segment: &SegmentFile,
    prev_timestamp_ns: u64,
    report: &mut RecoveryReport,
) -> Result<SegmentIndex> {
    let file_len = fs::metadata(&segment.path)
        .map_err(|e| JournalError::io("stat", &segment.path, e))?
        .len();
    if let Ok(Some(index)) = read_index(&config.dir, segment.first_seq) {
        let plausible = index.end_offset <= file_len
            && index.end_offset > SEGMENT_HEADER_BYTES as u64
            && index.last_timestamp_ns >= prev_timestamp_ns;
        if plausible {
            return Ok(index);
        }
    }
    let map = map_file(&segment.path)?.expect("a segment with a valid header is not empty");
    let scan = scan_segment(
        &segment.path,
        &map,
        ScanExpect {
            first_seq: segment.first_seq,
            prev_timestamp_ns,
            is_last: false,
            limit_seq: u64::MAX,
            index_interval: config.index_interval,
        },
    );
    first_error(scan.problems)?;
    let Some((last_seq, last_crc, last_timestamp_ns)) = scan.last else {
        return Err(JournalError::Corrupt {
            path: segment.path.clone(),
            offset: SEGMENT_HEADER_BYTES as u64,
            reason: "a segment that is not the last holds no records".into(),
        });
    };
    let index = SegmentIndex {
        first_seq: segment.first_seq,
        last_seq,
        end_offset: scan.end_offset,
        last_timestamp_ns,
        last_crc,
        entries: scan.index,
    };
    write_index(&config.dir, &index, false)?;
    report
        .rebuilt_indexes
        .push(index_path(&config.dir, segment.first_seq));
    Ok(index)
}

/// Zeroes `[offset, offset + len)` of `path` and makes that durable.
fn zero_range(path: &std::path::Path, offset: u64, len: u64) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| JournalError::io("open", path, e))?;
    let zeros = vec![0u8; 64 * 1024];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], offset + done)
            .map_err(|e| JournalError::io("write", path, e))?;
        done += n as u64;
    }
    // Always synced: a torn tail that came back after the next crash would be read as records
    // the writer has since replaced.
    file.sync_data().map_err(|e| JournalError::io("fsync", path, e))
}

/// Recovers the journal in `config.dir` (which the caller has locked), creating it if empty.
pub(crate) fn recover(config: &JournalConfig) -> Result<Recovered> {
    fs::create_dir_all(&config.dir).map_err(|e| JournalError::io("create directory", &config.dir, e))?;
    let mut report = RecoveryReport {
        removed_files: remove_stale_temporaries(&config.dir)?,
        ..Default::default()
    };
    let mut segments = list_segments(&config.dir)?;
    while let Some(last) = segments.last() {
        if !is_blank(&last.path)? {
            break;
        }
        fs::remove_file(&last.path).map_err(|e| JournalError::io("remove", &last.path, e))?;
        report.removed_files.push(last.path.clone());
        segments.pop();
    }

    let Some(last) = segments.pop() else {
        let header = SegmentHeader {
            node_id: config.node_id,
            first_seq: 1,
            segment_bytes: config.segment_bytes,
            prev_last_crc: 0,
        };
        let (_, path) = create_segment(&config.dir, &header, config.durability.fsyncs())?;
        report.segments = 1;
        return Ok(Recovered {
            report,
            active: SegmentFile { path, first_seq: 1 },
            active_header: header,
            end_offset: SEGMENT_HEADER_BYTES as u64,
            next_seq: 1,
            last_crc: 0,
            last_timestamp_ns: 0,
            index: Vec::new(),
        });
    };

    // Sealed segments: header, chain, summary.
    let mut prev: Option<(u64, u32)> = None;
    let mut prev_timestamp_ns = 0;
    for segment in &segments {
        let header = read_header(segment)?;
        check_chain(segment, &header, prev)?;
        let summary = sealed_summary(config, segment, prev_timestamp_ns, &mut report)?;
        prev = Some((summary.last_seq, summary.last_crc));
        prev_timestamp_ns = summary.last_timestamp_ns;
    }

    // The last segment: scanned whole, torn tail truncated.
    let header = read_header(&last)?;
    check_name(&last, &header)?;
    check_chain(&last, &header, prev)?;
    let stale_index = index_path(&config.dir, last.first_seq);
    if stale_index.exists() {
        fs::remove_file(&stale_index).map_err(|e| JournalError::io("remove", &stale_index, e))?;
        report.removed_files.push(stale_index);
    }
    let map = map_file(&last.path)?.expect("a segment with a valid header is not empty");
    let scan = scan_segment(
        &last.path,
        &map,
        ScanExpect {
            first_seq: last.first_seq,
            prev_timestamp_ns,
            is_last: true,
            limit_seq: u64::MAX,
            index_interval: config.index_interval,
        },
    );
    drop(map);
    first_error(scan.problems)?;
    if let Some(tail) = scan.torn_tail {
        zero_range(&last.path, tail.offset, tail.bytes)?;
        report.torn_tail = Some((last.path.clone(), tail));
    }
    let (next_seq, last_crc, last_timestamp_ns) = match scan.last {
        Some((seq, crc, ts)) => (seq + 1, crc, ts),
        None => (last.first_seq, header.prev_last_crc, prev_timestamp_ns),
    };
    report.segments = segments.len() + 1;
    report.last_seq = next_seq - 1;
    Ok(Recovered {
        report,
        active: last,
        active_header: header,
        end_offset: scan.end_offset,
        next_seq,
        last_crc,
        last_timestamp_ns,
        index: scan.index,
    })
}
