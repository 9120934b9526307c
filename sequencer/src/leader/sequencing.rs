//! The sequencer thread: the journal's one writer. It takes inputs from a bounded queue, stamps
//! each with the clock (never backwards), appends it with the next sequence number, and
//! publishes the batch; when idle it appends Tick events so the engine's time rules fire on
//! time. Nothing acts on an input before it is in the journal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use ordo_engine::Command;
use ordo_engine::types::FixedStr;

use crate::leader::clock::Stamper;
use crate::leader::proposer::{Lead, Proposer};
use crate::runtime::idle::Doorbell;
use crate::schema::{Event, KIND_SESSION_OUT};

/// The session id of events the node makes itself (ticks, setup).
pub const NODE_SESSION: u32 = u32::MAX;

/// What the sequencer takes.
#[derive(Debug)]
pub enum Inbound {
    /// An event to sequence.
    Event(Event),
    /// An event whose journal sequence number someone waits for (admin commands).
    Tracked(Event, tokio::sync::oneshot::Sender<u64>),
    /// A session's safety event (reset, disconnect), from [`InboundTx::send_safety`].
    Safety(u32, Event),
    /// A session message session `.0` decided to send: a [`crate::schema::SessionOut`],
    /// encoded (journaled as a [`KIND_SESSION_OUT`] record), from
    /// [`InboundTx::send_session_out`].
    SessionOut(u32, Vec<u8>),
    /// A Checkpoint record of this leader's engine, from [`InboundTx::send_checkpoint`].
    Checkpoint(Event),
    /// Append nothing more, sync and stop.
    Shutdown,
}

/// Operator commands the safety lane holds at most at once (beyond them an operator command is
/// refused with an error the operator sees; the admin channel answers one command at a time).
pub const ADMIN_SAFETY_SLOTS: usize = 8;

/// One queued input with its ticket: tickets are taken in the order inputs are sent, so the
/// sequencer can merge the two lanes back into that order.
type Ticketed = (u64, Inbound);

/// The sending side of the sequencer's two lanes.
///
/// * The **order lane** is bounded by `inbound_queue`: when it is full the gateway answers
///   "system busy" (back-pressure).
/// * The **safety lane** carries what must never be dropped: a session's reset and disconnect
///   (cancel-on-disconnect) and operator commands (the kill switch). Its bound holds by
///   construction: each session has at most [`SAFETY_PER_SESSION`] safety events outstanding
///   (a Logon is refused while the previous connection's are not yet journaled, see
///   [`InboundTx::safety_outstanding`]), plus [`ADMIN_SAFETY_SLOTS`] for operators.
///
/// Both lanes take tickets from one counter and the sequencer appends in ticket order, so a
/// session's disconnect is journaled after every order it sent before it.
#[derive(Debug, Clone)]
pub struct InboundTx {
    tx: SyncSender<Ticketed>,
    safety: SyncSender<Ticketed>,
    shared: Arc<LaneState>,
    bell: Bell,
}

/// Wakes the sequencer: the inline pipeline's task (`notify`), or the thread that runs it
/// (`doorbell`: unregistered, a ring costs one atomic load).
#[derive(Debug, Clone)]
pub struct Bell {
    notify: Option<Arc<tokio::sync::Notify>>,
    doorbell: Arc<Doorbell>,
}

impl Bell {
    /// Wakes the sequencer (an input queued, room for a proposal).
    pub fn ring(&self) {
        if let Some(n) = &self.notify {
            n.notify_one();
        }
        self.doorbell.ring();
    }
}

/// What both ends of the lanes share.
#[derive(Debug)]
struct LaneState {
    next_ticket: AtomicU64,
    /// Per session, safety events sent and not yet journaled.
    outstanding: Box<[AtomicU32]>,
    /// Per session, session messages sent and not yet taken by the sequencer.
    session_out: Box<[AtomicU32]>,
    /// Operator commands on the safety lane not yet taken by the sequencer: their own bound,
    /// so that operators can never take the sessions' slots.
    admin_outstanding: AtomicU32,
    /// A checkpoint record on the safety lane not yet taken (one at a time).
    checkpoint_outstanding: AtomicBool,
}

