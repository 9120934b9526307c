//! FIX UTC timestamps: `YYYYMMDD-HH:MM:SS[.sss[sss[sss]]]`, as nanoseconds since the Unix epoch.

const NS_PER_SEC: u64 = 1_000_000_000;

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses `YYYYMMDD` into days since the epoch (the rules: [`is_date`]).
pub fn parse_date(b: &[u8]) -> Option<i64> {
    if !is_date(b) {
        return None;
    }
    let y = i64::from(fixed_digits(b, 0, 4)?);
    Some(days_from_civil(y, fixed_digits(b, 4, 2)?, fixed_digits(b, 6, 2)?))
}

/// Parses `HH:MM:SS[.fraction]` (fraction of 3, 6 or 9 digits) into ns after midnight (the
/// rules: [`is_time`]).
pub fn parse_time(b: &[u8]) -> Option<u64> {
    if !is_time(b) {
        return None;
    }
    let (h, m, s) = (
        fixed_digits(b, 0, 2)?,
        fixed_digits(b, 3, 2)?,
        fixed_digits(b, 6, 2)?,
    );
    let mut ns = (u64::from(h) * 3600 + u64::from(m) * 60 + u64::from(s)) * NS_PER_SEC;
    if b.len() > 8 {
        let frac_len = b.len() - 9;
        ns += u64::from(fixed_digits(b, 9, frac_len)?) * 10u64.pow(9 - frac_len as u32);
    }
    Some(ns)
}

/// Parses a UTCTimestamp into ns since the epoch (None before 1970 or after u64 nanoseconds
/// end, in July 2554).
pub fn parse_timestamp(b: &[u8]) -> Option<u64> {
    if b.len() < 17 || b[8] != b'-' {
        return None;
    }
    let days = parse_date(&b[..8])?;
    let time = parse_time(&b[9..])?;
    u64::try_from(days)
        .ok()?
        .checked_mul(86_400 * NS_PER_SEC)?
        .checked_add(time)
}

/// The value of `n` ASCII digits at `b[at..at + n]`, or None if one is not a digit.
#[inline]
fn fixed_digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let mut v = 0u32;
    for &c in b.get(at..at + n)? {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u32::from(d);
    }
    Some(v)
}

