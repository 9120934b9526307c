//! The published positions: a small memory-mapped file, `journal.pos`, through which the writer
//! tells readers in any thread or process how far they may read, without locks.
//!
//! ```text
//! offset field
//!   0    magic "ORDOPOS\0"
//!   8    version u32 = 1
//!  16    node id u64
//!  64    written seq   (u64, atomic): every record up to here is complete in the segments
//! 128    durable seq   (u64, atomic): every record up to here is durable under the policy
//! 192    committed seq (u64, atomic): watermark set by consensus; truncation never goes below it
//! 256    epoch         (u64, atomic): incremented by every truncation
//! ```
//! Each position has its own cache line, so the syncer advancing `durable` does not bounce the
//! line the writer stores `written` into.
//!
//! Ordering: the writer fills a frame with plain stores, then stores `written` with Release; a
//! reader loads `written` with Acquire and only then reads frames up to it. Across processes the
//! mapping is the same page cache page, and the same reasoning holds on x86-64 and aarch64, where
//! these atomics are plain aligned loads and stores.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{Mmap, MmapMut, MmapOptions};

use crate::error::{JournalError, Result};

/// File name of the positions file inside a journal directory.
pub const POSITIONS_FILE: &str = "journal.pos";
const POSITIONS_BYTES: usize = 4096;
const MAGIC: [u8; 8] = *b"ORDOPOS\0";
const VERSION: u32 = 1;
const OFFSET_NODE_ID: usize = 16;
const OFFSET_WRITTEN: usize = 64;
const OFFSET_DURABLE: usize = 128;
const OFFSET_COMMITTED: usize = 192;
const OFFSET_EPOCH: usize = 256;

enum Map {
    Writable(MmapMut),
    ReadOnly(Mmap),
}

/// A view of `journal.pos`: writable for the writer, read-only for readers.
pub struct Positions {
    map: Map,
    path: PathBuf,
    /// Called by the syncer whenever it advances `durable` (see
    /// [`Positions::set_durable_listener`]).
    durable_listener: OnceLock<DurableListener>,
    /// Called after each advance of the committed watermark (see
    /// [`Positions::set_committed_listener`]).
    committed_listener: OnceLock<DurableListener>,
}

/// What the syncer calls after advancing `durable`.
type DurableListener = Box<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for Positions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Positions")
            .field("path", &self.path)
            .field("written", &self.written())
            .field("durable", &self.durable())
            .field("committed", &self.committed())
            .field("epoch", &self.epoch())
            .finish()
    }
}

impl Positions {
    /// Opens (creating if needed) the positions file for the writer.
    pub(crate) fn open_writable(dir: &Path, node_id: u64) -> Result<Self> {
        let path = dir.join(POSITIONS_FILE);
        let present = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
        if !present {
            // A new file is written aside with its header and renamed into place: a reader in
            // another process that finds the file finds its header, never an empty or
            // half-written one ("bad magic" while tailing a journal being created). No fsync:
            // the file holds nothing recovery cannot republish from the segments.
            let aside = dir.join(format!("{POSITIONS_FILE}.new"));
            let mut header = vec![0u8; POSITIONS_BYTES];
            header[..8].copy_from_slice(&MAGIC);
            header[8..12].copy_from_slice(&VERSION.to_le_bytes());
            std::fs::write(&aside, &header).map_err(|e| JournalError::io("write", &aside, e))?;
            std::fs::rename(&aside, &path).map_err(|e| JournalError::io("rename", &path, e))?;
        }
        // Never created here: a new file was published whole above.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| JournalError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| JournalError::io("stat", &path, e))?
            .len();
        if len != POSITIONS_BYTES as u64 {
            return Err(JournalError::BadHeader {
                path,
                offset: 0,
                reason: format!("positions file is {len} bytes, expected {POSITIONS_BYTES}"),
            });
        }
        // SAFETY: the file is ours (the writer holds the directory lock); other processes only
        // read it, through atomics.
        let mut map = unsafe { MmapOptions::new().len(POSITIONS_BYTES).map_mut(&file) }
            .map_err(|e| JournalError::io("mmap", &path, e))?;
        if map[..8] != MAGIC {
            // An unrecognisable file carries no information the segments do not have:
            // recovery republishes every position from the segments.
            map.fill(0);
            map[..8].copy_from_slice(&MAGIC);
            map[8..12].copy_from_slice(&VERSION.to_le_bytes());
        }
        map[OFFSET_NODE_ID..OFFSET_NODE_ID + 8].copy_from_slice(&node_id.to_le_bytes());
        Ok(Positions {
            map: Map::Writable(map),
            durable_listener: OnceLock::new(),
            committed_listener: OnceLock::new(),
            path,
        })
    }

