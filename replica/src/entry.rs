//! The ENTRY record: how one raft entry is laid out in the journal.
//!
//! A raft entry (term, leader, index) is a run of journal records: one ENTRY record (kind
//! [`KIND_ENTRY`]) naming the entry and how many records follow, then those records, the batch's
//! events byte for byte. The journal knows nothing of this: to it, kinds are opaque.
//!
//! ENTRY payload, little-endian:
//!
//! ```text
//!  0  version u32 = 1
//!  4  entry kind u32: 0 blank, 1 normal (a batch), 2 membership
//!  8  term u64
//! 16  leader node id u64
//! 24  index u64
//! 32  records that follow u64 (0 unless normal)
//! 40  membership (bincode of openraft's Membership; membership entries only)
//! ```

use openraft::{CommittedLeaderId, EntryPayload, Membership};

use crate::types::{Entry, LogId, Member, NodeId, TypeConfig};

/// Journal record kind of an ENTRY record (events are kind 1, the sequencer's).
pub const KIND_ENTRY: u16 = 2;
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 40;

/// What an ENTRY record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    /// The entry's log id.
    pub log_id: LogId,
    /// Its kind.
    pub kind: EntryKind,
    /// Records that follow it (the batch's).
    pub records: u64,
}

/// What an entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// Nothing (a new leader's first entry).
    Blank,
    /// A batch of records, which follow the ENTRY record.
    Normal,
    /// A membership change.
    Membership(Membership<NodeId, Member>),
}

/// An ENTRY payload that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an ENTRY record: {0}")]
pub struct BadEntry(pub String);

/// Encodes the ENTRY record of `entry` (whose batch has `records` records).
pub fn encode(entry: &Entry, records: u64) -> Vec<u8> {
    let (kind, membership) = match &entry.payload {
        EntryPayload::Blank => (0u32, None),
        EntryPayload::Normal(_) => (1, None),
        EntryPayload::Membership(m) => (2, Some(bincode::serialize(m).expect("a membership serializes"))),
    };
    let mut out = Vec::with_capacity(HEADER_BYTES + membership.as_ref().map_or(0, Vec::len));
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&entry.log_id.leader_id.term.to_le_bytes());
    out.extend_from_slice(&entry.log_id.leader_id.node_id.to_le_bytes());
    out.extend_from_slice(&entry.log_id.index.to_le_bytes());
    out.extend_from_slice(&records.to_le_bytes());
    if let Some(m) = membership {
        out.extend_from_slice(&m);
    }
    out
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Decodes an ENTRY payload.
pub fn decode(payload: &[u8]) -> Result<EntryHeader, BadEntry> {
    if payload.len() < HEADER_BYTES {
        return Err(BadEntry(format!(
            "{} bytes, at least {HEADER_BYTES}",
            payload.len()
        )));
    }
    let version = u32::from_le_bytes(payload[0..4].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(BadEntry(format!("version {version}, expected {VERSION}")));
    }
    let kind = u32::from_le_bytes(payload[4..8].try_into().expect("4 bytes"));
    let log_id = LogId::new(
        CommittedLeaderId::new(u64_at(payload, 8), u64_at(payload, 16)),
        u64_at(payload, 24),
    );
    let records = u64_at(payload, 32);
    let kind = match kind {
        0 => EntryKind::Blank,
        1 => EntryKind::Normal,
        2 => EntryKind::Membership(
            bincode::deserialize(&payload[HEADER_BYTES..])
                .map_err(|e| BadEntry(format!("membership: {e}")))?,
        ),
        k => return Err(BadEntry(format!("entry kind {k}"))),
    };
    if kind != EntryKind::Normal && records != 0 {
        return Err(BadEntry(format!("a non-batch entry with {records} records")));
    }
    Ok(EntryHeader {
        log_id,
        kind,
        records,
    })
}

/// The entry an ENTRY header and its batch make (the inverse of appending it).
pub fn rebuild(header: EntryHeader, batch: crate::batch::Batch) -> Entry {
    let payload: EntryPayload<TypeConfig> = match header.kind {
        EntryKind::Blank => EntryPayload::Blank,
        EntryKind::Normal => EntryPayload::Normal(batch),
        EntryKind::Membership(m) => EntryPayload::Membership(m),
    };
    Entry {
        log_id: header.log_id,
        payload,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn headers_round_trip_and_bad_ones_are_refused() {
        let log_id = LogId::new(CommittedLeaderId::new(3, 2), 17);
        let normal = Entry {
            log_id,
            payload: EntryPayload::Normal(crate::batch::Batch::default()),
        };
        let h = decode(&encode(&normal, 5)).unwrap();
        assert_eq!((h.log_id, h.kind, h.records), (log_id, EntryKind::Normal, 5));

        let members: BTreeSet<NodeId> = [1, 2, 3].into_iter().collect();
        let membership = Membership::new(vec![members], None);
        let m = Entry {
            log_id,
            payload: EntryPayload::Membership(membership.clone()),
        };
        assert_eq!(
            decode(&encode(&m, 0)).unwrap().kind,
            EntryKind::Membership(membership)
        );

        assert!(decode(&[0u8; 10]).is_err());
        let mut wrong_version = encode(&normal, 5);
        wrong_version[0] = 9;
        assert!(decode(&wrong_version).is_err());
        let blank = Entry {
            log_id,
            payload: EntryPayload::Blank,
        };
        let mut blank_with_records = encode(&blank, 0);
        blank_with_records[32] = 1;
        assert!(decode(&blank_with_records).is_err());
    }
}
