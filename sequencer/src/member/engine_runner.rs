//! The engine thread: tails the journal (up to the written position), applies every record to
//! the engine in sequence order, and turns the outputs into messages for the sessions. Outputs
//! of record N leave only once N is durable under the journal's policy: an ExecutionReport is
//! never sent for an input that a crash could lose.
//!
//! On start it replays the journal from the beginning, or on a cluster member from its newest
//! snapshot (`crate::member::snapshot`) on, and regenerates every output of every record it
//! applies: the router numbers them and fills the resend windows, as the leader did when they
//! were first sent (no connection is bound during a start, so nothing goes out twice;
//! `docs/REPLICATION.md`, 6.1a).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ordo_engine::output::RejectedOrder;
use ordo_engine::{CancelReason, ClOrdId, Command, Engine, OrderView, Output, Reason};
use ordo_journal::{JournalReader, Positions, ReadLimit};
use ordo_replica::entry::KIND_ENTRY;
use tokio::sync::mpsc;

use crate::schema::{self, Event};

/// What a session receives from the engine.
#[derive(Debug, Clone)]
pub enum OutMsg {
    /// An ExecutionReport about an order.
    Exec {
        /// ExecType (150).
        exec_type: u8,
        /// The order after the event.
        view: OrderView,
        /// LastPx (ticks) and LastQty (lots) for trades.
        last: Option<(i64, u64)>,
        /// ClOrdID to report (the cancel request's, for a requested cancel), if not the order's.
        clordid: Option<ClOrdId>,
        /// OrigClOrdID, for cancels and replaces.
        orig_clordid: Option<ClOrdId>,
        /// Why (cancels, restatements).
        cancel_reason: Option<CancelReason>,
    },
    /// An ExecutionReport rejecting a new order.
    Rejected {
        /// The request.
        order: RejectedOrder,
        /// Why.
        reason: Reason,
    },
    /// OrderCancelReject (35=9).
    CancelReject {
        /// The request's ClOrdID.
        clordid: ClOrdId,
        /// OrigClOrdID.
        orig_clordid: ClOrdId,
        /// The order, if found (0 if not).
        order_id: u64,
        /// A replace (434=2) or a cancel (434=1).
        is_replace: bool,
        /// Why.
        reason: Reason,
    },
    /// OrderMassCancelReport (35=r).
    MassCancel {
        /// The request's ClOrdID.
        clordid: ClOrdId,
        /// The instrument the request named (MassCancelRequestType 1), or None (type 7: all).
        instrument: Option<u32>,
        /// Orders cancelled.
        cancelled: u32,
        /// Refused, and why.
        rejected: Option<Reason>,
    },
    /// The answer to an OrderStatusRequest (ExecType I).
    Status {
        /// The order, if known to this session: live, or finished and still kept by the
        /// engine (its last `max_orders` to finish).
        view: Option<OrderView>,
        /// The order finished by expiring (OrdStatus C).
        expired: bool,
        /// The ClOrdID asked about.
        clordid: ClOrdId,
        /// OrdStatusReqID, empty if none.
        request: ClOrdId,
    },
    /// The result of an operator command (admin channel).
    Admin {
        /// Done, or refused with a reason.
        result: Result<(), Reason>,
    },
    /// A session message the session decided to send (`schema::SessionOut`), committed: it
    /// takes its number now.
    SessionOut {
        /// The connection it was decided on.
        connection: u64,
        /// MsgType.
        msg_type: Box<[u8]>,
        /// Its fields after the standard header.
        fields: Box<[u8]>,
    },
    /// The session's sequence numbers were reset (a Logon with ResetSeqNumFlag), committed.
    Reset,
    /// A follower's snapshot after this record, for the router to write once it has stored
    /// every message before it (`crate::member::snapshot`).
    Snapshot(Box<crate::member::snapshot::Image>),
    /// This member's Takeover record (`schema::Event::Takeover`): every record before it is
    /// applied. `next_in`: per session, the next inbound MsgSeqNum the committed log implies.
    Takeover {
        /// The term that began.
        term: u64,
        /// Per session id.
        next_in: Box<[u64]>,
    },
}

