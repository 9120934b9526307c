//! Snapshots (`docs/REPLICATION.md`, 6.3): a follower's engine state and the session state it
//! derives from the log (every session's next inbound and outbound MsgSeqNum and its resend
//! window, 6.1a), at a committed seq, so that a restart applies the journal from that seq on
//! instead of from the first record.
//!
//! Who takes them: a follower's engine agent, every `every` records, between two records (the
//! engine's encoding stalls its own agent, never a leader's sequencer: a member that leads puts
//! its snapshot off until it follows again). Who writes them: the router, once it has numbered
//! and windowed every message of the records the snapshot covers (it receives the snapshot
//! behind them, in log order): it adds each session's outbound number and window as they stand
//! then, so a restart from seq S + 1 holds what a replay from seq 1 would.
//! The write (aside, fsync, rename, fsync of the directory) runs on a blocking thread, one at a
//! time; the last [`KEEP`] files stay.
//!
//! File format (little endian): magic `ORDOSNAP`, format u32, seq u64, the record's timestamp
//! u64 and CRC u32 (which record the snapshot is after, checked against the journal at start),
//! the engine's state hash u128, session count u32 then per session its next inbound u64, its
//! next outbound u64, and its resend window (length u64, then `ResendWindow::encode_into`), the
//! engine's bytes (length u64, then `Engine::snapshot`), and a CRC32 of everything before it.
//!
//! A snapshot that fails any check at start is skipped with a warning naming the file and what
//! is wrong, and the next older one is tried; with none left the engine replays the journal
//! from its first record. That is safe because the journal, not the snapshot, is the truth.

use std::path::{Path, PathBuf};

use ordo_engine::Engine;
use ordo_engine::hash::hex128;
use ordo_fix::window::ResendWindow;
use ordo_journal::JournalReader;

/// The directory under a member's data directory.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// Snapshot files kept: the newest and the one before it (the newest may be the damaged one).
pub const KEEP: usize = 2;
/// A snapshot file larger than this is refused before it is read (the engine's state at its
/// bounds is far smaller).
pub const MAX_FILE_BYTES: u64 = 4 << 30;

const MAGIC: &[u8; 8] = b"ORDOSNAP";
/// 2: the sessions' outbound numbers and resend windows (format 1 had neither: refused, the
/// member replays from seq 1).
const FORMAT: u32 = 2;
const HEADER_BYTES: usize = 8 + 4 + 8 + 8 + 4 + 16 + 4;

/// A snapshot in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The last record applied.
    pub seq: u64,
    /// That record's timestamp.
    pub timestamp_ns: u64,
    /// That record's CRC (its identity in the journal).
    pub record_crc: u32,
    /// The engine's state hash after it.
    pub hash: u128,
    /// Per session, the next inbound MsgSeqNum the log implies.
    pub next_in: Vec<u64>,
    /// Per session, what it was sent: filled in by the router (empty as the engine agent
    /// takes the snapshot), one per session when written.
    pub sent: Vec<Sent>,
    /// `Engine::snapshot`.
    pub engine: Vec<u8>,
}

/// What a session was sent, as the router held it after the snapshot's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The next outbound MsgSeqNum.
    pub next_sender: u64,
    /// Its resend window (`ResendWindow::encode_into`).
    pub window: Vec<u8>,
}

/// Why a snapshot was not written or not used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading or writing the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The bytes are not a snapshot of this format.
    #[error("{path}: not a snapshot: {what}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the offset where it applies.
        what: String,
    },
    /// The snapshot does not belong to this member's journal or configuration.
    #[error("{path}: does not fit: {what}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What differs.
        what: String,
    },
}