    /// Opens the positions file of a journal that a writer (maybe in another process) owns.
    pub fn open_read_only(dir: &Path) -> Result<Self> {
        let path = dir.join(POSITIONS_FILE);
        let file = OpenOptions::new()
            .read(true)
            .open(&path)
            .map_err(|e| JournalError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| JournalError::io("stat", &path, e))?
            .len();
        if len != POSITIONS_BYTES as u64 {
            return Err(JournalError::BadHeader {
                path,
                offset: 0,
                reason: format!("positions file is {len} bytes, expected {POSITIONS_BYTES}"),
            });
        }
        // SAFETY: read-only shared mapping; concurrent modification by the writer is only ever
        // observed through the atomics below.
        let map = unsafe { MmapOptions::new().len(POSITIONS_BYTES).map(&file) }
            .map_err(|e| JournalError::io("mmap", &path, e))?;
        if map[..8] != MAGIC {
            return Err(JournalError::BadHeader {
                path,
                offset: 0,
                reason: "bad magic in positions file".into(),
            });
        }
        let version = u32::from_le_bytes(map[8..12].try_into().expect("4 bytes"));
        if version > VERSION {
            return Err(JournalError::NewerFormat {
                path,
                found: version,
                supported: VERSION,
            });
        }
        Ok(Positions {
            durable_listener: OnceLock::new(),
            committed_listener: OnceLock::new(),
            map: Map::ReadOnly(map),
            path,
        })
    }

    fn atomic(&self, offset: usize) -> &AtomicU64 {
        let base = match &self.map {
            Map::Writable(m) => m.as_ptr(),
            Map::ReadOnly(m) => m.as_ptr(),
        };
        debug_assert!(offset + 8 <= POSITIONS_BYTES && offset.is_multiple_of(8));
        // SAFETY: the mapping is page aligned and POSITIONS_BYTES long, so base+offset is 8-byte
        // aligned and in bounds, and lives as long as `self`. All accesses to these words, from
        // any process, are atomic. A read-only mapping is only ever loaded from.
        unsafe { &*(base.add(offset) as *const AtomicU64) }
    }

    #[inline]
    fn assert_writable(&self) {
        debug_assert!(
            matches!(self.map, Map::Writable(_)),
            "only the writer stores positions"
        );
    }

    /// Last sequence number whose record is complete and may be read.
    #[inline]
    pub fn written(&self) -> u64 {
        self.atomic(OFFSET_WRITTEN).load(Ordering::Acquire)
    }

    /// Last sequence number durable under the journal's policy: nothing beyond it may be
    /// acknowledged.
    #[inline]
    pub fn durable(&self) -> u64 {
        self.atomic(OFFSET_DURABLE).load(Ordering::Acquire)
    }

    /// The committed watermark (set by consensus).
    #[inline]
    pub fn committed(&self) -> u64 {
        self.atomic(OFFSET_COMMITTED).load(Ordering::Acquire)
    }

    /// Number of truncations so far; a reader that sees it change re-validates its position.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.atomic(OFFSET_EPOCH).load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn store_written(&self, seq: u64) {
        self.assert_writable();
        self.atomic(OFFSET_WRITTEN).store(seq, Ordering::Release);
    }

    #[inline]
    pub(crate) fn store_durable(&self, seq: u64) {
        self.assert_writable();
        self.atomic(OFFSET_DURABLE).store(seq, Ordering::Release);
    }

    /// Registers `f`, called (on the syncer's thread) each time the syncer advances the
    /// durable position, so that a consumer waiting for durability (the node's ack path) wakes
    /// at once instead of polling. Only the first registration takes; false for later ones.
    /// With durability `none` nothing calls it: `durable` moves with `written`, on the
    /// writer's own thread.
    pub fn set_durable_listener(&self, f: impl Fn() + Send + Sync + 'static) -> bool {
        self.durable_listener.set(Box::new(f)).is_ok()
    }

    /// Calls the durable listener, if any (the syncer, after `store_durable`).
    pub(crate) fn notify_durable(&self) {
        if let Some(f) = self.durable_listener.get() {
            f();
        }
    }

    pub(crate) fn store_committed(&self, seq: u64) {
        self.assert_writable();
        self.atomic(OFFSET_COMMITTED).store(seq, Ordering::Release);
        if let Some(f) = self.committed_listener.get() {
            f();
        }
    }

    /// Registers `f`, called (on the thread that sets it) each time the committed watermark
    /// advances, so that a consumer of the committed prefix (a cluster member's engine) wakes at
    /// once instead of polling. Only the first registration takes; false for later ones.
    pub fn set_committed_listener(&self, f: impl Fn() + Send + Sync + 'static) -> bool {
        self.committed_listener.set(Box::new(f)).is_ok()
    }

    pub(crate) fn bump_epoch(&self) {
        self.assert_writable();
        self.atomic(OFFSET_EPOCH).fetch_add(1, Ordering::AcqRel);
    }

    /// Path of the positions file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
