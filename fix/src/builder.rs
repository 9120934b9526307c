//! Building outgoing messages: header fields first (8, 9, 35, then the rest by tag), body
//! fields by tag, then the checksum; BodyLength and CheckSum computed. Like QuickFIX's own
//! output, which the acceptance scripts compare byte for byte.

use super::frame::SOH;
use super::timefmt::SecondCache;

/// A value to write.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// An unsigned integer.
    U64(u64),
    /// A signed integer.
    I64(i64),
    /// A UTC timestamp with milliseconds.
    TimeMs(u64),
    /// A UTC timestamp with seconds only.
    TimeS(u64),
    /// A decimal: `mantissa x 10^-scale`.
    Decimal(i128, u8),
}

/// Collects fields, then writes the message. Reused across messages (no allocation once warm).
///
/// Each field is encoded (`tag=value<SOH>`) once, as it is added, into its part (header or
/// body). Callers add fields in tag order, so finishing is two copies and the checksum; a
/// part whose fields came out of order is put in order then (stable: equal tags keep their
/// order).
#[derive(Debug, Default)]
pub struct Builder {
    header: Part,
    body: Part,
    msg_type: Vec<u8>,
    stamps: SecondCache,
}

/// Encoded fields of the header or the body.
#[derive(Debug, Default)]
struct Part {
    /// `tag=value<SOH>` per field, in the order added.
    bytes: Vec<u8>,
    /// (tag, start, end) of each field in `bytes`.
    fields: Vec<(u32, u32, u32)>,
    /// A field came with a smaller tag than the one before it.
    unordered: bool,
}

impl Part {
    fn clear(&mut self) {
        self.bytes.clear();
        self.fields.clear();
        self.unordered = false;
    }

    fn push(&mut self, tag: u32, value: Value<'_>, stamps: &mut SecondCache) {
        let start = self.bytes.len();
        let out = &mut self.bytes;
        write_u64(u64::from(tag), out);
        out.push(b'=');
        match value {
            Value::Bytes(b) => out.extend_from_slice(b),
            Value::U64(v) => write_u64(v, out),
            Value::I64(v) => {
                if v < 0 {
                    out.push(b'-');
                }
                write_u64(v.unsigned_abs(), out);
            }
            Value::TimeMs(ns) => stamps.write(ns, 3, out),
            Value::TimeS(ns) => stamps.write(ns, 0, out),
            Value::Decimal(m, scale) => write_decimal(m, scale, out),
        }
        out.push(SOH);
        if self.fields.last().is_some_and(|&(last, _, _)| tag < last) {
            self.unordered = true;
        }
        // A part is far below 4 GiB (the node builds reports, session messages and short
        // texts of its own): offsets fit u32, checked in debug builds.
        debug_assert!(
            u32::try_from(self.bytes.len()).is_ok(),
            "a message part over 4 GiB"
        );
        self.fields.push((tag, start as u32, self.bytes.len() as u32));
    }

    /// Appends the fields to `out` in tag order.
    fn write_to(&mut self, out: &mut Vec<u8>) {
        if !self.unordered {
            out.extend_from_slice(&self.bytes);
            return;
        }
        self.fields.sort_by_key(|f| f.0);
        for &(_, s, e) in &self.fields {
            out.extend_from_slice(&self.bytes[s as usize..e as usize]);
        }
    }
}

/// Whether `tag` belongs in the FIX 4.4 standard header.
pub fn is_header_tag(tag: u32) -> bool {
    matches!(
        tag,
        8 | 9
            | 35
            | 49
            | 56
            | 115
            | 128
            | 90
            | 91
            | 34
            | 50
            | 142
            | 57
            | 143
            | 116
            | 144
            | 129
            | 145
            | 43
            | 97
            | 52
            | 122
            | 212
            | 213
            | 347
            | 369
            | 627
            | 628
            | 629
            | 630
    )
}

impl Builder {
    /// Starts a message of type `msg_type`.
    pub fn start(&mut self, msg_type: &[u8]) {
        self.header.clear();
        self.body.clear();
        self.msg_type.clear();
        self.msg_type.extend_from_slice(msg_type);
    }

    /// Adds a field (header fields are recognised by tag).
    pub fn field(&mut self, tag: u32, value: Value<'_>) -> &mut Self {
        if is_header_tag(tag) {
            self.header.push(tag, value, &mut self.stamps);
        } else {
            self.body.push(tag, value, &mut self.stamps);
        }
        self
    }

    /// Appends the fields added since [`Builder::start`] to `out` as one run of
    /// `tag=value<SOH>`, header fields first, each part in tag order: what
    /// [`Builder::fields_from`] takes back (a message whose header is written later, with the
    /// sequence number it is given then).
    pub fn fields_run(&mut self, out: &mut Vec<u8>) {
        self.header.write_to(out);
        self.body.write_to(out);
    }

