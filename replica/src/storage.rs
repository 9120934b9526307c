//! openraft's log storage and state machine on the journal: the journal *is* the raft log.
//!
//! * An entry is an ENTRY record plus its batch's records ([`crate::entry`]); sequence numbers
//!   stay gap-free across both, and a follower appends the leader's bytes, so the committed
//!   prefix is byte-identical on every member.
//! * The index (raft index -> log id and first seq) lives in memory, rebuilt at open by one pass
//!   over the journal. An entry whose records were cut by a crash is removed at open (it was
//!   never acknowledged: [`LogFlushed`] is called only once every record is durable).
//! * The vote is a file beside the journal, overwritten in place ([`crate::vote_file`]) and
//!   fsynced when the journal's policy fsyncs: it survives what the log survives, so a member
//!   never votes twice in one term within what its policy promises.
//! * Committed: the journal's `committed` position (truncation never goes below it), set when
//!   openraft saves it and when it applies entries.
//! * Purge is logical: consensus never deletes journal segments (the journal is the audit
//!   record).
//! * The state machine here only records what is applied; the engine applies the committed
//!   records itself, from the journal (`docs/REPLICATION.md`, 3.2). Snapshots (engine state) are
//!   not built yet: openraft is configured never to take one, and since nothing is purged it
//!   never needs to send one; an attempt to install one is refused with the reason.

// openraft's StorageError is large (224 bytes) and every trait method returns it: boxing it here
// would only move the allocation to each error, which are rare.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, EntryPayload, LogState, OptionalSend, RaftLogReader, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageIOError,
};
use ordo_journal::{Durability, JournalConfig, JournalReader, JournalWriter, Positions};

use crate::batch::Batch;
use crate::entry::{self, EntryHeader, KIND_ENTRY};
use crate::types::{Entry, LogId, Member, NodeId, Placed, StorageError, StoredMembership, TypeConfig, Vote};
use crate::vote_file::VoteFile;

/// Where one entry is in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    log_id: LogId,
    /// Seq of its ENTRY record.
    first_seq: u64,
}

/// The index: slot `i` holds raft index `base + i`.
#[derive(Debug, Default)]
struct Index {
    base: u64,
    slots: Vec<Slot>,
    /// Seq of the journal's last record (the last entry ends there).
    last_seq: u64,
}

impl Index {
    fn slot(&self, index: u64) -> Option<Slot> {
        let i = index.checked_sub(self.base)?;
        self.slots.get(usize::try_from(i).ok()?).copied()
    }

    /// Seq of the last record of entry `index`.
    fn last_seq_of(&self, index: u64) -> Option<u64> {
        let i = usize::try_from(index.checked_sub(self.base)?).ok()?;
        self.slots.get(i)?;
        Some(match self.slots.get(i + 1) {
            Some(next) => next.first_seq - 1,
            None => self.last_seq,
        })
    }

    /// The entry whose records include `seq`.
    fn entry_at_seq(&self, seq: u64) -> Option<Slot> {
        let i = self.slots.partition_point(|s| s.first_seq <= seq);
        (i > 0 && seq <= self.last_seq).then(|| self.slots[i - 1])
    }

    fn next_index(&self) -> u64 {
        self.base + self.slots.len() as u64
    }
}