/// One message for one session, with where it came from.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Session id.
    pub session: u32,
    /// Journal sequence number of the input.
    pub origin_seq: u64,
    /// Index of the output within that input's outputs (two per fill: buy, sell).
    pub origin_idx: u32,
    /// The input's timestamp (TransactTime).
    pub timestamp_ns: u64,
    /// The message.
    pub msg: OutMsg,
}

/// Engine thread settings.
pub struct EngineRunner {
    /// Journal directory.
    pub dir: std::path::PathBuf,
    /// Configured sessions (the admin pseudo-session and the node's come after them).
    pub sessions: usize,
    /// The admin pseudo-session id.
    pub admin_session: u32,
    /// Outputs held until durable, at most (then the thread waits for durability).
    pub max_held: usize,
    /// How far the engine reads: `Committed` on every node (everything it reads a majority
    /// holds: outputs may leave at once; a single node is a cluster of one); `Written` only in
    /// this module's tests of a bare journal (outputs then wait for `durable`).
    pub read_limit: ReadLimit,
    /// The member's checkpoints (`crate::member::checkpoint`); None when the cluster file turns
    /// them off.
    pub checkpoints: Option<crate::member::checkpoint::CheckpointSpec>,
    /// The member's snapshots; None when the cluster file turns them off.
    pub snapshots: Option<SnapshotSpec>,
    /// The snapshot the engine starts from (`SnapshotSpec::restore`); None: the first record.
    pub restored: Option<crate::member::snapshot::Restored>,
}

/// When and where a member's engine takes snapshots, and what it restarts from.
#[derive(Clone)]
pub struct SnapshotSpec {
    /// One every this many records (above 0).
    pub every: u64,
    /// The snapshot directory (the restart reads the newest good one there).
    pub dir: std::path::PathBuf,
    /// While this member leads (its term above 0), snapshots are put off: encoding one stalls
    /// the agent, which on a leader shares the sequencer's thread.
    pub gate: Arc<crate::leader::proposer::LeaderGate>,
}

impl SnapshotSpec {
    /// The newest good snapshot in `dir` for sessions with these resend window bounds and
    /// the journal `journal_dir`.
    pub fn restore(
        &self,
        windows: &[crate::member::snapshot::WindowBounds],
        journal_dir: &std::path::Path,
    ) -> Option<crate::member::snapshot::Restored> {
        crate::member::snapshot::load_latest(&self.dir, windows, journal_dir)
    }
}

