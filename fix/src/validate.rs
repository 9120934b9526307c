//! Validation against the FIX 4.4 dictionary, in QuickFIX's order, so that the first problem
//! found (and so the Reject sent) is the one QuickFIX would report: structure (a header field
//! after the body), message type, required fields (header, then body, then group entries, each
//! in tag order), then field by field (header, trailer, body, each in tag order): repeated tag,
//! empty value, data format, enumerated value, unknown tag, tag not in this message, group count.

use super::compiled;
use super::dictionary::{self, GroupDef, MessageBits};
use super::message::{Field, MAX_FIELDS, Message};

/// SessionRejectReason (373) values.
pub mod reason {
    /// Invalid tag number.
    pub const INVALID_TAG: u32 = 0;
    /// Required tag missing.
    pub const REQUIRED_MISSING: u32 = 1;
    /// Tag not defined for this message type.
    pub const NOT_IN_MESSAGE: u32 = 2;
    /// Tag specified without a value.
    pub const NO_VALUE: u32 = 4;
    /// Value is incorrect (out of range) for this tag.
    pub const BAD_VALUE: u32 = 5;
    /// Incorrect data format for value.
    pub const BAD_FORMAT: u32 = 6;
    /// CompID problem.
    pub const COMP_ID: u32 = 9;
    /// SendingTime accuracy problem.
    pub const SENDING_TIME: u32 = 10;
    /// Invalid MsgType.
    pub const INVALID_MSG_TYPE: u32 = 11;
    /// Tag appears more than once.
    pub const REPEATED: u32 = 13;
    /// Tag specified out of required order.
    pub const OUT_OF_ORDER: u32 = 14;
    /// Incorrect NumInGroup count for repeating group.
    pub const GROUP_COUNT: u32 = 16;

    /// QuickFIX's Text (58) for a reason.
    pub fn text(reason: u32) -> &'static str {
        match reason {
            INVALID_TAG => "Invalid tag number",
            REQUIRED_MISSING => "Required tag missing",
            NOT_IN_MESSAGE => "Tag not defined for this message type",
            NO_VALUE => "Tag specified without a value",
            BAD_VALUE => "Value is incorrect (out of range) for this tag",
            BAD_FORMAT => "Incorrect data format for value",
            COMP_ID => "CompID problem",
            SENDING_TIME => "SendingTime accuracy problem",
            INVALID_MSG_TYPE => "Invalid MsgType",
            REPEATED => "Tag appears more than once",
            OUT_OF_ORDER => "Tag specified out of required order",
            GROUP_COUNT => "Incorrect NumInGroup count for repeating group",
            _ => "Other",
        }
    }
}

/// A validation failure: the SessionRejectReason and the tag it concerns (RefTagID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    /// SessionRejectReason.
    pub reason: u32,
    /// RefTagID, if the reason concerns one field.
    pub tag: Option<i64>,
}

fn fail(reason: u32, tag: i64) -> Invalid {
    Invalid {
        reason,
        tag: Some(tag),
    }
}

/// One group entry: indices of its fields, and its nested groups.
#[derive(Debug, Default)]
struct Entry {
    fields: Vec<usize>,
    groups: Vec<Group>,
}

/// A parsed group: the count field's index, its definition, its entries.
#[derive(Debug)]
struct Group {
    count_field: usize,
    def: &'static GroupDef,
    entries: Vec<Entry>,
}

/// Reads a group starting after the count field at `fields[*i - 1]`; advances `*i`.
fn parse_group(
    fields: &[Field],
    i: &mut usize,
    count_field: usize,
    def: &'static GroupDef,
    end: usize,
) -> Group {
    let mut group = Group {
        count_field,
        def,
        entries: Vec::new(),
    };
    while *i < end {
        let tag = fields[*i].tag;
        let Ok(t) = u32::try_from(tag) else { break };
        if t == def.delimiter {
            group.entries.push(Entry::default());
        } else if def.fields.binary_search(&t).is_err() || group.entries.is_empty() {
            break;
        }
        let entry = group.entries.last_mut().expect("entry started by the delimiter");
        entry.fields.push(*i);
        *i += 1;
        if let Some(nested) = def.groups.iter().find(|g| g.count == t) {
            let count_field = *i - 1;
            let g = parse_group(fields, i, count_field, nested, end);
            group.entries.last_mut().expect("entry").groups.push(g);
        }
    }
    group
}

