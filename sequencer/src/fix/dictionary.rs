//! The FIX 4.4 data dictionary (generated data in `fix44_data.rs`) and lookups into it.

use super::fix44_data::{FIELDS, HEADER, HEADER_GROUPS, MESSAGES, TRAILER};

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

/// The field definition of `tag`.
pub fn field(tag: i64) -> Option<&'static FieldDef> {
    let tag = u32::try_from(tag).ok()?;
    FIELDS
        .binary_search_by_key(&tag, |f| f.tag)
        .ok()
        .map(|i| &FIELDS[i])
}

/// The message definition of `msg_type`.
pub fn message(msg_type: &[u8]) -> Option<&'static MessageDef> {
    MESSAGES.iter().find(|m| m.msg_type.as_bytes() == msg_type)
}

/// Whether `tag` is a standard header field.
pub fn is_header(tag: i64) -> bool {
    u32::try_from(tag).is_ok_and(|t| {
        HEADER.binary_search(&t).is_ok() || HEADER_GROUPS.iter().any(|g| g.fields.binary_search(&t).is_ok())
    })
}

/// Whether `tag` is a standard trailer field.
pub fn is_trailer(tag: i64) -> bool {
    u32::try_from(tag).is_ok_and(|t| TRAILER.binary_search(&t).is_ok())
}

/// Whether a message type is an admin (session-level) message.
pub fn is_admin(msg_type: &[u8]) -> bool {
    matches!(msg_type, b"0" | b"1" | b"2" | b"3" | b"4" | b"5" | b"A")
}

/// Whether `value` is well formed for `kind`.
pub fn valid_format(kind: FieldType, value: &[u8]) -> bool {
    match kind {
        FieldType::Int => {
            let digits = value.strip_prefix(b"-").unwrap_or(value);
            !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
        }
        FieldType::Float => {
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
        FieldType::Char => value.len() == 1,
        FieldType::Bool => value == b"Y" || value == b"N",
        FieldType::UtcTimestamp => super::timefmt::parse_timestamp(value).is_some(),
        FieldType::UtcTimeOnly => super::timefmt::parse_time(value).is_some(),
        FieldType::UtcDate => super::timefmt::parse_date(value).is_some(),
        FieldType::MultiString | FieldType::Str => true,
    }
}

/// Whether `value` is one of the field's enumerated values (always true if it has none).
pub fn valid_value(def: &FieldDef, value: &[u8]) -> bool {
    if def.values.is_empty() {
        return true;
    }
    let one = |v: &[u8]| def.values.iter().any(|e| e.as_bytes() == v);
    if def.kind == FieldType::MultiString {
        value.split(|&b| b == b' ').all(one)
    } else {
        one(value)
    }
}
