//! What every member runs, leader or follower: the replayer (committed log -> engine -> derived
//! state), its checkpoints, the router that numbers every outbound message in log order, the
//! rendering of engine outputs as FIX messages, its snapshots, and the watch of the
//! member's role (`docs/REPLICATION.md`, 2).

pub mod checkpoint;
pub mod cluster;
pub mod engine_runner;
pub mod reports;
pub mod router;
pub mod snapshot;