fn route(
    out: &Output,
    input: &Event,
    seq: u64,
    ts: u64,
    idx: &mut u32,
    admin_session: u32,
    emit: &mut impl FnMut(Outbound),
) {
    let mut send = |session: u32, msg: OutMsg| {
        emit(Outbound {
            session,
            origin_seq: seq,
            origin_idx: *idx,
            timestamp_ns: ts,
            msg,
        });
        *idx += 1;
    };
    let exec = |exec_type: u8, view: OrderView| OutMsg::Exec {
        exec_type,
        view,
        last: None,
        clordid: None,
        orig_clordid: None,
        cancel_reason: None,
    };
    match *out {
        Output::Ack(v) => send(v.session, exec(b'0', v)),
        Output::Reject { order, reason } => send(order.session, OutMsg::Rejected { order, reason }),
        Output::Fill {
            price,
            qty,
            buy,
            sell,
            ..
        } => {
            for v in [buy, sell] {
                send(
                    v.session,
                    OutMsg::Exec {
                        exec_type: b'F',
                        view: v,
                        last: Some((price, qty)),
                        clordid: None,
                        orig_clordid: None,
                        cancel_reason: None,
                    },
                );
            }
        }
        Output::Cancelled { order, reason, .. } => {
            // A requested cancel is answered with the request's ClOrdID and the order's as
            // OrigClOrdID; other cancels (IOC remainder, kill switch...) are unsolicited.
            let (clordid, orig) = match (reason, input) {
                (
                    CancelReason::User,
                    Event::Command {
                        command: Command::Cancel(c),
                        session,
                        ..
                    },
                ) if *session == order.session => (Some(c.clordid), Some(order.clordid)),
                _ => (None, None),
            };
            send(
                order.session,
                OutMsg::Exec {
                    exec_type: b'4',
                    view: order,
                    last: None,
                    clordid,
                    orig_clordid: orig,
                    cancel_reason: Some(reason),
                },
            );
        }
        Output::Replaced { order, orig_clordid } => send(
            order.session,
            OutMsg::Exec {
                exec_type: b'5',
                view: order,
                last: None,
                clordid: None,
                orig_clordid: Some(orig_clordid),
                cancel_reason: None,
            },
        ),
        Output::Restated { order, reason, .. } => send(
            order.session,
            OutMsg::Exec {
                exec_type: b'D',
                view: order,
                last: None,
                clordid: None,
                orig_clordid: None,
                cancel_reason: Some(reason),
            },
        ),
        Output::CancelReject {
            session,
            clordid,
            orig_clordid,
            order_id,
            is_replace,
            reason,
        } => send(
            session,
            OutMsg::CancelReject {
                clordid,
                orig_clordid,
                order_id,
                is_replace,
                reason,
            },
        ),
        Output::MassCancelDone {
            session,
            clordid,
            cancelled,
            rejected,
        } => send(
            session,
            OutMsg::MassCancel {
                clordid,
                instrument: match input {
                    Event::Command {
                        command: Command::MassCancel(m),
                        ..
                    } => m.instrument,
                    _ => None,
                },
                cancelled,
                rejected,
            },
        ),
        Output::AdminDone | Output::AdminRejected { .. } => {
            if let Event::Command { session, .. } = input
                && *session == admin_session
            {
                let result = match out {
                    Output::AdminRejected { reason } => Err(*reason),
                    _ => Ok(()),
                };
                send(admin_session, OutMsg::Admin { result });
            }
        }
        Output::Halted { .. }
        | Output::Resumed { .. }
        | Output::KillSwitch { .. }
        | Output::Level { .. }
        | Output::TopOfBook { .. } => {}
    }
}

/// What one engine duty cycle did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineWork {
    /// Records applied or outputs released.
    Did(usize),
    /// Nothing to do now.
    Idle {
        /// Outputs are held for a durable position that has not arrived yet, or for room in
        /// the outbound channel: nothing rings the pipeline when either changes, so it polls.
        must_poll: bool,
    },
    /// Stopped: asked to stop, caught up and nothing held (or the gateway is gone).
    Finished,
}

/// The engine as an agent: [`EngineAgent::do_work`] releases durable outputs and applies the
/// next journal record. `crate::runtime::pipeline` runs it on a thread of its own, on one shared with the
/// sequencer agent, or as a task on the gateway's thread.
pub struct EngineAgent {
    runner: EngineRunner,
    positions: Arc<Positions>,
    tx: mpsc::Sender<Outbound>,
    stop: Arc<AtomicBool>,
    caught_up: Arc<AtomicBool>,
    reader: JournalReader,
    engine: Option<Engine>,
    outputs: Vec<Output>,
    held: VecDeque<Outbound>,
    /// Per session, the next inbound MsgSeqNum the log implies (derived session state: the
    /// last application message journaled, plus one; 2 after a reset, the Logon being 1).
    next_in: Vec<u64>,
    /// A member's checkpoints, and the directory of its halted file.
    checkpoints: Option<(crate::member::checkpoint::Checkpoints, std::path::PathBuf)>,
    /// A member's snapshot schedule and its leader gate.
    snapshots: Option<(
        crate::member::snapshot::Schedule,
        Arc<crate::leader::proposer::LeaderGate>,
    )>,
    /// The seq of the snapshot this agent started from (0: the first record).
    restored_seq: u64,
}

