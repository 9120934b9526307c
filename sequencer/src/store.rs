//! A session's persistent message store: one journal per session (`<data>/sessions/<ours>-<theirs>/`)
//! whose record sequence numbers are the session's outbound MsgSeqNums. It answers resend
//! requests after a restart and tells, per session, the next MsgSeqNum and which engine output
//! was sent last (so a restart neither skips nor repeats an ExecutionReport).
//!
//! Record payload: origin journal seq (u64 LE), origin output index (u32 LE), then the message
//! bytes. Kind 0: admin message, kind 1: application message.

use std::path::{Path, PathBuf};

use ordo_journal::{Durability, JournalConfig, JournalReader, JournalWriter};

use crate::fix::session::MessageStore;

const KIND_ADMIN: u16 = 0;
const KIND_APP: u16 = 1;
const ORIGIN_BYTES: usize = 12;

/// What a store knows at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreState {
    /// Next outbound MsgSeqNum.
    pub next_sender: u64,
    /// The last engine output sent: (journal seq, output index); (0, 0) if none.
    pub high_water: (u64, u32),
}

/// The journal-backed store of one session.
pub struct JournalStore {
    dir: PathBuf,
    writer: JournalWriter,
    last_ts: u64,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for JournalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl JournalStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path, durability: Durability) -> Result<(Self, StoreState), String> {
        let mut config = JournalConfig::new(dir);
        config.durability = durability;
        config.segment_bytes = 16 * 1024 * 1024;
        config.max_payload_bytes = 64 * 1024;
        let writer =
            JournalWriter::open(config).map_err(|e| format!("session store {}: {e}", dir.display()))?;
        let mut high_water = (0u64, 0u32);
        let mut reader = JournalReader::open_offline(dir, 1)
            .map_err(|e| format!("session store {}: {e}", dir.display()))?;
        while let Some(r) = reader
            .next()
            .map_err(|e| format!("session store {}: {e}", dir.display()))?
        {
            if r.kind() == KIND_APP && r.payload().len() >= ORIGIN_BYTES {
                let p = r.payload();
                let origin = (
                    u64::from_le_bytes(p[0..8].try_into().expect("8 bytes")),
                    u32::from_le_bytes(p[8..12].try_into().expect("4 bytes")),
                );
                high_water = high_water.max(origin);
            }
        }
        let state = StoreState {
            next_sender: writer.next_seq(),
            high_water,
        };
        let last_ts = writer.last_timestamp_ns();
        Ok((
            JournalStore {
                dir: dir.to_path_buf(),
                writer,
                last_ts,
                scratch: Vec::new(),
            },
            state,
        ))
    }
}

impl MessageStore for JournalStore {
    fn store(&mut self, seq: u64, message: &[u8], admin: bool, origin: (u64, u32)) {
        debug_assert_eq!(
            seq,
            self.writer.next_seq(),
            "store sequence follows the session's"
        );
        self.scratch.clear();
        self.scratch.extend_from_slice(&origin.0.to_le_bytes());
        self.scratch.extend_from_slice(&origin.1.to_le_bytes());
        self.scratch.extend_from_slice(message);
        let ts = crate::gateway::wall_clock_ns().max(self.last_ts);
        self.last_ts = ts;
        if let Err(e) = self
            .writer
            .append(ts, if admin { KIND_ADMIN } else { KIND_APP }, &self.scratch)
        {
            tracing::error!(store = %self.dir.display(), error = %e, "session store append failed");
        }
    }

    fn fetch(&self, begin: u64, end: u64, f: &mut dyn FnMut(u64, &[u8])) {
        let Ok(mut reader) = JournalReader::open(&self.dir, begin.max(1)) else {
            return;
        };
        while let Ok(Some(r)) = reader.next() {
            if r.seq() > end {
                break;
            }
            if r.kind() == KIND_APP && r.payload().len() > ORIGIN_BYTES {
                f(r.seq(), &r.payload()[ORIGIN_BYTES..]);
            }
        }
    }

    fn reset(&mut self) {
        if let Err(e) = self.writer.truncate_after(0) {
            tracing::error!(store = %self.dir.display(), error = %e, "session store reset failed");
        }
    }

    fn sync(&mut self) {
        if let Err(e) = self.writer.sync() {
            tracing::error!(store = %self.dir.display(), error = %e, "session store sync failed");
        }
    }
}
