//! A parsed FIX message: the fields of one frame, borrowed from the receive buffer (zero
//! copy: a field is a tag and a byte range).

use super::frame::SOH;

/// One field: its tag and where its value lies in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Tag number (may be 0 or negative in broken input; validation rejects those).
    pub tag: i64,
    /// Value start offset in the frame.
    pub start: u32,
    /// Value end offset (exclusive).
    pub end: u32,
}

/// Why a frame is not a FIX message at all. QuickFIX drops such frames without an answer
/// (only a broken Logon ends the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A field without `=`, or with a tag that is not a number.
    BadField,
    /// The first three fields are not 8, 9, 35, or the last is not 10.
    BadEnvelope,
    /// BodyLength does not match the body.
    BodyLength,
    /// CheckSum does not match.
    CheckSum,
    /// More fields than a message may have.
    TooManyFields,
}

/// Most fields in one message (bounds the per-connection field buffer).
pub const MAX_FIELDS: usize = 512;

/// Splits `frame` into fields (appended to `out`, cleared first) and checks the envelope:
/// 8, 9, 35 first, 10 last, BodyLength and CheckSum right.
pub fn parse(frame: &[u8], out: &mut Vec<Field>) -> Result<(), Malformed> {
    if split_short(frame, out, plain_field) {
        return Ok(());
    }
    parse_general(frame, out)
}

/// Largest frame [`split_short`] takes: its SOH mask lives on the stack (16 words).
pub(super) const SHORT_MAX_BYTES: usize = 1024;
/// Most fields [`split_short`] takes (the room reserved in the field vector).
pub(super) const SHORT_MAX_FIELDS: usize = 40;

/// The common case of [`parse`], and only its success: a frame of at most
/// [`SHORT_MAX_BYTES`] with at most [`SHORT_MAX_FIELDS`] fields whose tags are one to three
/// digits, split and checked in one tight pass. For each field in order, `field` gets its
/// index, its first four bytes, its start and the offset of its SOH, and returns its tag and
/// the offset of the '=' after it (normally [`tag_of_head`], plus whatever checks the caller
/// joins to the pass), or None to stop. True means `out` holds exactly what
/// [`parse_general`] would put there (given tags and '=' offsets that are right) and the
/// envelope is right; false means "not decided here" (anything unusual, broken input
/// included, or a None from `field`), and `parse_general` starts over.
///
/// Why a second path: the general one costs ~100 instructions per field (the '=' mask walk
/// across 64-byte blocks, tags of any length, a `Vec` push that reloads the vector), which
/// kept `ordo bench fix` below its target; a NewOrderSingle has ~17 fields.
#[inline]
pub(super) fn split_short(
    frame: &[u8],
    out: &mut Vec<Field>,
    mut field: impl FnMut(usize, [u8; 4], usize, usize) -> Option<(i64, usize)>,
) -> bool {
    let n = frame.len();
    if !(16..=SHORT_MAX_BYTES).contains(&n) {
        return false;
    }
    let (mut sohs, sum) = Sohs::scan(frame);
    // Fields are written straight into the vector's spare room (reserved once per
    // connection, it never grows again): neither a stack array to clear and copy (~110
    // instructions) nor a push that reloads the vector per field.
    out.clear();
    out.reserve(SHORT_MAX_FIELDS);
    let fields = &mut out.spare_capacity_mut()[..SHORT_MAX_FIELDS];
    let mut count = 0;
    let mut field_start = 0usize;
    while let Some(end) = sohs.next() {
        let Some(&head) = frame
            .get(field_start..field_start + 4)
            .and_then(|h| h.first_chunk::<4>())
        else {
            return false;
        };
        let Some(slot) = fields.get_mut(count) else {
            return false;
        };
        let Some((tag, eq)) = field(count, head, field_start, end) else {
            return false;
        };
        if !(field_start < eq && eq < end) {
            debug_assert!(false, "a tag's bytes hold no SOH");
            return false;
        }
        slot.write(Field {
            tag,
            start: (eq + 1) as u32,
            end: end as u32,
        });
        count += 1;
        field_start = end + 1;
    }
    if field_start != n {
        return false; // bytes after the last SOH
    }
    // SAFETY: the loop above wrote the first `count` spare slots (`count` never exceeds the
    // `SHORT_MAX_FIELDS` slots reserved), and `Field` is plain data.
    unsafe { out.set_len(count) };
    check_envelope(frame, out, sum).is_ok()
}

