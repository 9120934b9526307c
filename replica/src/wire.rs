//! Messages between members: openraft's requests and responses, and our leader-transfer request
//! ([`Request::Campaign`]), each with a correlation id, as bytes (bincode). Every transport
//! carries these bytes and nothing else.

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::types::{NodeId, TypeConfig};

/// Largest message a member accepts (a bigger one is dropped as damage, never allocated).
pub const MAX_MESSAGE_BYTES: u64 = 8 * 1024 * 1024;

/// One message.
#[derive(Debug, Serialize, Deserialize)]
pub enum Wire {
    /// A request from member `from`, to be answered with the same `id`.
    Request {
        /// Correlation id, unique per sender.
        id: u64,
        /// The sender.
        from: NodeId,
        /// The request.
        body: Request,
    },
    /// The answer to request `id`.
    Response {
        /// The request's correlation id.
        id: u64,
        /// The answer.
        body: Response,
    },
}

/// The requests.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// From the leader of `term`, which is handing leadership over (`crate::transfer`): start an
    /// election now, if this member still follows that leader in that term and its log holds
    /// the leader's last index.
    Campaign {
        /// The leader's term.
        term: u64,
        /// The leader's last log index (the receiver's log must reach it).
        last_index: Option<u64>,
    },
    /// Would the receiver vote in an election now (`crate::campaign`: it has heard no leader
    /// for its lease)? Asked before campaigning, so that a member that merely does not hear the
    /// leader (restarted, or cut off alone) does not raise the term and depose it.
    PreVote,
    /// RequestVote.
    Vote(VoteRequest<NodeId>),
    /// AppendEntries (also the heartbeat).
    Append(AppendEntriesRequest<TypeConfig>),
    /// InstallSnapshot (refused by our state machine until snapshots are built).
    Snapshot(InstallSnapshotRequest<TypeConfig>),
}

/// The responses.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// To a Campaign: the election has begun, or why not.
    Campaign(Result<(), String>),
    /// To a PreVote: whether the receiver would vote now.
    PreVote(bool),
    /// To a Vote.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// To an Append.
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// To a Snapshot.
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
}

/// A message that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("bad message from the network: {0}")]
pub struct WireError(String);

fn options() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(MAX_MESSAGE_BYTES)
}

/// Encodes a message.
pub fn encode(message: &Wire) -> Result<Vec<u8>, WireError> {
    use bincode::Options;
    options().serialize(message).map_err(|e| WireError(e.to_string()))
}

/// Decodes a message; garbage, a cut message or one over [`MAX_MESSAGE_BYTES`] is an error.
pub fn decode(bytes: &[u8]) -> Result<Wire, WireError> {
    use bincode::Options;
    options().deserialize(bytes).map_err(|e| WireError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, LogId, Vote};

    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_an_error() {
        let req = Wire::Request {
            id: 7,
            from: 2,
            body: Request::Vote(VoteRequest::new(
                Vote::new(3, 2),
                Some(LogId::new(CommittedLeaderId::new(2, 1), 40)),
            )),
        };
        let bytes = encode(&req).unwrap();
        match decode(&bytes).unwrap() {
            Wire::Request {
                id: 7,
                from: 2,
                body: Request::Vote(v),
            } => assert_eq!(v.vote, Vote::new(3, 2)),
            other => panic!("decoded {other:?}"),
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&[0xff; 64]).is_err());
    }
}
