//! The deterministic matching and risk engine: a pure, single-threaded state machine whose only
//! input is the journal's sequenced events.
//!
//! It reads no clock (time is the timestamp of the event being applied), no randomness, no
//! environment, never iterates a hash table, and uses integers only: prices in ticks,
//! quantities in lots, notionals in tick-lots (`i128`). The same events give the same outputs
//! and the same [`Engine::state_hash`] on any machine. Every capacity is fixed at construction
//! ([`EngineConfig`]); reaching one is a clean reject, and applying an event allocates nothing.
//!
//! The model (rules, order of checks, output order) is specified in `docs/ENGINE.md`.

mod admin;
mod bitmap;
mod book;
pub mod command;
pub mod config;
pub mod done;
mod engine;
mod expiry;
pub mod hash;
mod matching;
mod order;
mod order_entry;
pub mod output;
pub mod risk;
mod slot_table;
mod snapshot;
mod state_hash;
pub mod types;
pub mod workload;

pub use command::{
    AccountLimits, Admin, Cancel, CancelReplace, Command, InstrumentSpec, MassCancel, NewOrder, OrderRef,
};
pub use config::EngineConfig;
pub use done::{DoneOrder, Ending};
pub use engine::{Engine, EngineError};
pub use output::{
    CancelReason, CountingSink, HaltReason, OrderView, Output, OutputSink, Reason, RejectedOrder,
};
pub use risk::{Account, Position};
pub use types::{
    AccountId, ClOrdId, InstrumentId, OrdType, OrderId, SessionId, Side, StpMode, Symbol, TimeInForce,
};