/// The tag at the front of a field whose first four bytes are `head`, if it is one to three
/// digits followed by '=' (every tag FIX 4.4 defines): the tag and its digit count (the offset
/// of the '=' from the field's start). A digit is never SOH, so the field's SOH lies after it.
#[inline]
pub(super) fn tag_of_head([b0, b1, b2, b3]: [u8; 4]) -> Option<(i64, usize)> {
    let digit = |b: u8| {
        let d = b.wrapping_sub(b'0');
        (d < 10).then_some(i64::from(d))
    };
    match (digit(b0)?, b1, b2, b3) {
        (d0, b'=', _, _) => Some((d0, 1)),
        (d0, _, b'=', _) => Some((d0 * 10 + digit(b1)?, 2)),
        (d0, _, _, b'=') => Some((d0 * 100 + digit(b1)? * 10 + digit(b2)?, 3)),
        _ => None,
    }
}

/// [`split_short`]'s `field` for a plain split: the tag and its '=' offset, no other check.
#[inline]
fn plain_field(_index: usize, head: [u8; 4], start: usize, _end: usize) -> Option<(i64, usize)> {
    tag_of_head(head).map(|(tag, digits)| (tag, start + digits))
}

/// [`parse`] for any frame.
fn parse_general(frame: &[u8], out: &mut Vec<Field>) -> Result<(), Malformed> {
    out.clear();
    // Every SOH ends a field and the first '=' of a field ends its tag: both found 16 bytes at
    // a time ([`scan_block`]), which also sums the bytes for the CheckSum. A field's value is
    // never scanned byte by byte.
    let mut field_start = 0usize;
    let mut block = 0usize;
    let mut sum = 0u32;
    // The first '=' of the field being read, once seen in an earlier block (for fields that
    // straddle two 64-byte blocks).
    let mut eq_seen: Option<usize> = None;
    while block < frame.len() {
        let scan = scan_block(frame, block);
        sum += scan.sum;
        let mut soh_bits = scan.soh;
        while soh_bits != 0 {
            let soh = block + soh_bits.trailing_zeros() as usize;
            soh_bits &= soh_bits - 1;
            // The tag's '=': seen in an earlier block, or the first one in this block at or
            // after the field's start.
            let eq = match eq_seen.take() {
                Some(eq) => eq,
                None => {
                    let from = field_start.saturating_sub(block);
                    let after = (scan.eq >> from) << from;
                    if after == 0 {
                        return Err(Malformed::BadField); // no '=' before the SOH
                    }
                    block + after.trailing_zeros() as usize
                }
            };
            if eq > soh {
                return Err(Malformed::BadField);
            }
            let tag = short_tag(frame, field_start, eq)
                .or_else(|| parse_tag(&frame[field_start..eq]))
                .ok_or(Malformed::BadField)?;
            if out.len() == MAX_FIELDS {
                return Err(Malformed::TooManyFields);
            }
            out.push(Field {
                tag,
                start: (eq + 1) as u32,
                end: soh as u32,
            });
            field_start = soh + 1;
        }
        // The field that goes on into the next block: its '=' if it lies in this one.
        if eq_seen.is_none() && field_start < block + 64 {
            let from = field_start.saturating_sub(block);
            let after = (scan.eq >> from) << from;
            if after != 0 {
                eq_seen = Some(block + after.trailing_zeros() as usize);
            }
        }
        block += 64;
    }
    if field_start != frame.len() {
        return Err(Malformed::BadField); // bytes after the last SOH
    }
    check_envelope(frame, out, sum)
}

/// The envelope of split `fields`: 8, 9, 35 first, 10 last, BodyLength and CheckSum right
/// (`sum` is the byte sum of the whole frame).
#[inline]
pub(super) fn check_envelope(frame: &[u8], out: &[Field], sum: u32) -> Result<(), Malformed> {
    let tags = |i: usize| out.get(i).map(|f| f.tag);
    if tags(0) != Some(8)
        || tags(1) != Some(9)
        || tags(2) != Some(35)
        || out.last().map(|f| f.tag) != Some(10)
    {
        return Err(Malformed::BadEnvelope);
    }
    check_body_length_and_checksum(frame, out, sum)
}

