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
use super::message::{self, Field, Message, SHORT_MAX_FIELDS};
use super::shape::FieldSpec;
use super::timefmt;

/// Distinct header and body fields one message type can track (bits of the seen set).
const MAX_SLOTS: usize = 256;
/// Words of the seen set.
const WORDS: usize = MAX_SLOTS / 64;

/// Tags a table covers: every FIX 4.4 tag is below (asserted when compiling), so a tag that
/// passed one compare indexes the table without a bounds check.
const TAGS: usize = 1024;

/// Entry bits: low 8 the slot, bit 8 "header field", bits 9..12 the rule's kind (so the
/// common rules are checked without loading the rule), bits 16.. the field's index in
/// FIELDS. 0 means "not on the fast path" (slot 0 is never handed out, so no real entry is 0).
const HEADER_BIT: u32 = 1 << 8;
const KIND_SHIFT: u32 = 9;
const FIELD_SHIFT: u32 = 16;

/// Rule kinds in an entry (see [`FieldRule::kind`]).
const KIND_ANY: u32 = 0;
const KIND_BYTE: u32 = 1;
const KIND_INT: u32 = 2;
const KIND_TIMESTAMP: u32 = 3;
const KIND_FLOAT: u32 = 4;
const KIND_OTHER: u32 = 5;

/// One message type compiled.
struct MessageTable {
    /// Per tag: the entry, or 0.
    entries: Box<[u32; TAGS]>,
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
    /// A float (price, quantity, amount) without an enumeration.
    Float,
    /// The format, then (if listed) the enumeration, through the dictionary.
    Other(FieldType, Option<FieldRef>),
}

impl FieldRule {
    /// The kind stored in a table entry.
    fn kind(&self) -> u32 {
        match self {
            FieldRule::Any => KIND_ANY,
            FieldRule::Byte(_) => KIND_BYTE,
            FieldRule::Int => KIND_INT,
            FieldRule::Timestamp => KIND_TIMESTAMP,
            FieldRule::Float => KIND_FLOAT,
            FieldRule::Other(..) => KIND_OTHER,
        }
    }
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
    assert!(max_tag < TAGS, "every tag indexes a table");
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
                FieldType::Float if f.values.is_empty() => FieldRule::Float,
                kind => FieldRule::Other(kind, (!f.values.is_empty()).then_some(field)),
            }
        })
        .collect::<Vec<FieldRule>>();
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
            let mut entries: Box<[u32; TAGS]> = vec![0u32; TAGS]
                .into_boxed_slice()
                .try_into()
                .expect("TAGS entries");
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
                entries[f.tag as usize] = slot as u32
                    | if header { HEADER_BIT } else { 0 }
                    | fields[index].kind() << KIND_SHIFT
                    | (index as u32) << FIELD_SHIFT;
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
    let Some(mut proof) = Proof::new(msg.msg_type()) else {
        return false;
    };
    // The last field is the checksum, checked by `parse`.
    fields[..last]
        .iter()
        .all(|f| proof.field(f.tag, msg.value(f)).is_some())
        && proof.complete()
}

/// `message::parse` and [`accepts`] in one pass over the frame, for the common case (see
/// `message::split_short`): true means `parse` would succeed with exactly the fields now in
/// `out`, and [`accepts`] would say yes. False means "not proven": run `parse` and the
/// validator. Each field's tag and value check go to `shape` as they are proven (the caller
/// keeps the shape only if the whole message is).
pub(super) fn parse_accepted(
    frame: &[u8],
    out: &mut Vec<Field>,
    shape: &mut [FieldSpec; SHORT_MAX_FIELDS],
) -> bool {
    let mut proof: Option<Proof> = None;
    // BeginString and BodyLength come before MsgType picks the table: checked once it has.
    let mut early: [(i64, &[u8], [u8; 4], usize); 2] = [(0, &[], [0; 4], 0); 2];
    // CheckSum fields seen (exactly one, the last, as `accepts` skips only that one).
    let mut checksums = 0;
    let split = message::split_short(frame, out, |index, head, start, end| {
        let (tag, digits) = message::tag_of_head(head)?;
        let eq = start + digits;
        let value = frame.get(eq + 1..end)?;
        let check = match &mut proof {
            Some(_) if tag == 10 => {
                checksums += 1;
                FieldCheck::ENVELOPE
            }
            Some(p) => p.field(tag, value)?,
            None if index < 2 => {
                early[index] = (tag, value, head, digits);
                return Some((tag, eq));
            }
            None => {
                // The third field: MsgType (else the envelope check fails anyway).
                let p = proof.insert((tag == 35).then(|| Proof::new(value)).flatten()?);
                for (i, &(tag, value, head, digits)) in early.iter().enumerate() {
                    let check = p.field(tag, value)?;
                    FieldSpec::record(shape, i, head, digits, tag, check);
                }
                p.field(tag, value)?
            }
        };
        FieldSpec::record(shape, index, head, digits, tag, check);
        Some((tag, eq))
    });
    split && checksums == 1 && proof.is_some_and(|p| p.complete())
}