    /// Adds every field of a run made by [`Builder::fields_run`]; `Err` with the offset of the
    /// first field that is not `tag=value<SOH>` (nothing after it is added).
    pub fn fields_from(&mut self, run: &[u8]) -> Result<(), usize> {
        let mut at = 0;
        while at < run.len() {
            let end = run[at..].iter().position(|&b| b == SOH).ok_or(at)? + at;
            let field = &run[at..end];
            let eq = field.iter().position(|&b| b == b'=').ok_or(at)?;
            let tag = std::str::from_utf8(&field[..eq])
                .ok()
                .and_then(|t| t.parse::<u32>().ok())
                .filter(|&t| t > 0)
                .ok_or(at)?;
            self.field(tag, Value::Bytes(&field[eq + 1..]));
            at = end + 1;
        }
        Ok(())
    }

    /// Writes the message into `out` (cleared first).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        // BodyLength is known before writing, so the message is written once, front to back.
        let body_len = 3 + self.msg_type.len() + 1 + self.header.bytes.len() + self.body.bytes.len();
        out.clear();
        out.reserve(body_len + 32);
        out.extend_from_slice(b"8=FIX.4.4\x019=");
        write_u64(body_len as u64, out);
        out.push(SOH);
        let body_start = out.len();
        out.extend_from_slice(b"35=");
        out.extend_from_slice(&self.msg_type);
        out.push(SOH);
        self.header.write_to(out);
        self.body.write_to(out);
        debug_assert_eq!(out.len() - body_start, body_len, "BodyLength computed up front");
        let sum = byte_sum(out) % 256;
        out.extend_from_slice(&[
            b'1',
            b'0',
            b'=',
            b'0' + (sum / 100) as u8,
            b'0' + (sum / 10 % 10) as u8,
            b'0' + (sum % 10) as u8,
            SOH,
        ]);
    }
}

/// The sum of the bytes, in 8-byte words (the CheckSum's sum; the compiler vectorises it).
fn byte_sum(bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(8);
    let mut sum = 0u32;
    for c in &mut chunks {
        sum += c.iter().map(|&b| u32::from(b)).sum::<u32>();
    }
    sum + chunks.remainder().iter().map(|&b| u32::from(b)).sum::<u32>()
}

/// Decimal digits of `v` in a small stack buffer.
pub struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    /// The digits.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// Formats `v` without allocating.
pub fn itoa_u64(v: u64) -> Digits {
    let mut b = itoa::Buffer::new();
    let digits = b.format(v).as_bytes();
    let mut buf = [0u8; 20];
    let start = buf.len() - digits.len();
    buf[start..].copy_from_slice(digits);
    Digits { buf, start }
}