/// [`check_envelope`] past its tag checks, for fields known to be 8, 9, 35, ..., 10 (a
/// remembered shape's): BodyLength's value and the CheckSum.
#[inline]
pub(super) fn check_body_length_and_checksum(frame: &[u8], out: &[Field], sum: u32) -> Result<(), Malformed> {
    if out.len() < 4 {
        return Err(Malformed::BadEnvelope);
    }
    debug_assert!(out[1].tag == 9 && out[out.len() - 1].tag == 10);
    // BodyLength: bytes after the SOH that ends 9= up to and including the SOH before 10=.
    let body_start = out[1].end as usize + 1;
    let checksum = out[out.len() - 1];
    let checksum_field_start = checksum.start as usize - 3;
    let declared = &frame[out[1].start as usize..out[1].end as usize];
    if declared.is_empty() || declared.len() > 9 {
        return Err(Malformed::BodyLength);
    }
    // One pass: each byte a digit, the value accumulated (at most 9 digits: no overflow).
    let mut length = 0u32;
    for &c in declared {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err(Malformed::BodyLength);
        }
        length = length * 10 + u32::from(d);
    }
    if length != (checksum_field_start - body_start) as u32 {
        return Err(Malformed::BodyLength);
    }
    // The sum covers every byte before "10=": take the checksum field's own bytes back out.
    // They are "10=" (the tag's last two digits and '=', whatever zeros lead), the three
    // digits and the final SOH (nothing follows the last field's SOH).
    let &[g0, g1, g2] = &frame[checksum.start as usize..checksum.end as usize] else {
        return Err(Malformed::CheckSum);
    };
    if ![g0, g1, g2].iter().all(u8::is_ascii_digit) {
        return Err(Malformed::CheckSum);
    }
    debug_assert_eq!(&frame[checksum_field_start..checksum.start as usize], b"10=");
    debug_assert_eq!(checksum.end as usize + 1, frame.len());
    let own = u32::from(b'1' + b'0' + b'=' + SOH) + u32::from(g0) + u32::from(g1) + u32::from(g2);
    if digits_value(&[g0, g1, g2]) != (sum - own) % 256 {
        return Err(Malformed::CheckSum);
    }
    Ok(())
}

/// The value of a run of ASCII digits (at most 9, checked by the caller).
#[inline]
fn digits_value(digits: &[u8]) -> u32 {
    digits.iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'))
}

/// The SOHs of a frame of 16 to [`SHORT_MAX_BYTES`] bytes, in order.
pub(super) struct Sohs {
    /// Bit `i % 64` of word `i / 64` is set for an SOH at offset `i`.
    soh: [u64; SHORT_MAX_BYTES / 64],
    /// Words in use.
    words: usize,
    /// The word being read and its SOHs not yet returned.
    word: usize,
    bits: u64,
}

impl Sohs {
    /// Finds every SOH of `frame` (16 to [`SHORT_MAX_BYTES`] bytes) and sums its bytes (for
    /// the CheckSum), 16 to 64 bytes a step.
    #[inline]
    pub(super) fn scan(frame: &[u8]) -> (Sohs, u32) {
        let mut soh = [0u64; SHORT_MAX_BYTES / 64];
        let sum = scan_frame(frame, &mut soh);
        let sohs = Sohs {
            soh,
            words: frame.len().div_ceil(64),
            word: 0,
            bits: soh[0],
        };
        (sohs, sum)
    }

    /// Word `w` of the SOH bits (0 beyond the frame).
    #[inline(always)]
    pub(super) fn word(&self, w: usize) -> u64 {
        self.soh.get(w).copied().unwrap_or(0)
    }

    /// Words that cover the frame.
    #[inline(always)]
    pub(super) fn words(&self) -> usize {
        self.words
    }

    /// The offset of the next SOH.
    #[inline(always)]
    pub(super) fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            self.word += 1;
            self.bits = *self.soh.get(self.word).filter(|_| self.word < self.words)?;
        }
        let at = self.word * 64 + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(at)
    }
}

