//! The FIX 4.4 data dictionary (generated data in `fix44_data.rs`) and lookups into it.

use std::sync::OnceLock;

use super::fix44_data::{FIELDS, HEADER, HEADER_GROUPS, HEADER_REQUIRED, MESSAGES, TRAILER};

/// Direct-index lookup tables over the generated dictionary, built once: the validator asks
/// "which field is tag T", "is T a header field", "which message is 35=X" for every field of
/// every inbound message, and binary or linear searches there cost more than the parsing
/// (measured with `ordo bench fix`).
struct Tables {
    /// Per tag up to the largest defined tag: index into FIELDS, or `NO_FIELD`.
    field_index: Vec<u16>,
    /// Per tag: `CLASS_HEADER`, `CLASS_TRAILER` or 0.
    class: Vec<u8>,
    /// Per one- or two-byte MsgType (`b0 * 256 + b1`, b1 = 0 for one byte): index into
    /// MESSAGES, or `NO_FIELD`.
    message_index: Vec<u16>,
    /// HEADER_REQUIRED sorted (missing fields are reported lowest tag first).
    header_required: Vec<u32>,
    /// Per field (FIELDS order): how to check a value against its enumeration without a
    /// string comparison per allowed value (MsgType alone has ~100).
    values: Vec<ValueCheck>,
    /// Per message (MESSAGES order): bitmaps over tags of its body fields and of its group
    /// count fields (a binary search per field was the validator's largest cost).
    body_bits: Vec<MessageBits>,
}

/// Bitmaps of one message's body: which tags it allows, which are group counts.
#[derive(Debug)]
pub struct MessageBits {
    allowed: Vec<u64>,
    group_counts: Vec<u64>,
}

impl MessageBits {
    fn bit(set: &[u64], tag: i64) -> bool {
        usize::try_from(tag).is_ok_and(|t| set.get(t / 64).is_some_and(|w| w & (1 << (t % 64)) != 0))
    }
    /// Whether the message's body may hold `tag` (group count fields included, group members
    /// not).
    #[inline]
    pub fn allows(&self, tag: i64) -> bool {
        Self::bit(&self.allowed, tag)
    }
    /// Whether `tag` is the count field of one of the message's groups.
    #[inline]
    pub fn is_group_count(&self, tag: i64) -> bool {
        Self::bit(&self.group_counts, tag)
    }
}

/// How a field's values are checked against its enumeration.
enum ValueCheck {
    /// No enumeration.
    Any,
    /// Every allowed value is one byte: the set of those bytes.
    Bytes([u64; 4]),
    /// The allowed values, sorted (binary search).
    Sorted(Vec<&'static [u8]>),
}

const NO_FIELD: u16 = u16::MAX;
const CLASS_HEADER: u8 = 1;
const CLASS_TRAILER: u8 = 2;

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let max_tag = FIELDS.iter().map(|f| f.tag).max().unwrap_or(0) as usize;
        assert!(FIELDS.len() < usize::from(NO_FIELD) && MESSAGES.len() < usize::from(NO_FIELD));
        let mut field_index = vec![NO_FIELD; max_tag + 1];
        for (i, f) in FIELDS.iter().enumerate() {
            field_index[f.tag as usize] = i as u16;
        }
        let mut class = vec![0u8; max_tag + 1];
        let header_tags = HEADER
            .iter()
            .chain(HEADER_GROUPS.iter().flat_map(|g| g.fields.iter()));
        for &t in header_tags {
            if let Some(c) = class.get_mut(t as usize) {
                *c = CLASS_HEADER;
            }
        }
        for &t in TRAILER {
            if let Some(c) = class.get_mut(t as usize) {
                *c = CLASS_TRAILER;
            }
        }
        let mut message_index = vec![NO_FIELD; 256 * 256];
        for (i, m) in MESSAGES.iter().enumerate() {
            if let Some(key) = message_key(m.msg_type.as_bytes()) {
                message_index[key] = i as u16;
            }
        }
        let mut header_required = HEADER_REQUIRED.to_vec();
        header_required.sort_unstable();
        let words = max_tag / 64 + 1;
        let body_bits = MESSAGES
            .iter()
            .map(|m| {
                let mut bits = MessageBits {
                    allowed: vec![0; words],
                    group_counts: vec![0; words],
                };
                let set = |v: &mut Vec<u64>, t: u32| {
                    let t = t as usize;
                    if t / 64 >= v.len() {
                        v.resize(t / 64 + 1, 0);
                    }
                    v[t / 64] |= 1 << (t % 64);
                };
                for &t in m.fields {
                    set(&mut bits.allowed, t);
                }
                for g in m.groups {
                    set(&mut bits.group_counts, g.count);
                }
                bits
            })
            .collect();
        let values = FIELDS
            .iter()
            .map(|f| {
                if f.values.is_empty() {
                    ValueCheck::Any
                } else if let Some(set) = one_byte_values(f) {
                    ValueCheck::Bytes(set)
                } else {
                    let mut sorted: Vec<&'static [u8]> = f.values.iter().map(|v| v.as_bytes()).collect();
                    sorted.sort_unstable();
                    ValueCheck::Sorted(sorted)
                }
            })
            .collect();
        Tables {
            values,
            field_index,
            class,
            message_index,
            header_required,
            body_bits,
        }
    })
}