/// Why a journal cannot be opened as a raft log.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The journal itself (damage, I/O), from the journal crate.
    #[error("journal {dir}: {source}")]
    Journal {
        /// The journal directory.
        dir: PathBuf,
        /// What the journal said.
        source: ordo_journal::JournalError,
    },
    /// Records that are not a raft log: no ENTRY first, a gap in the indexes, a count that does
    /// not match.
    #[error("journal {dir}: record {seq} is not where the raft log expects it: {reason}")]
    NotARaftLog {
        /// The journal directory.
        dir: PathBuf,
        /// The record.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// The vote file.
    #[error("vote file {path}: {reason}")]
    Vote {
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// What the log store and the state machine share.
struct Shared {
    dir: PathBuf,
    writer: Mutex<JournalWriter>,
    index: RwLock<Index>,
    positions: Arc<Positions>,
    /// For fsyncing policies: the thread that calls [`LogFlushed`] once appends are durable.
    flusher: Option<mpsc::Sender<(u64, LogFlushed<TypeConfig>)>>,
}

/// openraft's log storage on a journal directory (one member's).
#[derive(Clone)]
pub struct JournalLog {
    shared: Arc<Shared>,
    /// The vote (`crate::vote_file`), saved in place.
    vote: Arc<Mutex<VoteFile>>,
    last_purged: Option<LogId>,
    /// The log store's own reader (openraft reads entries back to apply them): kept open, so
    /// that consecutive reads continue where the last one ended instead of reopening the
    /// journal.
    reader: Arc<tokio::sync::Mutex<JournalLogReader>>,
}

/// openraft's state machine of a member: what is applied, the membership.
pub struct JournalStateMachine {
    shared: Arc<Shared>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// Reads entries back from the journal (one per replication stream).
pub struct JournalLogReader {
    shared: Arc<Shared>,
    reader: Option<JournalReader>,
    /// The journal's epoch when `reader` was opened: a truncation bumps it, and a reader opened
    /// before one may map segments that no longer exist, so it is reopened.
    epoch: u64,
}

fn io_error(what: impl std::fmt::Display) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write_logs(AnyError::error(what.to_string())),
    }
}

fn read_error(what: impl std::fmt::Display) -> StorageError {
    StorageError::IO {
        source: StorageIOError::read_logs(AnyError::error(what.to_string())),
    }
}

/// A vote save or log append this slow is logged (openraft's core is blocked while it runs).
const SLOW_IO: Duration = Duration::from_millis(20);

/// Opens (creating if needed) the raft log in `dir/journal` with its vote in `dir/raft`.
pub fn open(dir: &Path, durability: Durability) -> Result<(JournalLog, JournalStateMachine), OpenError> {
    let journal_dir = dir.join("journal");
    let raft_dir = dir.join("raft");
    let journal_error = |source| OpenError::Journal {
        dir: journal_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&raft_dir).map_err(|e| OpenError::Vote {
        path: raft_dir.clone(),
        reason: e.to_string(),
    })?;
    let mut config = JournalConfig::new(&journal_dir);
    config.durability = durability;
    let mut writer = JournalWriter::open(config).map_err(journal_error)?;
    let index = scan(&journal_dir, &mut writer)?;
    let positions = Arc::clone(writer.positions());
    let flusher = durability.fsyncs().then(|| start_flusher(Arc::clone(&positions)));
    // The vote survives what the log survives: synced when the journal's policy syncs.
    let vote = VoteFile::open(&raft_dir, durability.fsyncs()).map_err(|e| OpenError::Vote {
        path: e.path,
        reason: e.reason,
    })?;
    let shared = Arc::new(Shared {
        dir: journal_dir,
        writer: Mutex::new(writer),
        index: RwLock::new(index),
        positions,
        flusher,
    });
    let log = JournalLog {
        shared: Arc::clone(&shared),
        vote: Arc::new(Mutex::new(vote)),
        last_purged: None,
        reader: Arc::new(tokio::sync::Mutex::new(JournalLogReader {
            shared: Arc::clone(&shared),
            reader: None,
            epoch: 0,
        })),
    };
    let sm = JournalStateMachine {
        shared,
        last_applied: None,
        membership: StoredMembership::default(),
    };
    Ok((log, sm))
}

/// One pass over the journal: the index. A last entry cut short by a crash is removed.
fn scan(dir: &Path, writer: &mut JournalWriter) -> Result<Index, OpenError> {
    let mut index = Index::default();
    let not_raft = |seq, reason: String| OpenError::NotARaftLog {
        dir: dir.to_path_buf(),
        seq,
        reason,
    };
    let mut expected_records = 0u64;
    {
        let mut reader = JournalReader::open_offline(dir, 1).map_err(|source| OpenError::Journal {
            dir: dir.to_path_buf(),
            source,
        })?;
        while let Some(r) = reader.next().map_err(|source| OpenError::Journal {
            dir: dir.to_path_buf(),
            source,
        })? {
            index.last_seq = r.seq();
            if expected_records > 0 {
                expected_records -= 1;
                continue;
            }
            if r.kind() != KIND_ENTRY {
                return Err(not_raft(
                    r.seq(),
                    format!("kind {} where an ENTRY record belongs", r.kind()),
                ));
            }
            let header = entry::decode(r.payload()).map_err(|e| not_raft(r.seq(), e.to_string()))?;
            if index.slots.is_empty() {
                index.base = header.log_id.index;
            } else if header.log_id.index != index.next_index() {
                return Err(not_raft(
                    r.seq(),
                    format!(
                        "entry index {}, expected {}",
                        header.log_id.index,
                        index.next_index()
                    ),
                ));
            }
            index.slots.push(Slot {
                log_id: header.log_id,
                first_seq: r.seq(),
            });
            expected_records = header.records;
        }
    }
    if expected_records > 0 {
        // The last entry's records were cut by a crash: it was never acknowledged.
        let cut = index.slots.pop().expect("an entry is open");
        tracing::warn!(
            entry = %cut.log_id,
            missing = expected_records,
            "raft log: removing an entry a crash cut short"
        );
        writer
            .truncate_after(cut.first_seq - 1)
            .map_err(|source| OpenError::Journal {
                dir: dir.to_path_buf(),
                source,
            })?;
        index.last_seq = cut.first_seq - 1;
    }
    debug_assert_eq!(index.last_seq, writer.last_seq());
    Ok(index)
}

/// The thread that tells openraft an append is durable, for fsyncing policies: it waits for the
/// journal's durable position (the syncer wakes it) and answers in append order.
fn start_flusher(positions: Arc<Positions>) -> mpsc::Sender<(u64, LogFlushed<TypeConfig>)> {
    let positions_for_listener = Arc::clone(&positions);
    let (tx, rx) = mpsc::channel::<(u64, LogFlushed<TypeConfig>)>();
    let thread = std::thread::Builder::new()
        .name("raft-flush".into())
        .spawn(move || {
            while let Ok((seq, done)) = rx.recv() {
                while positions.durable() < seq {
                    std::thread::park_timeout(Duration::from_millis(1));
                }
                done.log_io_completed(Ok(()));
            }
        })
        .expect("spawn the raft flush thread");
    let waiter = thread.thread().clone();
    // The journal has one durable listener; a member's journal registers nothing else.
    positions_for_listener.set_durable_listener(move || waiter.unpark());
    tx
}

impl JournalLog {
    /// The journal's published positions (written, durable, committed).
    pub fn positions(&self) -> &Arc<Positions> {
        &self.shared.positions
    }

    /// The journal directory.
    pub fn journal_dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Timestamp of the journal's last record (0 when empty): a new leader stamps from here on,
    /// so the journal's timestamps never decrease across leaders.
    pub fn last_timestamp_ns(&self) -> u64 {
        self.shared
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_timestamp_ns()
    }

    /// Seq of the journal's last record (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.shared
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .last_seq
    }

    /// Whether the log holds any record besides ENTRY records (an event proposed by some
    /// leader). A new leader whose log holds none proposes the genesis records: its log is what
    /// every later leader's log starts with.
    pub fn holds_events(&self) -> bool {
        let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
        let Some(first) = index.slots.first() else {
            return false;
        };
        index.last_seq + 1 - first.first_seq > index.slots.len() as u64
    }

    fn append_entries(&self, entries: impl Iterator<Item = Entry>) -> Result<u64, StorageError> {
        let mut writer = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut index = self.shared.index.write().unwrap_or_else(|p| p.into_inner());
        let mut batch = writer.batch();
        let mut last_seq = index.last_seq;
        for e in entries {
            if !index.slots.is_empty() && e.log_id.index != index.next_index() {
                return Err(io_error(format!(
                    "append of entry {} where {} is next",
                    e.log_id,
                    index.next_index()
                )));
            }
            let records = match &e.payload {
                EntryPayload::Normal(b) => b
                    .records()
                    .map_err(|err| io_error(format!("entry {}: {err}", e.log_id)))?,
                _ => Vec::new(),
            };
            // The ENTRY record's stamp: its first record's, or (blank, membership) the previous
            // record's: the same on every member, and never decreasing.
            let ts = records
                .first()
                .map_or(batch.last_timestamp_ns(), |r| r.timestamp_ns);
            let header = entry::encode(&e, records.len() as u64);
            let first_seq = batch
                .append(ts, KIND_ENTRY, &header)
                .map_err(|err| io_error(format!("entry {}: {err}", e.log_id)))?;
            for r in &records {
                last_seq = batch
                    .append(r.timestamp_ns, r.kind, r.payload)
                    .map_err(|err| io_error(format!("entry {}: {err}", e.log_id)))?;
            }
            last_seq = last_seq.max(first_seq);
            if index.slots.is_empty() {
                index.base = e.log_id.index;
            }
            index.slots.push(Slot {
                log_id: e.log_id,
                first_seq,
            });
            index.last_seq = last_seq;
        }
        drop(batch);
        Ok(last_seq)
    }
}