/// The receiving side of the two lanes (held by the sequencer agent).
#[derive(Debug)]
pub struct InboundRx {
    rx: Receiver<Ticketed>,
    safety: Receiver<Ticketed>,
    shared: Arc<LaneState>,
    doorbell: Arc<Doorbell>,
    /// The head of each lane, taken but not yet appended (the merge compares their tickets).
    order_head: Option<Ticketed>,
    safety_head: Option<Ticketed>,
    order_closed: bool,
    safety_closed: bool,
}

/// Safety events one session can have outstanding: the reset of a Logon and the disconnect of
/// its connection.
pub const SAFETY_PER_SESSION: usize = 2;

/// Session messages (`Inbound::SessionOut`) one session can have waiting for the sequencer.
/// They take the safety lane, so that a full order lane never holds up a Logon answer or a
/// "system busy" refusal; a client that keeps sending into a full queue is disconnected once
/// this many refusals wait (`crate::leader::gateway::Slot::with_io`).
pub const SESSION_OUT_PER_SESSION: usize = 1024;

/// The two lanes: the order lane holds `capacity` inputs; the safety lane is sized for
/// `sessions` sessions. `bell` is rung after each input queued (inline pipeline).
pub fn inbound_channel(
    capacity: usize,
    sessions: usize,
    bell: Option<Arc<tokio::sync::Notify>>,
) -> (InboundTx, InboundRx) {
    let (tx, rx) = sync_channel(capacity);
    let (safety_tx, safety_rx) =
        sync_channel(sessions * (SAFETY_PER_SESSION + SESSION_OUT_PER_SESSION) + ADMIN_SAFETY_SLOTS + 1);
    let shared = Arc::new(LaneState {
        next_ticket: AtomicU64::new(0),
        outstanding: (0..sessions).map(|_| AtomicU32::new(0)).collect(),
        session_out: (0..sessions).map(|_| AtomicU32::new(0)).collect(),
        admin_outstanding: AtomicU32::new(0),
        checkpoint_outstanding: AtomicBool::new(false),
    });
    let doorbell = Arc::new(Doorbell::default());
    let sender = InboundTx {
        tx,
        safety: safety_tx,
        shared: Arc::clone(&shared),
        bell: Bell {
            notify: bell,
            doorbell: Arc::clone(&doorbell),
        },
    };
    let receiver = InboundRx {
        rx,
        safety: safety_rx,
        shared,
        doorbell,
        order_head: None,
        safety_head: None,
        order_closed: false,
        safety_closed: false,
    };
    (sender, receiver)
}

impl InboundTx {
    fn ticket(&self) -> u64 {
        self.shared.next_ticket.fetch_add(1, Ordering::Relaxed)
    }

    fn ring(&self) {
        self.bell.ring();
    }

    /// What wakes the sequencer (the proposer rings it when an answer frees room).
    pub fn bell(&self) -> Bell {
        self.bell.clone()
    }