impl Image {
    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        assert_eq!(
            self.sent.len(),
            self.next_in.len(),
            "the router adds every session's part"
        );
        let windows: usize = self.sent.iter().map(|s| 16 + s.window.len()).sum();
        let mut b =
            Vec::with_capacity(HEADER_BYTES + 8 * self.next_in.len() + windows + 8 + self.engine.len() + 4);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&FORMAT.to_le_bytes());
        b.extend_from_slice(&self.seq.to_le_bytes());
        b.extend_from_slice(&self.timestamp_ns.to_le_bytes());
        b.extend_from_slice(&self.record_crc.to_le_bytes());
        b.extend_from_slice(&self.hash.to_le_bytes());
        b.extend_from_slice(&(self.next_in.len() as u32).to_le_bytes());
        for (n, sent) in self.next_in.iter().zip(&self.sent) {
            b.extend_from_slice(&n.to_le_bytes());
            b.extend_from_slice(&sent.next_sender.to_le_bytes());
            b.extend_from_slice(&(sent.window.len() as u64).to_le_bytes());
            b.extend_from_slice(&sent.window);
        }
        b.extend_from_slice(&(self.engine.len() as u64).to_le_bytes());
        b.extend_from_slice(&self.engine);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses a file's bytes; `path` names it in errors.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Image, SnapshotError> {
        let damaged = |what: String| SnapshotError::Damaged {
            path: path.to_path_buf(),
            what,
        };
        if bytes.len() < HEADER_BYTES + 8 + 4 {
            return Err(damaged(format!(
                "{} bytes, shorter than any snapshot",
                bytes.len()
            )));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(damaged(format!(
                "CRC at offset {} is {stored:08x}, the bytes before it give {computed:08x}",
                body.len()
            )));
        }
        let mut at = Cursor { bytes: body, at: 0 };
        if at.take(8) != Some(MAGIC.as_slice()) {
            return Err(damaged("no ORDOSNAP magic at offset 0".into()));
        }
        let format = at.u32().expect("header length checked");
        if format != FORMAT {
            return Err(damaged(format!(
                "format {format} at offset 8 (this build reads {FORMAT})"
            )));
        }
        let seq = at.u64().expect("header length checked");
        let timestamp_ns = at.u64().expect("header length checked");
        let record_crc = at.u32().expect("header length checked");
        let hash = u128::from_le_bytes(at.take(16).expect("header").try_into().expect("16"));
        let sessions = at.u32().expect("header length checked") as usize;
        let mut next_in = Vec::with_capacity(sessions.min(body.len() / 24));
        let mut sent = Vec::with_capacity(sessions.min(body.len() / 24));
        for i in 0..sessions {
            let cut = |at: usize| damaged(format!("session {i} of {sessions} cut short at offset {at}"));
            let n = at.u64().ok_or_else(|| cut(at.at))?;
            let next_sender = at.u64().ok_or_else(|| cut(at.at))?;
            let window_len = at.u64().ok_or_else(|| cut(at.at))?;
            let window = at
                .take(usize::try_from(window_len).unwrap_or(usize::MAX))
                .ok_or_else(|| cut(at.at))?
                .to_vec();
            next_in.push(n);
            sent.push(Sent { next_sender, window });
        }
        let engine_at = at.at;
        let engine_len = at
            .u64()
            .ok_or_else(|| damaged(format!("engine length cut short at offset {engine_at}")))?;
        let engine = at
            .take(usize::try_from(engine_len).unwrap_or(usize::MAX))
            .ok_or_else(|| {
                damaged(format!(
                    "engine state of {engine_len} bytes at offset {engine_at} runs past the end"
                ))
            })?
            .to_vec();
        if at.at != body.len() {
            return Err(damaged(format!(
                "{} bytes after the engine state",
                body.len() - at.at
            )));
        }
        Ok(Image {
            seq,
            timestamp_ns,
            record_crc,
            hash,
            next_in,
            sent,
            engine,
        })
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes(b.try_into().expect("4")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().expect("8")))
    }
}

fn file_name(seq: u64) -> String {
    format!("snapshot-{seq:020}.snap")
}

/// The snapshot files in `dir`, newest (highest seq) first.
pub fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let seq = name
                .strip_prefix("snapshot-")?
                .strip_suffix(".snap")?
                .parse()
                .ok()?;
            Some((seq, e.path()))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found
}

