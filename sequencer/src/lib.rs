//! The ordo node: a FIX 4.4 acceptor that stamps and sequences every input into the journal
//! before the engine sees it, and turns the engine's outputs into ExecutionReports released
//! only once their input is durable.

pub mod admin;
pub mod agent;
pub mod catalog;
pub mod checkpoint;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod echo;
pub mod engine_runner;
pub mod fix_app;
pub mod gateway;
pub mod idle;
pub mod node;
pub mod pipeline;
pub mod proposer;
pub mod reports;
pub mod router;
pub mod schema;
pub mod sequencing;
pub mod store;
