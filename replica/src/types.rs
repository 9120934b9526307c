//! openraft's type configuration for ordo: members are `u64` ids, an entry's application data is
//! a [`Batch`] of journal records, and the answer to a committed write is where its records
//! landed in the journal.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::batch::Batch;

/// A member's id (from the cluster file).
pub type NodeId = u64;

/// What openraft knows of a member: its name for logs and errors (its raft address).
pub type Member = openraft::BasicNode;

/// What a committed write returns: the journal positions of the entry's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// The raft index of the entry.
    pub index: u64,
    /// Journal seq of the entry's ENTRY record; its events follow it.
    pub entry_seq: u64,
    /// Journal seq of the entry's last record.
    pub last_seq: u64,
}

openraft::declare_raft_types!(
    /// The type configuration of ordo's consensus.
    pub TypeConfig:
        D = Batch,
        R = Placed,
        NodeId = NodeId,
        Node = Member,
);

/// The raft instance of one member.
pub type Raft = openraft::Raft<TypeConfig>;
/// A raft log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id (leader's term and id, index).
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// The membership stored with entries and snapshots.
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
/// A storage error.
pub type StorageError = openraft::StorageError<NodeId>;
/// What raft answers a proposal with once it is committed (or why it is not).
pub type ClientWriteResult = openraft::raft::ClientWriteResult<TypeConfig>;
/// openraft's metrics of a member.
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Member>;
