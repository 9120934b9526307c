//! Remembered message shapes: a connection's order flow repeats a few exact tag sequences
//! (every NewOrderSingle of a client carries the same tags in the same order), so once one
//! message of a shape was proven valid the next message of that shape needs only its tags
//! compared (four bytes each, against the remembered ones) and its values checked. The
//! structural checks (known tag, allowed in this message type, header before body, no tag
//! twice, every required field present) hold for the whole shape and are not repeated.
//!
//! Why: with the structure proven field by field, parse + validate of a NewOrderSingle cost
//! ~2,600 instructions, which kept `ordo bench fix` below its 5M msgs/s target.
//!
//! Soundness: a shape is recorded only from a message that `compiled::parse_accepted`
//! proved, field by field. A later message matches only if its tags are byte for byte those
//! of the shape (so the same tag numbers, written the same way, in the same order, as many)
//! and its MsgType is the same; then every structural check gives the same answer, and the
//! per-field value checks and the envelope (BodyLength, CheckSum) are done again. A proptest
//! holds [`Shapes::parse_valid`] to `parse` + `validate` over sequences of messages.

use super::compiled::{self, FieldCheck};
use super::dictionary;
use super::message::{self, Field, SHORT_MAX_BYTES, SHORT_MAX_FIELDS, Sohs};
use super::timefmt;

/// Shapes remembered per connection (a few message types of an order flow: D, F, G, H).
const SHAPES: usize = 4;

/// One field of a shape.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FieldSpec {
    /// The tag's digits and '=' as the first bytes of the field (little-endian).
    head: u32,
    /// Which bytes of a field's first four `head` covers.
    mask: u32,
    /// The tag.
    tag: u16,
    /// Where its value starts in the field: its digits and the '='.
    value_at: u8,
    /// How its value is checked.
    check: FieldCheck,
    /// For a one-byte enumeration, its set, found once when the shape is recorded (checking
    /// through `check` reaches the compiled tables per message: callgrind, 1,721 against 1,784
    /// instructions per bench message with its three one-byte fields).
    byte_set: Option<&'static [u64; 4]>,
}

/// A proven tag sequence.
#[derive(Debug, Clone)]
struct Shape {
    /// MsgType's bytes (1 or 2, the rest zero); 0 for a free slot.
    msg_type: u16,
    /// Fields, CheckSum included.
    len: usize,
    fields: [FieldSpec; SHORT_MAX_FIELDS],
    /// The fields whose values need more than "not empty" (by index), and how many.
    checked: [u8; SHORT_MAX_FIELDS],
    checked_len: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            msg_type: 0,
            len: 0,
            fields: [FieldSpec::default(); SHORT_MAX_FIELDS],
            checked: [0; SHORT_MAX_FIELDS],
            checked_len: 0,
        }
    }
}

/// MsgType as a slot key: None for types longer than two bytes (not remembered).
fn key(msg_type: &[u8]) -> Option<u16> {
    match *msg_type {
        [a] if a != 0 => Some(u16::from(a)),
        [a, b] if a != 0 && b != 0 => Some(u16::from(a) | u16::from(b) << 8),
        _ => None,
    }
}

/// A connection's remembered shapes (~5 KiB, bounded: `SHAPES` (4) of at most
/// `SHORT_MAX_FIELDS` fields each).
#[derive(Debug, Default)]
pub struct Shapes {
    slots: [Shape; SHAPES],
    /// Where a proof records its shape; swapped into a slot when the proof succeeds.
    scratch: Shape,
    /// The slot the next newly proven shape takes (round robin, whatever its type).
    next: usize,
    /// The first 17 bytes (`YYYYMMDD-HH:MM:SS`) of the last timestamp found valid: a flow's
    /// SendingTime and TransactTime share them for a whole second, so the date and time need
    /// checking once a second, not twice a message.
    stamp: Option<[u8; 17]>,
}

