//! The member's vote, overwritten in place (`DIR/raft/vote.slots`).
//!
//! openraft's core waits while a vote is saved: no heartbeat, vote or append runs meanwhile.
//! The first design wrote a new file and renamed it over the old one. That takes directory
//! and inode updates in ext4's journal, and under load they waited behind its commits: votes
//! were measured taking 130-650 ms, and the candidates' election timers ran out again while
//! they waited (five terms in one failover). So the file is created once, and a vote is one
//! `pwrite` of a slot into blocks that are already allocated, plus an `fdatasync` when the
//! journal's policy fsyncs.
//!
//! Two slots, used in turn. A slot holds a counter, the vote and a CRC. The newest valid slot
//! is the vote. A write torn by a crash leaves the other slot, which holds the vote before it:
//! that vote was never acted on (a vote is answered only once saved), so reading it is as if
//! the new vote was never cast.
//!
//! Slot layout (little-endian): magic `u32`, counter `u64`, length `u16`, the vote (bincode,
//! at most [`VOTE_MAX_BYTES`]), CRC32 of everything before it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::types::Vote;

/// The file's name in the raft directory.
pub const SLOTS_FILE: &str = "vote.slots";
/// The vote file of the first design (read once to carry its vote over, then removed).
const LEGACY_FILE: &str = "vote";
/// Bytes per slot: one sector, so that a slot is written whole or not at all on most disks.
const SLOT_BYTES: usize = 512;
/// Largest encoded vote (a vote is ~30 bytes).
pub const VOTE_MAX_BYTES: usize = 256;
const MAGIC: u32 = 0x4554_4f56; // "VOTE"
const HEADER_BYTES: usize = 4 + 8 + 2;

/// Why the vote cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("vote file {path}: {reason}")]
pub struct VoteFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

/// The open vote file.
#[derive(Debug)]
pub struct VoteFile {
    path: PathBuf,
    file: File,
    /// The counter of the newest slot (0: no vote yet).
    counter: u64,
    vote: Option<Vote>,
    fsync: bool,
}

impl VoteFile {
    /// Opens (creating, allocated and synced, if needed) the vote file in `raft_dir`; carries
    /// a vote of the first design's file over. `fsync`: sync each vote (the journal fsyncs).
    pub fn open(raft_dir: &Path, fsync: bool) -> Result<VoteFile, VoteFileError> {
        let path = raft_dir.join(SLOTS_FILE);
        let fail = |reason: String| VoteFileError {
            path: path.clone(),
            reason,
        };
        let created = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| fail(format!("open: {e}")))?;
        if created {
            // Both slots written once (zeros: no valid slot), so a vote never allocates.
            file.write_all_at(&[0u8; 2 * SLOT_BYTES], 0)
                .and_then(|()| file.sync_all())
                .and_then(|()| File::open(raft_dir)?.sync_all())
                .map_err(|e| fail(format!("create: {e}")))?;
        }
        let mut me = VoteFile {
            path: path.clone(),
            file,
            counter: 0,
            vote: None,
            fsync,
        };
        me.read_slots()?;
        let legacy = raft_dir.join(LEGACY_FILE);
        if me.vote.is_none() && legacy.exists() {
            let bytes =
                std::fs::read(&legacy).map_err(|e| fail(format!("read {}: {e}", legacy.display())))?;
            let vote: Vote = bincode::deserialize(&bytes)
                .map_err(|e| fail(format!("{}: not a vote: {e}", legacy.display())))?;
            me.save(&vote)?;
            // Saved in the slots first (synced whatever the policy: once), then dropped.
            me.file.sync_data().map_err(|e| fail(format!("fsync: {e}")))?;
            std::fs::remove_file(&legacy).map_err(|e| fail(format!("remove {}: {e}", legacy.display())))?;
        }
        Ok(me)
    }

    /// The vote saved last, if any.
    pub fn vote(&self) -> Option<Vote> {
        self.vote
    }

    /// Saves `vote` into the older slot.
    pub fn save(&mut self, vote: &Vote) -> Result<(), VoteFileError> {
        let fail = |reason: String| VoteFileError {
            path: self.path.clone(),
            reason,
        };
        let counter = self.counter + 1;
        let slot = encode_slot(counter, vote).map_err(fail)?;
        let offset = (counter % 2) * SLOT_BYTES as u64;
        self.file
            .write_all_at(&slot, offset)
            .map_err(|e| fail(format!("write: {e}")))?;
        if self.fsync {
            self.file.sync_data().map_err(|e| fail(format!("fsync: {e}")))?;
        }
        self.counter = counter;
        self.vote = Some(*vote);
        Ok(())
    }

    fn read_slots(&mut self) -> Result<(), VoteFileError> {
        let mut bytes = [0u8; 2 * SLOT_BYTES];
        self.file
            .read_exact_at(&mut bytes, 0)
            .map_err(|e| VoteFileError {
                path: self.path.clone(),
                reason: format!("read: {e} (expected {} bytes)", bytes.len()),
            })?;
        let newest = bytes
            .chunks_exact(SLOT_BYTES)
            .filter_map(decode_slot)
            .max_by_key(|(counter, _)| *counter);
        if let Some((counter, vote)) = newest {
            self.counter = counter;
            self.vote = Some(vote);
        }
        Ok(())
    }
}

