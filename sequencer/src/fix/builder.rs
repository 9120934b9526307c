//! Building outgoing messages: header fields first (8, 9, 35, then the rest by tag), body
//! fields by tag, then the checksum; BodyLength and CheckSum computed. Like QuickFIX's own
//! output, which the acceptance scripts compare byte for byte.

use super::frame::SOH;
use super::timefmt::write_timestamp;

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
#[derive(Debug, Default)]
pub struct Builder {
    header: Vec<(u32, usize, usize)>,
    body: Vec<(u32, usize, usize)>,
    values: Vec<u8>,
    msg_type: Vec<u8>,
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
        self.values.clear();
        self.msg_type.clear();
        self.msg_type.extend_from_slice(msg_type);
    }

    /// Adds a field (header fields are recognised by tag).
    pub fn field(&mut self, tag: u32, value: Value<'_>) -> &mut Self {
        let start = self.values.len();
        match value {
            Value::Bytes(b) => self.values.extend_from_slice(b),
            Value::U64(v) => {
                let mut buf = itoa_u64(v);
                self.values.extend_from_slice(buf.as_slice());
                buf.clear();
            }
            Value::I64(v) => {
                if v < 0 {
                    self.values.push(b'-');
                }
                self.values
                    .extend_from_slice(itoa_u64(v.unsigned_abs()).as_slice());
            }
            Value::TimeMs(ns) => write_timestamp(ns, 3, &mut self.values),
            Value::TimeS(ns) => write_timestamp(ns, 0, &mut self.values),
            Value::Decimal(m, scale) => write_decimal(m, scale, &mut self.values),
        }
        let end = self.values.len();
        if is_header_tag(tag) {
            self.header.push((tag, start, end));
        } else {
            self.body.push((tag, start, end));
        }
        self
    }

    /// Writes the message into `out` (cleared first).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.header.sort_by_key(|f| f.0);
        self.body.sort_by_key(|f| f.0);
        out.clear();
        out.extend_from_slice(b"8=FIX.4.4\x019=");
        let length_at = out.len();
        out.extend_from_slice(b"000000\x01");
        let body_start = out.len();
        out.extend_from_slice(b"35=");
        out.extend_from_slice(&self.msg_type);
        out.push(SOH);
        for &(tag, s, e) in self.header.iter().chain(self.body.iter()) {
            out.extend_from_slice(itoa_u64(u64::from(tag)).as_slice());
            out.push(b'=');
            out.extend_from_slice(&self.values[s..e]);
            out.push(SOH);
        }
        let body_len = out.len() - body_start;
        // Rewrite the length without padding: shift the body left.
        let digits = itoa_u64(body_len as u64);
        let digits = digits.as_slice();
        let pad = 6 - digits.len();
        out[length_at..length_at + digits.len()].copy_from_slice(digits);
        out.copy_within(length_at + 6.., length_at + digits.len());
        out.truncate(out.len() - pad);
        let sum = out.iter().fold(0u32, |a, &b| a + u32::from(b)) % 256;
        out.extend_from_slice(b"10=");
        out.push(b'0' + (sum / 100) as u8);
        out.push(b'0' + (sum / 10 % 10) as u8);
        out.push(b'0' + (sum % 10) as u8);
        out.push(SOH);
    }
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
    fn clear(&mut self) {}
}

/// Formats `v` without allocating.
pub fn itoa_u64(mut v: u64) -> Digits {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    Digits { buf, start: i }
}

/// Writes `m x 10^-scale`, trimming trailing fractional zeros (100.50 -> "100.5", 100.00 -> "100").
pub fn write_decimal(m: i128, scale: u8, out: &mut Vec<u8>) {
    if m < 0 {
        out.push(b'-');
    }
    let abs = m.unsigned_abs();
    let pow = 10u128.pow(u32::from(scale));
    let int = abs / pow;
    let mut frac = abs % pow;
    out.extend_from_slice(itoa_u128(int).as_bytes());
    if frac != 0 {
        let mut width = usize::from(scale);
        while frac.is_multiple_of(10) {
            frac /= 10;
            width -= 1;
        }
        out.push(b'.');
        let s = itoa_u128(frac);
        for _ in s.len()..width {
            out.push(b'0');
        }
        out.extend_from_slice(s.as_bytes());
    }
}

fn itoa_u128(v: u128) -> String {
    v.to_string()
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
    }
}