/// Validates a parsed message whose envelope (8, 9, 35 ... 10, length, checksum) is correct.
pub fn validate(msg: &Message<'_>) -> Result<(), Invalid> {
    // Nearly every message is valid: prove that with one unordered pass over tables compiled
    // per message type, and only when the proof fails run the ordered checks that find the
    // error QuickFIX would report first.
    if compiled::accepts(msg) {
        return Ok(());
    }
    // Structure: header, then body, then trailer. Field positions go into this thread's
    // scratch buffers (a message has at most MAX_FIELDS fields, so they never grow after the
    // first message): no allocation unless the message has groups.
    SCRATCH.with_borrow_mut(|scratch| validate_with(msg, scratch))
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch {
        header: vec![0; MAX_FIELDS],
        body: vec![0; MAX_FIELDS],
    });
}

/// Reused field-position buffers of [`validate`], `MAX_FIELDS` long each.
struct Scratch {
    header: Vec<usize>,
    body: Vec<usize>,
}

fn validate_with(msg: &Message<'_>, scratch: &mut Scratch) -> Result<(), Invalid> {
    let fields = msg.fields;
    let last = fields.len() - 1; // the checksum
    let Scratch {
        header: header_buf,
        body: body_buf,
    } = scratch;
    let (mut header_len, mut body_len) = (3usize, 0usize);
    header_buf[..3].copy_from_slice(&[0, 1, 2]);
    let mut groups: Vec<Group> = Vec::new();
    let mut out_of_order: Option<i64> = None;
    let def = dictionary::message(msg.msg_type());
    let bits = dictionary::message_bits(msg.msg_type());
    let mut seen_body = false;
    let mut i = 3;
    while i < last {
        let tag = fields[i].tag;
        if dictionary::is_header(tag) {
            if seen_body && out_of_order.is_none() {
                out_of_order = Some(tag);
            }
            header_buf[header_len] = i;
            header_len += 1;
            i += 1;
        } else if dictionary::is_trailer(tag) {
            if out_of_order.is_none() {
                out_of_order = Some(tag);
            }
            i += 1;
        } else {
            seen_body = true;
            body_buf[body_len] = i;
            body_len += 1;
            i += 1;
            let group_def = match (def, bits) {
                (Some(d), Some(b)) if b.is_group_count(tag) => u32::try_from(tag)
                    .ok()
                    .and_then(|t| d.groups.iter().find(|g| g.count == t)),
                _ => None,
            };
            if let Some(g) = group_def {
                let count_field = i - 1;
                groups.push(parse_group(fields, &mut i, count_field, g, last));
            }
        }
    }
    if let Some(tag) = out_of_order {
        return Err(fail(reason::OUT_OF_ORDER, tag));
    }
    let Some(def) = def else {
        return Err(Invalid {
            reason: reason::INVALID_MSG_TYPE,
            tag: None,
        });
    };

    // Required fields.
    let header = &mut header_buf[..header_len];
    let body = &mut body_buf[..body_len];
    let has = |set: &[usize], tag: u32| set.iter().any(|&k| fields[k].tag == i64::from(tag));
    for &tag in dictionary::header_required() {
        if !has(header, tag) {
            return Err(fail(reason::REQUIRED_MISSING, i64::from(tag)));
        }
    }
    for &tag in def.required {
        if !has(body, tag) {
            return Err(fail(reason::REQUIRED_MISSING, i64::from(tag)));
        }
    }
    check_group_required(fields, &groups)?;

    // Field by field.
    iterate(msg, header, None)?;
    let bits = bits.expect("a known message type has bitmaps");
    iterate(msg, body, Some((bits, &groups)))?;
    Ok(())
}