/// Writes `image` into `dir` (created if missing): aside, synced, renamed, the directory
/// synced; then removes all but the newest [`KEEP`]. Returns the file's path.
pub fn write(dir: &Path, image: &Image) -> Result<PathBuf, SnapshotError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(file_name(image.seq));
    crate::durable_file::replace(&path, &image.encode()).map_err(io(&path))?;
    for (_, old) in list(dir).into_iter().skip(KEEP) {
        if let Err(e) = std::fs::remove_file(&old) {
            tracing::warn!(path = %old.display(), %e, "could not remove an old snapshot");
        }
    }
    Ok(path)
}

/// A snapshot that passed every check, with its engine rebuilt.
pub struct Restored {
    /// The file.
    pub path: PathBuf,
    /// Its contents.
    pub image: Image,
    /// The engine it holds.
    pub engine: Engine,
    /// Per session, its resend window, decoded under today's bounds.
    pub windows: Vec<ResendWindow>,
}

/// A resend window's bounds: messages, bytes.
pub type WindowBounds = (usize, usize);

/// Reads and checks one file: its CRC and format, its session count against `windows` (each
/// session's resend window bounds), each session's window, its
/// record against the journal in `journal_dir` (same seq, timestamp and CRC: a snapshot of
/// another journal, or of records this journal no longer holds, is refused), and the rebuilt
/// engine's state hash against the one it recorded.
pub fn load(path: &Path, windows: &[WindowBounds], journal_dir: &Path) -> Result<Restored, SnapshotError> {
    let sessions = windows.len();
    let io = |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mismatch = |what: String| SnapshotError::Mismatch {
        path: path.to_path_buf(),
        what,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_FILE_BYTES {
        return Err(mismatch(format!(
            "{len} bytes, above the bound of {MAX_FILE_BYTES}"
        )));
    }
    let image = Image::decode(&std::fs::read(path).map_err(io)?, path)?;
    if image.next_in.len() != sessions {
        return Err(mismatch(format!(
            "{} sessions, the configuration has {sessions}",
            image.next_in.len()
        )));
    }
    let windows = decode_windows(&image, windows).map_err(|what| SnapshotError::Damaged {
        path: path.to_path_buf(),
        what,
    })?;
    let record = JournalReader::open_offline(journal_dir, image.seq)
        .and_then(|mut r| Ok(r.next()?.map(|r| (r.seq(), r.timestamp_ns(), r.crc()))))
        .map_err(|e| mismatch(format!("journal {}: {e}", journal_dir.display())))?;
    match record {
        Some((seq, ts, crc)) if seq == image.seq && ts == image.timestamp_ns && crc == image.record_crc => {}
        Some((seq, ts, crc)) => {
            return Err(mismatch(format!(
                "its record is seq {} at {} with CRC {:08x}; the journal's seq {seq} is at {ts} with CRC {crc:08x}",
                image.seq, image.timestamp_ns, image.record_crc
            )));
        }
        None => {
            return Err(mismatch(format!(
                "it is after seq {}, which the journal {} does not hold",
                image.seq,
                journal_dir.display()
            )));
        }
    }
    let engine = Engine::restore(&image.engine).map_err(|e| mismatch(format!("engine state: {e}")))?;
    let hash = engine.state_hash();
    if hash != image.hash {
        return Err(mismatch(format!(
            "the rebuilt engine's state hash is {}, the snapshot recorded {}",
            hex128(hash),
            hex128(image.hash)
        )));
    }
    Ok(Restored {
        path: path.to_path_buf(),
        image,
        engine,
        windows,
    })
}

/// Each session's window from its bytes, under today's `bounds`.
fn decode_windows(image: &Image, bounds: &[WindowBounds]) -> Result<Vec<ResendWindow>, String> {
    image
        .sent
        .iter()
        .zip(bounds)
        .enumerate()
        .map(|(i, (sent, &(messages, bytes)))| {
            let (window, used) = ResendWindow::decode(&sent.window, messages, bytes)
                .map_err(|e| format!("session {i}'s resend window: {e}"))?;
            if used != sent.window.len() {
                return Err(format!(
                    "session {i}'s resend window: {} bytes after it",
                    sent.window.len() - used
                ));
            }
            Ok(window)
        })
        .collect()
}

/// The newest snapshot in `dir` that passes [`load`]'s checks; each one refused is logged with
/// the reason. None: replay from the first record.
pub fn load_latest(dir: &Path, windows: &[WindowBounds], journal_dir: &Path) -> Option<Restored> {
    for (_, path) in list(dir) {
        match load(&path, windows, journal_dir) {
            Ok(r) => return Some(r),
            Err(e) => tracing::warn!(error = %e, "snapshot not used"),
        }
    }
    None
}

/// When a member's engine takes snapshots.
#[derive(Debug, Clone)]
pub struct Schedule {
    every: u64,
    next_seq: u64,
}

impl Schedule {
    /// Every `every` records (above 0), the first after `from` (the seq the engine starts after).
    pub fn new(every: u64, from: u64) -> Self {
        assert!(every > 0, "snapshots every 0 records");
        Schedule {
            every,
            next_seq: (from / every + 1) * every,
        }
    }

    /// Whether one is due after record `seq`.
    pub fn due(&self, seq: u64) -> bool {
        seq >= self.next_seq
    }

    /// One was taken after record `seq`: the next is due at the next multiple of `every`.
    pub fn taken(&mut self, seq: u64) {
        self.next_seq = (seq / self.every + 1) * self.every;
    }
}

#[cfg(test)]
mod tests {
    use ordo_engine::EngineConfig;
    use ordo_journal::{JournalConfig, JournalWriter};

    use ordo_fix::session::MessageStore;

    use super::*;

    const BOUNDS: WindowBounds = (4, 1024);

    fn journal(dir: &Path, records: u64) -> Vec<(u64, u32)> {
        let mut config = JournalConfig::new(dir);
        config.segment_bytes = 1 << 20;
        let mut w = JournalWriter::open(config).unwrap();
        for i in 1..=records {
            w.append(1_000 + i, 1, format!("record {i}").as_bytes()).unwrap();
        }
        w.publish();
        drop(w);
        let mut r = JournalReader::open_offline(dir, 1).unwrap();
        let mut out = Vec::new();
        while let Some(rec) = r.next().unwrap() {
            out.push((rec.timestamp_ns(), rec.crc()));
        }
        out
    }

    fn image(seq: u64, record: (u64, u32)) -> Image {
        // A small engine: the default one's tables take seconds to hash in a debug build.
        let config = EngineConfig {
            max_orders: 1024,
            max_levels: 1024,
            ..EngineConfig::default()
        };
        let engine = Engine::new(config).unwrap();
        // Session 1 was sent messages 3 and 5 (and admin ones): its window holds them.
        let mut window = ResendWindow::new(4, 1024);
        window.store(3, b"report 3", false);
        window.store(5, b"report 5", false);
        let mut bytes = Vec::new();
        window.encode_into(&mut bytes);
        let empty = || {
            let mut b = Vec::new();
            ResendWindow::new(4, 1024).encode_into(&mut b);
            b
        };
        let sent = |next_sender, window| Sent { next_sender, window };
        Image {
            seq,
            timestamp_ns: record.0,
            record_crc: record.1,
            hash: engine.state_hash(),
            next_in: vec![1, 7, 2],
            sent: vec![sent(1, empty()), sent(9, bytes), sent(2, empty())],
            engine: engine.snapshot(),
        }
    }

    #[test]
    fn a_written_snapshot_loads_back_and_only_the_last_two_stay() {
        let root = tempfile::tempdir().unwrap();
        let records = journal(&root.path().join("journal"), 10);
        let dir = root.path().join(SNAPSHOT_DIR);
        for seq in [3, 6, 9] {
            write(&dir, &image(seq, records[seq as usize - 1])).unwrap();
        }
        let seqs: Vec<u64> = list(&dir).into_iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, [9, 6]);
        let r = load_latest(&dir, &[BOUNDS; 3], &root.path().join("journal")).unwrap();
        assert_eq!(r.image, image(9, records[8]));
        assert_eq!(r.engine.state_hash(), r.image.hash);
        let mut held = Vec::new();
        r.windows[1].fetch(1, 10, &mut |seq, m| held.push((seq, m.to_vec())));
        assert_eq!(held, [(3, b"report 3".to_vec()), (5, b"report 5".to_vec())]);
        assert!(r.windows[0].is_empty() && r.windows[2].is_empty());
    }

    /// Each check refuses with the reason, and the next older snapshot is used instead.
    #[test]
    fn a_damaged_or_foreign_snapshot_is_refused_and_the_older_one_used() {
        let root = tempfile::tempdir().unwrap();
        let jdir = root.path().join("journal");
        let records = journal(&jdir, 10);
        let dir = root.path().join(SNAPSHOT_DIR);
        write(&dir, &image(4, records[3])).unwrap();
        let newest = write(&dir, &image(8, records[7])).unwrap();
        let good = std::fs::read(&newest).unwrap();

        let refused = |bytes: &[u8], sessions: usize| {
            std::fs::write(&newest, bytes).unwrap();
            let bounds = vec![BOUNDS; sessions];
            let e = load(&newest, &bounds, &jdir).err().expect("refused");
            // The older one is used instead (unless it does not fit either).
            let older = (sessions == 3).then_some(4);
            assert_eq!(load_latest(&dir, &bounds, &jdir).map(|r| r.image.seq), older);
            e.to_string()
        };
        let mut flipped = good.clone();
        flipped[40] ^= 1;
        assert!(refused(&flipped, 3).contains("CRC at offset"));
        assert!(refused(&good[..good.len() - 9], 3).contains("CRC"));
        assert!(refused(b"short", 3).contains("shorter than any snapshot"));
        assert!(refused(&good, 4).contains("3 sessions, the configuration has 4"));
        // A window whose messages run backwards.
        let mut backwards = image(8, records[7]);
        let mut w = Vec::new();
        w.extend_from_slice(&0u64.to_le_bytes());
        w.extend_from_slice(&2u32.to_le_bytes());
        for seq in [5u64, 4] {
            w.extend_from_slice(&seq.to_le_bytes());
            w.extend_from_slice(&1u32.to_le_bytes());
            w.push(b'x');
        }
        backwards.sent[1].window = w;
        let e = refused(&backwards.encode(), 3);
        assert!(
            e.contains("session 1's resend window: message 1: MsgSeqNum 4 does not follow 5"),
            "{e}"
        );
        // Another journal's record at seq 8.
        let foreign = image(8, (records[7].0 + 1, records[7].1)).encode();
        assert!(refused(&foreign, 3).contains("the journal's seq 8"));
        // After a seq the journal does not hold.
        let ahead = image(11, records[9]).encode();
        assert!(refused(&ahead, 3).contains("does not hold"));
        // A hash that is not the engine's.
        let mut wrong = image(8, records[7]);
        wrong.hash ^= 1;
        assert!(refused(&wrong.encode(), 3).contains("state hash"));
    }

    /// A file above the bound is refused from its size, before it is read (a sparse file).
    #[test]
    fn a_snapshot_above_the_size_bound_is_refused_unread() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join(file_name(1));
        std::fs::File::create(&path)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        let e = load(&path, &[], &root.path().join("journal"))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("above the bound"), "{e}");
    }

    #[test]
    fn the_schedule_is_due_at_multiples_and_waits_when_put_off() {
        let mut s = Schedule::new(100, 250);
        assert!(!s.due(299));
        assert!(s.due(300));
        // Put off (the member led) until 420: taken there, next at 500.
        s.taken(420);
        assert!(!s.due(499));
        assert!(s.due(500));
    }
}
