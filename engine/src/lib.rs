//! The deterministic matching and risk engine (issue 3).
//!
//! Not written yet. Its only input will be the sequenced events of the journal; see
//! `docs/ARCHITECTURE.md` for what it owns and what it must never depend on.