fn check_group_required(fields: &[Field], groups: &[Group]) -> Result<(), Invalid> {
    for g in groups {
        for e in &g.entries {
            for &tag in g.def.required {
                if !e.fields.iter().any(|&k| fields[k].tag == i64::from(tag)) {
                    return Err(fail(reason::REQUIRED_MISSING, i64::from(tag)));
                }
            }
            check_group_required(fields, &e.groups)?;
        }
    }
    Ok(())
}

fn check_field(msg: &Message<'_>, f: &Field) -> Result<(), Invalid> {
    let value = msg.value(f);
    if value.is_empty() {
        return Err(fail(reason::NO_VALUE, f.tag));
    }
    match dictionary::field_ref(f.tag) {
        None => Err(fail(reason::INVALID_TAG, f.tag)),
        Some(d) => {
            if !dictionary::valid_format(d.def.kind, value) {
                return Err(fail(reason::BAD_FORMAT, f.tag));
            }
            if !d.valid_value(value) {
                return Err(fail(reason::BAD_VALUE, f.tag));
            }
            Ok(())
        }
    }
}

fn iterate(
    msg: &Message<'_>,
    set: &mut [usize],
    body: Option<(&MessageBits, &[Group])>,
) -> Result<(), Invalid> {
    let fields = msg.fields;
    // Header: 8, 9, 35 first, then by tag; body: by tag. Unstable is enough: repeated tags end
    // up adjacent either way (a second 35 too, right after the first).
    let header = body.is_none();
    set.sort_unstable_by_key(|&k| match fields[k].tag {
        8 if header => -3,
        9 if header => -2,
        35 if header => -1,
        tag => tag,
    });
    let mut previous: Option<i64> = None;
    for &k in set.iter() {
        let f = &fields[k];
        if previous == Some(f.tag) {
            return Err(fail(reason::REPEATED, f.tag));
        }
        check_field(msg, f)?;
        if let Some((bits, groups)) = body {
            if !bits.allows(f.tag) {
                return Err(fail(reason::NOT_IN_MESSAGE, f.tag));
            }
            if let Some(g) = groups.iter().find(|g| g.count_field == k) {
                check_group(msg, g)?;
            }
        }
        previous = Some(f.tag);
    }
    Ok(())
}

