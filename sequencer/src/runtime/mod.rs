//! How agents run: one duty-cycle trait and runner, idle strategies, and the threads of the
//! sequencer and engine agents. Knows nothing of FIX, orders or the cluster.

pub mod agent;
pub mod idle;
pub mod pipeline;
