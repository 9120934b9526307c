//! Segment files: naming, the 128-byte header, creation (preallocated) and listing.
//!
//! A segment is named `<first seq, 20 digits>.seg`, so that listing the directory sorted by name
//! is the log order and finding the segment of a sequence number is a binary search.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{JournalError, Result};

/// Magic bytes at the start of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"ORDOJRNL";
/// The newest segment format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the segment header; the first frame starts right after it.
pub const SEGMENT_HEADER_BYTES: usize = 128;
/// Extension of segment files.
pub const SEGMENT_EXTENSION: &str = "seg";

const OFFSET_MAGIC: usize = 0;
const OFFSET_VERSION: usize = 8;
const OFFSET_HEADER_LEN: usize = 12;
const OFFSET_NODE_ID: usize = 16;
const OFFSET_FIRST_SEQ: usize = 24;
const OFFSET_SEGMENT_BYTES: usize = 32;
const OFFSET_PREV_CRC: usize = 40;
const OFFSET_FLAGS: usize = 44;
const OFFSET_HEADER_CRC: usize = SEGMENT_HEADER_BYTES - 4;

/// The decoded header of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Node that wrote the segment.
    pub node_id: u64,
    /// Sequence number of the first record the segment holds (or will hold).
    pub first_seq: u64,
    /// Preallocated size of the file, header included.
    pub segment_bytes: u64,
    /// crc32 of the previous segment's last record; 0 for the first segment of a journal.
    pub prev_last_crc: u32,
}

