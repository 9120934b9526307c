//! The validator's fast path: the FIX 4.4 dictionary compiled, per message type, into one
//! table indexed by tag, so that proving an ordinary message valid costs one table load and a
//! few bit operations per field.
//!
//! For each message type and tag the table says in one word whether the tag may appear on the
//! fast path at all, whether it is a header field, which bit of the "seen" set it owns
//! (repeated tags, required fields) and how its value is checked. Anything the table does not
//! cover (trailer fields inside the body, repeating groups, unknown tags, more than
//! [`MAX_SLOTS`] distinct fields) makes [`accepts`] say "not proven", and the ordered checks in
//! `validate.rs` decide. So this path may only ever return `true` for a message the ordered
//! checks accept; proptests in `validate.rs` hold it to that.

use std::sync::OnceLock;

use super::dictionary::{self, FieldRef, FieldType};
use super::fix44_data::{FIELDS, MESSAGES};
use super::message::Message;
use super::timefmt;

/// Distinct header and body fields one message type can track (bits of the seen set).
const MAX_SLOTS: usize = 256;
/// Words of the seen set.
const WORDS: usize = MAX_SLOTS / 64;

/// Entry bits: low 8 the slot, bit 8 "header field", bits 16.. the field's index in FIELDS.
/// 0 means "not on the fast path" (slot 0 is never handed out, so no real entry is 0).
const HEADER_BIT: u32 = 1 << 8;
const FIELD_SHIFT: u32 = 16;

/// One message type compiled.
struct MessageTable {
    /// Per tag (0..=largest defined tag): the entry, or 0.
    entries: Box<[u32]>,
    /// Slots of the required header and body fields.
    required: [u64; WORDS],
}

/// How a value is checked, the common cases first and without a call.
#[derive(Clone, Copy)]
enum FieldRule {
    /// Any non-empty value (a string without an enumeration).
    Any,
    /// Every allowed value is one byte of this set, and each is well formed for the field's
    /// type (so the set check is the whole check).
    Byte([u64; 4]),
    /// An integer without an enumeration.
    Int,
    /// A UTCTimestamp.
    Timestamp,
    /// The format, then (if listed) the enumeration, through the dictionary.
    Other(FieldType, Option<FieldRef>),
}

struct Compiled {
    /// Per message (MESSAGES order).
    messages: Vec<MessageTable>,
    /// Per field (FIELDS order).
    fields: Vec<FieldRule>,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(compile)
}

