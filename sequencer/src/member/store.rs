//! A session's persistent message store: one journal per session (`<data>/sessions/<ours>-<theirs>/`)
//! that answers resend requests after a restart and tells, per session, the next MsgSeqNum and
//! which engine output was sent last (so a restart neither skips nor repeats an
//! ExecutionReport).
//!
//! Record payload: origin journal seq (u64 LE), origin output index (u32 LE), then the message
//! bytes. Kind 0: admin message, kind 1: application message, kind 2: a sequence reset (no
//! message bytes; its origin is the highest origin stored before it). The next inbound
//! number is not kept here: the log decides it on every member (`docs/REPLICATION.md`, 6.1).
//!
//! A sequence reset (a Logon with ResetSeqNumFlag) appends one reset record: MsgSeqNum n of the
//! new sequence is the n-th record after it. It used to truncate the store to nothing (sync,
//! zero-fill, rescan, new spare): 0.2-0.9 s on the gateway's thread, during which every session
//! of the node stood still, and it forgot which outputs had been sent, so a restart before the
//! next application message sent the session's old ExecutionReports again. The records before
//! the last reset are dropped when the store is opened (node start), off the trading path.

use std::path::{Path, PathBuf};

use ordo_journal::{Durability, JournalConfig, JournalReader, JournalWriter};

use ordo_fix::session::MessageStore;

const KIND_ADMIN: u16 = 0;
const KIND_APP: u16 = 1;
const KIND_RESET: u16 = 2;
/// Where earlier versions kept the next inbound MsgSeqNum at a clean stop: removed at open
/// (the log decides that number now).
const NEXT_INBOUND_FILE: &str = "next_inbound";
const ORIGIN_BYTES: usize = 12;
/// Segment size of a session store.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes of a store's active segment faulted in when the node starts (see
/// `JournalConfig::open_prefault_bytes`).
const STORE_OPEN_PREFAULT_BYTES: u64 = 256 * 1024;
/// Largest stored message (with its origin).
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

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
    /// Record seq of the last reset record (0: none): MsgSeqNum = record seq - base.
    base: u64,
    /// The highest origin of an application message stored, across resets.
    high_water: (u64, u32),
}

impl std::fmt::Debug for JournalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn origin_of(payload: &[u8]) -> Option<(u64, u32)> {
    Some((
        u64::from_le_bytes(payload.get(0..8)?.try_into().ok()?),
        u32::from_le_bytes(payload.get(8..12)?.try_into().ok()?),
    ))
}

/// What a scan of a store finds.
#[derive(Debug, Default, Clone, Copy)]
struct Scan {
    /// Seq of the last reset record (0: none).
    last_reset: u64,
    /// The highest origin of application messages and reset records.
    high_water: (u64, u32),
}

fn scan(dir: &Path) -> Result<Scan, String> {
    let context = |e: ordo_journal::JournalError| format!("session store {}: {e}", dir.display());
    let mut found = Scan::default();
    let mut reader = JournalReader::open_offline(dir, 1).map_err(context)?;
    while let Some(r) = reader.next().map_err(context)? {
        if matches!(r.kind(), KIND_APP | KIND_ADMIN | KIND_RESET)
            && let Some(origin) = origin_of(r.payload())
        {
            found.high_water = found.high_water.max(origin);
        }
        if r.kind() == KIND_RESET {
            found.last_reset = r.seq();
        }
    }
    Ok(found)
}

fn config(dir: &Path, durability: Durability) -> JournalConfig {
    let mut config = JournalConfig::new(dir);
    config.durability = durability;
    config.segment_bytes = SEGMENT_BYTES;
    config.max_payload_bytes = MAX_PAYLOAD_BYTES;
    // Most stores are idle most of the time: fault in one chunk at start, not the segment
    // (whose zeros would otherwise be written to disk ~30 s after every start).
    config.open_prefault_bytes = Some(STORE_OPEN_PREFAULT_BYTES);
    config
}

/// The sibling paths used while compacting `dir`.
fn compaction_paths(dir: &Path) -> (PathBuf, PathBuf) {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (
        dir.with_file_name(format!("{name}.compact")),
        dir.with_file_name(format!("{name}.old")),
    )
}

/// Finishes or undoes a compaction that a crash interrupted: `.old` without the store means
/// the swap was half done (put it back); a leftover `.compact` or `.old` is removed.
fn recover_compaction(dir: &Path) -> Result<(), String> {
    let (fresh, old) = compaction_paths(dir);
    let io = |what: &str, p: &Path, e: std::io::Error| format!("session store {what} {}: {e}", p.display());
    if !dir.exists() && old.exists() {
        std::fs::rename(&old, dir).map_err(|e| io("restore", &old, e))?;
    }
    for leftover in [&fresh, &old] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover).map_err(|e| io("remove", leftover, e))?;
        }
    }
    Ok(())
}

