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
    out.clear();
    // Every SOH ends a field: find them 16 bytes at a time ([`soh_mask`]) and parse each
    // field's tag from its start. A field's value is never scanned byte by byte.
    let mut field_start = 0usize;
    let mut chunk = 0usize;
    while chunk < frame.len() {
        let mut mask = soh_mask(frame, chunk);
        while mask != 0 {
            let soh = chunk + mask.trailing_zeros() as usize;
            mask &= mask - 1;
            // The tag: digits (an optional '-' for broken input that validation then
            // rejects) up to '='. It stops at anything else, the SOH included, so the '='
            // found lies inside this field.
            let (tag, eq) = scan_tag(frame, field_start).ok_or(Malformed::BadField)?;
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
        chunk += 16;
    }
    if field_start != frame.len() {
        return Err(Malformed::BadField); // bytes after the last SOH
    }
    let tags = |i: usize| out.get(i).map(|f| f.tag);
    if tags(0) != Some(8)
        || tags(1) != Some(9)
        || tags(2) != Some(35)
        || out.last().map(|f| f.tag) != Some(10)
    {
        return Err(Malformed::BadEnvelope);
    }
    // BodyLength: bytes after the SOH that ends 9= up to and including the SOH before 10=.
    let body_start = out[1].end as usize + 1;
    let checksum_field_start = out[out.len() - 1].start as usize - 3;
    let declared = std::str::from_utf8(&frame[out[1].start as usize..out[1].end as usize])
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .ok_or(Malformed::BodyLength)?;
    if declared != checksum_field_start - body_start {
        return Err(Malformed::BodyLength);
    }
    let sum = frame[..checksum_field_start]
        .iter()
        .fold(0u32, |a, &b| a + u32::from(b))
        % 256;
    let given = &frame[out[out.len() - 1].start as usize..out[out.len() - 1].end as usize];
    if given.len() != 3 || !given.iter().all(u8::is_ascii_digit) {
        return Err(Malformed::CheckSum);
    }
    let given = given.iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'));
    if given != sum {
        return Err(Malformed::CheckSum);
    }
    Ok(())
}

/// Bit i set when `frame[chunk + i]` is SOH, for the (up to) 16 bytes from `chunk`.
#[inline]
fn soh_mask(frame: &[u8], chunk: usize) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(bytes) = frame.get(chunk..chunk + 16) {
        use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
        // SAFETY: SSE2 is part of the x86_64 baseline; the load reads exactly the 16 bytes of
        // `bytes` (unaligned load allowed).
        let mask = unsafe {
            let v = _mm_loadu_si128(bytes.as_ptr().cast());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(SOH as i8)))
        };
        return mask as u32;
    }
    let end = (chunk + 16).min(frame.len());
    frame[chunk..end]
        .iter()
        .enumerate()
        .fold(0u32, |m, (i, &b)| m | (u32::from(b == SOH) << i))
}

/// Parses the tag starting at `frame[pos]`: returns it and the position of its '='. None if
/// the tag is empty, longer than 9 digits, or holds anything but digits (and a leading '-').
#[inline]
fn scan_tag(frame: &[u8], pos: usize) -> Option<(i64, usize)> {
    let neg = frame.get(pos) == Some(&b'-');
    let first = pos + usize::from(neg);
    let mut i = first;
    let mut v = 0i64;
    loop {
        match *frame.get(i)? {
            c @ b'0'..=b'9' => {
                if i - first == 9 {
                    return None;
                }
                v = v * 10 + i64::from(c - b'0');
            }
            b'=' if i > first => return Some((if neg { -v } else { v }, i)),
            _ => return None,
        }
        i += 1;
    }
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