impl EngineRunner {
    /// The agent, reading the journal from its first record. It finishes when `stop` is set
    /// and it has caught up.
    pub fn agent(
        mut self,
        positions: Arc<Positions>,
        tx: mpsc::Sender<Outbound>,
        stop: Arc<AtomicBool>,
        caught_up: Arc<AtomicBool>,
    ) -> Result<EngineAgent, String> {
        let sessions = self.sessions;
        let restored = self.restored.take();
        assert!(
            restored
                .as_ref()
                .is_none_or(|r| r.image.next_in.len() == sessions),
            "a snapshot for another session count"
        );
        let from = restored.as_ref().map_or(0, |r| r.image.seq);
        let reader = JournalReader::open_with(&self.dir, from + 1, self.read_limit)
            .map_err(|e| format!("engine: open journal: {e}"))?;
        let max_held = self.max_held;
        let mut checkpoints = self.checkpoints.clone().map(|c| {
            (
                crate::member::checkpoint::Checkpoints::new(c.every, c.leader),
                c.data_dir,
            )
        });
        let snapshots = self.snapshots.as_ref().map(|s| {
            (
                crate::member::snapshot::Schedule::new(s.every, from),
                Arc::clone(&s.gate),
            )
        });
        let (engine, next_in) = match restored {
            Some(r) => {
                tracing::info!(
                    path = %r.path.display(),
                    seq = r.image.seq,
                    "engine: restored from a snapshot; applying the journal after it"
                );
                if let Some((c, _)) = &mut checkpoints {
                    c.resume(r.image.seq, r.image.hash);
                }
                (Some(r.engine), r.image.next_in)
            }
            None => (None, vec![1; sessions]),
        };
        Ok(EngineAgent {
            checkpoints,
            snapshots,
            restored_seq: from,
            runner: self,
            positions,
            tx,
            stop,
            caught_up,
            reader,
            engine,
            outputs: Vec::with_capacity(1 << 12),
            held: VecDeque::with_capacity(max_held),
            next_in,
        })
    }
}

impl EngineAgent {
    /// The seq of the snapshot this agent started from (0: it replays from the first record).
    pub fn restored_seq(&self) -> u64 {
        self.restored_seq
    }

    /// After record `seq`: a snapshot when one is due and this member does not lead, behind
    /// the record's outputs (the router writes it once it has stored them).
    fn snapshot_after(&mut self, seq: u64, ts: u64, crc: u32) {
        let (Some((schedule, gate)), Some(engine)) = (&mut self.snapshots, &self.engine) else {
            return;
        };
        if !schedule.due(seq) || gate.term() != 0 {
            return;
        }
        schedule.taken(seq);
        let started = std::time::Instant::now();
        let image = crate::member::snapshot::Image {
            seq,
            timestamp_ns: ts,
            record_crc: crc,
            hash: engine.state_hash(),
            next_in: self.next_in.clone(),
            // The router adds what each session was sent, once it has routed this record.
            sent: Vec::new(),
            engine: engine.snapshot(),
        };
        tracing::info!(
            seq,
            bytes = image.engine.len(),
            us = started.elapsed().as_micros() as u64,
            "snapshot taken"
        );
        self.held.push_back(Outbound {
            session: crate::leader::sequencing::NODE_SESSION,
            origin_seq: seq,
            origin_idx: u32::MAX,
            timestamp_ns: ts,
            msg: OutMsg::Snapshot(Box::new(image)),
        });
    }

