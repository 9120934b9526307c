//! The sequencer thread: the journal's one writer. It takes inputs from a bounded queue, stamps
//! each with the clock (never backwards), appends it with the next sequence number, and
//! publishes the batch; when idle it appends Tick events so the engine's time rules fire on
//! time. Nothing acts on an input before it is in the journal.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ordo_engine::Command;
use ordo_engine::types::FixedStr;
use ordo_journal::JournalWriter;

use crate::clock::Stamper;
use crate::idle::{Doorbell, IdleStrategy, Idler};
use crate::schema::{Event, KIND_EVENT};

/// The session id of events the node makes itself (ticks, setup).
pub const NODE_SESSION: u32 = u32::MAX;

/// What the sequencer takes.
#[derive(Debug)]
pub enum Inbound {
    /// An event to sequence.
    Event(Event),
    /// An event whose journal sequence number someone waits for (admin commands).
    Tracked(Event, tokio::sync::oneshot::Sender<u64>),
    /// Append nothing more, sync and stop.
    Shutdown,
}

/// The sending side of the sequencer's queue: a bounded channel, and (inline pipeline) the
/// bell of the task that drains it, rung after every successful send.
#[derive(Debug, Clone)]
pub struct InboundTx {
    tx: SyncSender<Inbound>,
    bell: Option<Arc<tokio::sync::Notify>>,
}

impl InboundTx {
    /// Wraps a channel; `bell` is rung after each input queued.
    pub fn new(tx: SyncSender<Inbound>, bell: Option<Arc<tokio::sync::Notify>>) -> Self {
        InboundTx { tx, bell }
    }

    /// Queues an input without blocking; the input is dropped when refused.
    pub fn try_send(&self, input: Inbound) -> Result<(), Refused> {
        self.tx.try_send(input).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Full,
            TrySendError::Disconnected(_) => Refused::Stopped,
        })?;
        if let Some(bell) = &self.bell {
            bell.notify_one();
        }
        Ok(())
    }
}

/// Why [`InboundTx::try_send`] refused an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is at its bound (`inbound_queue` in the configuration).
    Full,
    /// The sequencer has stopped.
    Stopped,
}

/// Most inputs appended per published batch (bounds the latency of the batch's first input).
const MAX_BATCH: usize = 256;

/// The sequencer as an agent (Aeron's duty-cycle pattern): [`SequencerAgent::do_work`] appends
/// what is queued and returns how much it did; whoever runs it decides how to idle. It runs on
/// its own thread ([`spawn`]) or shares one with the engine agent (`crate::pipeline`).
pub struct SequencerAgent {
    writer: JournalWriter,
    stamper: Stamper,
    rx: Receiver<Inbound>,
    tick: Duration,
    last_append: Instant,
    /// An input taken by a blocking receive while idle, appended first in the next batch.
    waiting: Option<Inbound>,
    stopped: bool,
    /// The clock's synchronisation state as last recorded in the journal.
    clock_synchronised: bool,
    /// When the clock's state was last checked, and how often to check it.
    clock_checked: Instant,
    clock_check_every: Duration,
}

/// How often the sequencer asks its clock whether it is synchronised (an `adjtimex` call for
/// the system clock); a change is journaled as a Clock record.
pub const CLOCK_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Stamps `event` and appends it (published at once, outside any batch).
fn append(writer: &mut JournalWriter, stamper: &mut Stamper, event: &Event) -> Result<u64, String> {
    let ts = stamper.stamp();
    writer
        .append_archived(ts, KIND_EVENT, event)
        .map_err(|e| format!("journal append: {e}"))
}

/// The Clock record for `stamper`'s clock in the given synchronisation state.
fn clock_record(stamper: &Stamper, synchronised: bool) -> Event {
    Event::Clock {
        source: FixedStr::from_text(&stamper.clock().source()).unwrap_or_default(),
        synchronised,
    }
}

impl SequencerAgent {
    /// Appends `initial` (genesis and setup on a fresh journal) and the clock record.
    pub fn new(
        mut writer: JournalWriter,
        mut stamper: Stamper,
        rx: Receiver<Inbound>,
        initial: &[Event],
        tick: Duration,
    ) -> Result<SequencerAgent, String> {
        let synchronised = stamper.clock().synchronised();
        for e in initial {
            append(&mut writer, &mut stamper, e)?;
        }
        let record = clock_record(&stamper, synchronised);
        append(&mut writer, &mut stamper, &record)?;
        Ok(SequencerAgent {
            writer,
            stamper,
            rx,
            tick,
            last_append: Instant::now(),
            waiting: None,
            stopped: false,
            clock_synchronised: synchronised,
            clock_checked: Instant::now(),
            clock_check_every: CLOCK_CHECK_EVERY,
        })
    }

