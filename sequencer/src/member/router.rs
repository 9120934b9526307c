//! The router: what the engine agent releases, in log order, to the sessions — on every member.
//! Engine outputs become ExecutionReports and the other reports (`crate::member::reports`); committed
//! session messages take their MsgSeqNum; committed resets restart a session's numbering. Every
//! member applies the same stream, so every member's sessions number every message alike and
//! hold the same messages in their resend windows (`docs/REPLICATION.md`, 6.1, 6.1a); only a
//! member that serves has connections to write to.
//!
//! A cluster member's Takeover record, applied on the member that proposed it, sets each
//! session's next inbound number from the committed log and opens the gateway: from then on
//! the member serves every session with numbers no other member could contradict.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ordo_engine::Reason;
use tokio::sync::{mpsc, oneshot, watch};

use crate::catalog::Catalog;
use crate::leader::gateway::{Registry, lock};
use crate::leader::proposer::LeaderGate;
use crate::leader::sequencing::InboundTx;
use crate::member::engine_runner::{OutMsg, Outbound};
use crate::member::reports::{self, ReportBuf};

/// Results of operator commands, matched to their waiters by journal sequence number (the
/// engine's answer may come before the waiter registers).
#[derive(Debug, Default)]
pub struct AdminResults {
    waiting: HashMap<u64, oneshot::Sender<Result<(), Reason>>>,
    early: HashMap<u64, Result<(), Reason>>,
}

impl AdminResults {
    /// The answer to the command journaled at `seq` arrived.
    fn deliver(&mut self, seq: u64, result: Result<(), Reason>) {
        match self.waiting.remove(&seq) {
            Some(tx) => {
                let _ = tx.send(result);
            }
            None => {
                self.early.insert(seq, result);
            }
        }
    }

    /// The answer to the command journaled at `seq`: at once if it came already, else a
    /// receiver for it.
    pub fn wait_for(
        &mut self,
        seq: u64,
    ) -> Result<Result<(), Reason>, oneshot::Receiver<Result<(), Reason>>> {
        if let Some(r) = self.early.remove(&seq) {
            return Ok(r);
        }
        let (tx, rx) = oneshot::channel();
        self.waiting.insert(seq, tx);
        Err(rx)
    }
}

/// A cluster member's part in the router: the term it leads in, and the gateway's switch.
pub struct Serving {
    /// The term this member leads in (0: none).
    pub gate: Arc<LeaderGate>,
    /// The gateway serves while this is true.
    pub serving: Arc<watch::Sender<bool>>,
    /// A takeover grace (`takeover_grace_ms` above 0): the sequencer's queue, and how long the
    /// new leader waits before it disconnects the sessions that did not come back.
    pub grace: Option<(Duration, InboundTx)>,
}

/// The router's state.
pub struct Router {
    /// The sessions.
    pub registry: Arc<Registry>,
    /// Instruments and sessions.
    pub catalog: Arc<Catalog>,
    /// Operators waiting for answers.
    pub admin: Arc<Mutex<AdminResults>>,
    /// Unsent bytes per connection before it is a slow consumer.
    pub max_pending: usize,
    /// The member's takeover (None only in tests of the router alone: always serving).
    pub member: Option<Serving>,
    /// Where a member's snapshots are written (None: the cluster file turns them off).
    pub snapshots: Option<SnapshotWriter>,
}

/// Writes the snapshots the engine agent takes, one at a time, off the router's thread.
pub struct SnapshotWriter {
    /// The snapshot directory.
    pub dir: std::path::PathBuf,
    /// A write is under way: a snapshot that comes meanwhile is dropped (the next is due
    /// `snapshot_every` records later).
    pub writing: Arc<std::sync::atomic::AtomicBool>,
}

