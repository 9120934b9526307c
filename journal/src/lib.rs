//! The journal: an append-only, checksummed, rkyv-encoded event log, the source of truth of
//! ordo. Everything else (the engine's state, the standbys, the exports) is derived from it.
//!
//! * **Records** carry a gap-free sequence number (the first is 1), a timestamp (ns since the
//!   Unix epoch, UTC, never decreasing), a kind and a payload (normally an rkyv archive, read in
//!   place after validation: payloads are 16-byte aligned). See [`frame`] for the layout.
//! * **Segments** are preallocated files named by their first sequence number; each header
//!   chains to the previous segment's last record, so a deleted, reordered or swapped segment
//!   is detected. See [`segment`].
//! * **One writer** ([`JournalWriter`]) appends into a memory mapping and publishes two
//!   positions (written, durable) in `journal.pos`; nothing may be acknowledged beyond the
//!   durable position. Durability policies: [`Durability`].
//! * **Readers** ([`JournalReader`]) open at any sequence number through the sparse index and
//!   tail a live journal, in this process or another, reading only up to the published position.
//! * **Recovery** on open truncates a torn tail and reports it; damage before the tail is an
//!   error naming the file and offset. [`verify()`] reports every problem.
//!
//! The on-disk format is specified in `docs/JOURNAL.md`.

mod config;
mod error;
pub mod frame;
pub mod index;
mod lock;
mod positions;
mod reader;
mod record;
mod recovery;
mod scan;
pub mod segment;
mod syncer;
mod verify;
mod writer;

pub use config::{
    DEFAULT_INDEX_INTERVAL, DEFAULT_INTERVAL_US, DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_SEGMENT_BYTES,
    Durability, JournalConfig,
};
pub use error::{JournalError, Result};
pub use lock::{LOCK_FILE, writer_is_live};
pub use positions::{POSITIONS_FILE, Positions};
pub use reader::{JournalReader, ReadLimit};
pub use record::Record;
pub use recovery::RecoveryReport;
pub use scan::TornTail;
pub use verify::{SegmentReport, VerifyReport, verify};
pub use writer::{Batch, JournalWriter};
