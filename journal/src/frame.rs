//! The record frame: a 32-byte header followed by the payload, padded to 16 bytes.
//!
//! ```text
//! offset size field
//!  0     4    frame_len   u32 LE: header + payload bytes, without padding; 0 = no frame here
//!  4     4    crc32       u32 LE: crc32 (IEEE, crc32fast) of bytes [0,4) ++ [8, padded_len)
//!  8     8    seq         u64 LE: sequence number, gap-free, first record of a journal is 1
//! 16     8    timestamp   u64 LE: nanoseconds since the Unix epoch (UTC), never decreasing
//! 24     2    kind        u16 LE: record kind, defined by the layers above the journal
//! 26     2    flags       u16 LE: 0 (reserved)
//! 28     4    reserved    u32 LE: 0
//! 32     n    payload     rkyv archive (or any bytes), n = frame_len - 32
//! 32+n   p    padding     zeros up to the next multiple of 16 (covered by the crc)
//! ```
//!
//! Why 16-byte alignment: segments are mapped at page-aligned addresses and frames start at
//! 16-byte multiples, so every payload starts 16-byte aligned and an rkyv archive can be validated
//! and then read in place, with no copy.

use crate::record::Record;

/// Bytes of the frame header.
pub const FRAME_HEADER_BYTES: usize = 32;
/// Alignment of frames (and so of payloads) inside a segment.
pub const FRAME_ALIGN_BYTES: usize = 16;

const OFFSET_LEN: usize = 0;
const OFFSET_CRC: usize = 4;
const OFFSET_SEQ: usize = 8;
const OFFSET_TIMESTAMP: usize = 16;
const OFFSET_KIND: usize = 24;
const OFFSET_FLAGS: usize = 26;
const OFFSET_RESERVED: usize = 28;

/// Rounds `len` up to the frame alignment.
#[inline]
pub const fn align_up(len: usize) -> usize {
    (len + FRAME_ALIGN_BYTES - 1) & !(FRAME_ALIGN_BYTES - 1)
}

/// Bytes a frame with `payload_bytes` of payload occupies in a segment, padding included.
#[inline]
pub const fn frame_bytes(payload_bytes: usize) -> usize {
    align_up(FRAME_HEADER_BYTES + payload_bytes)
}

/// Why bytes at a frame position are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDefect {
    /// Not even the 4-byte length fits before the end of the file.
    TruncatedLength,
    /// The length field is smaller than the header.
    LengthTooSmall,
    /// The frame would extend past the end of the file.
    PastEndOfFile,
    /// The crc does not match the bytes.
    ChecksumMismatch,
    /// Reserved header bits are set.
    ReservedBitsSet,
}

impl FrameDefect {
    /// A human-readable description, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            FrameDefect::TruncatedLength => "frame length field cut off by the end of the file",
            FrameDefect::LengthTooSmall => "frame length smaller than the frame header",
            FrameDefect::PastEndOfFile => "frame extends past the end of the file",
            FrameDefect::ChecksumMismatch => "checksum mismatch",
            FrameDefect::ReservedBitsSet => "reserved header bits are set",
        }
    }
}

/// What is found at a frame position.
#[derive(Debug)]
pub enum FrameCheck<'a> {
    /// A frame whose checksum validates.
    Valid(Record<'a>),
    /// A zero length field (or no room for one): no frame has been written here.
    End,
    /// Something that is neither a valid frame nor the end.
    Invalid(FrameDefect),
}

#[inline]
fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

#[inline]
fn read_u64(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

#[inline]
fn checksum(frame: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&frame[OFFSET_LEN..OFFSET_CRC]);
    hasher.update(&frame[OFFSET_SEQ..]);
    hasher.finalize()
}

/// Validates the frame starting at `offset` in `segment` (a whole segment's bytes).
///
/// Precondition: `offset` is frame-aligned.
#[inline]
pub fn check_frame(segment: &[u8], offset: usize) -> FrameCheck<'_> {
    debug_assert_eq!(offset % FRAME_ALIGN_BYTES, 0);
    let rest = segment.len().saturating_sub(offset);
    if rest == 0 {
        return FrameCheck::End;
    }
    if rest < 4 {
        // A file cut inside the length field: zeros mean nothing was written, anything else is
        // a torn length.
        return if segment[offset..].iter().all(|&b| b == 0) {
            FrameCheck::End
        } else {
            FrameCheck::Invalid(FrameDefect::TruncatedLength)
        };
    }
    let frame_len = read_u32(segment, offset + OFFSET_LEN) as usize;
    if frame_len == 0 {
        return FrameCheck::End;
    }
    if frame_len < FRAME_HEADER_BYTES {
        return FrameCheck::Invalid(FrameDefect::LengthTooSmall);
    }
    let padded = align_up(frame_len);
    if padded > rest {
        return FrameCheck::Invalid(FrameDefect::PastEndOfFile);
    }
    let frame = &segment[offset..offset + padded];
    let crc = read_u32(frame, OFFSET_CRC);
    if checksum(frame) != crc {
        return FrameCheck::Invalid(FrameDefect::ChecksumMismatch);
    }
    if read_u32(frame, OFFSET_FLAGS) != 0 {
        // flags (u16) and reserved (u32) must both be zero; checked after the crc so that a
        // random bit flip is reported as the more useful "checksum mismatch".
        return FrameCheck::Invalid(FrameDefect::ReservedBitsSet);
    }
    if read_u32(frame, OFFSET_RESERVED) != 0 {
        return FrameCheck::Invalid(FrameDefect::ReservedBitsSet);
    }
    FrameCheck::Valid(Record::new(
        read_u64(frame, OFFSET_SEQ),
        read_u64(frame, OFFSET_TIMESTAMP),
        u16::from_le_bytes([frame[OFFSET_KIND], frame[OFFSET_KIND + 1]]),
        crc,
        offset as u64,
        &frame[FRAME_HEADER_BYTES..frame_len],
    ))
}

