//! Readers: open at any sequence number, iterate, and tail a journal that a writer in this or
//! another process is appending to, without locks.
//!
//! A live reader never reads past the published position (written or durable, as chosen), so it
//! never sees a frame that is being written. An offline reader (no positions file: a copied
//! journal) reads every record that validates and reports anything else as corruption.

use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{JournalError, Result};
use crate::frame::{FrameCheck, check_frame, frame_bytes, record_unchecked};
use crate::index::{lookup, read_index};
use crate::positions::{POSITIONS_FILE, Positions};
use crate::record::Record;
use crate::recovery::map_file;
use crate::segment::{
    SEGMENT_HEADER_BYTES, SegmentFile, SegmentHeader, check_name, list_segments, segment_file_name,
};

/// How far a live reader may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLimit {
    /// Up to the written position: every complete record (replication ships these).
    Written,
    /// Up to the durable position: only records that may already have been acknowledged.
    Durable,
    /// Up to the committed position (set by consensus): only records a majority holds, which
    /// no truncation can remove (a cluster member's engine reads these).
    Committed,
}

struct MappedSegment {
    path: PathBuf,
    first_seq: u64,
    map: Mmap,
}

/// A journal reader. Call [`JournalReader::next`] until it returns `None`, then (to tail) again
/// later.
pub struct JournalReader {
    dir: PathBuf,
    positions: Option<Positions>,
    limit: ReadLimit,
    epoch: u64,
    segment: Option<MappedSegment>,
    offset: usize,
    next_seq: u64,
    /// crc of the last record read, to check the chain into the next segment.
    last_crc: Option<u32>,
}

impl std::fmt::Debug for JournalReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalReader")
            .field("dir", &self.dir)
            .field("next_seq", &self.next_seq)
            .field("live", &self.positions.is_some())
            .finish_non_exhaustive()
    }
}

impl JournalReader {
    /// Opens a reader positioned at `from_seq` (1 = the start), bounded by the written position
    /// if the journal has a positions file.
    pub fn open(dir: impl AsRef<Path>, from_seq: u64) -> Result<Self> {
        Self::open_with(dir, from_seq, ReadLimit::Written)
    }