    /// One duty cycle: release what is durable, then apply at most one journal record.
    pub fn do_work(&mut self) -> Result<EngineWork, String> {
        let mut released = 0;
        // Outputs leave once their input may be acknowledged: committed (the reader reads
        // nothing else), or durable on a bare journal (this module's tests).
        let durable = match self.runner.read_limit {
            ReadLimit::Committed => self.positions.committed(),
            ReadLimit::Written | ReadLimit::Durable => self.positions.durable(),
        };
        while self.held.front().is_some_and(|o| o.origin_seq <= durable) {
            let o = self.held.pop_front().expect("front exists");
            // Back-pressure: a full outbound channel stops the engine (and so the sequencer's
            // queue fills and the gateway answers "system busy"). Never a blocking send: the
            // inline pipeline runs on the gateway's own runtime thread, which drains it.
            match self.tx.try_send(o) {
                Ok(()) => released += 1,
                Err(mpsc::error::TrySendError::Full(o)) => {
                    self.held.push_front(o);
                    return Ok(if released > 0 {
                        EngineWork::Did(released)
                    } else {
                        EngineWork::Idle { must_poll: true }
                    });
                }
                // The gateway is gone: shutting down.
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(EngineWork::Finished),
            }
        }
        if self.held.len() >= self.runner.max_held {
            return Ok(if released > 0 {
                EngineWork::Did(released)
            } else {
                EngineWork::Idle { must_poll: true }
            });
        }
        let record = match self
            .reader
            .next()
            .map_err(|e| format!("engine: read journal: {e}"))?
        {
            Some(r) => r,
            None => {
                self.caught_up.store(true, Ordering::Release);
                if self.stop.load(Ordering::Acquire) && self.held.is_empty() {
                    return Ok(EngineWork::Finished);
                }
                return Ok(if released > 0 {
                    EngineWork::Did(released)
                } else {
                    EngineWork::Idle {
                        must_poll: !self.held.is_empty(),
                    }
                });
            }
        };
        let (seq, ts, crc) = (record.seq(), record.timestamp_ns(), record.crc());
        if record.kind() == KIND_ENTRY && self.engine.is_none() {
            // A cluster's log starts with raft's own entries (membership, a leader's blank
            // entry) before the first leader proposes the genesis record: nothing to apply.
            return Ok(EngineWork::Did(released + 1));
        }
        // A raft entry's own record (a cluster member's journal) and a session message carry
        // nothing for the engine: each applies as a Tick at its timestamp, so the engine sees
        // every seq. A session message goes on to its session, in log order.
        let tick = Event::Command {
            session: crate::leader::sequencing::NODE_SESSION,
            msg_seq: 0,
            command: Command::Tick,
        };
        let mut session_out = None;
        let event = match record.kind() {
            KIND_ENTRY => tick,
            schema::KIND_SESSION_OUT => {
                let m = schema::decode_session_out(&record).map_err(|e| format!("engine: {e}"))?;
                session_out = Some(Outbound {
                    session: m.session,
                    origin_seq: seq,
                    origin_idx: 0,
                    timestamp_ns: ts,
                    msg: OutMsg::SessionOut {
                        connection: m.connection,
                        msg_type: m.msg_type.into(),
                        fields: m.fields.into(),
                    },
                });
                tick
            }
            _ => schema::decode(&record).map_err(|e| format!("engine: {e}"))?,
        };
        let engine = match (&mut self.engine, event) {
            (None, Event::Genesis { config }) => {
                self.engine = Some(Engine::new(config).map_err(|e| format!("engine: genesis: {e}"))?);
                self.engine.as_mut().expect("just set")
            }
            (None, _) => return Err(format!("engine: record {seq} comes before the genesis record")),
            (Some(e), _) => e,
        };
        self.outputs.clear();
        engine
            .apply(seq, ts, &event.engine_command(), &mut self.outputs)
            .map_err(|e| format!("engine: record {seq}: {e}"))?;
        if let Some((checkpoints, data_dir)) = &mut self.checkpoints {
            if let Event::Checkpoint {
                seq: at,
                hash_hi,
                hash_lo,
            } = event
                && let Err(mismatch) = checkpoints.check(at, hash_hi, hash_lo)
            {
                // Diverged: nothing more is applied, and the member stays down.
                crate::member::checkpoint::halt(data_dir, &mismatch);
                return Err(format!("engine: record {seq}: {mismatch}"));
            }
            checkpoints.after(seq, engine);
        }
        let mut idx = 0u32;
        let held = &mut self.held;
        let next_in = &mut self.next_in;
        let mut emit = |o: Outbound| held.push_back(o);
        if let Some(o) = session_out {
            // Output 0 of its record; what the Tick causes (expiries) comes after it.
            emit(o);
            idx = 1;
        }
        // Derived session state: the inbound numbers, the resets, the takeover.
        let derived = |session: u32, msg: OutMsg| Outbound {
            session,
            origin_seq: seq,
            origin_idx: 0,
            timestamp_ns: ts,
            msg,
        };
        match event {
            Event::Command { session, msg_seq, .. } | Event::StatusRequest { session, msg_seq, .. }
                if msg_seq > 0 =>
            {
                if let Some(n) = next_in.get_mut(session as usize) {
                    *n = (*n).max(msg_seq + 1);
                }
            }
            Event::SessionReset { session } => {
                if let Some(n) = next_in.get_mut(session as usize) {
                    *n = 2;
                }
                emit(derived(session, OutMsg::Reset));
                idx = 1;
            }
            Event::Takeover { term } => emit(derived(
                crate::leader::sequencing::NODE_SESSION,
                OutMsg::Takeover {
                    term,
                    next_in: next_in.as_slice().into(),
                },
            )),
            _ => {}
        }
        if let Event::StatusRequest {
            session,
            clordid,
            target,
            ..
        } = event
        {
            let (live, done) = if target.order_id != 0 {
                (engine.order(target.order_id), engine.done_order(target.order_id))
            } else {
                (
                    engine.order_by_clordid(session, &target.orig_clordid),
                    engine.done_order_by_clordid(session, &target.orig_clordid),
                )
            };
            let (view, expired) = match (live, done) {
                (Some(v), _) => (Some(v), false),
                (None, Some(d)) => (Some(d.view), d.ending.expired()),
                (None, None) => (None, false),
            };
            let msg = OutMsg::Status {
                expired,
                view: view.filter(|v| v.session == session),
                clordid: target.orig_clordid,
                request: clordid,
            };
            emit(Outbound {
                session,
                origin_seq: seq,
                origin_idx: idx,
                timestamp_ns: ts,
                msg,
            });
            idx += 1;
        }
        for out in &self.outputs {
            route(
                out,
                &event,
                seq,
                ts,
                &mut idx,
                self.runner.admin_session,
                &mut emit,
            );
        }
        self.snapshot_after(seq, ts, crc);
        Ok(EngineWork::Did(released + 1))
    }
}