/// The record view of a frame that [`check_frame`] has already validated at `offset`: parses
/// the header again without recomputing the checksum.
#[inline]
pub fn record_unchecked(segment: &[u8], offset: usize) -> Record<'_> {
    let frame_len = read_u32(segment, offset + OFFSET_LEN) as usize;
    debug_assert!(frame_len >= FRAME_HEADER_BYTES && offset + align_up(frame_len) <= segment.len());
    let frame = &segment[offset..offset + frame_len];
    Record::new(
        read_u64(frame, OFFSET_SEQ),
        read_u64(frame, OFFSET_TIMESTAMP),
        u16::from_le_bytes([frame[OFFSET_KIND], frame[OFFSET_KIND + 1]]),
        read_u32(frame, OFFSET_CRC),
        offset as u64,
        &frame[FRAME_HEADER_BYTES..],
    )
}

/// Writes the header of a frame whose payload has already been written at
/// `dst[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + payload_bytes]`, zeroes the padding and
/// returns the frame's crc.
///
/// Precondition: `dst.len() == frame_bytes(payload_bytes)`.
#[inline]
pub fn seal_frame(dst: &mut [u8], seq: u64, timestamp_ns: u64, kind: u16, payload_bytes: usize) -> u32 {
    let frame_len = FRAME_HEADER_BYTES + payload_bytes;
    assert_eq!(
        dst.len(),
        align_up(frame_len),
        "frame buffer must be exactly the padded frame"
    );
    assert!(
        u32::try_from(frame_len).is_ok(),
        "frame length fits u32 (bounded by max record size)"
    );
    dst[OFFSET_LEN..OFFSET_LEN + 4].copy_from_slice(&(frame_len as u32).to_le_bytes());
    dst[OFFSET_SEQ..OFFSET_SEQ + 8].copy_from_slice(&seq.to_le_bytes());
    dst[OFFSET_TIMESTAMP..OFFSET_TIMESTAMP + 8].copy_from_slice(&timestamp_ns.to_le_bytes());
    dst[OFFSET_KIND..OFFSET_KIND + 2].copy_from_slice(&kind.to_le_bytes());
    dst[OFFSET_FLAGS..FRAME_HEADER_BYTES].fill(0);
    dst[frame_len..].fill(0);
    let crc = checksum(dst);
    dst[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; frame_bytes(payload.len())];
        buf[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + payload.len()].copy_from_slice(payload);
        seal_frame(&mut buf, 7, 1_000, 3, payload.len());
        buf
    }

    #[test]
    fn round_trip() {
        let buf = frame(b"hello");
        assert_eq!(buf.len(), 48);
        match check_frame(&buf, 0) {
            FrameCheck::Valid(r) => {
                assert_eq!(
                    (r.seq(), r.timestamp_ns(), r.kind(), r.payload()),
                    (7, 1_000, 3, &b"hello"[..])
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let clean = frame(b"0123456789abcdef0123");
        for bit in 0..clean.len() * 8 {
            let mut buf = clean.clone();
            buf[bit / 8] ^= 1 << (bit % 8);
            match check_frame(&buf, 0) {
                FrameCheck::Valid(_) => panic!("bit {bit} flip not detected"),
                FrameCheck::End | FrameCheck::Invalid(_) => {}
            }
        }
    }

    #[test]
    fn zero_length_is_end_and_short_tail_is_defect() {
        assert!(matches!(check_frame(&[0u8; 64], 0), FrameCheck::End));
        assert!(matches!(check_frame(&[0u8; 2], 0), FrameCheck::End));
        assert!(matches!(
            check_frame(&[1u8, 0], 0),
            FrameCheck::Invalid(FrameDefect::TruncatedLength)
        ));
        let buf = frame(b"abc");
        assert!(matches!(
            check_frame(&buf[..40], 0),
            FrameCheck::Invalid(FrameDefect::PastEndOfFile)
        ));
    }
}
