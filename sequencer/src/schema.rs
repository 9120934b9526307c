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
