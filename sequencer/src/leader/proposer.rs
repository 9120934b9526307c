//! The sequencer's way into the replicated log on a cluster member (`docs/REPLICATION.md`, 3.2,
//! 4.1): the records of one duty cycle become one raft entry ([`Batch`]), proposed through
//! openraft in stamp order, with at most `max_in_flight_entries` (the cluster file's; at most
//! [`MAX_IN_FLIGHT_ENTRIES`]) proposed and not yet answered. Nothing here acknowledges anything: outputs leave when the engine agent has
//! applied the committed records (`crate::member::engine_runner`, member mode).
//!
//! * [`LeaderGate`]: what the role watch tells the sequencer (lead in term T from this floor, or
//!   do not lead).
//! * [`Proposer`]: the sequencer's side: builds the entry, hands it to the proposing task.
//! * [`spawn`]: the proposing task (one, so entries reach raft in the order they were stamped:
//!   the journal refuses a timestamp below the previous record's) and the task that collects
//!   the answers in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use ordo_replica::batch::{Batch, MAX_BATCH_BYTES};
use ordo_replica::types::Raft;
use tokio::sync::{mpsc, oneshot};

use crate::leader::sequencing::Bell;
use crate::schema::{Event, KIND_EVENT};

/// Entries proposed and not yet answered, at most, whatever the cluster file says. At the
/// member's bound the sequencer takes no input (it waits in the lanes and joins the next entry;
/// a full order lane answers "system busy").
pub use ordo_replica::cluster_file::MAX_IN_FLIGHT_ENTRIES;

/// Entries one duty cycle can propose at most (its inputs over several entries).
const ENTRIES_PER_CYCLE: usize = 32;

/// What the member's role tells its sequencer: whether to lead, in which term, and from which
/// timestamp on. Written by the role watch, read by the sequencer once per duty cycle. Also
/// where a leader transfer holds the sequencer (`docs/REPLICATION.md`, 4.3).
#[derive(Debug, Default)]
pub struct LeaderGate {
    /// The term this member leads in; 0 when it does not lead.
    term: AtomicU64,
    /// The log's last timestamp when leadership began: the new leader stamps from here on.
    floor_ns: AtomicU64,
    /// The log held no event when leadership began: the genesis records come first.
    fresh: AtomicBool,
    /// A leader transfer asks the sequencer to take no input (inputs wait in their lanes).
    hold: AtomicBool,
    /// The sequencer has seen `hold` at the start of a duty cycle: it proposes nothing more.
    held: AtomicBool,
    /// Entries proposed and not yet answered.
    in_flight: AtomicUsize,
}

/// How often a transfer looks whether the sequencer has gone quiet.
const QUIET_POLL: Duration = Duration::from_millis(1);

/// A change of leadership the sequencer acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lead {
    /// Leading in the same term as before (or still not leading).
    Same,
    /// Leading from now on, in `term`.
    Began {
        /// The term.
        term: u64,
        /// Stamp nothing before it.
        floor_ns: u64,
        /// Propose the genesis records first.
        fresh: bool,
    },
    /// No longer leading.
    Ended,
}

impl LeaderGate {
    /// Leads in `term`: the log ends at `floor_ns` and holds an event unless `fresh`.
    pub fn lead(&self, term: u64, floor_ns: u64, fresh: bool) {
        assert!(term > 0, "terms start at 1");
        self.floor_ns.store(floor_ns, Ordering::Relaxed);
        self.fresh.store(fresh, Ordering::Relaxed);
        self.release();
        // Release: a sequencer that reads the term reads the floor and freshness stored above.
        self.term.store(term, Ordering::Release);
    }

    /// Leads no more. A transfer's hold ends with the leadership.
    pub fn step_down(&self) {
        self.term.store(0, Ordering::Release);
        self.release();
    }

    /// Asks the sequencer to take no more input (a leader transfer); see [`Self::quiet`].
    pub fn hold(&self) {
        self.hold.store(true, Ordering::Release);
    }