impl Shapes {
    /// Parses `frame` into `out` and proves it valid: true means
    /// [`parse`](message::parse) would succeed with exactly the fields now in `out` and
    /// [`validate`](super::validate::validate) would accept the message, so neither needs to
    /// run. False says nothing about the frame: run `parse` and then `validate`, which name
    /// the problem, if any. Only the common case is proven here: a frame of up to 1 KiB and
    /// 40 fields, tags of one to three digits, no repeating groups.
    pub fn parse_valid(&mut self, frame: &[u8], out: &mut Vec<Field>) -> bool {
        if self.parse_known(frame, out) {
            return true;
        }
        self.scratch.msg_type = 0;
        if !compiled::parse_accepted(frame, out, &mut self.scratch.fields) {
            return false;
        }
        let Some(msg_type) = out
            .get(2)
            .and_then(|f| frame.get(f.start as usize..f.end as usize))
            .and_then(key)
        else {
            return true; // proven, but not remembered
        };
        let scratch = &mut self.scratch;
        scratch.msg_type = msg_type;
        scratch.len = out.len();
        scratch.checked_len = 0;
        for (index, spec) in scratch.fields[..scratch.len].iter().enumerate() {
            // BodyLength's Int rule is implied by the envelope check (one to nine digits).
            let by_envelope = spec.check == FieldCheck::ENVELOPE || spec.tag == 9;
            if !spec.check.is_non_empty() && !by_envelope {
                scratch.checked[scratch.checked_len] = index as u8;
                scratch.checked_len += 1;
            }
        }
        // Slots are taken in turn, whatever the type: two shapes of one type (limit and market
        // orders, say) are both remembered; a fifth shape forgets the oldest.
        let slot = self.next;
        self.next = (self.next + 1) % SHAPES;
        std::mem::swap(&mut self.scratch, &mut self.slots[slot]);
        true
    }

    /// The message if it has a remembered shape: tags compared, values checked. A loop of
    /// its own (not `message::split_short`'s): the shape says where each tag ends and how
    /// its value is checked, so a field costs a few loads and compares.
    #[inline(never)]
    fn parse_known(&mut self, frame: &[u8], out: &mut Vec<Field>) -> bool {
        let n = frame.len();
        if !(16..=SHORT_MAX_BYTES).contains(&n) {
            return false;
        }
        // MsgType picks the shape: the third field, "35=" after the first two SOHs (within
        // the first 64 bytes, else the full proof decides).
        let (sohs, sum) = Sohs::scan(frame);
        let lead = sohs.word(0);
        let after_first = lead & lead.wrapping_sub(1);
        let after_second = after_first & after_first.wrapping_sub(1);
        if after_second == 0 {
            return false;
        }
        let second = after_first.trailing_zeros() as usize;
        let third = after_second.trailing_zeros() as usize;
        if frame.get(second + 1..second + 4) != Some(b"35=") {
            return false;
        }
        let Some(msg_type) = frame.get(second + 4..third).and_then(key) else {
            return false;
        };
        // Each remembered shape of this type in turn (a flow may send, say, limit and market
        // orders): a shape that does not fit stops at the first tag that differs.
        let stamp = &mut self.stamp;
        self.slots
            .iter()
            .filter(|s| s.msg_type == msg_type)
            .any(|shape| parse_as(shape, frame, &sohs, sum, stamp, out))
    }
}