/// Sets bit `i % 64` of `soh[i / 64]` for every SOH at `frame[i]`; returns the sum of the
/// bytes. For [`Sohs::scan`]: `frame` is 16 to [`SHORT_MAX_BYTES`] bytes long and `soh`
/// starts all zeros.
#[inline]
fn scan_frame(frame: &[u8], soh: &mut [u64; SHORT_MAX_BYTES / 64]) -> u32 {
    debug_assert!((16..=SHORT_MAX_BYTES).contains(&frame.len()));
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_add_epi64, _mm_cmpeq_epi8, _mm_cvtsi128_si32, _mm_loadu_si128, _mm_movemask_epi8,
            _mm_sad_epu8, _mm_set1_epi8, _mm_setzero_si128, _mm_srli_si128,
        };
        // SAFETY: register-only SSE2 operations (baseline on x86_64), no memory access. The
        // byte sums stay in a vector (two 64-bit lanes) until the end.
        let step = |v: __m128i, acc: &mut __m128i| unsafe {
            *acc = _mm_add_epi64(*acc, _mm_sad_epu8(v, _mm_setzero_si128()));
            u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(SOH as i8))) as u16)
        };
        // SAFETY: as above.
        let mut acc = unsafe { _mm_setzero_si128() };
        let mut block = 0;
        // 64 bytes a step: four loads, one mask word.
        while let Some(bytes) = frame.get(block..block + 64) {
            let p = bytes.as_ptr().cast::<__m128i>();
            // SAFETY: four unaligned 16-byte loads within the 64 bytes of `bytes`.
            let (a, b, c, d) = unsafe {
                (
                    _mm_loadu_si128(p),
                    _mm_loadu_si128(p.add(1)),
                    _mm_loadu_si128(p.add(2)),
                    _mm_loadu_si128(p.add(3)),
                )
            };
            soh[block / 64] = step(a, &mut acc)
                | step(b, &mut acc) << 16
                | step(c, &mut acc) << 32
                | step(d, &mut acc) << 48;
            block += 64;
        }
        // Then 16 bytes a step.
        let mut chunk = block;
        while let Some(bytes) = frame.get(chunk..chunk + 16) {
            // SAFETY: one unaligned 16-byte load within `bytes`.
            let v = unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) };
            soh[chunk / 64] |= step(v, &mut acc) << (chunk % 64);
            chunk += 16;
        }
        // SAFETY: register-only SSE2 operations.
        let mut sum = unsafe { _mm_cvtsi128_si32(_mm_add_epi64(acc, _mm_srli_si128(acc, 8))) } as u32;
        // The last, partial chunk: as in `scan_chunk` (an overlapping load, masked).
        if chunk < frame.len() {
            let tail = scan_chunk(frame, chunk);
            soh[chunk / 64] |= u64::from(tail.soh) << (chunk % 64);
            sum += tail.sum;
        }
        sum
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut sum = 0;
        let mut chunk = 0;
        while chunk < frame.len() {
            let scan = scan_chunk(frame, chunk);
            soh[chunk / 64] |= u64::from(scan.soh) << (chunk % 64);
            sum += scan.sum;
            chunk += 16;
        }
        sum
    }
}

/// What one 64-byte step of [`parse`] finds.
struct BlockScan {
    /// Bit i set when byte i is SOH.
    soh: u64,
    /// Bit i set when byte i is '='.
    eq: u64,
    /// The sum of the bytes.
    sum: u32,
}

/// Scans the (up to) 64 bytes of `frame` from `block`, 16 at a time.
#[inline]
fn scan_block(frame: &[u8], block: usize) -> BlockScan {
    let mut scan = BlockScan {
        soh: 0,
        eq: 0,
        sum: 0,
    };
    for k in 0..4 {
        let chunk = block + 16 * k;
        if chunk >= frame.len() {
            break;
        }
        let c = scan_chunk(frame, chunk);
        scan.soh |= u64::from(c.soh) << (16 * k);
        scan.eq |= u64::from(c.eq) << (16 * k);
        scan.sum += c.sum;
    }
    scan
}

/// What one 16-byte step of [`scan_block`] finds.
struct ChunkScan {
    /// Bit i set when byte i is SOH.
    soh: u32,
    /// Bit i set when byte i is '='.
    eq: u32,
    /// The sum of the bytes.
    sum: u32,
}

