//! Checkpoints (`docs/REPLICATION.md`, 3.3): every `every` records each member's engine takes its
//! state hash; the leader's engine proposes its own as a [`Event::Checkpoint`] record, and every
//! member that applies the record compares it with the hash it took at that seq. A member whose
//! hash differs has diverged (non-determinism, or damage the CRCs did not catch): it stops
//! applying and says where and how; the node then stops and refuses to start again as a member
//! until an operator has looked (the `halted` file in its data directory).
//!
//! When a hash is due depends only on the seq, so every member takes it at the same records,
//! whenever it applies them (live, or replaying after a restart).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use ordo_engine::Engine;
use ordo_engine::hash::hex128;

use crate::leader::proposer::LeaderGate;
use crate::leader::sequencing::InboundTx;
use crate::schema::Event;

/// Hashes kept for comparison: a Checkpoint record is proposed right after its seq is applied
/// and committed a few entries later, so it arrives long before 64 more are due.
pub const KEPT: usize = 64;

/// The file a member that diverged writes in its data directory; a member does not start while
/// it is there.
pub const HALTED_FILE: &str = "halted";

/// What a member's engine needs to take and check checkpoints.
#[derive(Clone)]
pub struct CheckpointSpec {
    /// A hash every this many records.
    pub every: u64,
    /// Its gate and sequencer: hashes are proposed while it leads.
    pub leader: Option<(Arc<LeaderGate>, InboundTx)>,
    /// Where the halted file goes.
    pub data_dir: std::path::PathBuf,
}

/// A member's checkpoints.
pub struct Checkpoints {
    every: u64,
    next_seq: u64,
    own: VecDeque<(u64, u128)>,
    /// While this member leads, its hashes are proposed through its sequencer.
    leader: Option<(Arc<LeaderGate>, InboundTx)>,
}

/// A hash that differs from the recorded one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state hash mismatch at seq {seq}: ours {ours}, the leader's {recorded}")]
pub struct Mismatch {
    /// The record the hashes were taken after.
    pub seq: u64,
    /// This member's.
    pub ours: String,
    /// The one in the log.
    pub recorded: String,
}

impl Checkpoints {
    /// A hash every `every` records (above 0); proposed through `leader` while it leads.
    pub fn new(every: u64, leader: Option<(Arc<LeaderGate>, InboundTx)>) -> Self {
        assert!(every > 0, "checkpoints every 0 records");
        Checkpoints {
            every,
            next_seq: every,
            own: VecDeque::with_capacity(KEPT),
            leader,
        }
    }

    /// The engine starts after `seq`, restored from a snapshot whose state hash is `hash`: that
    /// hash stands for the one it would have taken at `seq`, and the next is due after it.
    pub fn resume(&mut self, seq: u64, hash: u128) {
        if seq.is_multiple_of(self.every) {
            self.own.push_back((seq, hash));
        }
        self.next_seq = (seq / self.every + 1) * self.every;
    }

    /// After record `seq` was applied: takes the hash when one is due, and proposes it while
    /// this member leads, on the safety lane (a full order lane does not drop it; only a
    /// previous checkpoint not yet taken does, with a log line: the next one is due `every`
    /// records later).
    pub fn after(&mut self, seq: u64, engine: &Engine) {
        if seq < self.next_seq {
            return;
        }
        self.next_seq = (seq / self.every + 1) * self.every;
        let started = std::time::Instant::now();
        let hash = engine.state_hash();
        tracing::debug!(
            seq,
            us = started.elapsed().as_micros() as u64,
            "checkpoint: state hash taken"
        );
        if self.own.len() == KEPT {
            self.own.pop_front();
        }
        self.own.push_back((seq, hash));
        let Some((gate, inbound)) = &self.leader else {
            return;
        };
        if gate.term() == 0 {
            return;
        }
        let record = Event::Checkpoint {
            seq,
            hash_hi: (hash >> 64) as u64,
            hash_lo: hash as u64,
        };
        if inbound.send_checkpoint(record).is_err() {
            tracing::warn!(
                seq,
                "checkpoint not proposed: the previous one is not yet sequenced"
            );
        }
    }

    /// A Checkpoint record: Err if this member's hash at `seq` differs. A seq this member took
    /// no hash at (older than the last [`KEPT`], or not due under its `every`) is not compared.
    pub fn check(&self, seq: u64, hash_hi: u64, hash_lo: u64) -> Result<(), Mismatch> {
        let recorded = (u128::from(hash_hi) << 64) | u128::from(hash_lo);
        match self.own.iter().find(|(s, _)| *s == seq) {
            Some((_, ours)) if *ours != recorded => Err(Mismatch {
                seq,
                ours: hex128(*ours),
                recorded: hex128(recorded),
            }),
            Some(_) => {
                tracing::info!(seq, "checkpoint: state hash agrees");
                Ok(())
            }
            None => {
                tracing::debug!(seq, "checkpoint not compared: no hash of ours at that seq");
                Ok(())
            }
        }
    }
}

/// Writes the halted file (the mismatch, for the operator) in `data_dir`.
pub fn halt(data_dir: &Path, why: &Mismatch) {
    let path = data_dir.join(HALTED_FILE);
    if let Err(e) = std::fs::write(&path, format!("{why}\n")) {
        tracing::error!(path = %path.display(), %e, "could not write the halted file");
    }
}

/// Err with the halted file's text if this data directory's member diverged before.
pub fn refuse_if_halted(data_dir: &Path) -> Result<(), String> {
    let path = data_dir.join(HALTED_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Err(format!(
            "{} says this member diverged from the cluster ({}); it does not start until an operator removes the file",
            path.display(),
            text.trim()
        )),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use ordo_engine::EngineConfig;

    use super::*;

    /// The last [`KEPT`] hashes are compared; an older seq, or one no hash was due at, is not.
    #[test]
    fn the_last_kept_hashes_are_compared_and_older_ones_are_not() {
        let engine = Engine::new(EngineConfig::default()).unwrap();
        let wrong = |c: &Checkpoints, seq| c.check(seq, 0xdead, 0xbeef);
        let mut c = Checkpoints::new(2, None);
        for seq in 1..=(2 * KEPT as u64 + 2) {
            c.after(seq, &engine);
        }
        // Due at 2, 4, ..., 130: 65 hashes taken, the first (seq 2) dropped at the bound.
        assert_eq!(c.own.len(), KEPT);
        assert!(wrong(&c, 2).is_ok(), "seq 2 is beyond the last {KEPT}");
        assert!(wrong(&c, 3).is_ok(), "no hash is due at an odd seq");
        assert_eq!(wrong(&c, 4).unwrap_err().seq, 4);
        let last = 2 * KEPT as u64 + 2;
        assert_eq!(wrong(&c, last).unwrap_err().seq, last);
        let ours = engine.state_hash();
        assert_eq!(c.check(last, (ours >> 64) as u64, ours as u64), Ok(()));
    }
}