fn check_group(msg: &Message<'_>, g: &Group) -> Result<(), Invalid> {
    let count_field = &msg.fields[g.count_field];
    let declared = std::str::from_utf8(msg.value(count_field))
        .ok()
        .and_then(|s| s.parse::<usize>().ok());
    if declared != Some(g.entries.len()) {
        return Err(fail(reason::GROUP_COUNT, count_field.tag));
    }
    for e in &g.entries {
        let mut sorted = e.fields.clone();
        sorted.sort_by_key(|&k| msg.fields[k].tag);
        let mut previous = None;
        for &k in &sorted {
            let f = &msg.fields[k];
            if previous == Some(f.tag) {
                return Err(fail(reason::REPEATED, f.tag));
            }
            check_field(msg, f)?;
            previous = Some(f.tag);
        }
        for nested in &e.groups {
            check_group(msg, nested)?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::message::parse;

    /// A frame of `fields` (after 8 and 9) in the given order, with a correct BodyLength and
    /// CheckSum, so that only validation can object.
    pub(crate) fn frame(fields: &[(i64, String)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (tag, value) in fields {
            body.extend_from_slice(format!("{tag}={value}\x01").as_bytes());
        }
        let mut out = format!("8=FIX.4.4\x019={}\x01", body.len()).into_bytes();
        out.extend_from_slice(&body);
        let sum = out.iter().fold(0u32, |a, &b| a + u32::from(b)) % 256;
        out.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        out
    }

    /// A valid NewOrderSingle, header fields first, body in the usual order.
    pub(crate) fn new_order() -> Vec<(i64, String)> {
        [
            (35, "D"),
            (49, "CLIENT1"),
            (56, "ORDO"),
            (34, "7"),
            (52, "20261125-10:00:00.000"),
            (11, "c1"),
            (1, "ACC1"),
            (55, "AAA"),
            (54, "1"),
            (60, "20261125-10:00:00"),
            (38, "10"),
            (40, "2"),
            (44, "100.25"),
            (59, "0"),
        ]
        .into_iter()
        .map(|(t, v)| (t, v.to_string()))
        .collect()
    }

    /// One change that may make the message invalid (or leave it valid).
    #[derive(Debug, Clone)]
    pub(crate) enum Change {
        Remove(usize),
        Duplicate(usize),
        Swap(usize, usize),
        Value(usize, &'static str),
        Insert(usize, i64),
    }

    pub(crate) fn change() -> impl Strategy<Value = Change> {
        let value = prop::sample::select(vec![
            "",
            "X",
            "0",
            "-1",
            "1.5",
            "8",
            "ZZZ",
            "20261125-25:00:00",
            // The valid date and time of the order's timestamps, a broken fraction after it
            // (the remembered-shape path caches valid dates and times).
            "20261125-10:00:00.0000",
            "20261125-10:00:00x",
            "1000",
            "Y",
        ]);
        // Unknown, header, trailer, group count, and a body tag not in NewOrderSingle.
        let tag = prop::sample::select(vec![9999i64, 43, 97, 93, 78, 453, 37, 1, 55]);
        prop_oneof![
            (0usize..20).prop_map(Change::Remove),
            (0usize..20).prop_map(Change::Duplicate),
            (0usize..20, 0usize..20).prop_map(|(a, b)| Change::Swap(a, b)),
            (0usize..20, value).prop_map(|(i, v)| Change::Value(i, v)),
            (0usize..20, tag).prop_map(|(i, t)| Change::Insert(i, t)),
        ]
    }

    pub(crate) fn apply(fields: &mut Vec<(i64, String)>, c: &Change) {
        let n = fields.len();
        match *c {
            Change::Remove(i) if n > 1 => {
                fields.remove(i % n);
            }
            Change::Duplicate(i) => fields.insert(i % n, fields[i % n].clone()),
            Change::Swap(a, b) => fields.swap(a % n, b % n),
            Change::Value(i, v) => fields[i % n].1 = v.to_string(),
            Change::Insert(i, t) => fields.insert(i % (n + 1), (t, "1".to_string())),
            Change::Remove(_) => {}
        }
    }

    /// The verdicts of the quick pass and of the ordered checks.
    fn verdicts(frame: &[u8]) -> Option<(bool, Result<(), Invalid>)> {
        let mut fields = Vec::new();
        parse(frame, &mut fields).ok()?;
        let msg = Message {
            buf: frame,
            fields: &fields,
        };
        let ordered = SCRATCH.with_borrow_mut(|scratch| validate_with(&msg, scratch));
        Some((compiled::accepts(&msg), ordered))
    }

    #[test]
    fn a_valid_order_takes_the_quick_pass() {
        assert_eq!(verdicts(&frame(&new_order())), Some((true, Ok(()))));
    }

    proptest! {
        /// The quick pass may only say "valid" where the ordered, QuickFIX-order checks find no
        /// error: otherwise a malformed message would be accepted without its Reject.
        #[test]
        fn quick_pass_never_accepts_what_the_ordered_checks_reject(
            changes in prop::collection::vec(change(), 1..4)
        ) {
            let mut fields = new_order();
            for c in &changes {
                apply(&mut fields, c);
            }
            if let Some((quick, ordered)) = verdicts(&frame(&fields)) {
                prop_assert!(!quick || ordered.is_ok(), "{changes:?}: quick pass, ordered {ordered:?}");
                // And the other way: a valid message without repeating groups (the strategy's
                // group counts are 78 and 453) must take the fast path, else the fast path
                // silently stops being fast.
                if !fields.iter().any(|(t, _)| matches!(t, 78 | 453)) {
                    prop_assert!(quick || ordered.is_err(), "{changes:?}: valid but not quick");
                }
            }
        }
    }
}