/// Scans the (up to) 16 bytes of `frame` from `chunk`.
#[inline]
fn scan_chunk(frame: &[u8], chunk: usize) -> ChunkScan {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_add_epi64, _mm_and_si128, _mm_cmpeq_epi8, _mm_cvtsi128_si32, _mm_loadu_si128,
            _mm_movemask_epi8, _mm_sad_epu8, _mm_set1_epi8, _mm_setzero_si128, _mm_srli_si128,
        };
        // SAFETY: register-only SSE2 operations (baseline on x86_64), no memory access.
        let scan = |v: __m128i, summed: __m128i, shift: usize| unsafe {
            let soh = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(SOH as i8))) as u32;
            let eq = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'=' as i8))) as u32;
            // Two sums of eight bytes each, in the low 16 bits of each 64-bit half.
            let halves = _mm_sad_epu8(summed, _mm_setzero_si128());
            let sum = _mm_cvtsi128_si32(_mm_add_epi64(halves, _mm_srli_si128(halves, 8)));
            ChunkScan {
                soh: soh >> shift,
                eq: eq >> shift,
                sum: sum as u32,
            }
        };
        if let Some(bytes) = frame.get(chunk..chunk + 16) {
            // SAFETY: reads exactly the 16 bytes of `bytes` (unaligned load allowed).
            let v = unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) };
            return scan(v, v, 0);
        }
        // The last, partial chunk: the frame's last 16 bytes, of which the first `16 - rest`
        // were scanned already (shifted out of the masks, zeroed for the sum).
        let rest = frame.len() - chunk;
        if let Some(bytes) = frame.len().checked_sub(16).map(|from| &frame[from..]) {
            let keep = &TAIL_MASK[rest..rest + 16];
            // SAFETY: `bytes` and `keep` are 16 bytes long each (unaligned loads allowed).
            let (v, k) = unsafe {
                (
                    _mm_loadu_si128(bytes.as_ptr().cast()),
                    _mm_loadu_si128(keep.as_ptr().cast()),
                )
            };
            // SAFETY: a register-only SSE2 operation.
            let kept = unsafe { _mm_and_si128(v, k) };
            return scan(v, kept, 16 - rest);
        }
    }
    let end = (chunk + 16).min(frame.len());
    let mut scan = ChunkScan {
        soh: 0,
        eq: 0,
        sum: 0,
    };
    for (i, &b) in frame[chunk..end].iter().enumerate() {
        scan.soh |= u32::from(b == SOH) << i;
        scan.eq |= u32::from(b == b'=') << i;
        scan.sum += u32::from(b);
    }
    scan
}

/// From offset `rest`, 16 bytes that keep the last `rest` bytes of a vector.
#[cfg(target_arch = "x86_64")]
static TAIL_MASK: [u8; 32] = {
    let mut m = [0u8; 32];
    let mut i = 16;
    while i < 32 {
        m[i] = 0xff;
        i += 1;
    }
    m
};

/// The tag at `frame[start..eq]` if it is one to three digits (every tag FIX 4.4 defines),
/// without a loop; None for anything else, which [`parse_tag`] then judges.
#[inline]
fn short_tag(frame: &[u8], start: usize, eq: usize) -> Option<i64> {
    let digit = |i: usize| {
        let d = frame[i].wrapping_sub(b'0');
        (d < 10).then_some(i64::from(d))
    };
    match eq.checked_sub(start)? {
        1 => digit(start),
        2 => Some(digit(start)? * 10 + digit(start + 1)?),
        3 => Some(digit(start)? * 100 + digit(start + 1)? * 10 + digit(start + 2)?),
        _ => None,
    }
}

/// Parses a tag (the bytes before a field's first '='): None if it is empty, longer than 9
/// digits, or holds anything but digits (and a leading '-', for broken input that validation
/// then rejects).
#[inline]
fn parse_tag(tag: &[u8]) -> Option<i64> {
    let (neg, digits) = match tag {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, tag),
    };
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let mut v = 0i64;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + i64::from(d);
    }
    Some(if neg { -v } else { v })
}

/// A message view over a frame and its fields.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The frame.
    pub buf: &'a [u8],
    /// Its fields, in order.
    pub fields: &'a [Field],
}