    /// The sequencer takes input again.
    pub fn release(&self) {
        self.hold.store(false, Ordering::Release);
        self.held.store(false, Ordering::Release);
    }

    /// Whether the sequencer is asked to take no input.
    pub fn holding(&self) -> bool {
        self.hold.load(Ordering::Acquire)
    }

    /// The sequencer's acknowledgement of [`Self::hold`], at the start of a duty cycle (the
    /// cycle before has proposed all it built).
    pub fn note_held(&self) {
        self.held.store(true, Ordering::Release);
    }

    /// Entries proposed and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Waits (at most `within`) until the sequencer holds and every proposal is answered:
    /// the leader's log no longer grows. `bell` wakes the sequencer to see the hold.
    pub async fn quiet(&self, bell: &Bell, within: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        bell.ring();
        while !(self.held.load(Ordering::Acquire) && self.in_flight() == 0) {
            if self.term() == 0 {
                return Err("leadership ended".into());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the sequencer did not go quiet within {} ms ({} entries unanswered)",
                    within.as_millis(),
                    self.in_flight()
                ));
            }
            tokio::time::sleep(QUIET_POLL).await;
        }
        Ok(())
    }

    /// The term led in, 0 if none.
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }

    /// What changed since the sequencer last led in `term` (0: was not leading).
    pub fn observe(&self, term: u64) -> Lead {
        match self.term.load(Ordering::Acquire) {
            now if now == term => Lead::Same,
            0 => Lead::Ended,
            now => Lead::Began {
                term: now,
                floor_ns: self.floor_ns.load(Ordering::Relaxed),
                fresh: self.fresh.load(Ordering::Relaxed),
            },
        }
    }
}

/// One entry on its way to raft: its records and who waits for the seq of which record.
pub(crate) struct Proposal {
    batch: Batch,
    /// (record index in the batch, waiter).
    tracked: Vec<(u32, oneshot::Sender<u64>)>,
}

/// The sequencer's side of the proposing task.
pub struct Proposer {
    gate: Arc<LeaderGate>,
    /// The term the sequencer leads in (0: not leading).
    term: u64,
    tx: mpsc::Sender<Proposal>,
    max_in_flight: usize,
    batch: Batch,
    tracked: Vec<(u32, oneshot::Sender<u64>)>,
    /// Reused for each event's archive (no allocation per record once warm).
    scratch: rkyv::util::AlignedVec,
}

impl Proposer {
    /// The gate it follows.
    pub fn gate(&self) -> &LeaderGate {
        &self.gate
    }

    /// The term it proposes in (0: none).
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Notes a change of leadership seen through the gate.
    pub fn set_term(&mut self, term: u64) {
        self.term = term;
        if term == 0 {
            // A batch being built for a term that ended is dropped with its waiters.
            self.batch = Batch::default();
            self.tracked.clear();
        }
    }

    /// Whether another entry may be proposed now.
    pub fn has_room(&self) -> bool {
        self.gate.in_flight() < self.max_in_flight
    }

    /// Adds `event`, stamped `ts`, to the entry being built; `reply` gets its journal seq once
    /// the entry is committed.
    pub fn push(
        &mut self,
        ts: u64,
        event: &Event,
        reply: Option<oneshot::Sender<u64>>,
    ) -> Result<(), String> {
        let buf = std::mem::take(&mut self.scratch);
        let mut buf = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(event, buf)
            .map_err(|e| format!("encode event: {e}"))?;
        if self.batch.bytes_len() + buf.len() + 64 > MAX_BATCH_BYTES {
            self.flush()?;
        }
        let index = self.batch.len();
        self.batch
            .push(ts, KIND_EVENT, &buf)
            .map_err(|e| format!("entry: {e}"))?;
        if let Some(reply) = reply {
            self.tracked.push((index, reply));
        }
        buf.clear();
        self.scratch = buf;
        Ok(())
    }