impl SegmentHeader {
    /// Serializes the header, its own crc included.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[OFFSET_MAGIC..OFFSET_MAGIC + 8].copy_from_slice(&SEGMENT_MAGIC);
        b[OFFSET_VERSION..OFFSET_VERSION + 4].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[OFFSET_HEADER_LEN..OFFSET_HEADER_LEN + 4]
            .copy_from_slice(&(SEGMENT_HEADER_BYTES as u32).to_le_bytes());
        b[OFFSET_NODE_ID..OFFSET_NODE_ID + 8].copy_from_slice(&self.node_id.to_le_bytes());
        b[OFFSET_FIRST_SEQ..OFFSET_FIRST_SEQ + 8].copy_from_slice(&self.first_seq.to_le_bytes());
        b[OFFSET_SEGMENT_BYTES..OFFSET_SEGMENT_BYTES + 8].copy_from_slice(&self.segment_bytes.to_le_bytes());
        b[OFFSET_PREV_CRC..OFFSET_PREV_CRC + 4].copy_from_slice(&self.prev_last_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[..OFFSET_HEADER_CRC]);
        b[OFFSET_HEADER_CRC..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and validates a header read from `path`.
    ///
    /// The checks go from the most to the least fundamental, so the error says the most useful
    /// thing: not a segment at all, then a format we cannot read, then damage.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Self> {
        let bad = |offset: usize, reason: String| JournalError::BadHeader {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason,
        };
        if bytes.len() < SEGMENT_HEADER_BYTES {
            return Err(bad(
                bytes.len(),
                format!(
                    "file holds {} bytes, a segment header needs {SEGMENT_HEADER_BYTES}",
                    bytes.len()
                ),
            ));
        }
        if bytes[OFFSET_MAGIC..OFFSET_MAGIC + 8] != SEGMENT_MAGIC {
            return Err(bad(OFFSET_MAGIC, "bad magic: not an ordo journal segment".into()));
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let version = u32_at(OFFSET_VERSION);
        if version > FORMAT_VERSION {
            return Err(JournalError::NewerFormat {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let crc = u32_at(OFFSET_HEADER_CRC);
        let computed = crc32fast::hash(&bytes[..OFFSET_HEADER_CRC]);
        if crc != computed {
            return Err(bad(
                OFFSET_HEADER_CRC,
                format!("header checksum mismatch (stored {crc:#010x}, computed {computed:#010x})"),
            ));
        }
        if version == 0 {
            return Err(bad(OFFSET_VERSION, "format version 0 does not exist".into()));
        }
        if u32_at(OFFSET_HEADER_LEN) as usize != SEGMENT_HEADER_BYTES {
            return Err(bad(
                OFFSET_HEADER_LEN,
                format!("header length {} is not 128", u32_at(OFFSET_HEADER_LEN)),
            ));
        }
        if u32_at(OFFSET_FLAGS) != 0 {
            return Err(bad(OFFSET_FLAGS, "reserved flags are set".into()));
        }
        let header = SegmentHeader {
            node_id: u64_at(OFFSET_NODE_ID),
            first_seq: u64_at(OFFSET_FIRST_SEQ),
            segment_bytes: u64_at(OFFSET_SEGMENT_BYTES),
            prev_last_crc: u32_at(OFFSET_PREV_CRC),
        };
        if header.first_seq == 0 {
            return Err(bad(
                OFFSET_FIRST_SEQ,
                "first sequence number 0 (sequence numbers start at 1)".into(),
            ));
        }
        Ok(header)
    }
}

/// File name of the segment whose first record is `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{SEGMENT_EXTENSION}")
}

/// A segment file found in a journal directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Its path.
    pub path: PathBuf,
    /// The first sequence number, from its name.
    pub first_seq: u64,
}

/// Parses `<20 digits>.seg`.
fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Lists the segments of `dir` in log order.
///
/// Files that are not segments are ignored (an operator may keep notes there), except files that
/// end in `.seg` without a valid name: those are reported, because they are most likely a segment
/// renamed by mistake, and skipping one would hide a hole in the log.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>> {
    let entries = fs::read_dir(dir).map_err(|e| JournalError::io("read directory", dir, e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io("read directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first_seq) = parse_segment_name(name) {
            segments.push(SegmentFile {
                path: entry.path(),
                first_seq,
            });
        } else if name.ends_with(".seg") {
            return Err(JournalError::BadHeader {
                path: entry.path(),
                offset: 0,
                reason: "file name is not <first sequence, 20 digits>.seg".into(),
            });
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

/// Reads and validates the header of a segment file, and checks it against the file's name.
pub fn read_header(segment: &SegmentFile) -> Result<SegmentHeader> {
    let file = File::open(&segment.path).map_err(|e| JournalError::io("open", &segment.path, e))?;
    let mut buf = [0u8; SEGMENT_HEADER_BYTES];
    let n = read_up_to(&file, &mut buf, 0).map_err(|e| JournalError::io("read", &segment.path, e))?;
    let header = SegmentHeader::decode(&segment.path, &buf[..n])?;
    check_name(segment, &header)?;
    Ok(header)
}

/// The header's first sequence number must be the one in the file name.
pub fn check_name(segment: &SegmentFile, header: &SegmentHeader) -> Result<()> {
    if header.first_seq != segment.first_seq {
        return Err(JournalError::BadHeader {
            path: segment.path.clone(),
            offset: OFFSET_FIRST_SEQ as u64,
            reason: format!(
                "header says first sequence {}, file name says {}",
                header.first_seq, segment.first_seq
            ),
        });
    }
    Ok(())
}

fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64)? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Creates a preallocated segment atomically: written as `<name>.tmp`, then renamed, so a
/// segment file never exists without a complete header. With `sync` the file and the directory
/// are fsynced before the rename is relied on.
pub fn create_segment(dir: &Path, header: &SegmentHeader, sync: bool) -> Result<(File, PathBuf)> {
    let tmp = dir.join(format!("{}.tmp", segment_file_name(header.first_seq)));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| JournalError::io("create", &tmp, e))?;
    preallocate(&file, header.segment_bytes).map_err(|e| JournalError::io("preallocate", &tmp, e))?;
    drop(file);
    install_segment(dir, &tmp, header, sync)
}

/// Name of the spare segment file prepared in the background.
pub const SPARE_FILE: &str = "spare.seg.tmp";

/// Prepares a spare segment file of `segment_bytes`, allocated. With `zero` (journals that
/// fsync) it is also written with zeros and fsynced, so that appends into it never convert
/// unwritten extents: on ext4 an fdatasync after a first write into an unwritten extent must
/// commit the conversion in the jbd2 journal (measured: 18 ms stalls), while one over written
/// blocks writes only the data. Without `zero` (durability none: no fsync ever waits) the
/// zeros would only be written to disk twice over: once as zeros, at once and in a burst
/// (64 MiB per journal segment, and 16 MiB per session store when members had those), then
/// again as data. Measured on a node at 20K/s: 410 MB written in 22 s with zeroing against
/// 16 MB without, and the steal and tail that the bursts caused (see docs/BENCHMARKS.md). The helper thread maps the spare;
/// appends fault its pages in 256 KiB ahead of themselves ([`crate::writer`]).
/// Runs on a helper thread, off the append path. Abandoned (Ok(None), the file left partly
/// zeroed: recovery removes it) as soon as `cancel` is set: a closing writer does not wait for
/// megabytes of zeros and an fsync.
pub(crate) fn prepare_spare(
    dir: &Path,
    segment_bytes: u64,
    zero: bool,
    cancel: &AtomicBool,
) -> Result<Option<PathBuf>> {
    let path = dir.join(SPARE_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| JournalError::io("create", &path, e))?;
    preallocate(&file, segment_bytes).map_err(|e| JournalError::io("preallocate", &path, e))?;
    if !zero {
        return Ok(Some(path));
    }
    let zeros = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    while offset < segment_bytes {
        if cancel.load(Ordering::Acquire) {
            return Ok(None);
        }
        let n = (segment_bytes - offset).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], offset)
            .map_err(|e| JournalError::io("zero", &path, e))?;
        offset += n as u64;
    }
    if cancel.load(Ordering::Acquire) {
        return Ok(None);
    }
    file.sync_data()
        .map_err(|e| JournalError::io("fsync", &path, e))?;
    Ok(Some(path))
}

/// Turns a prepared file (a temporary or the spare, of `header.segment_bytes`, all zeros) into
/// the segment `header` describes: writes the header, then renames it into place.
pub fn install_segment(
    dir: &Path,
    prepared: &Path,
    header: &SegmentHeader,
    sync: bool,
) -> Result<(File, PathBuf)> {
    let path = dir.join(segment_file_name(header.first_seq));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(prepared)
        .map_err(|e| JournalError::io("open", prepared, e))?;
    file.write_all_at(&header.encode(), 0)
        .map_err(|e| JournalError::io("write header", prepared, e))?;
    if sync {
        file.sync_all()
            .map_err(|e| JournalError::io("fsync", prepared, e))?;
    }
    fs::rename(prepared, &path).map_err(|e| JournalError::io("rename", prepared, e))?;
    if sync {
        sync_dir(dir)?;
    }
    Ok((file, path))
}

/// Reserves `len` bytes of disk for `file` (so that appends never hit ENOSPC half-way through a
/// segment) and sets its length. Falls back to a sparse `set_len` where the file system cannot
/// preallocate.
pub fn preallocate(file: &File, len: u64) -> std::io::Result<()> {
    let len_off =
        libc::off_t::try_from(len).map_err(|_| std::io::Error::other("segment size overflows off_t"))?;
    // SAFETY: plain syscall on a file descriptor we own; no memory is passed.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len_off) };
    match rc {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// fsyncs a directory, making renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JournalError::io("fsync directory", dir, e))
}

/// Removes `*.seg.tmp` files left by a crash during segment creation; returns their names.
pub fn remove_stale_temporaries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| JournalError::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io("read directory", dir, e))?;
        let path = entry.path();
        let is_tmp = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".seg.tmp"));
        if is_tmp {
            fs::remove_file(&path).map_err(|e| JournalError::io("remove", &path, e))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_damage() {
        let h = SegmentHeader {
            node_id: 3,
            first_seq: 42,
            segment_bytes: 1 << 20,
            prev_last_crc: 0xdead_beef,
        };
        let bytes = h.encode();
        let p = Path::new("x.seg");
        assert_eq!(SegmentHeader::decode(p, &bytes).unwrap(), h);
        for byte in 0..SEGMENT_HEADER_BYTES {
            let mut b = bytes;
            b[byte] ^= 0x10;
            assert!(
                SegmentHeader::decode(p, &b).is_err(),
                "flip in byte {byte} undetected"
            );
        }
        assert!(matches!(
            SegmentHeader::decode(p, &bytes[..100]),
            Err(JournalError::BadHeader { offset: 100, .. })
        ));
    }

    #[test]
    fn newer_version_is_its_own_error() {
        let mut b = SegmentHeader {
            node_id: 1,
            first_seq: 1,
            segment_bytes: 4096,
            prev_last_crc: 0,
        }
        .encode();
        b[OFFSET_VERSION..OFFSET_VERSION + 4].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            SegmentHeader::decode(Path::new("x"), &b),
            Err(JournalError::NewerFormat {
                found: 2,
                supported: 1,
                ..
            })
        ));
    }

    #[test]
    fn names() {
        assert_eq!(segment_file_name(1), "00000000000000000001.seg");
        assert_eq!(parse_segment_name("00000000000000000001.seg"), Some(1));
        assert_eq!(parse_segment_name("1.seg"), None);
        assert_eq!(parse_segment_name("0000000000000000000x.seg"), None);
    }
}