/// Appends the decimal digits of `v`.
pub fn write_u64(v: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Writes `m x 10^-scale`, trimming trailing fractional zeros (100.50 -> "100.5", 100.00 -> "100").
/// No allocation and, for the values prices and quantities take (below 2^64), no 128-bit
/// division.
pub fn write_decimal(m: i128, scale: u8, out: &mut Vec<u8>) {
    if m < 0 {
        out.push(b'-');
    }
    let abs = m.unsigned_abs();
    // Prices and quantities fit u64 with a u64 power of ten: 64-bit division (a 128-bit one
    // is a library call, tens of cycles, and every report has three decimals).
    if let (Ok(abs), Some(pow)) = (u64::try_from(abs), 10u64.checked_pow(u32::from(scale))) {
        write_u64(abs / pow, out);
        write_fraction(u128::from(abs % pow), scale, out);
        return;
    }
    // 10^scale fits u128 up to scale 38; a larger scale makes every digit fractional.
    let (int, frac) = match 10u128.checked_pow(u32::from(scale)) {
        Some(p) => (abs / p, abs % p),
        None => (0, abs),
    };
    write_u128(int, out);
    write_fraction(frac, scale, out);
}

/// Writes `.digits` of a fraction of `scale` digits without its trailing zeros; nothing for 0.
fn write_fraction(frac: u128, scale: u8, out: &mut Vec<u8>) {
    if frac == 0 {
        return;
    }
    let (mut f, mut width) = (frac, usize::from(scale));
    loop {
        let (q, r) = div10(f);
        if r != 0 {
            break;
        }
        f = q;
        width -= 1;
    }
    out.push(b'.');
    for _ in u128_digits(f)..width {
        out.push(b'0');
    }
    write_u128(f, out);
}

/// Quotient and remainder by 10, in 64 bits when `v` fits (a 128-bit division is a library
/// call).
fn div10(v: u128) -> (u128, u128) {
    match u64::try_from(v) {
        Ok(small) => (u128::from(small / 10), u128::from(small % 10)),
        Err(_) => (v / 10, v % 10),
    }
}

/// Decimal digits of `v` (at least one).
fn u128_digits(v: u128) -> usize {
    match u64::try_from(v) {
        Ok(small) => small.checked_ilog10().map_or(1, |d| d as usize + 1),
        Err(_) => v.ilog10() as usize + 1,
    }
}

/// Writes `v` in decimal; values below 2^64 (all prices and quantities) take the u64 path.
fn write_u128(v: u128, out: &mut Vec<u8>) {
    match u64::try_from(v) {
        Ok(small) => write_u64(small, out),
        Err(_) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_like_quickfix() {
        let mut b = Builder::default();
        b.start(b"0");
        b.field(112, Value::Bytes(b"HELLO"))
            .field(56, Value::Bytes(b"TW44"))
            .field(34, Value::U64(2));
        b.field(49, Value::Bytes(b"ISLD"))
            .field(52, Value::Bytes(b"20261124-21:27:24.123"));
        let mut out = Vec::new();
        b.finish(&mut out);
        let text = String::from_utf8(out.clone()).unwrap().replace('\x01', "|");
        assert_eq!(
            text,
            "8=FIX.4.4|9=61|35=0|34=2|49=ISLD|52=20261124-21:27:24.123|56=TW44|112=HELLO|10=083|"
        );
        let mut fields = Vec::new();
        super::super::message::parse(&out, &mut fields).unwrap();
    }

    #[test]
    fn decimals() {
        let d = |m, s| {
            let mut v = Vec::new();
            write_decimal(m, s, &mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(d(10_050, 2), "100.5");
        assert_eq!(d(10_000, 2), "100");
        assert_eq!(d(-5, 2), "-0.05");
        assert_eq!(d(7, 0), "7");
        assert_eq!(d(0, 2), "0");
        assert_eq!(d(1, 9), "0.000000001");
        assert_eq!(d(-120, 1), "-12");
        assert_eq!(d(i128::MAX, 0), i128::MAX.to_string());
        assert_eq!(d(i128::MIN, 0), i128::MIN.to_string());
        assert_eq!(d(123_456_789, 40), "0.0000000000000000000000000000000123456789");
        let big = i128::from(u64::MAX) * 1000 + 5;
        assert_eq!(d(big, 3), format!("{}.005", u64::MAX));
    }

    proptest::proptest! {
        /// Decimals as a string-based reference writes them: digits padded to more than
        /// `scale`, the point inserted, trailing fractional zeros (and a bare point) trimmed.
        #[test]
        fn decimals_match_a_string_reference(
            m in proptest::prop_oneof![
                proptest::num::i128::ANY,
                -1_000_000_000_000i128..1_000_000_000_000,
                proptest::strategy::Strategy::prop_map(proptest::num::i64::ANY, i128::from),
            ],
            scale in 0u8..=40,
        ) {
            let digits = m.unsigned_abs().to_string();
            let scale_len = usize::from(scale);
            let padded = format!("{digits:0>width$}", width = scale_len + 1);
            let (int, frac) = padded.split_at(padded.len() - scale_len);
            let frac = frac.trim_end_matches('0');
            let mut expected = String::new();
            if m < 0 {
                expected.push('-');
            }
            expected.push_str(int);
            if !frac.is_empty() {
                expected.push('.');
                expected.push_str(frac);
            }
            let mut out = Vec::new();
            write_decimal(m, scale, &mut out);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
        }

        /// The message is written in one pass with BodyLength computed up front: it must frame
        /// and parse, with the length and checksum the framing checks, for any fields.
        #[test]
        fn any_fields_frame_and_parse(
            fields in proptest::collection::vec((1u32..100_000, "[A-Za-z0-9 .-]{1,30}"), 0..30),
            seq in 0u64..u64::MAX,
        ) {
            let mut b = Builder::default();
            b.start(b"8");
            b.field(34, Value::U64(seq));
            for (tag, v) in &fields {
                if *tag != 34 {
                    b.field(*tag, Value::Bytes(v.as_bytes()));
                }
            }
            let mut out = Vec::new();
            b.finish(&mut out);
            match super::super::frame::next_frame(&out, 1 << 20) {
                super::super::frame::Frame::Message { start, end } => {
                    proptest::prop_assert_eq!((start, end), (0, out.len()));
                }
                other => proptest::prop_assert!(false, "not one frame: {other:?}"),
            }
            let mut parsed = Vec::new();
            proptest::prop_assert!(super::super::message::parse(&out, &mut parsed).is_ok());
        }
    }
}
