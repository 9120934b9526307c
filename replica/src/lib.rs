//! Consensus for ordo: openraft 0.9 decides leadership and commit, and the journal is its log
//! (`docs/REPLICATION.md`).
//!
//! * [`storage`]: openraft's log storage and state machine on the journal; [`vote_file`]: its
//!   vote, saved in place.
//! * [`entry`]: the ENTRY record (one raft entry in the journal); [`batch`]: an entry's records.
//! * [`transport`]: the seam between members, with [`transport::SimNet`] for tests and
//!   [`aeron::AeronTransport`] (UDP between members);
//!   [`network`]: openraft's network over it; [`wire`]: the messages.
//! * [`cluster_file`]: the members and timings of `ordo node --cluster FILE`.
//! * [`member`]: one member: raft on its journal, its dispatcher, its [`campaign`] timer (openraft
//!   0.9 makes a follower wait its lease twice), its [`role`] (openraft 0.9 has
//!   no CheckQuorum: a leader cut off from the majority is told to stop serving).
//! * [`transfer`]: handing leadership to a chosen member (openraft 0.9 has no leader transfer).

pub mod aeron;
pub mod batch;
pub mod campaign;
pub mod cluster_file;
pub mod driver_idle;
pub mod entry;
pub mod member;
pub mod network;
pub mod rejoin;
pub mod role;
pub mod storage;
pub mod transfer;
pub mod transport;
pub mod types;
pub mod vote_file;
pub mod wire;