/// If every allowed value of `f` is one byte (and `f` is not a MultiString): the set of those
/// bytes, as a 256-bit map.
pub(super) fn one_byte_values(f: &FieldDef) -> Option<[u64; 4]> {
    if f.values.is_empty() || f.kind == FieldType::MultiString || f.values.iter().any(|v| v.len() != 1) {
        return None;
    }
    let mut set = [0u64; 4];
    for v in f.values {
        let b = v.as_bytes()[0];
        set[usize::from(b / 64)] |= 1 << (b % 64);
    }
    Some(set)
}

/// Whether byte `b` is in a set made by [`one_byte_values`].
#[inline]
pub(super) fn byte_in(set: &[u64; 4], b: u8) -> bool {
    set[usize::from(b / 64)] & (1 << (b % 64)) != 0
}

fn message_key(msg_type: &[u8]) -> Option<usize> {
    match *msg_type {
        [a] => Some(usize::from(a) * 256),
        [a, b] if b != 0 => Some(usize::from(a) * 256 + usize::from(b)),
        _ => None,
    }
}

fn tag_index(tag: i64) -> Option<usize> {
    usize::try_from(tag).ok()
}

/// The standard header's required fields, lowest tag first.
pub fn header_required() -> &'static [u32] {
    &tables().header_required
}

/// How a field's value must look (QuickFIX's field convertors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Optional '-', digits.
    Int,
    /// Optional '-', digits, optional '.', digits; at least one digit.
    Float,
    /// Exactly one character.
    Char,
    /// 'Y' or 'N'.
    Bool,
    /// YYYYMMDD-HH:MM:SS[.sss...].
    UtcTimestamp,
    /// HH:MM:SS[.sss...].
    UtcTimeOnly,
    /// YYYYMMDD.
    UtcDate,
    /// Space-separated values, each from the enumeration.
    MultiString,
    /// Anything.
    Str,
}

/// A field definition.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    /// Tag.
    pub tag: u32,
    /// Type.
    pub kind: FieldType,
    /// Allowed values (empty: any).
    pub values: &'static [&'static str],
}

/// A repeating group definition.
#[derive(Debug, Clone, Copy)]
pub struct GroupDef {
    /// The NumInGroup field.
    pub count: u32,
    /// The field that starts each entry.
    pub delimiter: u32,
    /// The fields of an entry in their defined order.
    pub order: &'static [u32],
    /// The fields an entry may hold, sorted.
    pub fields: &'static [u32],
    /// The fields each entry must hold, sorted.
    pub required: &'static [u32],
    /// Nested groups.
    pub groups: &'static [GroupDef],
}

/// A message definition.
#[derive(Debug, Clone, Copy)]
pub struct MessageDef {
    /// MsgType.
    pub msg_type: &'static str,
    /// Session-level (admin) message.
    pub admin: bool,
    /// Fields allowed in the body (group count fields included, group members not), sorted.
    pub fields: &'static [u32],
    /// Body fields required, sorted.
    pub required: &'static [u32],
    /// Groups of the body.
    pub groups: &'static [GroupDef],
}