    /// Adds a record of another kind than an event (a session message) to the entry.
    pub fn push_raw(&mut self, ts: u64, kind: u16, payload: &[u8]) -> Result<(), String> {
        if self.batch.bytes_len() + payload.len() + 64 > MAX_BATCH_BYTES {
            self.flush()?;
        }
        self.batch
            .push(ts, kind, payload)
            .map_err(|e| format!("entry: {e}"))
    }

    /// Proposes the entry built so far, if it holds anything.
    pub fn flush(&mut self) -> Result<(), String> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let proposal = Proposal {
            batch: std::mem::take(&mut self.batch),
            tracked: std::mem::take(&mut self.tracked),
        };
        // Counted before it is sent: the channel holds the bound plus what one cycle can add
        // (the sequencer checks `has_room` before taking input), so it is never full here.
        self.gate.in_flight.fetch_add(1, Ordering::AcqRel);
        self.tx.try_send(proposal).map_err(|e| {
            self.gate.in_flight.fetch_sub(1, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => "proposals beyond their bound".to_string(),
                mpsc::error::TrySendError::Closed(_) => "raft stopped".to_string(),
            }
        })
    }
}

#[cfg(test)]
impl Proposal {
    /// The entry's records.
    pub(crate) fn batch(&self) -> &Batch {
        &self.batch
    }
}

#[cfg(test)]
impl Proposer {
    /// A proposer whose proposals come out of the returned receiver (at most `capacity`
    /// waiting) instead of going to raft: tests read what is proposed. Nothing answers them,
    /// so at most `MAX_IN_FLIGHT_ENTRIES` entries are proposed (the tests propose a few).
    pub(crate) fn detached(gate: Arc<LeaderGate>, capacity: usize) -> (Proposer, mpsc::Receiver<Proposal>) {
        let (tx, rx) = mpsc::channel(capacity);
        let proposer = Proposer {
            gate,
            term: 0,
            tx,
            max_in_flight: MAX_IN_FLIGHT_ENTRIES,
            batch: Batch::default(),
            tracked: Vec::new(),
            scratch: rkyv::util::AlignedVec::new(),
        };
        (proposer, rx)
    }
}

/// Starts the proposing task and the answer collector on `runtime` (the consensus runtime);
/// returns the sequencer's side. `bell` wakes the sequencer when an answer frees room.
pub fn spawn(
    runtime: &tokio::runtime::Handle,
    raft: Raft,
    gate: Arc<LeaderGate>,
    bell: Bell,
    max_in_flight: usize,
) -> Proposer {
    assert!((1..=MAX_IN_FLIGHT_ENTRIES).contains(&max_in_flight));
    // Room beyond the bound: after `has_room` said yes, one duty cycle may flush more than one
    // entry (its inputs fill an entry's 128 KiB: at most 256 inputs of at most ~8 KiB, so fewer
    // than `ENTRIES_PER_CYCLE`).
    let (tx, rx) = mpsc::channel::<Proposal>(MAX_IN_FLIGHT_ENTRIES + ENTRIES_PER_CYCLE);
    let (answers_tx, answers_rx) = mpsc::channel(MAX_IN_FLIGHT_ENTRIES + ENTRIES_PER_CYCLE);
    runtime.spawn(propose(raft, rx, answers_tx, Arc::clone(&gate), bell.clone()));
    runtime.spawn(collect(answers_rx, Arc::clone(&gate), bell));
    Proposer {
        gate,
        term: 0,
        tx,
        max_in_flight,
        batch: Batch::default(),
        tracked: Vec::new(),
        scratch: rkyv::util::AlignedVec::new(),
    }
}

/// What openraft answers a proposal with, and who waits for it.
type Answer = (
    oneshot::Receiver<ordo_replica::types::ClientWriteResult>,
    Vec<(u32, oneshot::Sender<u64>)>,
);