/// How one field's value is checked: a rule kind (and the field's index, for the kinds that
/// need its rule), or [`FieldCheck::ENVELOPE`]. The default accepts nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct FieldCheck {
    /// 0: nothing passes; 1: the envelope's to check; 2 + a `KIND_*`: that rule.
    kind: u8,
    /// The field's index in FIELDS.
    field: u16,
}

impl FieldCheck {
    /// The CheckSum: its value is the envelope's to check.
    pub(super) const ENVELOPE: FieldCheck = FieldCheck { kind: 1, field: 0 };

    /// The check of a (non-zero) table entry.
    fn of_entry(entry: u32) -> FieldCheck {
        debug_assert_ne!(entry, 0);
        FieldCheck {
            kind: 2 + ((entry >> KIND_SHIFT) & 7) as u8,
            field: (entry >> FIELD_SHIFT) as u16,
        }
    }

    /// Whether any non-empty value passes (and only those).
    pub(super) fn is_non_empty(self) -> bool {
        self.kind == 2 + KIND_ANY as u8
    }

    /// Whether this is the UTCTimestamp check (`timefmt::is_timestamp`).
    pub(super) fn is_timestamp(self) -> bool {
        self.kind == 2 + KIND_TIMESTAMP as u8
    }

    /// A one-byte enumeration's set of allowed bytes (its whole check), else None.
    pub(super) fn byte_set(self) -> Option<&'static [u64; 4]> {
        match compiled().fields.get(usize::from(self.field)) {
            Some(FieldRule::Byte(set)) if self.kind == 2 + KIND_BYTE as u8 => Some(set),
            _ => None,
        }
    }

    /// Whether `value` passes.
    #[inline(always)]
    pub(super) fn accepts(self, value: &[u8]) -> bool {
        const ANY: u8 = 2 + KIND_ANY as u8;
        const BYTE: u8 = 2 + KIND_BYTE as u8;
        const INT: u8 = 2 + KIND_INT as u8;
        const TIMESTAMP: u8 = 2 + KIND_TIMESTAMP as u8;
        const FLOAT: u8 = 2 + KIND_FLOAT as u8;
        match self.kind {
            0 => false,
            1 => true,
            ANY => !value.is_empty(),
            BYTE => match (value, compiled().fields.get(usize::from(self.field))) {
                ([b], Some(FieldRule::Byte(set))) => dictionary::byte_in(set, *b),
                _ => false,
            },
            INT => dictionary::is_int(value),
            TIMESTAMP => timefmt::is_timestamp(value),
            FLOAT => dictionary::is_float(value),
            _ => compiled()
                .fields
                .get(usize::from(self.field))
                .is_some_and(|rule| valid(rule, value)),
        }
    }
}

/// One message's proof in progress: its type's table and what was seen so far.
struct Proof {
    table: &'static MessageTable,
    seen: [u64; WORDS],
    in_body: bool,
}

impl Proof {
    /// A proof for `msg_type`; None for a type the tables do not know.
    #[inline]
    fn new(msg_type: &[u8]) -> Option<Proof> {
        let c = compiled();
        let table = dictionary::message_position(msg_type).and_then(|i| c.messages.get(i))?;
        Some(Proof {
            table,
            seen: [0; WORDS],
            in_body: false,
        })
    }

    /// The next field (not the checksum): its value check if it is proven valid here, None
    /// if it cannot be.
    #[inline(always)]
    fn field(&mut self, tag: i64, value: &[u8]) -> Option<FieldCheck> {
        // One unsigned compare rejects negative tags and tags beyond the table alike.
        let tag = tag as u64;
        if tag >= TAGS as u64 {
            return None;
        }
        let entry = self.table.entries[tag as usize];
        if entry == 0 {
            return None;
        }
        let header = entry & HEADER_BIT != 0;
        if header && self.in_body {
            return None; // a header field after the body
        }
        self.in_body |= !header;
        let slot = (entry & 0xff) as usize;
        let bit = 1u64 << (slot % 64);
        if self.seen[slot / 64] & bit != 0 {
            return None; // repeated tag
        }
        self.seen[slot / 64] |= bit;
        let check = FieldCheck::of_entry(entry);
        check.accepts(value).then_some(check)
    }

    /// Whether every required header and body field was seen.
    #[inline]
    fn complete(&self) -> bool {
        (0..WORDS).all(|w| self.seen[w] & self.table.required[w] == self.table.required[w])
    }
}

#[inline]
fn valid(rule: &FieldRule, value: &[u8]) -> bool {
    match (rule, value) {
        (_, []) => false,
        (FieldRule::Any, _) => true,
        (FieldRule::Byte(set), [b]) => dictionary::byte_in(set, *b),
        (FieldRule::Byte(_), _) => false,
        (FieldRule::Int, _) => dictionary::is_int(value),
        (FieldRule::Timestamp, _) => timefmt::is_timestamp(value),
        (FieldRule::Float, _) => dictionary::is_float(value),
        (FieldRule::Other(kind, listed), _) => {
            dictionary::valid_format(*kind, value) && listed.is_none_or(|f| f.valid_value(value))
        }
    }
}