    /// Queues an input on the order lane without blocking; the input is dropped when refused
    /// (the caller answers "system busy").
    pub fn try_send(&self, input: Inbound) -> Result<(), Refused> {
        self.tx.try_send((self.ticket(), input)).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Full,
            TrySendError::Disconnected(_) => Refused::Stopped,
        })?;
        self.ring();
        Ok(())
    }

    /// Queues a session's safety event (its reset, its disconnect). Never refused for want of
    /// room: the lane is sized so that it cannot be full (an assertion says so). `Err` only
    /// when the sequencer has stopped.
    pub fn send_safety(&self, session: u32, event: Event) -> Result<(), Refused> {
        let outstanding = &self.shared.outstanding[session as usize];
        let before = outstanding.fetch_add(1, Ordering::AcqRel);
        assert!(
            (before as usize) < SAFETY_PER_SESSION,
            "session {session}: more than {SAFETY_PER_SESSION} safety events outstanding"
        );
        self.send_safety_lane(Inbound::Safety(session, event))
            .inspect_err(|_| {
                outstanding.fetch_sub(1, Ordering::AcqRel);
            })
    }

    /// Queues a session message a session decided to send (a [`crate::schema::SessionOut`],
    /// encoded) on the safety lane. Refused with [`Refused::Full`] once
    /// [`SESSION_OUT_PER_SESSION`] of the session's wait.
    pub fn send_session_out(&self, session: u32, payload: Vec<u8>) -> Result<(), Refused> {
        let waiting = self
            .shared
            .session_out
            .get(session as usize)
            .ok_or(Refused::Stopped)?;
        if waiting.fetch_add(1, Ordering::AcqRel) as usize >= SESSION_OUT_PER_SESSION {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Full);
        }
        self.send_safety_lane(Inbound::SessionOut(session, payload))
            .inspect_err(|_| {
                waiting.fetch_sub(1, Ordering::AcqRel);
            })
    }

    /// Queues an operator command on the safety lane (the kill switch must get through a full
    /// order lane). Refused with [`Refused::Full`] only when [`ADMIN_SAFETY_SLOTS`] commands are
    /// already waiting.
    pub fn send_admin(&self, input: Inbound) -> Result<(), Refused> {
        let admin = &self.shared.admin_outstanding;
        if admin.fetch_add(1, Ordering::AcqRel) as usize >= ADMIN_SAFETY_SLOTS {
            admin.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Full);
        }
        self.send_safety_lane(input).inspect_err(|_| {
            admin.fetch_sub(1, Ordering::AcqRel);
        })
    }

    /// Queues a Checkpoint record on the safety lane, so that a full order lane does not drop
    /// it (`crate::member::checkpoint`). One slot: refused with [`Refused::Full`] while the
    /// previous one is not yet taken (checkpoints are `checkpoint_every` records apart).
    pub fn send_checkpoint(&self, record: Event) -> Result<(), Refused> {
        let slot = &self.shared.checkpoint_outstanding;
        if slot.swap(true, Ordering::AcqRel) {
            return Err(Refused::Full);
        }
        self.send_safety_lane(Inbound::Checkpoint(record))
            .inspect_err(|_| slot.store(false, Ordering::Release))
    }

    fn send_safety_lane(&self, input: Inbound) -> Result<(), Refused> {
        match self.safety.try_send((self.ticket(), input)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(Refused::Full),
            Err(TrySendError::Disconnected(_)) => return Err(Refused::Stopped),
        }
        self.ring();
        Ok(())
    }

    /// Safety events of `session` sent and not yet journaled. A Logon is refused while this is
    /// not zero, which bounds the safety lane.
    pub fn safety_outstanding(&self, session: u32) -> u32 {
        self.shared
            .outstanding
            .get(session as usize)
            .map_or(0, |o| o.load(Ordering::Acquire))
    }
}

impl InboundRx {
    /// The next input in ticket order, if any is queued. `Disconnected` once both lanes are
    /// closed and drained.
    fn try_next(&mut self) -> Result<Inbound, TryRecvError> {
        if self.order_head.is_none() && !self.order_closed {
            match self.rx.try_recv() {
                Ok(t) => self.order_head = Some(t),
                Err(TryRecvError::Disconnected) => self.order_closed = true,
                Err(TryRecvError::Empty) => {}
            }
        }
        if self.safety_head.is_none() && !self.safety_closed {
            match self.safety.try_recv() {
                Ok(t) => self.safety_head = Some(t),
                Err(TryRecvError::Disconnected) => self.safety_closed = true,
                Err(TryRecvError::Empty) => {}
            }
        }
        let take_safety = match (&self.order_head, &self.safety_head) {
            (Some((a, _)), Some((b, _))) => b < a,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (None, None) if self.order_closed && self.safety_closed => {
                return Err(TryRecvError::Disconnected);
            }
            (None, None) => return Err(TryRecvError::Empty),
        };
        if !take_safety {
            return Ok(self.order_head.take().expect("chosen head is present").1);
        }
        let input = self.safety_head.take().expect("chosen head is present").1;
        match &input {
            Inbound::Safety(..) => {}
            Inbound::Checkpoint(_) => self.shared.checkpoint_outstanding.store(false, Ordering::Release),
            Inbound::SessionOut(session, _) => {
                self.shared.session_out[*session as usize].fetch_sub(1, Ordering::AcqRel);
            }
            // An operator command: its slot is free again.
            _ => {
                self.shared.admin_outstanding.fetch_sub(1, Ordering::AcqRel);
            }
        }
        Ok(input)
    }