/// Hands proposals to raft, one at a time and in order (each `client_write_ff` returns once raft
/// has taken the entry, before it is appended: several are in flight).
async fn propose(
    raft: Raft,
    mut rx: mpsc::Receiver<Proposal>,
    answers: mpsc::Sender<Answer>,
    gate: Arc<LeaderGate>,
    bell: Bell,
) {
    while let Some(p) = rx.recv().await {
        match raft.client_write_ff(p.batch).await {
            Ok(answer) => {
                if answers.send((answer, p.tracked)).await.is_err() {
                    return;
                }
            }
            Err(fatal) => {
                tracing::error!(%fatal, "raft stopped: proposal dropped");
                gate.in_flight.fetch_sub(1, Ordering::AcqRel);
                bell.ring();
            }
        }
    }
}

/// Collects raft's answers in proposal order: frees a slot per answer and tells waiters the
/// seq of their record. A proposal refused because this member no longer leads is dropped: its
/// inputs were never committed and nobody was told anything about them (`docs/REPLICATION.md`,
/// 8.3).
async fn collect(mut rx: mpsc::Receiver<Answer>, gate: Arc<LeaderGate>, bell: Bell) {
    while let Some((answer, tracked)) = rx.recv().await {
        match answer.await {
            Ok(Ok(written)) => {
                for (index, reply) in tracked {
                    let _ = reply.send(written.data.entry_seq + 1 + u64::from(index));
                }
            }
            Ok(Err(e)) => tracing::debug!(%e, "proposal not committed"),
            Err(_) => tracing::debug!("proposal dropped by raft"),
        }
        gate.in_flight.fetch_sub(1, Ordering::AcqRel);
        bell.ring();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bell() -> Bell {
        let (tx, _rx) = crate::leader::sequencing::inbound_channel(16, 1, None);
        tx.bell()
    }

    /// A transfer's wait for the sequencer to go quiet is bounded: an entry never answered (no
    /// quorum) makes it give up at `within`, naming what is unanswered; an answered one lets it
    /// through; leadership ending ends it at once.
    #[tokio::test]
    async fn going_quiet_is_bounded_and_says_what_is_unanswered() {
        let gate = LeaderGate::default();
        gate.lead(1, 0, false);
        gate.hold();
        gate.note_held();
        gate.in_flight.store(1, Ordering::Release);
        let within = Duration::from_millis(30);
        let refused = gate.quiet(&bell(), within).await;
        assert_eq!(
            refused,
            Err("the sequencer did not go quiet within 30 ms (1 entries unanswered)".to_string())
        );
        gate.in_flight.store(0, Ordering::Release);
        assert_eq!(gate.quiet(&bell(), within).await, Ok(()));
        gate.in_flight.store(1, Ordering::Release);
        gate.step_down();
        assert_eq!(
            gate.quiet(&bell(), Duration::from_secs(3600)).await,
            Err("leadership ended".to_string())
        );
    }

    /// At the proposal channel's bound (which the sequencer's `has_room` check keeps it from
    /// reaching), a flush is an error with the reason, never a silent drop: the entry is not
    /// proposed (nothing in it was acknowledged), the in-flight count is not left raised, and
    /// the sequencer's error stops the pipeline and so the node.
    #[test]
    fn a_flush_beyond_the_channel_bound_is_an_error() {
        let gate = Arc::new(LeaderGate::default());
        let (mut proposer, mut rx) = Proposer::detached(Arc::clone(&gate), 1);
        proposer.set_term(1);
        let raw = |p: &mut Proposer| p.push_raw(1, crate::schema::KIND_SESSION_OUT, b"message");
        raw(&mut proposer).unwrap();
        proposer.flush().unwrap();
        assert_eq!(gate.in_flight(), 1);
        raw(&mut proposer).unwrap();
        assert_eq!(proposer.flush(), Err("proposals beyond their bound".to_string()));
        assert_eq!(gate.in_flight(), 1, "the refused entry is not counted");
        assert!(rx.try_recv().is_ok(), "the first entry was proposed");
        assert!(rx.try_recv().is_err(), "nothing else was");
        drop(rx);
        raw(&mut proposer).unwrap();
        assert_eq!(proposer.flush(), Err("raft stopped".to_string()));
    }
}
