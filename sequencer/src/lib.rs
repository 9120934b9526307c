//! The sequencer node: FIX 4.4 gateway, timestamps, sequencing (issue 4).
//!
//! Not written yet; see `docs/ARCHITECTURE.md` for its place in the data flow.