fn encode_slot(counter: u64, vote: &Vote) -> Result<[u8; SLOT_BYTES], String> {
    let body = bincode::serialize(vote).map_err(|e| format!("encode: {e}"))?;
    if body.len() > VOTE_MAX_BYTES {
        return Err(format!("vote of {} bytes, above {VOTE_MAX_BYTES}", body.len()));
    }
    let mut slot = [0u8; SLOT_BYTES];
    slot[..4].copy_from_slice(&MAGIC.to_le_bytes());
    slot[4..12].copy_from_slice(&counter.to_le_bytes());
    slot[12..14].copy_from_slice(&(body.len() as u16).to_le_bytes());
    let end = HEADER_BYTES + body.len();
    slot[HEADER_BYTES..end].copy_from_slice(&body);
    let crc = crc32fast::hash(&slot[..end]);
    slot[end..end + 4].copy_from_slice(&crc.to_le_bytes());
    Ok(slot)
}

/// A slot's counter and vote; None for an empty, torn or damaged slot.
fn decode_slot(slot: &[u8]) -> Option<(u64, Vote)> {
    if slot[..4] != MAGIC.to_le_bytes() {
        return None;
    }
    let counter = u64::from_le_bytes(slot[4..12].try_into().ok()?);
    let len = u16::from_le_bytes(slot[12..14].try_into().ok()?) as usize;
    if len > VOTE_MAX_BYTES {
        return None;
    }
    let end = HEADER_BYTES + len;
    let crc = u32::from_le_bytes(slot[end..end + 4].try_into().ok()?);
    if crc32fast::hash(&slot[..end]) != crc {
        return None;
    }
    bincode::deserialize(&slot[HEADER_BYTES..end])
        .ok()
        .map(|v| (counter, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_vote_is_read_back_and_a_torn_slot_leaves_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = VoteFile::open(dir.path(), false).unwrap();
        assert_eq!(f.vote(), None);
        for term in 1..=5 {
            f.save(&Vote::new(term, 2)).unwrap();
        }
        drop(f);
        let f = VoteFile::open(dir.path(), true).unwrap();
        assert_eq!(f.vote(), Some(Vote::new(5, 2)));
        // The newest slot (counter 5: at offset 512) torn by a crash: the vote before it.
        let raw = OpenOptions::new()
            .write(true)
            .open(dir.path().join(SLOTS_FILE))
            .unwrap();
        raw.write_all_at(&[0xAB; 40], SLOT_BYTES as u64 + 10).unwrap();
        drop(f);
        let mut f = VoteFile::open(dir.path(), false).unwrap();
        assert_eq!(f.vote(), Some(Vote::new(4, 2)));
        // The next vote goes over the torn slot, and is the newest.
        f.save(&Vote::new(6, 3)).unwrap();
        drop(f);
        assert_eq!(
            VoteFile::open(dir.path(), false).unwrap().vote(),
            Some(Vote::new(6, 3))
        );
    }

    #[test]
    fn a_vote_of_the_first_design_is_carried_over() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join(LEGACY_FILE);
        std::fs::write(&legacy, bincode::serialize(&Vote::new(7, 1)).unwrap()).unwrap();
        let f = VoteFile::open(dir.path(), false).unwrap();
        assert_eq!(f.vote(), Some(Vote::new(7, 1)));
        assert!(!legacy.exists());
        drop(f);
        assert_eq!(
            VoteFile::open(dir.path(), false).unwrap().vote(),
            Some(Vote::new(7, 1))
        );
        // Garbage where the old vote was is an error naming the file, not an empty vote.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEGACY_FILE), b"\xff").unwrap();
        let e = VoteFile::open(dir.path(), false).unwrap_err();
        assert!(e.reason.contains("not a vote"), "{e}");
    }
}