/// Whether `b` is a valid `YYYYMMDD`: a month 1-12 and a day that month has.
#[inline]
pub fn is_date(b: &[u8]) -> bool {
    if b.len() != 8 {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (
        fixed_digits(b, 0, 4),
        fixed_digits(b, 4, 2),
        fixed_digits(b, 6, 2),
    ) else {
        return false;
    };
    (1..=12).contains(&m) && d != 0 && d <= days_in_month(i64::from(y), m)
}

/// Whether `b` is a valid `HH:MM:SS[.fraction]`: hour <= 23, minute <= 59, second <= 60 (a
/// leap second), a fraction of 3, 6 or 9 digits.
#[inline]
pub fn is_time(b: &[u8]) -> bool {
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let (Some(h), Some(m), Some(s)) = (
        fixed_digits(b, 0, 2),
        fixed_digits(b, 3, 2),
        fixed_digits(b, 6, 2),
    ) else {
        return false;
    };
    if h > 23 || m > 59 || s > 60 {
        return false;
    }
    match b.len() {
        8 => true,
        12 | 15 | 18 => b[8] == b'.' && b[9..].iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Whether `b` is a valid UTCTimestamp ([`parse_timestamp`] would accept it: nothing before
/// the Unix epoch, nothing nanoseconds in a u64 cannot hold). Every inbound message carries
/// one or two, so this checks fixed positions in one pass without conversion (the same rules
/// as [`is_date`] and [`is_time`]; a proptest holds the two to agree).
#[inline]
pub fn is_timestamp(b: &[u8]) -> bool {
    let Some(head) = b.first_chunk::<17>() else {
        return false;
    };
    timestamp_fraction_ok(b) && timestamp_head_ok(head)
        // u64 nanoseconds end in July 2554: only there does the sum need computing.
        || head[..4] >= b"2554"[..] && parse_timestamp(b).is_some()
}

/// The first half of [`is_timestamp`]: whether `YYYYMMDD-HH:MM:SS` is a valid date and time
/// before 2554. A caller that saw this hold for a head may judge a later timestamp with the
/// same 17 bytes by [`timestamp_fraction_ok`] alone (then the year is below 2554, so
/// `is_timestamp`'s second case cannot apply).
#[inline]
pub fn timestamp_head_ok(head: &[u8; 17]) -> bool {
    // "YYYYMMDD" and "HH:MM:SS" as two little-endian words, eight bytes checked and
    // converted at a time (SWAR): ~50 instructions instead of ~150 byte by byte.
    let date = u64::from_le_bytes(*head.first_chunk::<8>().expect("17 bytes"));
    let time = u64::from_le_bytes(*head.last_chunk::<8>().expect("17 bytes"));
    // ':' at bytes 2 and 5 of the time; turned into '0' so that both words are all digits.
    const COLON_BYTES: u64 = 0x0000_ff00_00ff_0000;
    const COLONS: u64 = 0x0000_3a00_003a_0000;
    const COLON_TO_ZERO: u64 = 0x0000_0a00_000a_0000; // ':' ^ '0'
    if head[8] != b'-' || time & COLON_BYTES != COLONS {
        return false;
    }
    let time = time ^ COLON_TO_ZERO;
    if !all_digits(date) || !all_digits(time) {
        return false;
    }
    // Byte k of `pairs(x)` is 10 * digit k + digit k + 1 (at most 99: no carry between bytes).
    let pairs = |x: u64| {
        let d = x - 0x3030_3030_3030_3030;
        d * 10 + (d >> 8)
    };
    let byte = |x: u64, k: u32| ((x >> (8 * k)) & 0xff) as u32;
    let (d, t) = (pairs(date), pairs(time));
    let year = byte(d, 0) * 100 + byte(d, 2);
    let (month, day) = (byte(d, 4), byte(d, 6));
    let (hour, minute, second) = (byte(t, 0), byte(t, 3), byte(t, 6));
    (1970..2554).contains(&year)
        && (1..=12).contains(&month)
        && day != 0
        && day <= days_in_month(i64::from(year), month)
        && hour <= 23
        && minute <= 59
        && second <= 60
}

/// The second half of [`is_timestamp`]: whether what follows the first 17 bytes is nothing
/// or a fraction of 3, 6 or 9 digits.
#[inline(always)]
pub fn timestamp_fraction_ok(b: &[u8]) -> bool {
    // Byte 17 must be '.' (compared alone: no XOR trick maps '.' and only '.' to a digit);
    // the digits after it are tested together, a word at a time (SWAR, as
    // `timestamp_head_ok`), without a loop per digit.
    match b.len() {
        17 => true,
        21 => b[17] == b'.' && all_digits_u32(u32::from_le_bytes([b'0', b[18], b[19], b[20]])),
        24 | 27 => {
            // Bytes 16..24 with byte 16 (the seconds' last digit: the head's to judge) and
            // the '.' as '0'.
            let mut word = [0u8; 8];
            word.copy_from_slice(&b[16..24]);
            word[0] = b'0';
            word[1] = b'0';
            b[17] == b'.'
                && all_digits(u64::from_le_bytes(word))
                && (b.len() == 24 || all_digits_u32(u32::from_le_bytes([b[23], b[24], b[25], b[26]])))
        }
        _ => false,
    }
}

/// [`all_digits`] for four bytes.
#[inline]
fn all_digits_u32(x: u32) -> bool {
    const HIGH: u32 = 0xf0f0_f0f0;
    const THREES: u32 = 0x3030_3030;
    x & HIGH == THREES && (x + 0x0606_0606) & HIGH == THREES
}

/// Whether all eight bytes of `x` are ASCII digits: each byte's high nibble is 3, and stays 3
/// when 6 is added (0x3a..=0x3f carry into it). Once the first test passed no byte exceeds
/// 0x3f, so the addition never carries from one byte into the next.
#[inline]
fn all_digits(x: u64) -> bool {
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    x & HIGH == THREES && (x + 0x0606_0606_0606_0606) & HIGH == THREES
}

/// Writes `YYYYMMDD-HH:MM:SS` plus `precision` (0, 3, 6 or 9) fractional digits.
pub fn write_timestamp(ns: u64, precision: u8, out: &mut Vec<u8>) {
    SecondCache::default().write(ns, precision, out);
}

/// The `YYYYMMDD-HH:MM:SS` of the last second written: a message carries one or two stamps
/// and a node sends thousands per second, so the calendar arithmetic runs once a second.
#[derive(Debug, Clone, Copy)]
pub struct SecondCache {
    secs: u64,
    text: [u8; 17],
}

impl Default for SecondCache {
    fn default() -> Self {
        // u64::MAX seconds is beyond any u64 nanosecond stamp: the first write computes.
        SecondCache {
            secs: u64::MAX,
            text: [0; 17],
        }
    }
}

impl SecondCache {
    /// Writes `ns` as [`write_timestamp`] does.
    pub fn write(&mut self, ns: u64, precision: u8, out: &mut Vec<u8>) {
        let secs = ns / NS_PER_SEC;
        if secs != self.secs {
            self.secs = secs;
            self.text = second_text(secs);
        }
        let mut buf = [0u8; 27];
        buf[..17].copy_from_slice(&self.text);
        let mut len = 17;
        if precision > 0 {
            buf[17] = b'.';
            let precision = u32::from(precision.min(9));
            let mut frac = ns % NS_PER_SEC / 10u64.pow(9 - precision);
            len = 18 + precision as usize;
            for i in (18..len).rev() {
                buf[i] = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
        }
        out.extend_from_slice(&buf[..len]);
    }
}

/// `YYYYMMDD-HH:MM:SS` of a second since the epoch.
fn second_text(secs: u64) -> [u8; 17] {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = (secs % 86_400) as u32;
    let year = y.clamp(0, 9999) as u32;
    let two = |v: u32| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
    let mut buf = [0u8; 17];
    buf[0..2].copy_from_slice(&two(year / 100));
    buf[2..4].copy_from_slice(&two(year % 100));
    buf[4..6].copy_from_slice(&two(m));
    buf[6..8].copy_from_slice(&two(d));
    buf[8] = b'-';
    buf[9..11].copy_from_slice(&two(rem / 3600));
    buf[11] = b':';
    buf[12..14].copy_from_slice(&two(rem % 3600 / 60));
    buf[14] = b':';
    buf[15..17].copy_from_slice(&two(rem % 60));
    buf
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// One cache writing a run of stamps (same second, next second, a jump back, another
        /// day) writes what a fresh computation writes, and the parser reads it back.
        #[test]
        fn cached_seconds_write_what_fresh_ones_do(
            start in 0u64..(u64::MAX / 2),
            steps in prop::collection::vec(-3_000_000_000i64..90_000_000_000_000, 1..20),
            precision in prop::sample::select(vec![0u8, 3, 6, 9]),
        ) {
            let mut cache = SecondCache::default();
            let mut ns = start;
            for step in steps {
                ns = ns.saturating_add_signed(step);
                let (mut cached, mut fresh) = (Vec::new(), Vec::new());
                cache.write(ns, precision, &mut cached);
                SecondCache::default().write(ns, precision, &mut fresh);
                prop_assert_eq!(&cached, &fresh);
                let exact = ns - ns % 10u64.pow(9 - u32::from(precision));
                prop_assert_eq!(parse_timestamp(&cached), Some(exact));
            }
        }

        /// The one-pass timestamp check accepts exactly what the parser (built on `is_date`
        /// and `is_time`) accepts.
        #[test]
        fn validators_agree_with_parsers(
            date in "(19[6-9][0-9]|20[0-9]{2}|255[3-5]|[0-9]{4})(0[0-9]|1[0-3])([0-3][0-9])",
            time in "([0-2][0-9]):([0-6][0-9]):([0-6][0-9])(\\.[0-9]{0,10})?",
            noise in "[ -~]{0,30}",
            sep in prop::sample::select(vec!["-", "x", ""]),
        ) {
            let ts = format!("{date}{sep}{time}");
            prop_assert_eq!(is_timestamp(ts.as_bytes()), parse_timestamp(ts.as_bytes()).is_some(), "{}", ts);
            for s in [&noise, &format!("{date}-{noise}"), &format!("{date}-{time}{noise}")] {
                let b = s.as_bytes();
                prop_assert_eq!(is_timestamp(b), parse_timestamp(b).is_some(), "{}", s);
            }
        }
    }

    /// Every byte of valid timestamps replaced by every byte value: the word-at-a-time check
    /// agrees with the parser (the digit test's edges: '/', ':', '?', bytes >= 0x80).
    #[test]
    fn one_bad_byte_is_judged_like_the_parser() {
        for len in [17, 21, 24, 27] {
            for valid in [
                &b"20261125-23:59:60.123456789"[..],
                b"20240229-00:00:00.000000000",
            ] {
                for at in 0..len {
                    for byte in 0..=255u8 {
                        let mut ts = valid[..len].to_vec();
                        ts[at] = byte;
                        assert_eq!(is_timestamp(&ts), parse_timestamp(&ts).is_some(), "{ts:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn date_and_time_rules() {
        assert!(is_date(b"20240229") && !is_date(b"20230229") && !is_date(b"21000229"));
        assert!(is_date(b"20000229") && !is_date(b"20240431") && !is_date(b"20240100"));
        assert!(!is_date(b"2024011") && !is_date(b"2024-101"));
        assert!(is_time(b"23:59:60") && !is_time(b"24:00:00") && !is_time(b"12:60:00"));
        for (t, ok) in [
            ("12:00:00.1", false),
            ("12:00:00.12", false),
            ("12:00:00.123", true),
            ("12:00:00.1234", false),
            ("12:00:00.123456", true),
            ("12:00:00.123456789", true),
            ("12:00:00.1234567890", false),
            ("12:00:00,123", false),
        ] {
            assert_eq!(is_time(t.as_bytes()), ok, "{t}");
        }
        assert_eq!(parse_time(b"01:02:03.000004"), Some(3_723_000_004_000));
        assert_eq!(parse_date(b"19700102"), Some(1));
    }

    #[test]
    fn round_trip() {
        let t = parse_timestamp(b"20261124-21:27:24.123").unwrap();
        assert_eq!(t, 1_795_555_644_123_000_000);
        let mut out = Vec::new();
        write_timestamp(t, 3, &mut out);
        assert_eq!(out, b"20261124-21:27:24.123");
        out.clear();
        write_timestamp(t, 0, &mut out);
        assert_eq!(out, b"20261124-21:27:24");
        assert_eq!(
            parse_timestamp(b"20010101-00:00:00"),
            Some(978_307_200 * NS_PER_SEC)
        );
        assert!(parse_timestamp(b"20040415").is_none());
        assert!(parse_timestamp(b"20041345-00:00:00").is_none());
        assert!(parse_timestamp(b"20040101-00:00:00.12").is_none());
        assert_eq!(
            parse_timestamp(b"20040101-00:00:00.123456789").unwrap() % NS_PER_SEC,
            123_456_789
        );
        // The last representable second, and the first that is not (was an overflow).
        assert!(parse_timestamp(b"25540721-23:34:33").is_some());
        assert!(parse_timestamp(b"25540721-23:34:34").is_none());
        assert!(!is_timestamp(b"25540721-23:34:34"));
        assert!(parse_timestamp(b"30000101-00:00:00").is_none());
    }
}
