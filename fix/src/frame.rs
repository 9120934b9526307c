//! Framing: finding complete FIX messages in a byte stream, as QuickFIX's parser does.
//!
//! A frame starts at `8=`, announces its body length in `9=`, and ends at the SOH after the
//! `10=` that follows the announced body. The checksum field is searched from one byte before
//! the announced end, so a wrong BodyLength yields a frame that then fails validation (and is
//! dropped), exactly like QuickFIX. Bytes before `8=` are garbage and are skipped.

/// The field separator.
pub const SOH: u8 = 0x01;

/// What the front of a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A complete frame at `buf[start..end]`; everything before `end` can be consumed.
    Message {
        /// First byte (`8`).
        start: usize,
        /// One past its last byte (the SOH after the checksum).
        end: usize,
    },
    /// Not enough bytes yet; `skip` bytes of garbage can already be dropped.
    Incomplete {
        /// Leading garbage.
        skip: usize,
    },
    /// Bytes up to `skip` can never become a message (an unparsable BodyLength): drop them.
    Garbage {
        /// Bytes to drop.
        skip: usize,
    },
    /// The frame announces more than `max_bytes`: the peer is broken or hostile.
    TooLarge {
        /// The announced size.
        announced: usize,
    },
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from >= hay.len() || needle.len() > hay.len() - from {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Finds the first frame in `buf`. `max_bytes` bounds a message (BodyLength plus framing).
pub fn next_frame(buf: &[u8], max_bytes: usize) -> Frame {
    frame_at(buf, max_bytes, true)
}

/// [`next_frame`]; `shortcuts` off takes the general path everywhere (a proptest holds the two
/// to the same answers).
#[inline]
fn frame_at(buf: &[u8], max_bytes: usize, shortcuts: bool) -> Frame {
    // The common case, a FIX 4.4 message at the front: no search for its start or its SOH
    // (the general path finds the same start 0 and SOH 9).
    let front = shortcuts && buf.starts_with(b"8=FIX.4.4\x019=");
    let found = if front { Some(0) } else { find(buf, b"8=FIX", 0) };
    let Some(start) = found else {
        // Keep a tail that may be the beginning of "8=FIX".
        let keep = (1..=4)
            .rev()
            .find(|&k| k <= buf.len() && b"8=FIX".starts_with(&buf[buf.len() - k..]))
            .unwrap_or(0);
        return Frame::Incomplete {
            skip: buf.len() - keep,
        };
    };
    // The second field must be BodyLength: "8=FIX...<SOH>9=". Otherwise this is garbage, not
    // the start of a frame that would swallow the next message.
    let nine = if front {
        Some(9)
    } else {
        buf[start..].iter().position(|&b| b == SOH).map(|p| p + start)
    };
    let Some(nine) = nine else {
        if buf.len() - start > 64 {
            return Frame::Garbage { skip: start + 2 };
        }
        return Frame::Incomplete { skip: start };
    };
    if buf.len() < nine + 3 {
        return Frame::Incomplete { skip: start };
    }
    if &buf[nine..nine + 3] != b"\x019=" {
        return Frame::Garbage { skip: start + 2 };
    }
    let digits_from = nine + 3;
    let mut pos = digits_from;
    let mut length: usize = 0;
    while pos < buf.len() && buf[pos] != SOH {
        let c = buf[pos];
        if !c.is_ascii_digit() || pos - digits_from >= 9 {
            // Not a length: nothing up to here can start a message.
            return Frame::Garbage { skip: pos + 1 };
        }
        length = length * 10 + usize::from(c - b'0');
        pos += 1;
    }
    if pos >= buf.len() {
        return Frame::Incomplete { skip: start };
    }
    if pos == digits_from {
        return Frame::Garbage { skip: pos + 1 };
    }
    let body_start = pos + 1;
    if length > max_bytes {
        return Frame::TooLarge { announced: length };
    }
    let body_end = body_start + length;
    if buf.len() < body_end {
        return Frame::Incomplete { skip: start };
    }
    let from = body_end.saturating_sub(1).max(body_start - 1);
    // Where BodyLength is right (nearly always) the CheckSum starts exactly there.
    let ten = if shortcuts && buf.get(from..from + 4) == Some(b"\x0110=") {
        Some(from)
    } else {
        find(buf, b"\x0110=", from)
    };
    let Some(ten) = ten else {
        if buf.len() - start > max_bytes + 64 {
            return Frame::TooLarge {
                announced: buf.len() - start,
            };
        }
        return Frame::Incomplete { skip: start };
    };
    let Some(soh) = buf[ten + 4..].iter().position(|&b| b == SOH) else {
        return Frame::Incomplete { skip: start };
    };
    Frame::Message {
        start,
        end: ten + 4 + soh + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The shortcuts (a FIX 4.4 message at the front, the CheckSum where BodyLength says)
        /// give the general path's answer for any mix of messages, damaged messages, garbage
        /// and cut-off input.
        #[test]
        fn shortcuts_answer_as_the_general_path_does(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("8=FIX.4.4|9=5|35=0|10=161|".to_string()),
                    proptest::strategy::Just("8=FIX.4.4|9=2|35=0|10=161|".to_string()),
                    proptest::strategy::Just("8=FIX.4.4|9=12|35=0|10=161|".to_string()),
                    proptest::strategy::Just("8=FIX.4.2|9=5|35=0|10=161|".to_string()),
                    proptest::strategy::Just("8=FIX.4.4|9=5|35=0|10=16".to_string()),
                    "[0-9=|FIX.8]{0,12}",
                ],
                0..6,
            ),
            cut in 0usize..200,
            max_bytes in proptest::prop_oneof![proptest::strategy::Just(1usize << 16), 0usize..8],
        ) {
            let mut buf = m(&parts.concat());
            buf.truncate(cut.min(buf.len()));
            proptest::prop_assert_eq!(frame_at(&buf, max_bytes, true), frame_at(&buf, max_bytes, false));
        }
    }

    fn m(s: &str) -> Vec<u8> {
        s.replace('|', "\x01").into_bytes()
    }

    #[test]
    fn frames() {
        let one = m("8=FIX.4.4|9=5|35=0|10=161|");
        assert_eq!(
            next_frame(&one, 1 << 16),
            Frame::Message {
                start: 0,
                end: one.len()
            }
        );
        let mut two = m("junk");
        two.extend_from_slice(&one);
        two.extend_from_slice(&one);
        assert_eq!(
            next_frame(&two, 1 << 16),
            Frame::Message {
                start: 4,
                end: 4 + one.len()
            }
        );
        assert_eq!(next_frame(&one[..10], 1 << 16), Frame::Incomplete { skip: 0 });
        assert_eq!(next_frame(b"xx8", 1 << 16), Frame::Incomplete { skip: 2 });
        assert_eq!(next_frame(b"xx8=FI", 1 << 16), Frame::Incomplete { skip: 2 });
        assert_eq!(next_frame(b"8=not fix", 1 << 16), Frame::Incomplete { skip: 9 });
        let mut g = m("8=FIX.4.4|35=0|");
        g.extend_from_slice(&one);
        assert_eq!(next_frame(&g, 1 << 16), Frame::Garbage { skip: 2 });
        assert!(matches!(
            next_frame(&m("8=FIX.4.4|9=x5|35=0|"), 1 << 16),
            Frame::Garbage { .. }
        ));
        assert!(matches!(
            next_frame(&m("8=FIX.4.4|9=99999|"), 1024),
            Frame::TooLarge { announced: 99999 }
        ));
        // A BodyLength that is too short still finds the checksum after it.
        let short = m("8=FIX.4.4|9=2|35=0|10=161|");
        assert_eq!(
            next_frame(&short, 1 << 16),
            Frame::Message {
                start: 0,
                end: short.len()
            }
        );
    }
}