/// The message if it has `shape`: tags compared, values checked, envelope checked (`sohs` and
/// `sum` from [`Sohs::scan`] of `frame`, `stamp` the connection's last valid timestamp head).
// One plain loop over locals (not `split_short` with closures), inlined into `parse_known`,
// which is kept out of line: inlined further up, beside the full proof, or written with
// closures, its state spilled to the stack (callgrind: ~75 instead of ~35 instructions per
// field). Trying each shape of the type costs ~45 instructions per message over a single
// lookup; as a call of its own, parse_as cost ~80.
#[inline(always)]
fn parse_as(
    shape: &Shape,
    frame: &[u8],
    sohs: &Sohs,
    sum: u32,
    stamp: &mut Option<[u8; 17]>,
    out: &mut Vec<Field>,
) -> bool {
    let n = frame.len();
    let specs = &shape.fields[..shape.len.min(SHORT_MAX_FIELDS)];
    out.clear();
    out.reserve(SHORT_MAX_FIELDS);
    let slots = &mut out.spare_capacity_mut()[..specs.len()];
    // The last offset a field's four-byte head can start at (`parse_known` admits frames of
    // 16 bytes and more, so no underflow).
    debug_assert!(n >= 16);
    let last_head = n - 4;
    let mut start = 0usize;
    let mut word = 0usize;
    // `word * 64`, kept rather than computed per field.
    let mut word_at = 0usize;
    let mut bits = sohs.word(0);
    // First the split, tags compared: no calls, so the loop's state stays in registers.
    for (spec, slot) in specs.iter().zip(slots.iter_mut()) {
        while bits == 0 {
            word += 1;
            word_at += 64;
            if word >= sohs.words() {
                return false; // fewer fields than the shape
            }
            bits = sohs.word(word);
        }
        let end = word_at + bits.trailing_zeros() as usize;
        bits &= bits - 1;
        if start > last_head {
            return false; // (the frame ends within this field's first four bytes)
        }
        // SAFETY: `start + 4 <= n`, checked just above. One compare per field instead of the
        // two of `frame.get(start..start + 4)` (overflow, end); written safely, with the
        // check above, callgrind counted 1,806 instead of 1,721 instructions per message.
        let head = u32::from_le(unsafe { frame.as_ptr().add(start).cast::<u32>().read_unaligned() });
        if head & spec.mask != spec.head {
            return false;
        }
        // The tag's digits and '=' are not SOH: the '=' is before `end`. Every check
        // rejects an empty value (the CheckSum's too, in the envelope), so that one is
        // made here for all.
        let value_start = start + usize::from(spec.value_at);
        if value_start >= end {
            return false;
        }
        slot.write(Field {
            tag: i64::from(spec.tag),
            start: value_start as u32,
            end: end as u32,
        });
        start = end + 1;
    }
    if start != n {
        return false; // more fields than the shape, or bytes after the last SOH
    }
    // SAFETY: the loop above wrote every one of the first `specs.len()` spare slots (at
    // most `SHORT_MAX_FIELDS`, the room reserved), and `Field` is plain data.
    unsafe { out.set_len(specs.len()) };
    // Then the values that need more than "not empty".
    let fields = out.as_slice();
    let checked = &shape.checked[..shape.checked_len.min(SHORT_MAX_FIELDS)];
    for &k in checked {
        let k = usize::from(k);
        let (Some(f), Some(spec)) = (fields.get(k), specs.get(k)) else {
            return false;
        };
        let Some(value) = frame.get(f.start as usize..f.end as usize) else {
            return false;
        };
        let ok = if let Some(set) = spec.byte_set {
            matches!(*value, [b] if dictionary::byte_in(set, b))
        } else if spec.check.is_timestamp() {
            timestamp_ok(stamp, value)
        } else {
            spec.check.accepts(value)
        };
        if !ok {
            return false;
        }
    }
    // The shape's tags are 8, 9, 35 first and 10 last (proven when it was recorded).
    message::check_body_length_and_checksum(frame, out, sum).is_ok()
}

/// `timefmt::is_timestamp(value)`, the date and time judged only when they differ from the
/// last ones found valid (`stamp`, updated).
#[inline]
fn timestamp_ok(stamp: &mut Option<[u8; 17]>, value: &[u8]) -> bool {
    let Some(head) = value.first_chunk::<17>() else {
        return false;
    };
    if stamp.as_ref().is_some_and(|s| same_head(s, head)) {
        return timefmt::timestamp_fraction_ok(value);
    }
    if timefmt::timestamp_head_ok(head) {
        // A valid head is before 2554: then `is_timestamp` is the fraction's verdict.
        *stamp = Some(*head);
        timefmt::timestamp_fraction_ok(value)
    } else {
        timefmt::is_timestamp(value)
    }
}

/// Whether two timestamp heads are equal: two loads and compares (`==` on the arrays, or on
/// the `Option`, copied the head to the stack first).
#[inline(always)]
fn same_head(a: &[u8; 17], b: &[u8; 17]) -> bool {
    let first = |x: &[u8; 17]| u128::from_le_bytes(*x.first_chunk::<16>().expect("17 bytes"));
    first(a) == first(b) && a[16] == b[16]
}