    /// Parks for at most `pause` unless an input is queued; every send rings the doorbell the
    /// sequencer's thread registered (a ring between the check and the park makes the park
    /// return at once).
    fn block(&mut self, pause: Duration) {
        if self.order_head.is_some() || self.safety_head.is_some() || self.order_closed {
            return;
        }
        std::thread::park_timeout(pause);
    }

    /// The doorbell every send rings: the thread that runs the sequencer registers it.
    pub fn doorbell(&self) -> Arc<Doorbell> {
        Arc::clone(&self.doorbell)
    }

    /// A safety event of `session` is journaled.
    fn journaled(&self, session: u32) {
        let before = self.shared.outstanding[session as usize].fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "session {session}: safety event journaled twice");
    }
}

/// Why [`InboundTx::try_send`] refused an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The lane is at its bound (`inbound_queue` in the configuration, or the operators' slots).
    Full,
    /// The sequencer has stopped.
    Stopped,
}

/// Most inputs appended per published batch (bounds the latency of the batch's first input).
const MAX_BATCH: usize = 256;

/// The sequencer as an agent (Aeron's duty-cycle pattern): [`SequencerAgent::do_work`] appends
/// what is queued and returns how much it did; whoever runs it decides how to idle. It runs on
/// its own thread or shares one with the engine agent (`crate::runtime::pipeline`, on the runner of
/// `crate::runtime::agent`).
pub struct SequencerAgent {
    /// Where its records go: raft entries, proposed while this member leads (a single node is a
    /// cluster of one).
    proposer: Proposer,
    stamper: Stamper,
    rx: InboundRx,
    tick: Duration,
    last_append: Instant,
    stopped: bool,
    /// The clock's synchronisation state as last recorded in the journal.
    clock_synchronised: bool,
    /// When the clock's state was last checked, and how often to check it.
    clock_checked: Instant,
    clock_check_every: Duration,
    /// Inputs taken in this duty cycle (reused: no allocation once warm).
    taken: Vec<Inbound>,
    /// Cluster member: what a new leader proposes first when the log holds no event yet.
    genesis: Vec<Event>,
    /// Cluster member: what a new leader proposes at the start of every term (the disconnect of
    /// every session: sessions of a dead leader are disconnected for the venue).
    takeover: Vec<Event>,
}

/// How often the sequencer asks its clock whether it is synchronised (an `adjtimex` call for
/// the system clock); a change is journaled as a Clock record.
pub const CLOCK_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The Clock record for `stamper`'s clock in the given synchronisation state.
fn clock_record(stamper: &Stamper, synchronised: bool) -> Event {
    Event::Clock {
        source: FixedStr::from_text(&stamper.clock().source()).unwrap_or_default(),
        synchronised,
    }
}

/// What an input journals: an event, or a record of another kind.
enum Rec {
    Event(Event),
    Raw(u16, Vec<u8>),
}

/// An input's record, who waits for its seq, and the session whose safety slot it holds.
fn split(input: Inbound) -> (Rec, Option<tokio::sync::oneshot::Sender<u64>>, Option<u32>) {
    match input {
        Inbound::Event(e) => (Rec::Event(e), None, None),
        Inbound::Tracked(e, reply) => (Rec::Event(e), Some(reply), None),
        Inbound::Safety(session, e) => (Rec::Event(e), None, Some(session)),
        Inbound::Checkpoint(e) => (Rec::Event(e), None, None),
        Inbound::SessionOut(_, bytes) => (Rec::Raw(KIND_SESSION_OUT, bytes), None, None),
        Inbound::Shutdown => unreachable!("a Shutdown is never taken as an input"),
    }
}

