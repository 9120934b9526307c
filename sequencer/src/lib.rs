//! The ordo node: a FIX 4.4 acceptor that stamps and sequences every input into the journal
//! before the engine sees it, and turns the engine's outputs into ExecutionReports released
//! only once their input is durable.

pub mod admin;
pub mod catalog;
pub mod config;
pub mod durable_file;
pub mod echo;
pub mod leader;
pub mod member;
pub mod node;
pub mod runtime;
pub mod schema;