    /// Checks the clock's synchronisation state every `every` instead of [`CLOCK_CHECK_EVERY`].
    pub fn with_clock_check(mut self, every: Duration) -> Self {
        self.clock_check_every = every;
        self
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
        append(&mut self.writer, &mut self.stamper, &record)?;
        self.clock_synchronised = synchronised;
        Ok(1)
    }

    /// One duty cycle: appends up to `MAX_BATCH` queued inputs as one published batch, or a
    /// Tick when nothing was appended for the tick period. Returns the records appended.
    pub fn do_work(&mut self) -> Result<usize, String> {
        let mut n = 0;
        {
            let mut batch = self.writer.batch();
            while n < MAX_BATCH {
                let next = match self.waiting.take() {
                    Some(input) => Ok(input),
                    None => self.rx.try_recv(),
                };
                match next {
                    Ok(Inbound::Event(e)) => {
                        let ts = self.stamper.stamp();
                        batch
                            .append_archived(ts, KIND_EVENT, &e)
                            .map_err(|e| format!("journal append: {e}"))?;
                        n += 1;
                    }
                    Ok(Inbound::Tracked(e, reply)) => {
                        let ts = self.stamper.stamp();
                        let seq = batch
                            .append_archived(ts, KIND_EVENT, &e)
                            .map_err(|e| format!("journal append: {e}"))?;
                        let _ = reply.send(seq);
                        n += 1;
                    }
                    Ok(Inbound::Shutdown) | Err(TryRecvError::Disconnected) => {
                        self.stopped = true;
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
        }
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
            append(&mut self.writer, &mut self.stamper, &tick)?;
            self.last_append = Instant::now();
            n = 1;
        }
        Ok(n)
    }

    /// Blocks on the input queue for at most `pause` (and never past the next tick); a gateway
    /// send ends the wait at once.
    pub fn block(&mut self, pause: Duration) {
        if self.waiting.is_some() || self.stopped {
            return;
        }
        match self.rx.recv_timeout(pause.min(self.until_tick())) {
            Ok(input) => self.waiting = Some(input),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.stopped = true,
        }
    }

    /// How long until a Tick is due (zero when it is).
    pub fn until_tick(&self) -> Duration {
        self.tick.saturating_sub(self.last_append.elapsed())
    }

    /// Whether a Shutdown was taken (nothing more will be appended).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Syncs and closes the journal.
    pub fn close(self) -> Result<(), String> {
        if self.stamper.clamped() > 0 {
            tracing::warn!(
                clamped = self.stamper.clamped(),
                "clock went backwards; stamps were clamped"
            );
        }
        self.writer
            .close()
            .map(|_| ())
            .map_err(|e| format!("journal close: {e}"))
    }
}

/// Runs the sequencer agent on its own thread. It rings `engine_bell` whenever it has
/// published records.
pub fn spawn(
    mut agent: SequencerAgent,
    idle: IdleStrategy,
    engine_bell: Arc<Doorbell>,
    on_failure: crate::pipeline::OnFailure,
) -> std::io::Result<JoinHandle<Result<(), String>>> {
    std::thread::Builder::new()
        .name("sequencer".into())
        .spawn(move || {
            let run = move || {
                let mut idler = Idler::new(idle);
                while !agent.stopped() {
                    let n = agent.do_work()?;
                    if n > 0 {
                        engine_bell.ring();
                    }
                    if let Some(pause) = idler.idle_for(n > 0) {
                        agent.block(pause);
                    }
                }
                agent.close()
            };
            crate::pipeline::reporting(&on_failure, run())
        })
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use ordo_journal::{JournalConfig, JournalReader};

    use super::*;
    use crate::clock::Clock;

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
        let dir = tempfile::tempdir().unwrap();
        let writer = JournalWriter::open(JournalConfig::new(dir.path())).unwrap();
        let (_tx, rx) = std::sync::mpsc::sync_channel(4);
        let stamper = Stamper::new(Box::new(Flipping::default()), 0);
        let mut agent = SequencerAgent::new(writer, stamper, rx, &[], Duration::from_secs(3600))
            .unwrap()
            .with_clock_check(Duration::ZERO);
        for _ in 0..4 {
            agent.do_work().unwrap();
        }
        agent.close().unwrap();
        let mut reader = JournalReader::open(dir.path(), 1).unwrap();
        let mut states = Vec::new();
        while let Some(record) = reader.next().unwrap() {
            let event = crate::schema::decode(&record).unwrap();
            if let Event::Clock { synchronised, .. } = event {
                states.push(synchronised);
            }
        }
        // At start (asked once: true), then one record per change: false, then true again.
        assert_eq!(states, [true, false, true]);
    }
}