impl SequencerAgent {
    /// A cluster member's sequencer: proposes nothing until its member leads. Each time it
    /// begins to lead it proposes the clock record, `genesis` if the log holds no event yet,
    /// then `takeover` (the genesis records come before the clock record).
    pub fn member(
        proposer: Proposer,
        stamper: Stamper,
        rx: InboundRx,
        genesis: Vec<Event>,
        takeover: Vec<Event>,
        tick: Duration,
    ) -> SequencerAgent {
        let synchronised = stamper.clock().synchronised();
        SequencerAgent {
            proposer,
            stamper,
            rx,
            tick,
            last_append: Instant::now(),
            stopped: false,
            clock_synchronised: synchronised,
            clock_checked: Instant::now(),
            clock_check_every: CLOCK_CHECK_EVERY,
            taken: Vec::with_capacity(MAX_BATCH),
            genesis,
            takeover,
        }
    }

    /// Checks the clock's synchronisation state every `every` instead of [`CLOCK_CHECK_EVERY`].
    pub fn with_clock_check(mut self, every: Duration) -> Self {
        self.clock_check_every = every;
        self
    }

    /// Adds one record that is not an input (a Clock record, a Tick) to the entry being built.
    fn append_one(&mut self, event: &Event) -> Result<(), String> {
        self.proposer.push(self.stamper.stamp(), event, None)
    }

    /// Journals a Clock record when the clock's synchronisation state has changed since the
    /// last one (MiFID II RTS 25 traceability: the journal says, for every stretch of records,
    /// whether their stamps came from a synchronised clock). Returns the records appended.
    fn check_clock(&mut self) -> Result<usize, String> {
        if self.clock_checked.elapsed() < self.clock_check_every {
            return Ok(0);
        }
        self.clock_checked = Instant::now();
        let synchronised = self.stamper.clock().synchronised();
        if synchronised == self.clock_synchronised {
            return Ok(0);
        }
        tracing::warn!(synchronised, "clock synchronisation state changed");
        let record = clock_record(&self.stamper, synchronised);
        self.append_one(&record)?;
        self.clock_synchronised = synchronised;
        Ok(1)
    }

    /// One duty cycle: appends up to `MAX_BATCH` queued inputs as one published batch (one raft
    /// entry on a cluster member), or a Tick when nothing was appended for the tick period.
    /// Returns the records appended (or, on a member that does not lead, the inputs dropped).
    pub fn do_work(&mut self) -> Result<usize, String> {
        if let Some(n) = self.follow_leadership()? {
            return Ok(n);
        }
        self.take_inputs();
        let mut n = self.write_taken()?;
        if !self.stopped {
            n += self.check_clock()?;
        }
        if n > 0 {
            self.last_append = Instant::now();
        } else if !self.stopped && self.last_append.elapsed() >= self.tick {
            let tick = Event::Command {
                session: NODE_SESSION,
                msg_seq: 0,
                command: Command::Tick,
            };
            self.append_one(&tick)?;
            self.last_append = Instant::now();
            n = 1;
        }
        self.proposer.flush()?;
        Ok(n)
    }

    /// A cluster member follows its role: `Some(n)` when this cycle is over (it does not lead:
    /// inputs are dropped; it has just begun to lead; or its proposals are at their bound).
    fn follow_leadership(&mut self) -> Result<Option<usize>, String> {
        let p = &mut self.proposer;
        match p.gate().observe(p.term()) {
            Lead::Same => {}
            Lead::Ended => {
                tracing::info!(term = p.term(), "no longer leading: inputs are dropped");
                p.set_term(0);
            }
            Lead::Began {
                term,
                floor_ns,
                fresh,
            } => {
                tracing::info!(term, fresh, "leading: sequencing");
                p.set_term(term);
                self.stamper.raise_floor(floor_ns);
                self.clock_synchronised = self.stamper.clock().synchronised();
                // The genesis record first (the engine starts there), then which clock stamps
                // this leader's records, then the takeover.
                // Last, the Takeover record: the member serves once it has applied it.
                let clock = clock_record(&self.stamper, self.clock_synchronised);
                let genesis = if fresh { &self.genesis[..] } else { &[] };
                let marker = Event::Takeover { term };
                for e in genesis
                    .iter()
                    .chain([&clock])
                    .chain(&self.takeover)
                    .chain([&marker])
                {
                    p.push(self.stamper.stamp(), e, None)?;
                }
                p.flush()?;
                self.last_append = Instant::now();
                return Ok(Some(2 + genesis.len() + self.takeover.len()));
            }
        }
        if p.term() == 0 {
            return Ok(Some(self.drop_inputs()));
        }
        if p.gate().holding() {
            // A leader transfer: no input, no tick, no clock record (the log must stop growing
            // for the new leader to catch up); inputs wait in their lanes (`docs/REPLICATION.md`,
            // 4.3). The previous cycle proposed everything it built.
            p.gate().note_held();
            return Ok(Some(0));
        }
        Ok((!p.has_room()).then_some(0))
    }