impl RaftLogReader<TypeConfig> for JournalLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.reader.lock().await.try_get_log_entries(range).await
    }
}

impl RaftLogReader<TypeConfig> for JournalLogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (slots, last_seq) = {
            let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
            let start = match range.start_bound() {
                Bound::Included(&s) => s,
                Bound::Excluded(&s) => s + 1,
                Bound::Unbounded => index.base,
            }
            .max(index.base);
            let end = match range.end_bound() {
                Bound::Included(&e) => e + 1,
                Bound::Excluded(&e) => e,
                Bound::Unbounded => index.next_index(),
            }
            .min(index.next_index());
            if start >= end {
                return Ok(Vec::new());
            }
            let slots: Vec<Slot> = (start..end).filter_map(|i| index.slot(i)).collect();
            let last = index.last_seq_of(end - 1).expect("in range");
            (slots, last)
        };
        self.read(&slots, last_seq).map_err(read_error)
    }
}

impl JournalLogReader {
    /// Reads the entries of `slots` (consecutive), whose records end at `last_seq`.
    fn read(&mut self, slots: &[Slot], last_seq: u64) -> Result<Vec<Entry>, String> {
        let first_seq = slots[0].first_seq;
        let epoch = self.shared.positions.epoch();
        let reopen = epoch != self.epoch || self.reader.as_ref().is_none_or(|r| r.next_seq() != first_seq);
        if reopen {
            let r = JournalReader::open(&self.shared.dir, first_seq).map_err(|e| format!("journal: {e}"))?;
            self.reader = Some(r);
            self.epoch = epoch;
        }
        let reader = self.reader.as_mut().expect("opened above");
        let mut out = Vec::with_capacity(slots.len());
        for (i, slot) in slots.iter().enumerate() {
            let end = slots.get(i + 1).map_or(last_seq, |n| n.first_seq - 1);
            let record = reader
                .next()
                .map_err(|e| format!("journal: {e}"))?
                .ok_or_else(|| {
                    format!(
                        "entry {}: record {} not readable yet",
                        slot.log_id, slot.first_seq
                    )
                })?;
            if record.seq() != slot.first_seq || record.kind() != KIND_ENTRY {
                return Err(format!(
                    "entry {}: record {} is not its ENTRY record",
                    slot.log_id,
                    record.seq()
                ));
            }
            let header: EntryHeader =
                entry::decode(record.payload()).map_err(|e| format!("record {}: {e}", slot.first_seq))?;
            if header.log_id != slot.log_id || header.records != end - slot.first_seq {
                return Err(format!(
                    "record {}: ENTRY {} does not match the index",
                    slot.first_seq, header.log_id
                ));
            }
            let mut batch = Batch::with_capacity(0);
            for _ in 0..header.records {
                let r = reader
                    .next()
                    .map_err(|e| format!("journal: {e}"))?
                    .ok_or_else(|| format!("entry {}: its records are not readable yet", slot.log_id))?;
                batch
                    .push(r.timestamp_ns(), r.kind(), r.payload())
                    .map_err(|e| format!("entry {}: {e}", slot.log_id))?;
            }
            out.push(entry::rebuild(header, batch));
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for JournalLog {
    type LogReader = JournalLogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
        let last = index.slots.last().map(|s| s.log_id).or(self.last_purged);
        Ok(LogState {
            last_purged_log_id: self.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        JournalLogReader {
            shared: Arc::clone(&self.shared),
            reader: None,
            epoch: 0,
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let started = std::time::Instant::now();
        let r = self.vote.lock().unwrap_or_else(|p| p.into_inner()).save(vote);
        let took = started.elapsed();
        if took >= SLOW_IO {
            // openraft's core waits for it: no heartbeat, vote or append meanwhile.
            tracing::warn!(ms = took.as_millis() as u64, %vote, "slow vote save");
        }
        r.map_err(|e| StorageError::IO {
            source: StorageIOError::write_vote(AnyError::error(e.to_string())),
        })
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.vote.lock().unwrap_or_else(|p| p.into_inner()).vote())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let Some(log_id) = committed else {
            return Ok(());
        };
        let seq = self
            .shared
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .last_seq_of(log_id.index);
        if let Some(seq) = seq {
            self.shared
                .writer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .set_committed(seq);
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed = self.shared.positions.committed();
        let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
        Ok(index.entry_at_seq(committed).map(|s| s.log_id))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let started = std::time::Instant::now();
        let last_seq = self.append_entries(entries.into_iter())?;
        let took = started.elapsed();
        if took >= SLOW_IO {
            tracing::warn!(ms = took.as_millis() as u64, last_seq, "slow log append");
        }
        match &self.shared.flusher {
            // Durable under `none` once in the page cache: now.
            None => callback.log_io_completed(Ok(())),
            Some(flusher) => flusher
                .send((last_seq, callback))
                .map_err(|_| io_error("the raft flush thread has stopped"))?,
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut writer = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut index = self.shared.index.write().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = index.slot(log_id.index) else {
            return Ok(());
        };
        writer
            .truncate_after(slot.first_seq - 1)
            .map_err(|e| io_error(format!("truncate from entry {log_id}: {e}")))?;
        let keep = (log_id.index - index.base) as usize;
        index.slots.truncate(keep);
        index.last_seq = slot.first_seq - 1;
        tracing::info!(from = %log_id, seq = slot.first_seq, "raft log truncated");
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Logical only: the journal keeps every segment.
        self.last_purged = Some(log_id);
        Ok(())
    }
}

fn snapshots_not_built() -> StorageError {
    StorageError::IO {
        source: StorageIOError::read_snapshot(
            None,
            AnyError::error(
                "engine snapshots are not built yet (docs/REPLICATION.md 6.3): a member catches up from the log",
            ),
        ),
    }
}

/// Builds snapshots (not yet: see the module docs).
pub struct NoSnapshots;

impl RaftSnapshotBuilder<TypeConfig> for NoSnapshots {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        Err(snapshots_not_built())
    }
}

impl JournalStateMachine {
    fn placed(&self, log_id: &LogId) -> Placed {
        let index = self.shared.index.read().unwrap_or_else(|p| p.into_inner());
        Placed {
            index: log_id.index,
            entry_seq: index.slot(log_id.index).map_or(0, |s| s.first_seq),
            last_seq: index.last_seq_of(log_id.index).unwrap_or(0),
        }
    }
}

impl RaftStateMachine<TypeConfig> for JournalStateMachine {
    type SnapshotBuilder = NoSnapshots;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Placed>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        for e in entries {
            if let EntryPayload::Membership(m) = &e.payload {
                self.membership = StoredMembership::new(Some(e.log_id), m.clone());
            }
            self.last_applied = Some(e.log_id);
            out.push(self.placed(&e.log_id));
        }
        // Applied means committed: the journal's watermark follows (openraft also saves it).
        if let Some(last) = out.last() {
            self.shared
                .writer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .set_committed(last.last_seq);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        NoSnapshots
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Err(snapshots_not_built())
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<NodeId, Member>,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        Err(snapshots_not_built())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(None)
    }
}