/// Rewrites the store without the records before its last reset: a reset record carrying the
/// high-water origin, then the current sequence's records. Built beside the store and swapped
/// in by renames, so a crash leaves the old or the new store, never a mix.
fn compact(dir: &Path, found: Scan, durability: Durability) -> Result<(), String> {
    let (fresh, old) = compaction_paths(dir);
    let context = |e: ordo_journal::JournalError| format!("session store {}: {e}", fresh.display());
    let io = |what: &str, p: &Path, e: std::io::Error| format!("session store {what} {}: {e}", p.display());
    {
        let mut writer = JournalWriter::open(config(&fresh, Durability::Batch)).map_err(context)?;
        let mut marker = [0u8; ORIGIN_BYTES];
        marker[0..8].copy_from_slice(&found.high_water.0.to_le_bytes());
        marker[8..12].copy_from_slice(&found.high_water.1.to_le_bytes());
        let mut reader = JournalReader::open_offline(dir, found.last_reset).map_err(context)?;
        let mut first = true;
        while let Some(r) = reader.next().map_err(context)? {
            if first {
                debug_assert_eq!(r.kind(), KIND_RESET, "the scan found a reset here");
                writer
                    .append(r.timestamp_ns(), KIND_RESET, &marker)
                    .map_err(context)?;
                first = false;
            } else {
                writer
                    .append(r.timestamp_ns(), r.kind(), r.payload())
                    .map_err(context)?;
            }
        }
        writer.close().map_err(context)?;
    }
    // Swap: store -> .old, .compact -> store, drop .old. Any crash in between is repaired by
    // `recover_compaction` at the next open.
    std::fs::rename(dir, &old).map_err(|e| io("rename", dir, e))?;
    std::fs::rename(&fresh, dir).map_err(|e| io("rename", &fresh, e))?;
    if durability.fsyncs()
        && let Some(parent) = dir.parent()
    {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("fsync", parent, e))?;
    }
    std::fs::remove_dir_all(&old).map_err(|e| io("remove", &old, e))?;
    Ok(())
}

/// Removes the clean-stop file an earlier version wrote: a number read from it could lie above
/// what the log holds (another member may have sequenced a reset since).
fn remove_old_next_inbound(dir: &Path) -> Result<(), String> {
    let path = dir.join(NEXT_INBOUND_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("session store {}: {e}", path.display())),
    }
}

impl JournalStore {
    /// Opens (or creates) the store in `dir`, first dropping what lies before its last reset.
    pub fn open(dir: &Path, durability: Durability) -> Result<(Self, StoreState), String> {
        recover_compaction(dir)?;
        // First: a compaction below rewrites the directory without it.
        if dir.exists() {
            remove_old_next_inbound(dir)?;
        }
        let open_writer = || {
            JournalWriter::open(config(dir, durability))
                .map_err(|e| format!("session store {}: {e}", dir.display()))
        };
        // The writer first: opening it truncates a torn tail (a crash inside a record's copy),
        // which the scan's reader would report as damage.
        let mut writer = open_writer()?;
        let mut found = scan(dir)?;
        if found.last_reset > 1 {
            drop(writer);
            compact(dir, found, durability)?;
            writer = open_writer()?;
            found = scan(dir)?;
            debug_assert_eq!(found.last_reset, 1, "compacted: the reset comes first");
        }
        let base = found.last_reset;
        let state = StoreState {
            next_sender: writer.next_seq() - base,
            high_water: found.high_water,
        };
        let last_ts = writer.last_timestamp_ns();
        Ok((
            JournalStore {
                dir: dir.to_path_buf(),
                writer,
                last_ts,
                scratch: Vec::new(),
                base,
                high_water: found.high_water,
            },
            state,
        ))
    }

    fn append(&mut self, kind: u16, origin: (u64, u32), message: &[u8]) -> Option<u64> {
        self.scratch.clear();
        self.scratch.extend_from_slice(&origin.0.to_le_bytes());
        self.scratch.extend_from_slice(&origin.1.to_le_bytes());
        self.scratch.extend_from_slice(message);
        let ts = crate::leader::gateway::wall_clock_ns().max(self.last_ts);
        self.last_ts = ts;
        match self.writer.append(ts, kind, &self.scratch) {
            Ok(seq) => Some(seq),
            Err(e) => {
                tracing::error!(store = %self.dir.display(), error = %e, "session store append failed");
                None
            }
        }
    }
}