    /// A member that does not lead cannot sequence: what is queued is dropped (the gateway
    /// closes every connection when leadership ends, so nobody waits for an answer; a waiting
    /// operator is told the sequencer refused). Returns the inputs dropped.
    fn drop_inputs(&mut self) -> usize {
        let mut dropped = 0;
        while dropped < MAX_BATCH {
            match self.rx.try_next() {
                Ok(Inbound::Safety(session, _)) => {
                    // The new leader disconnects every session itself (its takeover).
                    self.rx.journaled(session);
                    dropped += 1;
                }
                Ok(Inbound::Shutdown) | Err(TryRecvError::Disconnected) => {
                    self.stopped = true;
                    break;
                }
                Ok(_) => dropped += 1,
                Err(TryRecvError::Empty) => break,
            }
        }
        dropped
    }

    /// Takes up to `MAX_BATCH` queued inputs, in ticket order; notes a Shutdown.
    fn take_inputs(&mut self) {
        while self.taken.len() < MAX_BATCH {
            match self.rx.try_next() {
                Ok(Inbound::Shutdown) | Err(TryRecvError::Disconnected) => {
                    self.stopped = true;
                    break;
                }
                Ok(input) => self.taken.push(input),
                Err(TryRecvError::Empty) => break,
            }
        }
    }

    /// Stamps and appends the inputs taken: one raft entry (a bare journal: one published
    /// batch). Returns how many.
    fn write_taken(&mut self) -> Result<usize, String> {
        let n = self.taken.len();
        let (stamper, rx) = (&mut self.stamper, &self.rx);
        let p = &mut self.proposer;
        for input in self.taken.drain(..) {
            let (rec, reply, safety) = split(input);
            match &rec {
                Rec::Event(event) => p.push(stamper.stamp(), event, reply)?,
                Rec::Raw(kind, bytes) => p.push_raw(stamper.stamp(), *kind, bytes)?,
            }
            if let Some(session) = safety {
                // In the member's next entry, proposed in order: a later Logon's reset is
                // proposed after it.
                rx.journaled(session);
            }
        }
        Ok(n)
    }

    /// Waits for input for at most `pause` (and never past the next tick); a gateway send ends
    /// the wait at once (it rings [`SequencerAgent::doorbell`]).
    pub fn block(&mut self, pause: Duration) {
        if self.stopped {
            return;
        }
        self.rx.block(pause.min(self.until_tick()));
    }

    /// The doorbell every input rings: register it on the thread that runs this agent.
    pub fn doorbell(&self) -> Arc<Doorbell> {
        self.rx.doorbell()
    }

    /// How long until a Tick is due (zero when it is). A member that does not lead proposes no
    /// Tick: it waits a tick period at most (the role watch rings it when it begins to lead).
    pub fn until_tick(&self) -> Duration {
        if self.proposer.term() == 0 {
            self.tick
        } else {
            self.tick.saturating_sub(self.last_append.elapsed())
        }
    }