#[cfg(test)]
mod tests {
    use ordo_engine::{Admin, EngineConfig};
    use ordo_journal::{JournalConfig, JournalWriter};

    use super::*;
    use crate::schema::KIND_EVENT;

    const ADMIN: u32 = 77;

    fn kill(account: u32) -> Event {
        Event::Command {
            session: ADMIN,
            msg_seq: 0,
            command: Command::Admin(Admin::KillSwitch {
                account,
                active: true,
            }),
        }
    }

    /// On a cluster member the engine reads the committed prefix only, applies a raft entry's
    /// own record as a Tick, and releases what it derives at once (it is committed).
    #[test]
    fn a_member_engine_applies_the_committed_prefix_and_skips_entry_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = JournalWriter::open(JournalConfig::new(dir.path())).unwrap();
        let genesis = Event::Genesis {
            config: EngineConfig::default(),
        };
        w.append_archived(1_000, KIND_EVENT, &genesis).unwrap();
        w.append(1_001, KIND_ENTRY, b"a raft entry header the engine never decodes")
            .unwrap();
        w.append_archived(1_002, KIND_EVENT, &kill(1)).unwrap();
        w.append(1_003, KIND_ENTRY, b"another").unwrap();
        w.append_archived(1_004, KIND_EVENT, &kill(2)).unwrap();
        w.publish();
        w.set_committed(3);
        let (tx, mut rx) = mpsc::channel(16);
        let runner = EngineRunner {
            dir: dir.path().to_path_buf(),
            sessions: 0,
            admin_session: ADMIN,
            max_held: 16,
            read_limit: ReadLimit::Committed,
            checkpoints: None,
            snapshots: None,
            restored: None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut agent = runner
            .agent(Arc::clone(w.positions()), tx, Arc::clone(&stop), Arc::default())
            .unwrap();
        let drain = |agent: &mut EngineAgent| {
            for _ in 0..100 {
                if matches!(agent.do_work().unwrap(), EngineWork::Idle { .. }) {
                    return;
                }
            }
            panic!("the engine agent never went idle");
        };
        drain(&mut agent);
        let first = rx
            .try_recv()
            .expect("the committed command's answer was not released");
        assert_eq!(first.origin_seq, 3);
        assert!(rx.try_recv().is_err(), "an uncommitted record was applied");
        w.set_committed(5);
        drain(&mut agent);
        assert_eq!(rx.try_recv().map(|o| o.origin_seq).ok(), Some(5));
        stop.store(true, Ordering::Release);
    }