fn compile() -> Compiled {
    let max_tag = FIELDS.iter().map(|f| f.tag).max().unwrap_or(0) as usize;
    assert!(
        FIELDS.len() < (1 << (32 - FIELD_SHIFT)),
        "field index fits an entry"
    );
    let fields = FIELDS
        .iter()
        .map(|f| {
            let field = dictionary::field_ref(i64::from(f.tag)).expect("a defined field");
            // A one-byte enumeration whose bytes are all well formed: the set check is all.
            let bytes = dictionary::one_byte_values(f).filter(|_| {
                f.values
                    .iter()
                    .all(|v| dictionary::valid_format(f.kind, v.as_bytes()))
            });
            // MsgType: [`accepts`] only runs with the table of the message's own type, so the
            // value is a known type (asserted below: each is an allowed value).
            if f.tag == 35 {
                return FieldRule::Any;
            }
            if let Some(set) = bytes {
                return FieldRule::Byte(set);
            }
            match f.kind {
                FieldType::Str | FieldType::MultiString if f.values.is_empty() => FieldRule::Any,
                FieldType::Int if f.values.is_empty() => FieldRule::Int,
                FieldType::UtcTimestamp if f.values.is_empty() => FieldRule::Timestamp,
                kind => FieldRule::Other(kind, (!f.values.is_empty()).then_some(field)),
            }
        })
        .collect();
    let msg_type = dictionary::field_ref(35).expect("MsgType is defined");
    for m in MESSAGES {
        assert!(
            msg_type.valid_value(m.msg_type.as_bytes()),
            "{} is a MsgType value",
            m.msg_type
        );
    }
    let messages = MESSAGES
        .iter()
        .map(|m| {
            let bits = dictionary::message_bits(m.msg_type.as_bytes()).expect("a defined message");
            let mut entries = vec![0u32; max_tag + 1].into_boxed_slice();
            let mut required = [0u64; WORDS];
            let mut next_slot = 1usize;
            for (index, f) in FIELDS.iter().enumerate() {
                let tag = i64::from(f.tag);
                // The same classification as the ordered checks: a header tag is a header
                // field wherever it stands; trailer fields and group counts are left to them.
                let header = dictionary::is_header(tag);
                let body =
                    !header && !dictionary::is_trailer(tag) && !bits.is_group_count(tag) && bits.allows(tag);
                if !(header || body) || next_slot == MAX_SLOTS {
                    continue;
                }
                let slot = next_slot;
                next_slot += 1;
                entries[f.tag as usize] =
                    slot as u32 | if header { HEADER_BIT } else { 0 } | (index as u32) << FIELD_SHIFT;
                let is_required = if header {
                    dictionary::header_required().contains(&f.tag)
                } else {
                    m.required.contains(&f.tag)
                };
                if is_required {
                    required[slot / 64] |= 1 << (slot % 64);
                }
            }
            // A required field that got no slot can never be seen: the fast path then never
            // accepts this type, which is safe (the ordered checks decide).
            let all_required = dictionary::header_required().iter().chain(m.required.iter());
            if all_required.into_iter().any(|&t| entries[t as usize] == 0) {
                required[0] |= 1; // slot 0 is never set
            }
            MessageTable { entries, required }
        })
        .collect();
    Compiled { messages, fields }
}

/// True only if every check of the ordered validator passes: every field known and allowed in
/// this message type (header fields before the body, no trailer field inside), no tag twice,
/// no empty value, every value in its format and enumeration, every required header and body
/// field present. False means "not proven" (a message with repeating groups, say), not
/// "invalid".
pub fn accepts(msg: &Message<'_>) -> bool {
    let fields = msg.fields;
    let Some(last) = fields.len().checked_sub(1) else {
        return false;
    };
    let c = compiled();
    let Some(table) = dictionary::message_position(msg.msg_type()).and_then(|i| c.messages.get(i)) else {
        return false;
    };
    let mut seen = [0u64; WORDS];
    let mut in_body = false;
    // The last field is the checksum, checked by `parse`.
    for f in &fields[..last] {
        let Some(&entry) = usize::try_from(f.tag).ok().and_then(|t| table.entries.get(t)) else {
            return false;
        };
        if entry == 0 {
            return false;
        }
        if entry & HEADER_BIT != 0 {
            if in_body {
                return false; // a header field after the body
            }
        } else {
            in_body = true;
        }
        let slot = (entry & 0xff) as usize;
        let bit = 1u64 << (slot % 64);
        if seen[slot / 64] & bit != 0 {
            return false; // repeated tag
        }
        seen[slot / 64] |= bit;
        let rule = &c.fields[(entry >> FIELD_SHIFT) as usize];
        if !valid(rule, msg.value(f)) {
            return false;
        }
    }
    (0..WORDS).all(|w| seen[w] & table.required[w] == table.required[w])
}

#[inline]
fn valid(rule: &FieldRule, value: &[u8]) -> bool {
    match (rule, value) {
        (_, []) => false,
        (FieldRule::Any, _) => true,
        (FieldRule::Byte(set), [b]) => dictionary::byte_in(set, *b),
        (FieldRule::Byte(_), _) => false,
        (FieldRule::Int, _) => {
            let digits = value.strip_prefix(b"-").unwrap_or(value);
            !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
        }
        (FieldRule::Timestamp, _) => timefmt::is_timestamp(value),
        (FieldRule::Other(kind, listed), _) => {
            dictionary::valid_format(*kind, value) && listed.is_none_or(|f| f.valid_value(value))
        }
    }
}