    /// Opens a reader positioned at `from_seq`, bounded by `limit` if the journal is live.
    pub fn open_with(dir: impl AsRef<Path>, from_seq: u64, limit: ReadLimit) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let positions = if dir.join(POSITIONS_FILE).exists() {
            Some(Positions::open_read_only(&dir)?)
        } else {
            None
        };
        Self::open_inner(dir, positions, from_seq, limit)
    }

    /// Opens an offline reader that ignores the positions file: reads every record that
    /// validates. For tools on a journal no writer has open.
    pub fn open_offline(dir: impl AsRef<Path>, from_seq: u64) -> Result<Self> {
        Self::open_inner(dir.as_ref().to_path_buf(), None, from_seq, ReadLimit::Written)
    }

    fn open_inner(
        dir: PathBuf,
        positions: Option<Positions>,
        from_seq: u64,
        limit: ReadLimit,
    ) -> Result<Self> {
        let from_seq = from_seq.max(1);
        let epoch = positions.as_ref().map_or(0, Positions::epoch);
        let mut reader = JournalReader {
            dir,
            positions,
            limit,
            epoch,
            segment: None,
            offset: SEGMENT_HEADER_BYTES,
            next_seq: 1,
            last_crc: None,
        };
        reader.seek(from_seq)?;
        Ok(reader)
    }

    /// The sequence number the next record will have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The current read bound: the published position for a live reader, `u64::MAX` offline.
    pub fn limit(&self) -> u64 {
        match (&self.positions, self.limit) {
            (None, _) => u64::MAX,
            (Some(p), ReadLimit::Written) => p.written(),
            (Some(p), ReadLimit::Durable) => p.durable(),
            (Some(p), ReadLimit::Committed) => p.committed(),
        }
    }

    fn seek(&mut self, from_seq: u64) -> Result<()> {
        let segments = list_segments(&self.dir)?;
        let Some(segment) = segments.iter().rev().find(|s| s.first_seq <= from_seq).cloned() else {
            if segments.is_empty() && from_seq == 1 {
                // An empty directory: the first segment appears when the writer creates it.
                return Ok(());
            }
            return Err(JournalError::OutOfRange {
                seq: from_seq,
                first_seq: segments.first().map_or(1, |s| s.first_seq),
                last_seq: 0,
            });
        };
        self.map_segment(&segment, None)?;
        // Jump to the closest indexed record at or before from_seq, if the index agrees with
        // the segment; otherwise scan from the segment's first record.
        if let Ok(Some(index)) = read_index(&self.dir, segment.first_seq)
            && let Some(entry) = lookup(&index.entries, from_seq)
            && let Some(mapped) = &self.segment
            && let FrameCheck::Valid(r) = check_frame(&mapped.map, entry.offset as usize)
            && r.seq() == entry.seq
        {
            self.offset = entry.offset as usize;
            self.next_seq = entry.seq;
        }
        while self.next_seq < from_seq {
            if self.next()?.is_none() {
                return Err(JournalError::OutOfRange {
                    seq: from_seq,
                    first_seq: 1,
                    last_seq: self.next_seq - 1,
                });
            }
        }
        Ok(())
    }

    /// Maps `segment` and positions the reader at its first record. `chain` is the crc the
    /// header must carry (the last record read), if known.
    fn map_segment(&mut self, segment: &SegmentFile, chain: Option<u32>) -> Result<()> {
        let map = map_file(&segment.path)?.unwrap_or_else(empty_map);
        let header = SegmentHeader::decode(&segment.path, &map)?;
        check_name(segment, &header)?;
        if let Some(crc) = chain
            && header.prev_last_crc != crc
        {
            return Err(JournalError::BrokenChain {
                path: segment.path.clone(),
                expected: header.prev_last_crc,
                found: crc,
            });
        }
        self.segment = Some(MappedSegment {
            path: segment.path.clone(),
            first_seq: segment.first_seq,
            map,
        });
        self.offset = SEGMENT_HEADER_BYTES;
        self.next_seq = segment.first_seq;
        Ok(())
    }

    /// Moves to the segment starting at `next_seq`. Returns false if it does not exist.
    fn advance_segment(&mut self) -> Result<bool> {
        let path = self.dir.join(segment_file_name(self.next_seq));
        if !path.exists() {
            return Ok(false);
        }
        let next_seq = self.next_seq;
        let segment = SegmentFile {
            path,
            first_seq: next_seq,
        };
        self.map_segment(&segment, self.last_crc)?;
        Ok(true)
    }

    /// Returns the next record, or `None` when the reader has caught up with the published
    /// position (live) or the end of the journal (offline). A live reader can be called again
    /// later to tail the journal.
    #[allow(clippy::should_implement_trait)] // a lending iterator: records borrow the reader
    #[inline]
    pub fn next(&mut self) -> Result<Option<Record<'_>>> {
        match self.advance()? {
            None => Ok(None),
            Some(offset) => {
                let segment = self
                    .segment
                    .as_ref()
                    .expect("advance() returned a frame of this segment");
                Ok(Some(record_unchecked(&segment.map, offset)))
            }
        }
    }

    /// Validates the next frame and moves past it; returns its offset in the current segment.
    /// (Split from `next` so that the borrow of the mapping is taken once the cursor is done
    /// moving, and the frame is checksummed exactly once.)
    fn advance(&mut self) -> Result<Option<usize>> {
        if let Some(p) = &self.positions {
            let epoch = p.epoch();
            if epoch != self.epoch {
                // The journal was truncated. Fine if the cut is at or after what we have read.
                let written = p.written();
                if self.next_seq - 1 > written {
                    return Err(JournalError::TruncatedUnderReader {
                        read_seq: self.next_seq - 1,
                        last_seq: written,
                    });
                }
                self.epoch = epoch;
            }
        }
        let limit = self.limit();
        loop {
            if self.next_seq > limit {
                return Ok(None);
            }
            let Some(segment) = &self.segment else {
                // Positioned before any segment existed (an empty journal).
                if !self.advance_segment()? {
                    return self.end_of_data(limit);
                }
                continue;
            };
            match check_frame(&segment.map, self.offset) {
                FrameCheck::Valid(record) => {
                    if record.seq() != self.next_seq {
                        return Err(JournalError::SequenceGap {
                            path: segment.path.clone(),
                            offset: self.offset as u64,
                            expected: self.next_seq,
                            found: record.seq(),
                        });
                    }
                    let start = self.offset;
                    self.offset += frame_bytes(record.payload().len());
                    self.next_seq += 1;
                    self.last_crc = Some(record.crc());
                    return Ok(Some(start));
                }
                FrameCheck::End => {
                    if self.positions.is_none()
                        && segment
                            .map
                            .get(self.offset..)
                            .is_some_and(|rest| rest.iter().any(|&b| b != 0))
                    {
                        // Offline, nothing vouches for what follows: a zero length followed by
                        // data is damage (or a torn tail not yet recovered), never a clean end.
                        return Err(JournalError::Corrupt {
                            path: segment.path.clone(),
                            offset: self.offset as u64,
                            reason: "zero frame length followed by non-zero bytes (damage, or a torn tail \
                                     that the writer truncates when it next opens the journal)"
                                .into(),
                        });
                    }
                    // The end of this segment's data: the next record, if any, starts the next
                    // segment (which cannot be this one again).
                    let at_segment_start = self.next_seq == segment.first_seq;
                    if at_segment_start || !self.advance_segment()? {
                        return self.end_of_data(limit);
                    }
                }
                FrameCheck::Invalid(defect) => {
                    // Offline, say whether this looks like a torn tail (nothing valid after it
                    // in the last segment): what a crash inside an append leaves, and what the
                    // writer truncates when it next opens the journal.
                    let torn = self.positions.is_none()
                        && crate::scan::next_valid_frame(
                            &segment.map,
                            self.offset + crate::frame::FRAME_ALIGN_BYTES,
                        )
                        .is_none()
                        && list_segments(&self.dir)
                            .is_ok_and(|all| all.last().is_some_and(|s| s.first_seq == segment.first_seq));
                    let reason = if torn {
                        format!(
                            "{} at the end of the last segment: a torn tail (a crash during an append), \
                             which the writer truncates when it next opens the journal",
                            defect.describe()
                        )
                    } else {
                        defect.describe().to_string()
                    };
                    return Err(JournalError::Corrupt {
                        path: segment.path.clone(),
                        offset: self.offset as u64,
                        reason,
                    });
                }
            }
        }
    }

    /// No further record where the next one should be: the end of the journal, unless a live
    /// writer published it (then its segment is missing) or later segments exist (a gap).
    fn end_of_data(&self, limit: u64) -> Result<Option<usize>> {
        if self.positions.is_some() {
            if self.next_seq <= limit {
                return Err(JournalError::SequenceGap {
                    path: self.dir.join(segment_file_name(self.next_seq)),
                    offset: 0,
                    expected: self.next_seq,
                    found: 0,
                });
            }
            return Ok(None);
        }
        if let Some(later) = list_segments(&self.dir)?
            .into_iter()
            .find(|s| s.first_seq > self.next_seq)
        {
            return Err(JournalError::SequenceGap {
                path: later.path,
                offset: 24,
                expected: self.next_seq,
                found: later.first_seq,
            });
        }
        Ok(None)
    }
}

fn empty_map() -> Mmap {
    memmap2::MmapOptions::new()
        .len(0)
        .map_anon()
        .expect("empty anonymous map")
        .make_read_only()
        .expect("mprotect")
}