impl<'a> Message<'a> {
    /// The value of a field.
    #[inline]
    pub fn value(&self, f: &Field) -> &'a [u8] {
        &self.buf[f.start as usize..f.end as usize]
    }

    /// The first value of `tag`.
    #[inline]
    pub fn get(&self, tag: i64) -> Option<&'a [u8]> {
        self.fields.iter().find(|f| f.tag == tag).map(|f| self.value(f))
    }

    /// Whether `tag` is present.
    pub fn has(&self, tag: i64) -> bool {
        self.fields.iter().any(|f| f.tag == tag)
    }

    /// The first value of `tag` as text.
    pub fn get_str(&self, tag: i64) -> Option<&'a str> {
        self.get(tag).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of `tag` as an unsigned integer (no sign, digits only).
    pub fn get_u64(&self, tag: i64) -> Option<u64> {
        let v = self.get(tag)?;
        if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(v.iter().fold(0u64, |a, &c| a * 10 + u64::from(c - b'0')))
    }

    /// MsgType (35).
    pub fn msg_type(&self) -> &'a [u8] {
        self.value(&self.fields[2])
    }

    /// Whether a flag field (Y/N) is Y.
    pub fn flag(&self, tag: i64) -> bool {
        self.get(tag) == Some(b"Y")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(s: &str) -> Vec<u8> {
        s.replace('|', "\x01").into_bytes()
    }

    /// The plain definition: split at every SOH, a field is `tag=value`.
    fn reference_split(frame: &[u8]) -> Option<Vec<Field>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < frame.len() {
            let soh = frame[pos..].iter().position(|&b| b == SOH)? + pos;
            let eq = frame[pos..soh].iter().position(|&b| b == b'=')? + pos;
            let digits = frame[pos..eq].strip_prefix(b"-").unwrap_or(&frame[pos..eq]);
            if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let v = digits.iter().fold(0i64, |a, &c| a * 10 + i64::from(c - b'0'));
            let tag = if frame[pos] == b'-' { -v } else { v };
            out.push(Field {
                tag,
                start: (eq + 1) as u32,
                end: soh as u32,
            });
            pos = soh + 1;
        }
        Some(out)
    }

    proptest! {
        /// The 16-byte-at-a-time splitter finds the fields the plain definition finds, on
        /// well-formed and broken input alike (only the envelope checks come after it).
        #[test]
        fn splits_like_the_definition(
            parts in proptest::collection::vec(
                (proptest::prop_oneof![0i64..100_000, -50i64..0], "[ -~]{0,40}"), 0..30),
            garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            use_garbage: bool,
        ) {
            let mut frame = Vec::new();
            if use_garbage {
                frame.extend_from_slice(&garbage);
            } else {
                for (tag, value) in &parts {
                    frame.extend_from_slice(format!("{tag}={value}").as_bytes());
                    frame.push(SOH);
                }
            }
            let mut fields = Vec::new();
            let ours = parse(&frame, &mut fields);
            match reference_split(&frame) {
                Some(expected) if expected.len() <= MAX_FIELDS => {
                    // Split alike: then only an envelope problem may remain.
                    prop_assert!(!matches!(ours, Err(Malformed::BadField)), "{ours:?}");
                    prop_assert_eq!(fields, expected);
                }
                _ => prop_assert!(ours.is_err()),
            }
        }
    }

    /// A well-formed frame of `fields` after 8 and 9 (BodyLength and CheckSum right unless
    /// `length_delta` / `checksum_delta` say otherwise).
    fn frame_of(fields: &[(i64, String)], length_delta: i64, checksum_delta: u32) -> Vec<u8> {
        let mut body = Vec::new();
        for (tag, value) in fields {
            body.extend_from_slice(format!("{tag}={value}\x01").as_bytes());
        }
        let declared = (body.len() as i64 + length_delta).max(0);
        let mut frame = format!("8=FIX.4.4\x019={declared}\x01").into_bytes();
        frame.extend_from_slice(&body);
        let sum = frame.iter().fold(0u32, |a, &b| a + u32::from(b));
        frame.extend_from_slice(format!("10={:03}\x01", (sum + checksum_delta) % 256).as_bytes());
        frame
    }

    proptest! {
        /// The short path only ever says yes where the general path does, with the same
        /// fields; and it does say yes for a well-formed frame within its bounds (else it
        /// silently stops being the fast path).
        #[test]
        fn short_path_agrees_with_the_general_path(
            fields in proptest::collection::vec(
                (proptest::prop_oneof![1i64..1000, 1000i64..100_000, -5i64..1], "[ -~]{0,40}"), 1..45),
            length_delta in proptest::prop_oneof![Just(0i64), -2i64..3],
            checksum_delta in proptest::prop_oneof![Just(0u32), 0u32..256],
            damage in proptest::option::of((0usize..2000, proptest::num::u8::ANY)),
            cut in proptest::option::of(0usize..2000),
            short_tags_only: bool,
            // Appended bytes, some leaving the CheckSum's byte sum unchanged (mod 256).
            tail in proptest::prop_oneof![
                2 => Just(Vec::new()),
                1 => Just(vec![0u8]),
                1 => Just(b"1=\x01\x91".to_vec()),
            ],
        ) {
            let mut fields = fields;
            if short_tags_only {
                for (tag, _) in &mut fields {
                    *tag = tag.rem_euclid(1000);
                }
            }
            fields.insert(0, (35, "D".to_string()));
            let mut frame = frame_of(&fields, length_delta, checksum_delta);
            let pristine = damage.is_none() && cut.is_none();
            if let Some((at, byte)) = damage {
                let at = at % frame.len();
                frame[at] = byte;
            }
            if let Some(cut) = cut {
                frame.truncate(cut % (frame.len() + 1));
            }
            let pristine = pristine && tail.is_empty();
            frame.extend_from_slice(&tail);
            let (mut short, mut general) = (Vec::new(), Vec::new());
            let short_ok = split_short(&frame, &mut short, plain_field);
            let general_result = parse_general(&frame, &mut general);
            if short_ok {
                prop_assert_eq!(general_result, Ok(()));
                prop_assert_eq!(&short, &general);
            }
            let simple = fields.iter().all(|(tag, _)| (0..1000).contains(tag));
            if pristine && simple && length_delta == 0 && checksum_delta == 0
                && frame.len() <= SHORT_MAX_BYTES && fields.len() + 3 <= SHORT_MAX_FIELDS
            {
                prop_assert!(short_ok, "a well-formed frame missed the short path");
            }
        }

        /// BodyLength and CheckSum are judged as the plain definitions say (the checksum is
        /// summed 16 bytes at a time), for frames of any length and any declared values.
        #[test]
        fn envelope_checks_like_the_definition(
            values in proptest::collection::vec("[ -<>-~]{0,40}", 0..20),
            length_delta in proptest::prop_oneof![Just(0i64), -3i64..3],
            checksum_delta in proptest::prop_oneof![Just(0u32), 0u32..256],
        ) {
            let mut body = b"35=D\x01".to_vec();
            for (i, v) in values.iter().enumerate() {
                body.extend_from_slice(format!("{}={v}\x01", 100 + i).as_bytes());
            }
            let declared = (body.len() as i64 + length_delta).max(0);
            let mut frame = format!("8=FIX.4.4\x019={declared}\x01").into_bytes();
            frame.extend_from_slice(&body);
            let sum = frame.iter().fold(0u32, |a, &b| a + u32::from(b)) % 256;
            let given = (sum + checksum_delta) % 256;
            frame.extend_from_slice(format!("10={given:03}\x01").as_bytes());
            let mut fields = Vec::new();
            let expected = if length_delta != 0 {
                Err(Malformed::BodyLength)
            } else if given != sum {
                Err(Malformed::CheckSum)
            } else {
                Ok(())
            };
            prop_assert_eq!(parse(&frame, &mut fields), expected);
        }
    }

    #[test]
    fn parse_and_check_envelope() {
        let frame = m("8=FIX.4.4|9=5|35=0|10=163|");
        let mut fields = Vec::new();
        parse(&frame, &mut fields).unwrap();
        let msg = Message {
            buf: &frame,
            fields: &fields,
        };
        assert_eq!(msg.msg_type(), b"0");
        assert_eq!(fields.len(), 4);
        assert_eq!(
            parse(&m("8=FIX.4.4|9=6|35=0|10=163|"), &mut fields),
            Err(Malformed::BodyLength)
        );
        assert_eq!(
            parse(&m("8=FIX.4.4|9=5|35=0|10=164|"), &mut fields),
            Err(Malformed::CheckSum)
        );
        assert_eq!(
            parse(&m("8=FIX.4.4|35=0|9=5|10=161|"), &mut fields),
            Err(Malformed::BadEnvelope)
        );
        assert_eq!(
            parse(&m("8=FIX.4.4|9=5|4x=0|10=161|"), &mut fields),
            Err(Malformed::BadField)
        );
    }
}