impl MessageStore for JournalStore {
    fn store(&mut self, seq: u64, message: &[u8], admin: bool, origin: (u64, u32)) {
        debug_assert_eq!(
            seq + self.base,
            self.writer.next_seq(),
            "store sequence follows the session's"
        );
        let kind = if admin { KIND_ADMIN } else { KIND_APP };
        // Admin messages count too: with log numbering they come from records (a session
        // message's origin), and a restart must not number them twice.
        if self.append(kind, origin, message).is_some() {
            self.high_water = self.high_water.max(origin);
        }
    }

    fn fetch(&self, begin: u64, end: u64, f: &mut dyn FnMut(u64, &[u8])) {
        let Ok(mut reader) = JournalReader::open(&self.dir, self.base + begin.max(1)) else {
            return;
        };
        while let Ok(Some(r)) = reader.next() {
            if r.seq() > self.base + end {
                break;
            }
            if r.kind() == KIND_APP && r.payload().len() > ORIGIN_BYTES {
                f(r.seq() - self.base, &r.payload()[ORIGIN_BYTES..]);
            }
        }
    }

    fn reset_at(&mut self, origin: (u64, u32)) {
        self.high_water = self.high_water.max(origin);
        self.reset();
    }

    fn reset(&mut self) {
        // One record, no truncation: see the module documentation. Should the append fail
        // (logged), the new sequence still starts after the last record, so this run stays
        // consistent; only a restart would then not know of the reset.
        let _ = self.append(KIND_RESET, self.high_water, &[]);
        self.base = self.writer.next_seq() - 1;
    }

    fn sync(&mut self) {
        if let Err(e) = self.writer.sync() {
            tracing::error!(store = %self.dir.display(), error = %e, "session store sync failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reopen(path: &Path) -> (JournalStore, StoreState) {
        JournalStore::open(path, Durability::None).unwrap()
    }

    fn expect(next_sender: u64, high_water: (u64, u32)) -> StoreState {
        StoreState {
            next_sender,
            high_water,
        }
    }

    fn fetched(store: &JournalStore, begin: u64, end: u64) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        store.fetch(begin, end, &mut |seq, m| out.push((seq, m.to_vec())));
        out
    }

    #[test]
    fn a_reset_restarts_the_numbers_and_keeps_the_high_water() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let (mut store, state) = reopen(&path);
        assert_eq!(state, expect(1, (0, 0)));
        store.store(1, b"logon", true, (0, 0));
        store.store(2, b"er-a", false, (10, 0));
        store.store(3, b"er-b", false, (12, 1));
        assert_eq!(
            fetched(&store, 1, 3),
            vec![(2, b"er-a".to_vec()), (3, b"er-b".to_vec())]
        );
        store.reset();
        store.store(1, b"logon-2", true, (0, 0));
        // Only the new sequence is served.
        assert_eq!(fetched(&store, 1, 10), vec![]);
        store.store(2, b"er-c", false, (11, 0));
        assert_eq!(fetched(&store, 1, 10), vec![(2, b"er-c".to_vec())]);
        drop(store);

        // Reopened: the records before the reset are dropped (compaction), the numbering and
        // the highest origin ever sent, (12, 1) from before the reset, survive.
        let (mut store, state) = reopen(&path);
        assert_eq!(state, expect(3, (12, 1)));
        assert_eq!(fetched(&store, 1, 10), vec![(2, b"er-c".to_vec())]);
        let records = JournalReader::open_offline(&path, 1)
            .map(|mut r| {
                let mut n = 0;
                while r.next().unwrap().is_some() {
                    n += 1;
                }
                n
            })
            .unwrap();
        assert_eq!(records, 3, "reset record, logon-2, er-c");
        store.store(3, b"er-d", false, (13, 0));
        assert_eq!(fetched(&store, 3, 3), vec![(3, b"er-d".to_vec())]);
        drop(store);

        // A reset with nothing sent after it: the high water still covers what came before.
        let (mut store, _) = reopen(&path);
        store.reset();
        drop(store);
        let (_, state) = reopen(&path);
        assert_eq!(state, expect(1, (13, 0)));
    }

    #[test]
    fn an_interrupted_compaction_is_repaired_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let (mut store, _) = reopen(&path);
        store.store(1, b"er-a", false, (5, 0));
        drop(store);
        let (fresh, old) = compaction_paths(&path);
        // Crash after "store -> .old", before ".compact -> store".
        std::fs::create_dir_all(&fresh).unwrap();
        std::fs::write(fresh.join("junk"), b"half-built").unwrap();
        std::fs::rename(&path, &old).unwrap();
        let (store, state) = reopen(&path);
        assert_eq!(state, expect(2, (5, 0)));
        assert_eq!(fetched(&store, 1, 1), vec![(1, b"er-a".to_vec())]);
        assert!(!fresh.exists() && !old.exists());
    }
}