impl Router {
    /// Routes until the engine agent's channel closes.
    pub async fn run(self, mut rx: mpsc::Receiver<Outbound>) {
        let mut buf = ReportBuf::default();
        // Field storage reused across messages: emptied, then re-typed for each message's
        // borrows (an in-place collect keeps the allocation).
        let mut storage: Vec<(u32, ordo_fix::builder::Value<'static>)> = Vec::with_capacity(32);
        while let Some(o) = rx.recv().await {
            match &o.msg {
                OutMsg::Admin { result } => {
                    let mut a = self.admin.lock().unwrap_or_else(|p| p.into_inner());
                    a.deliver(o.origin_seq, *result);
                }
                OutMsg::Takeover { term, next_in } => self.takeover(*term, next_in),
                OutMsg::Snapshot(_) => self.write_snapshot(o.msg),
                OutMsg::SessionOut {
                    connection,
                    msg_type,
                    fields,
                } => self.session_out(&o, *connection, msg_type, fields),
                OutMsg::Reset => {
                    if let Some(slot) = self.registry.get(o.session) {
                        let mut g = lock(slot);
                        g.with_io(self.max_pending, |session, io, _| session.committed_reset(io));
                    }
                }
                _ => {
                    let Some(slot) = self.registry.get(o.session) else {
                        continue;
                    };
                    let mut fields: Vec<(u32, ordo_fix::builder::Value<'_>)> =
                        storage.into_iter().map(|_| unreachable!()).collect();
                    let msg_type = reports::build(&o, &self.catalog, &mut buf, &mut fields);
                    let mut g = lock(slot);
                    // SendingTime is the record's timestamp: every member renders the same bytes.
                    g.with_io(self.max_pending, |session, io, _| {
                        session.send_app_from(msg_type, &fields, o.timestamp_ns, io);
                    });
                    drop(g);
                    fields.clear();
                    storage = fields.into_iter().map(|_| unreachable!()).collect();
                }
            }
        }
    }

    /// A snapshot from the engine agent: every message of the records it covers came before it
    /// and is numbered and windowed; each session's outbound number and window are added as
    /// they stand now, and the file is written on a blocking thread.
    fn write_snapshot(&self, msg: OutMsg) {
        let (Some(w), OutMsg::Snapshot(mut image)) = (&self.snapshots, msg) else {
            return;
        };
        if w.writing.swap(true, std::sync::atomic::Ordering::AcqRel) {
            tracing::warn!(
                seq = image.seq,
                "snapshot dropped: the previous one is still being written"
            );
            return;
        }
        image.sent = self
            .registry
            .all()
            .iter()
            .map(|slot| {
                let g = lock(slot);
                let mut window = Vec::with_capacity(16 + g.store.bytes() + 12 * g.store.len());
                g.store.encode_into(&mut window);
                crate::member::snapshot::Sent {
                    next_sender: g.session.next_sender(),
                    window,
                }
            })
            .collect();
        let (dir, writing) = (w.dir.clone(), Arc::clone(&w.writing));
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            match crate::member::snapshot::write(&dir, &image) {
                Ok(path) => tracing::info!(
                    seq = image.seq,
                    path = %path.display(),
                    ms = started.elapsed().as_millis() as u64,
                    "snapshot written"
                ),
                Err(e) => tracing::error!(seq = image.seq, error = %e, "snapshot not written"),
            }
            writing.store(false, std::sync::atomic::Ordering::Release);
        });
    }

    /// A committed session message: numbered, stored, written if its connection is still the
    /// session's.
    fn session_out(&self, o: &Outbound, connection: u64, msg_type: &[u8], fields: &[u8]) {
        let Some(slot) = self.registry.get(o.session) else {
            return;
        };
        let mut g = lock(slot);
        let ours = connection != 0 && g.connection() == connection;
        let sent = g.with_io(self.max_pending, |session, io, _| {
            session.send_committed(msg_type, fields, ours, o.timestamp_ns, io)
        });
        if let Err(offset) = sent {
            // Written by our own gateway: a damaged one is a bug, and it still took no number.
            tracing::error!(
                seq = o.origin_seq,
                offset,
                "a session message's fields do not parse"
            );
        }
        if ours {
            g.sent_one();
        }
    }

    /// This member's Takeover record in `term`: if it still leads in that term, every session
    /// expects next what the committed log says, and the gateway opens.
    fn takeover(&self, term: u64, next_in: &[u64]) {
        let Some(member) = &self.member else {
            return;
        };
        if member.gate.term() != term {
            return;
        }
        for slot in self.registry.all() {
            // A connection still bound here is one of an earlier stretch of this term (leading
            // again after being cut off): it is being closed, and sends nothing more.
            let mut g = lock(slot);
            if let Some(&n) = next_in.get(g.id as usize) {
                g.session.set_next_target(n);
            }
        }
        tracing::info!(term, "takeover applied: serving FIX");
        member.serving.send_if_modified(|s| !std::mem::replace(s, true));
        if let Some((after, inbound)) = &member.grace {
            tokio::spawn(disconnect_after_grace(
                Arc::clone(&self.registry),
                Arc::clone(&self.catalog),
                Arc::clone(&member.gate),
                inbound.clone(),
                term,
                *after,
            ));
        }
    }
}

/// The takeover grace (`docs/REPLICATION.md`, 8.3): after `after`, while this member still
/// leads in `term`, every cancel-on-disconnect session that has not logged on to it again is
/// disconnected for the venue (a sequenced SessionDisconnected: its orders are cancelled on
/// every member at the same seq). Each is checked and queued under its slot's lock, which a
/// Logon also takes: either the disconnect is queued before the Logon is handled (and a Logon
/// waits for a session's safety events to be journaled), or the session is back and keeps its
/// orders. A session with a connection bound, or with a safety event queued already (a
/// connection that just closed queued its own disconnect), is left alone.
async fn disconnect_after_grace(
    registry: Arc<Registry>,
    catalog: Arc<Catalog>,
    gate: Arc<LeaderGate>,
    inbound: InboundTx,
    term: u64,
    after: Duration,
) {
    tokio::time::sleep(after).await;
    if gate.term() != term {
        // No longer leading in that term: the next leader does its own takeover.
        return;
    }
    let mut disconnected = 0;
    for slot in registry.all() {
        let g = lock(slot);
        let session = g.id;
        let cod = catalog
            .sessions
            .get(session as usize)
            .is_some_and(|s| s.cancel_on_disconnect);
        if !cod || g.connection() != 0 || inbound.safety_outstanding(session) > 0 {
            continue;
        }
        let event = crate::schema::Event::Command {
            session,
            msg_seq: 0,
            command: ordo_engine::Command::SessionDisconnected {
                session,
                cancel_orders: true,
            },
        };
        if inbound.send_safety(session, event).is_err() {
            return;
        }
        disconnected += 1;
        drop(g);
    }
    tracing::info!(
        term,
        disconnected,
        grace_ms = after.as_millis() as u64,
        "takeover grace over: sessions not back disconnected"
    );
}