    /// Checkpoints: a recorded hash equal to the member's own at that seq passes; one that
    /// differs stops the engine with the seq and both hashes, and leaves the halted file.
    #[test]
    fn a_checkpoint_that_differs_halts_the_member_and_says_where() {
        let journal = |recorded: Option<u128>| {
            let dir = tempfile::tempdir().unwrap();
            let mut w = JournalWriter::open(JournalConfig::new(dir.path().join("journal"))).unwrap();
            let genesis = Event::Genesis {
                config: EngineConfig::default(),
            };
            w.append_archived(1_000, KIND_EVENT, &genesis).unwrap();
            w.append_archived(1_001, KIND_EVENT, &kill(1)).unwrap();
            // The engine's hash after record 2, computed by an engine of the test's own.
            let mut engine = Engine::new(EngineConfig::default()).unwrap();
            let mut out = Vec::new();
            engine.apply(1, 1_000, &Command::Tick, &mut out).unwrap();
            engine
                .apply(2, 1_001, &kill(1).engine_command(), &mut out)
                .unwrap();
            let hash = recorded.unwrap_or(engine.state_hash());
            let checkpoint = Event::Checkpoint {
                seq: 2,
                hash_hi: (hash >> 64) as u64,
                hash_lo: hash as u64,
            };
            w.append_archived(1_002, KIND_EVENT, &checkpoint).unwrap();
            w.publish();
            w.set_committed(3);
            (dir, w)
        };
        let run = |dir: &std::path::Path, w: &JournalWriter| {
            let (tx, _rx) = mpsc::channel(16);
            let runner = EngineRunner {
                dir: dir.join("journal"),
                sessions: 0,
                admin_session: ADMIN,
                max_held: 16,
                read_limit: ReadLimit::Committed,
                checkpoints: Some(crate::member::checkpoint::CheckpointSpec {
                    every: 2,
                    leader: None,
                    data_dir: dir.to_path_buf(),
                }),
                snapshots: None,
                restored: None,
            };
            let stop = Arc::new(AtomicBool::new(false));
            let mut agent = runner
                .agent(Arc::clone(w.positions()), tx, stop, Arc::default())
                .unwrap();
            for _ in 0..100 {
                match agent.do_work() {
                    Ok(EngineWork::Idle { .. }) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            panic!("the engine agent never went idle");
        };
        let (dir, w) = journal(None);
        assert_eq!(run(dir.path(), &w), Ok(()));
        assert!(crate::member::checkpoint::refuse_if_halted(dir.path()).is_ok());

        let (dir, w) = journal(Some(0xdead_beef));
        let e = run(dir.path(), &w).unwrap_err();
        assert!(
            e.contains("state hash mismatch at seq 2") && e.contains("000000000000000000000000deadbeef"),
            "{e}"
        );
        let refused = crate::member::checkpoint::refuse_if_halted(dir.path()).unwrap_err();
        assert!(refused.contains("mismatch at seq 2"), "{refused}");
    }

    /// A follower's snapshot comes out behind the outputs of its record; an agent started on
    /// the same journal with that snapshot begins after its seq, skips nothing after it, and
    /// ends in the state a replay from the first record reaches. A leading member takes none.
    #[test]
    fn a_member_restarts_from_its_snapshot_to_the_state_a_full_replay_reaches() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("journal");
        let mut w = JournalWriter::open(JournalConfig::new(&jdir)).unwrap();
        let genesis = Event::Genesis {
            config: EngineConfig::default(),
        };
        w.append_archived(1_000, KIND_EVENT, &genesis).unwrap();
        for account in 1..=9 {
            w.append_archived(1_000 + u64::from(account), KIND_EVENT, &kill(account))
                .unwrap();
        }
        w.publish();
        w.set_committed(10);
        let gate = Arc::new(crate::leader::proposer::LeaderGate::default());
        let run = |snapshots: Option<SnapshotSpec>| {
            let (tx, mut rx) = mpsc::channel(64);
            let runner = EngineRunner {
                dir: jdir.clone(),
                sessions: 2,
                admin_session: ADMIN,
                max_held: 64,
                read_limit: ReadLimit::Committed,
                checkpoints: None,
                restored: snapshots
                    .as_ref()
                    .and_then(|s| s.restore(&[(16, 1 << 16); 2], &jdir)),
                snapshots,
            };
            let mut agent = runner
                .agent(Arc::clone(w.positions()), tx, Arc::default(), Arc::default())
                .unwrap();
            for _ in 0..100 {
                if matches!(agent.do_work().unwrap(), EngineWork::Idle { .. }) {
                    let mut out = Vec::new();
                    while let Ok(o) = rx.try_recv() {
                        out.push(o);
                    }
                    return (agent, out);
                }
            }
            panic!("the engine agent never went idle");
        };
        let spec = SnapshotSpec {
            every: 4,
            dir: dir.path().join("snapshots"),
            gate: Arc::clone(&gate),
        };
        let (full, out) = run(Some(spec.clone()));
        assert_eq!(full.restored_seq(), 0);
        let images: Vec<_> = out
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match &o.msg {
                OutMsg::Snapshot(image) => Some((i, image.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(images.iter().map(|(_, s)| s.seq).collect::<Vec<_>>(), [4, 8]);
        // Behind every output of its record and of the records before it.
        let (at, _) = images[0];
        assert!(out[..at].iter().all(|o| o.origin_seq <= 4));
        assert!(out[at + 1..].iter().all(|o| o.origin_seq > 4));
        // What the router adds: each session's part (nothing sent to either here).
        let mut image = images[0].1.clone();
        let mut empty = Vec::new();
        ordo_fix::window::ResendWindow::new(16, 1 << 16).encode_into(&mut empty);
        let sent = crate::member::snapshot::Sent {
            next_sender: 1,
            window: empty,
        };
        image.sent = vec![sent; 2];
        crate::member::snapshot::write(&spec.dir, &image).unwrap();

        let (resumed, out) = run(Some(spec.clone()));
        assert_eq!(resumed.restored_seq(), 4);
        let seqs: Vec<u64> = out
            .iter()
            .filter(|o| !matches!(o.msg, OutMsg::Snapshot(_)))
            .map(|o| o.origin_seq)
            .collect();
        assert_eq!(seqs, [5, 6, 7, 8, 9, 10], "every record after the snapshot, once");
        let hash = |a: &EngineAgent| a.engine.as_ref().unwrap().state_hash();
        assert_eq!(hash(&resumed), hash(&full));

        // While the member leads, no snapshot.
        gate.lead(3, 0, false);
        let (_, out) = run(Some(spec));
        assert!(!out.iter().any(|o| matches!(o.msg, OutMsg::Snapshot(_))));
    }
}
