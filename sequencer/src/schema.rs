//! The journal's event schema, its one home: what the sequencer journals (one record per input,
//! its payload an rkyv archive of [`Event`]) and the one decode every reader uses ([`decode`]).
//! The journal is the source of truth: the engine, the derived session state, the standbys and
//! the tools all derive from these records.

// rkyv generates undocumented layout structs for enum variants with named fields; every type
// written here is documented.
#![allow(missing_docs)]

use ordo_engine::types::FixedStr;
use ordo_engine::{ClOrdId, Command, EngineConfig, OrderRef, SessionId};
use ordo_journal::Record;

/// Record kind of every event (the payload's enum tag says which event).
pub const KIND_EVENT: u16 = 1;

/// Record kind of a session message the leader decided to send ([`SessionOut`]); kind 2 is a
/// raft entry's own record (`ordo_replica::entry::KIND_ENTRY`).
pub const KIND_SESSION_OUT: u16 = 3;

/// Largest MsgType of a [`SessionOut`] (FIX MsgTypes are one or two characters).
pub const MAX_MSG_TYPE_BYTES: usize = 4;
/// Largest field run of a [`SessionOut`] (the node's own session messages and rejects are a
/// few hundred bytes).
pub const MAX_SESSION_OUT_FIELDS_BYTES: usize = 8 * 1024;

/// A message a session decided to send (a Logon answer, Heartbeat, TestRequest,
/// ResendRequest, Reject, Logout, BusinessMessageReject, a gateway's refusal of an order): it
/// takes its MsgSeqNum when its record is applied, in log order, on every member
/// (`docs/REPLICATION.md`, 6.1). Its SendingTime is the record's timestamp.
///
/// Payload, little-endian: session u32 | connection u64 | MsgType length u8 | MsgType |
/// fields (`tag=value<SOH>` runs, `ordo_fix::session::Deferred::fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOut<'a> {
    /// The session.
    pub session: SessionId,
    /// The gateway's connection it was decided on (written only if it is still bound).
    pub connection: u64,
    /// MsgType.
    pub msg_type: &'a [u8],
    /// The fields after the standard header.
    pub fields: &'a [u8],
}

impl SessionOut<'_> {
    /// Encodes into `out` (cleared first); `None` beyond the bounds above.
    pub fn encode(&self, out: &mut Vec<u8>) -> Option<()> {
        if self.msg_type.len() > MAX_MSG_TYPE_BYTES || self.fields.len() > MAX_SESSION_OUT_FIELDS_BYTES {
            return None;
        }
        out.clear();
        out.extend_from_slice(&self.session.to_le_bytes());
        out.extend_from_slice(&self.connection.to_le_bytes());
        out.push(self.msg_type.len() as u8);
        out.extend_from_slice(self.msg_type);
        out.extend_from_slice(self.fields);
        Some(())
    }
}

/// Decodes a [`KIND_SESSION_OUT`] record.
pub fn decode_session_out<'a>(record: &'a Record<'_>) -> Result<SessionOut<'a>, SchemaError> {
    let invalid = |reason: &str| SchemaError::Invalid {
        seq: record.seq(),
        offset: record.offset(),
        reason: reason.to_string(),
    };
    if record.kind() != KIND_SESSION_OUT {
        return Err(invalid("not a session message record"));
    }
    let p = record.payload();
    let head = p.get(..13).ok_or_else(|| invalid("session message cut short"))?;
    let session = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
    let connection = u64::from_le_bytes(head[4..12].try_into().expect("8 bytes"));
    let type_len = usize::from(head[12]);
    if type_len == 0 || type_len > MAX_MSG_TYPE_BYTES {
        return Err(invalid("session message with a bad MsgType length"));
    }
    let msg_type = p
        .get(13..13 + type_len)
        .ok_or_else(|| invalid("session message cut short"))?;
    let fields = &p[13 + type_len..];
    if fields.len() > MAX_SESSION_OUT_FIELDS_BYTES {
        return Err(invalid("session message over its bound"));
    }
    Ok(SessionOut {
        session,
        connection,
        msg_type,
        fields,
    })
}