impl FieldSpec {
    /// Records field `index` of a shape being proven: the field's first four bytes `head`,
    /// of which `digits` are its tag's and the next is '='.
    pub(super) fn record(
        fields: &mut [FieldSpec; SHORT_MAX_FIELDS],
        index: usize,
        head: [u8; 4],
        digits: usize,
        tag: i64,
        check: FieldCheck,
    ) {
        debug_assert!((1..=3).contains(&digits) && (0..1000).contains(&tag));
        let mask = u32::MAX >> (8 * (3 - digits));
        if let Some(spec) = fields.get_mut(index) {
            *spec = FieldSpec {
                head: u32::from_le_bytes(head) & mask,
                mask,
                tag: tag as u16,
                value_at: digits as u8 + 1,
                check,
                byte_set: check.byte_set(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::message::{Message, parse};
    use crate::validate::tests::{Change, apply, change, frame, new_order};
    use crate::validate::validate;

    /// What `parse` and then `validate` say: the fields, if both accept the frame.
    fn reference(frame: &[u8]) -> Option<Vec<Field>> {
        let mut fields = Vec::new();
        parse(frame, &mut fields).ok()?;
        let msg = Message {
            buf: frame,
            fields: &fields,
        };
        validate(&msg).is_ok().then_some(fields)
    }

    proptest! {
        /// Over a connection's run of messages (a valid order first, so its shape is
        /// remembered, then changed ones: values broken, tags moved, added, removed), the
        /// remembered-shape path accepts exactly what `parse` + `validate` accept, with the
        /// same fields; it may only decline (then they decide) for messages it cannot prove.
        #[test]
        fn remembered_shapes_judge_like_parse_and_validate(
            runs in prop::collection::vec(prop::collection::vec(change(), 0..3), 1..8),
            price in 1u32..100_000,
        ) {
            let mut shapes = Shapes::default();
            let mut fields = Vec::new();
            let mut order = new_order();
            for (tag, value) in &mut order {
                if *tag == 44 {
                    *value = format!("{}.{:02}", price / 100, price % 100);
                }
            }
            let mut messages = vec![frame(&order)];
            for changes in &runs {
                let mut m = order.clone();
                for c in changes {
                    apply(&mut m, c);
                }
                messages.push(frame(&m));
            }
            for (i, m) in messages.iter().enumerate() {
                let proven = shapes.parse_valid(m, &mut fields);
                let expected = reference(m);
                if proven {
                    prop_assert_eq!(Some(&fields), expected.as_ref(), "message {}: {:?}", i, runs);
                }
                // A valid message without repeating groups is always proven (else the fast
                // path silently stops being fast).
                let grouped = m.windows(4).any(|w| w == b"\x0178=" || w == b"\x01453");
                if expected.is_some() && !grouped {
                    prop_assert!(proven, "message {}: valid but not proven: {:?}", i, runs);
                }
            }
        }
    }

    proptest! {
        /// Raw damage to an order whose shape is remembered (any byte replaced, the frame cut
        /// anywhere, bytes appended): judged as `parse` + `validate` judge it, never a panic.
        #[test]
        fn damaged_frames_of_a_known_shape_judge_like_parse_and_validate(
            damage in proptest::option::of((0usize..400, proptest::num::u8::ANY)),
            cut in proptest::option::of(0usize..400),
            // Appended bytes; some that leave the CheckSum's byte sum unchanged (mod 256).
            tail in proptest::prop_oneof![
                proptest::collection::vec(proptest::num::u8::ANY, 0..3),
                Just(vec![0u8]),
                Just(vec![0x80u8, 0x80]),
                Just(b"1=\x01\x91".to_vec()),
            ],
        ) {
            let mut shapes = Shapes::default();
            let mut fields = Vec::new();
            let order = frame(&new_order());
            prop_assert!(shapes.parse_valid(&order, &mut fields));
            let mut m = order.clone();
            if let Some((at, byte)) = damage {
                let at = at % m.len();
                m[at] = byte;
            }
            if let Some(cut) = cut {
                m.truncate(cut % (m.len() + 1));
            }
            m.extend_from_slice(&tail);
            let proven = shapes.parse_valid(&m, &mut fields);
            let expected = reference(&m);
            if proven {
                prop_assert_eq!(Some(&fields), expected.as_ref());
            }
            prop_assert!(expected.is_none() || proven, "valid but not proven");
            // The original is still proven by its shape afterwards.
            prop_assert!(shapes.parse_valid(&order, &mut fields));
        }
    }

    /// Every one-byte change of a timestamp in a message of a remembered shape, with the
    /// connection's last valid date and time those of the unchanged message (so the change
    /// meets the cached comparison, byte 16 included), with fractions of 0, 3, 6 and 9
    /// digits: judged as `parse` + `validate` judge it.
    #[test]
    fn every_one_byte_change_of_a_cached_timestamp_judges_like_parse_and_validate() {
        let mut fields = Vec::new();
        for fraction in ["", ".123", ".123456", ".123456789"] {
            let mut order = new_order();
            for (tag, value) in &mut order {
                if *tag == 52 || *tag == 60 {
                    *value = format!("20261125-10:00:59{fraction}");
                }
            }
            let original = frame(&order);
            let mut shapes = Shapes::default();
            for tag in [52, 60] {
                let at = order.iter().position(|(t, _)| *t == tag).expect("stamped");
                for i in 0..order[at].1.len() {
                    for byte in 0..=255u8 {
                        let mut changed = order.clone();
                        let mut value = changed[at].1.clone().into_bytes();
                        value[i] = byte;
                        changed[at].1 = String::from_utf8_lossy(&value).into_owned();
                        if changed[at].1.len() != order[at].1.len() {
                            continue; // (a byte that is not UTF-8 on its own)
                        }
                        let m = frame(&changed);
                        assert!(shapes.parse_valid(&original, &mut fields));
                        let proven = shapes.parse_valid(&m, &mut fields);
                        let expected = reference(&m);
                        if proven {
                            assert_eq!(Some(&fields), expected.as_ref(), "{tag} byte {i} = {byte}");
                        }
                        let soh = byte == 1;
                        assert!(
                            expected.is_none() || proven || soh,
                            "{tag} byte {i} = {byte}: valid, not proven"
                        );
                    }
                }
            }
        }
    }

    /// The bound: `SHAPES` shapes are remembered; one more forgets the oldest, which is then
    /// proven in full again (and still accepted). The whole cache stays within 6 KiB.
    #[test]
    fn a_fifth_shape_forgets_the_oldest() {
        assert!(
            std::mem::size_of::<Shapes>() <= 6 * 1024,
            "{}",
            std::mem::size_of::<Shapes>()
        );
        let mut shapes = Shapes::default();
        let mut fields = Vec::new();
        // Five shapes of NewOrderSingle: the order without, then with, one optional field.
        let base = new_order();
        let frames: Vec<Vec<u8>> = [
            None,
            Some((58, "a")),
            Some((21, "1")),
            Some((18, "G")),
            Some((100, "X")),
        ]
        .into_iter()
        .map(|extra| {
            let mut f = base.clone();
            f.extend(extra.map(|(t, v)| (t, v.to_string())));
            frame(&f)
        })
        .collect();
        assert_eq!(frames.len(), SHAPES + 1);
        for f in &frames[..SHAPES] {
            assert!(shapes.parse_valid(f, &mut fields));
        }
        for f in &frames[..SHAPES] {
            assert!(shapes.parse_known(f, &mut fields), "remembered");
        }
        assert!(shapes.parse_valid(&frames[SHAPES], &mut fields));
        assert!(shapes.parse_known(&frames[SHAPES], &mut fields));
        assert!(
            !shapes.parse_known(&frames[0], &mut fields),
            "the oldest is forgotten"
        );
        assert!(
            shapes.parse_valid(&frames[0], &mut fields),
            "and proven in full again"
        );
    }

    /// Two shapes of one MsgType (a limit and a market order) are both remembered, and each
    /// is then proven by its shape.
    #[test]
    fn two_shapes_of_one_type_are_both_remembered() {
        let mut shapes = Shapes::default();
        let mut fields = Vec::new();
        let limit = new_order();
        let mut market = limit.clone();
        market.retain(|(tag, _)| *tag != 44); // no Price
        for (tag, value) in &mut market {
            if *tag == 40 {
                *value = "1".to_string(); // OrdType market
            }
        }
        let (limit, market) = (frame(&limit), frame(&market));
        assert!(shapes.parse_valid(&limit, &mut fields));
        assert!(shapes.parse_valid(&market, &mut fields));
        assert!(shapes.parse_known(&limit, &mut fields));
        assert_eq!(reference(&limit), Some(fields.clone()));
        assert!(shapes.parse_known(&market, &mut fields));
        assert_eq!(reference(&market), Some(fields.clone()));
    }

    /// The second order of a shape goes through the remembered shape (not the full proof),
    /// and a changed value there is still judged.
    #[test]
    fn a_repeated_shape_is_remembered_and_its_values_still_checked() {
        let mut shapes = Shapes::default();
        let mut fields = Vec::new();
        let order = new_order();
        assert!(shapes.parse_valid(&frame(&order), &mut fields));
        assert!(shapes.parse_known(&frame(&order), &mut fields));
        let mut broken = order.clone();
        apply(&mut broken, &Change::Value(8, "X")); // Side (54) = X
        assert_eq!(broken[8].0, 54);
        assert!(!shapes.parse_known(&frame(&broken), &mut fields));
        assert!(!shapes.parse_valid(&frame(&broken), &mut fields));
    }
}