/// A field definition and its place in the dictionary (for [`FieldRef::valid_value`]).
#[derive(Clone, Copy)]
pub struct FieldRef {
    /// The definition.
    pub def: &'static FieldDef,
    index: usize,
}

impl FieldRef {
    /// Whether `value` is one of the field's enumerated values (always true if it has none);
    /// for a MultiString field, every space-separated value must be.
    #[inline]
    pub fn valid_value(&self, value: &[u8]) -> bool {
        match &tables().values[self.index] {
            ValueCheck::Any => true,
            ValueCheck::Bytes(set) => matches!(value, [b] if byte_in(set, *b)),
            ValueCheck::Sorted(sorted) => {
                let one = |v: &[u8]| sorted.binary_search(&v).is_ok();
                if self.def.kind == FieldType::MultiString {
                    value.split(|&b| b == b' ').all(one)
                } else {
                    one(value)
                }
            }
        }
    }
}

/// The field definition of `tag`, with its place in the dictionary.
#[inline]
pub fn field_ref(tag: i64) -> Option<FieldRef> {
    let i = *tables().field_index.get(tag_index(tag)?)?;
    (i != NO_FIELD).then(|| FieldRef {
        def: &FIELDS[usize::from(i)],
        index: usize::from(i),
    })
}

/// The message definition of `msg_type`.
pub fn message(msg_type: &[u8]) -> Option<&'static MessageDef> {
    message_position(msg_type).map(|i| &MESSAGES[i])
}

/// The position of `msg_type` in the generated message list (None for an unknown type).
#[inline]
pub(super) fn message_position(msg_type: &[u8]) -> Option<usize> {
    match message_key(msg_type) {
        Some(key) => {
            let i = tables().message_index[key];
            (i != NO_FIELD).then_some(usize::from(i))
        }
        None => MESSAGES.iter().position(|m| m.msg_type.as_bytes() == msg_type),
    }
}

/// The body bitmaps of `msg_type` (None for an unknown type).
pub fn message_bits(msg_type: &[u8]) -> Option<&'static MessageBits> {
    tables().body_bits.get(message_position(msg_type)?)
}

/// Whether `tag` is a standard header field.
pub fn is_header(tag: i64) -> bool {
    tag_index(tag).and_then(|t| tables().class.get(t)) == Some(&CLASS_HEADER)
}

/// Whether `tag` is a standard trailer field.
pub fn is_trailer(tag: i64) -> bool {
    tag_index(tag).and_then(|t| tables().class.get(t)) == Some(&CLASS_TRAILER)
}

/// Whether a message type is an admin (session-level) message.
pub fn is_admin(msg_type: &[u8]) -> bool {
    matches!(msg_type, b"0" | b"1" | b"2" | b"3" | b"4" | b"5" | b"A")
}

/// An Int's format: optional '-', then at least one digit.
#[inline]
pub fn is_int(value: &[u8]) -> bool {
    let digits = value.strip_prefix(b"-").unwrap_or(value);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// A float's format (Price, Qty, Amt, ...): optional '-', digits with at most one '.', at
/// least one digit.
#[inline]
pub fn is_float(value: &[u8]) -> bool {
    let v = value.strip_prefix(b"-").unwrap_or(value);
    let mut dot = false;
    let mut digit = false;
    for &c in v {
        match c {
            b'0'..=b'9' => digit = true,
            b'.' if !dot => dot = true,
            _ => return false,
        }
    }
    digit
}

/// Whether `value` is well formed for `kind`.
#[inline]
pub fn valid_format(kind: FieldType, value: &[u8]) -> bool {
    match kind {
        FieldType::Int => is_int(value),
        FieldType::Float => is_float(value),
        FieldType::Char => value.len() == 1,
        FieldType::Bool => value == b"Y" || value == b"N",
        FieldType::UtcTimestamp => super::timefmt::is_timestamp(value),
        FieldType::UtcTimeOnly => super::timefmt::is_time(value),
        FieldType::UtcDate => super::timefmt::is_date(value),
        FieldType::MultiString | FieldType::Str => true,
    }
}