/// One sequenced input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub enum Event {
    /// The first record of a journal: the engine configuration everything after assumes.
    Genesis {
        /// Engine capacities and rules.
        config: EngineConfig,
    },
    /// A command for the engine, from a session (or the admin channel, or the node itself).
    Command {
        /// The session it came from (`u32::MAX` for the node, the admin session id for admin).
        session: SessionId,
        /// The FIX MsgSeqNum it arrived with (0 if not from FIX).
        msg_seq: u64,
        /// The command.
        command: Command,
    },
    /// An OrderStatusRequest (answered from the engine's state at this point of the log).
    StatusRequest {
        /// Session.
        session: SessionId,
        /// MsgSeqNum.
        msg_seq: u64,
        /// The request's OrdStatusReqID (790), empty if none.
        clordid: ClOrdId,
        /// The order asked about (its OrderID if given, and its ClOrdID).
        target: OrderRef,
    },
    /// A Logon with ResetSeqNumFlag=Y (or ResetOnLogon): inbound sequence numbers restart.
    SessionReset {
        /// Session.
        session: SessionId,
    },
    /// The node (re)started, or its clock's synchronisation state changed: which clock stamps
    /// the records from here on, and whether it says it is synchronised.
    Clock {
        /// "system", "ptp:/dev/ptp0", "test".
        source: FixedStr,
        /// Whether the clock reported itself synchronised (PTP / NTP status).
        synchronised: bool,
    },
    /// A cluster member began to lead in `term`: every record before it is what it serves
    /// from. Its member serves FIX once it has applied this record (its sessions' numbers are
    /// then those of the whole committed log).
    Takeover {
        /// The term.
        term: u64,
    },
    /// The engine's state hash after it applied record `seq`, as the leader's engine computed
    /// it (`docs/REPLICATION.md`, 3.3). Every member compares its own hash at `seq`.
    Checkpoint {
        /// The record the hash was taken after.
        seq: u64,
        /// The hash's high 64 bits.
        hash_hi: u64,
        /// Its low 64 bits.
        hash_lo: u64,
    },
}

impl Event {
    /// The engine command this event applies (non-engine events apply as a Tick, so that the
    /// engine sees every sequence number and its time rules run at every record's time).
    pub fn engine_command(&self) -> Command {
        match self {
            Event::Command { command, .. } => *command,
            _ => Command::Tick,
        }
    }
}

/// Why a journal record is not an [`Event`]: a record of another kind, or a payload that does
/// not hold a valid archive (damage the CRC did not catch, or a journal of another version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The record's kind is not [`KIND_EVENT`].
    #[error("record {seq}: kind {kind} is not an event (kind {KIND_EVENT})")]
    NotAnEvent {
        /// The record's sequence number.
        seq: u64,
        /// Its kind.
        kind: u16,
    },
    /// The payload is not a valid archived event.
    #[error("record {seq} (offset {offset}): not a valid event: {reason}")]
    Invalid {
        /// The record's sequence number.
        seq: u64,
        /// Its byte offset in its segment.
        offset: u64,
        /// What rkyv's validation said.
        reason: String,
    },
}

/// Decodes the event a record holds: the one decode of the schema (engine, start-up, tools).
/// The archive is validated before it is read: a bad payload is an error, never a panic.
pub fn decode(record: &Record<'_>) -> Result<Event, SchemaError> {
    if record.kind() != KIND_EVENT {
        return Err(SchemaError::NotAnEvent {
            seq: record.seq(),
            kind: record.kind(),
        });
    }
    let invalid = |reason: String| SchemaError::Invalid {
        seq: record.seq(),
        offset: record.offset(),
        reason,
    };
    let archived = record
        .access::<ArchivedEvent>()
        .map_err(|e| invalid(e.to_string()))?;
    rkyv::deserialize::<Event, rkyv::rancor::Error>(archived).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use ordo_journal::{JournalConfig, JournalReader, JournalWriter};

    use super::*;

    #[test]
    fn decode_returns_the_event_and_names_what_is_not_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = JournalWriter::open(JournalConfig::new(dir.path())).unwrap();
        let reset = Event::SessionReset { session: 3 };
        writer.append_archived(10, KIND_EVENT, &reset).unwrap();
        writer.append(11, 7, &[0u8; 16]).unwrap();
        // The right kind, but bytes that are no archive of an Event (an out-of-range tag).
        writer.append(12, KIND_EVENT, &[0xff; 16]).unwrap();
        writer.close().unwrap();

        let mut reader = JournalReader::open(dir.path(), 1).unwrap();
        let first = reader.next().unwrap().unwrap();
        assert_eq!(decode(&first), Ok(reset));
        let second = reader.next().unwrap().unwrap();
        assert_eq!(decode(&second), Err(SchemaError::NotAnEvent { seq: 2, kind: 7 }));
        let third = reader.next().unwrap().unwrap();
        match decode(&third) {
            Err(SchemaError::Invalid { seq: 3, .. }) => {}
            other => panic!("garbage decoded as {other:?}"),
        }
    }
}