    /// Whether a Shutdown was taken (nothing more will be appended).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Ends the sequencer (the member's journal belongs to its raft log, closed when raft
    /// stops).
    pub fn close(self) -> Result<(), String> {
        if self.stamper.clamped() > 0 {
            tracing::warn!(
                clamped = self.stamper.clamped(),
                "clock went backwards; stamps were clamped"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use ordo_journal::{JournalConfig, JournalReader, JournalWriter};

    use super::*;
    use crate::leader::clock::Clock;
    use crate::leader::proposer::{LeaderGate, Proposal};

    /// A sequencer on `rx` that leads in term 1 (its log not fresh), its clock `clock`, its
    /// proposals coming out of the returned receiver instead of going to raft.
    fn leading(rx: InboundRx, clock: Flipping) -> (SequencerAgent, tokio::sync::mpsc::Receiver<Proposal>) {
        let gate = Arc::new(LeaderGate::default());
        let (proposer, proposals) =
            Proposer::detached(Arc::clone(&gate), crate::leader::proposer::MAX_IN_FLIGHT_ENTRIES);
        let stamper = Stamper::new(Box::new(clock), 0);
        let agent = SequencerAgent::member(
            proposer,
            stamper,
            rx,
            Vec::new(),
            Vec::new(),
            Duration::from_secs(3600),
        );
        gate.lead(1, 0, false);
        (agent, proposals)
    }

    /// The events proposed so far, in order, read back as the engine reads them: appended to a
    /// journal (as the raft log stores an entry's records) and decoded by the schema's one
    /// decode.
    fn proposed_events(proposals: &mut tokio::sync::mpsc::Receiver<Proposal>) -> Vec<Event> {
        let dir = tempfile::tempdir().unwrap();
        let mut w = JournalWriter::open(JournalConfig::new(dir.path())).unwrap();
        while let Ok(p) = proposals.try_recv() {
            for r in p.batch().records().unwrap() {
                w.append(r.timestamp_ns, r.kind, r.payload).unwrap();
            }
        }
        w.close().unwrap();
        let mut reader = JournalReader::open(dir.path(), 1).unwrap();
        let mut events = Vec::new();
        while let Some(record) = reader.next().unwrap() {
            events.push(crate::schema::decode(&record).unwrap());
        }
        events
    }

    /// A clock whose synchronisation state flips every second question: true, true, false,
    /// false, true, ...
    #[derive(Default)]
    struct Flipping {
        now: u64,
        asked: Cell<u32>,
    }

    impl Clock for Flipping {
        fn now_ns(&mut self) -> u64 {
            self.now += 1_000;
            1_800_000_000_000_000_000 + self.now
        }
        fn source(&self) -> String {
            "flipping".into()
        }
        fn synchronised(&self) -> bool {
            let n = self.asked.get();
            self.asked.set(n + 1);
            (n / 2).is_multiple_of(2)
        }
    }

    #[test]
    fn clock_state_changes_are_journaled() {
        let (_tx, rx) = inbound_channel(4, 1, None);
        let (agent, mut proposals) = leading(rx, Flipping::default());
        let mut agent = agent.with_clock_check(Duration::ZERO);
        // The first cycle begins the term (its Clock record), then four more.
        for _ in 0..5 {
            agent.do_work().unwrap();
        }
        agent.close().unwrap();
        let states: Vec<bool> = proposed_events(&mut proposals)
            .into_iter()
            .filter_map(|e| match e {
                Event::Clock { synchronised, .. } => Some(synchronised),
                _ => None,
            })
            .collect();
        // At the term's start (true), then one record per change: false, then true again.
        assert_eq!(states, [true, false, true]);
    }

    /// The safety lane: a reset and a disconnect get through a full order lane, are journaled
    /// after the order sent before them (ticket order), and free their slots once journaled.
    #[test]
    fn safety_events_pass_a_full_order_lane_in_order() {
        let (tx, rx) = inbound_channel(1, 2, None);
        let (mut agent, mut proposals) = leading(rx, Flipping::default());
        let order = |msg_seq| Event::Command {
            session: 1,
            msg_seq,
            command: Command::Tick,
        };
        tx.try_send(Inbound::Event(order(1))).unwrap();
        assert_eq!(tx.try_send(Inbound::Event(order(2))), Err(Refused::Full));
        tx.send_safety(1, Event::SessionReset { session: 1 }).unwrap();
        let disconnect = Event::Command {
            session: 1,
            msg_seq: 0,
            command: Command::SessionDisconnected {
                session: 1,
                cancel_orders: true,
            },
        };
        tx.send_safety(1, disconnect).unwrap();
        assert_eq!(tx.safety_outstanding(1), 2);
        assert_eq!(tx.safety_outstanding(0), 0);
        while agent.do_work().unwrap() > 0 {}
        assert_eq!(tx.safety_outstanding(1), 0);
        agent.close().unwrap();
        let events: Vec<Event> = proposed_events(&mut proposals)
            .into_iter()
            .filter(|e| !matches!(e, Event::Clock { .. } | Event::Takeover { .. }))
            .collect();
        assert_eq!(events, [order(1), Event::SessionReset { session: 1 }, disconnect]);
    }

    /// The operators' slots are the safety lane's other bound: the ninth waiting command is
    /// refused (with the reason the admin channel prints), and the sessions' slots stay free.
    #[test]
    fn operator_commands_beyond_their_slots_are_refused() {
        let (tx, _rx) = inbound_channel(1, 1, None);
        for _ in 0..ADMIN_SAFETY_SLOTS {
            tx.send_admin(Inbound::Event(Event::SessionReset { session: 0 }))
                .unwrap();
        }
        assert_eq!(
            tx.send_admin(Inbound::Event(Event::SessionReset { session: 0 })),
            Err(Refused::Full)
        );
        // A session's reset and disconnect still fit.
        tx.send_safety(0, Event::SessionReset { session: 0 }).unwrap();
        tx.send_safety(0, Event::SessionReset { session: 0 }).unwrap();
    }

    /// A session's messages waiting for the sequencer are bounded per session: the next one
    /// past [`SESSION_OUT_PER_SESSION`] is refused (the gateway then disconnects the client),
    /// another session's still fit, its safety events still fit, and a slot taken by the
    /// sequencer is free again.
    #[test]
    fn session_messages_beyond_their_bound_are_refused_for_that_session_only() {
        let (tx, mut rx) = inbound_channel(1, 2, None);
        for _ in 0..SESSION_OUT_PER_SESSION {
            tx.send_session_out(0, vec![1]).unwrap();
        }
        assert_eq!(tx.send_session_out(0, vec![1]), Err(Refused::Full));
        tx.send_session_out(1, vec![2]).unwrap();
        tx.send_safety(0, Event::SessionReset { session: 0 }).unwrap();
        tx.send_safety(0, Event::SessionReset { session: 0 }).unwrap();
        assert_eq!(
            tx.send_session_out(7, vec![3]),
            Err(Refused::Stopped),
            "no such session"
        );
        assert!(matches!(rx.try_next(), Ok(Inbound::SessionOut(0, _))));
        tx.send_session_out(0, vec![1]).unwrap();
        assert_eq!(tx.send_session_out(0, vec![1]), Err(Refused::Full));
        let mut taken = 0;
        while let Ok(input) = rx.try_next() {
            taken += usize::from(matches!(input, Inbound::SessionOut(..)));
        }
        assert_eq!(
            taken,
            SESSION_OUT_PER_SESSION + 1,
            "every message accepted is taken, once"
        );
    }

    /// A checkpoint passes a full order lane and full operator slots; a second one waits for
    /// the first to be taken (its one slot).
    #[test]
    fn a_checkpoint_passes_a_full_order_lane_and_takes_one_slot() {
        let (tx, mut rx) = inbound_channel(1, 1, None);
        let tick = Event::Command {
            session: 0,
            msg_seq: 1,
            command: Command::Tick,
        };
        tx.try_send(Inbound::Event(tick)).unwrap();
        assert_eq!(tx.try_send(Inbound::Event(tick)), Err(Refused::Full));
        for _ in 0..ADMIN_SAFETY_SLOTS {
            tx.send_admin(Inbound::Event(Event::SessionReset { session: 0 }))
                .unwrap();
        }
        let checkpoint = |seq| Event::Checkpoint {
            seq,
            hash_hi: 1,
            hash_lo: 2,
        };
        tx.send_checkpoint(checkpoint(10)).unwrap();
        assert_eq!(tx.send_checkpoint(checkpoint(20)), Err(Refused::Full));
        let mut taken = Vec::new();
        while let Ok(input) = rx.try_next() {
            if let Inbound::Checkpoint(e) = input {
                taken.push(e);
            }
        }
        assert_eq!(taken, [checkpoint(10)]);
        tx.send_checkpoint(checkpoint(20)).unwrap();
    }
}
