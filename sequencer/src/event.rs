//! What the sequencer journals: one record per input, its payload an rkyv archive of [`Event`].
//! The journal is the node's source of truth: the engine, the session stores' catch-up, the
//! standbys and the tools all derive from these records.

// rkyv generates undocumented layout structs for enum variants with named fields; every type
// written here is documented.
#![allow(missing_docs)]

use ordo_engine::types::FixedStr;
use ordo_engine::{ClOrdId, Command, EngineConfig, OrderRef, SessionId};

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
