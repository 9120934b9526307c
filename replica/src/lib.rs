//! Hot standbys: the sequenced stream over Aeron, leadership by openraft.
//!
//! Not written yet; see `docs/ARCHITECTURE.md` for its place in the data flow.
