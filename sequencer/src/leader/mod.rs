//! What only the leader runs: the FIX gateway that serves sessions (a follower's gateway closes
//! every logon), the FIX application that turns messages into events, the clock that stamps
//! them, the sequencer and the proposer that puts its batches into the replicated log
//! (`docs/REPLICATION.md`, 2).

pub mod clock;
pub mod fix_app;
pub mod fix_port;
pub mod gateway;
pub mod proposer;
pub mod sequencing;
