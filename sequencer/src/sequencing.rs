//! The sequencer thread: the journal's one writer. It takes inputs from a bounded queue, stamps
//! each with the clock (never backwards), appends it with the next sequence number, and
//! publishes the batch; when idle it appends Tick events so the engine's time rules fire on
//! time. Nothing acts on an input before it is in the journal.

use std::sync::mpsc::{Receiver, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ordo_engine::Command;
use ordo_engine::types::FixedStr;
use ordo_journal::JournalWriter;

use crate::clock::Stamper;
use crate::event::{Event, KIND_EVENT};
use crate::idle::{IdleStrategy, Idler};

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

/// Most inputs appended per published batch (bounds the latency of the batch's first input).
const MAX_BATCH: usize = 256;

/// Starts the sequencer thread.
pub fn spawn(
    mut writer: JournalWriter,
    mut stamper: Stamper,
    rx: Receiver<Inbound>,
    initial: Vec<Event>,
    tick: Duration,
    idle: IdleStrategy,
) -> std::io::Result<JoinHandle<Result<(), String>>> {
    std::thread::Builder::new()
        .name("sequencer".into())
        .spawn(move || {
            let append =
                |writer: &mut JournalWriter, stamper: &mut Stamper, e: &Event| -> Result<u64, String> {
                    let ts = stamper.stamp();
                    writer
                        .append_archived(ts, KIND_EVENT, e)
                        .map_err(|e| format!("journal append: {e}"))
                };
            let source = FixedStr::from_text(&stamper.clock().source()).unwrap_or_default();
            let synchronised = stamper.clock().synchronised();
            for e in initial
                .iter()
                .chain(std::iter::once(&Event::Clock { source, synchronised }))
            {
                append(&mut writer, &mut stamper, e)?;
            }
            let mut idler = Idler::new(idle);
            let mut last_append = Instant::now();
            let mut stop = false;
            while !stop {
                let mut n = 0;
                {
                    let mut batch = writer.batch();
                    while n < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(Inbound::Event(e)) => {
                                let ts = stamper.stamp();
                                batch
                                    .append_archived(ts, KIND_EVENT, &e)
                                    .map_err(|e| format!("journal append: {e}"))?;
                                n += 1;
                            }
                            Ok(Inbound::Tracked(e, reply)) => {
                                let ts = stamper.stamp();
                                let seq = batch
                                    .append_archived(ts, KIND_EVENT, &e)
                                    .map_err(|e| format!("journal append: {e}"))?;
                                let _ = reply.send(seq);
                                n += 1;
                            }
                            Ok(Inbound::Shutdown) | Err(TryRecvError::Disconnected) => {
                                stop = true;
                                break;
                            }
                            Err(TryRecvError::Empty) => break,
                        }
                    }
                }
                if n > 0 {
                    last_append = Instant::now();
                } else if last_append.elapsed() >= tick {
                    let t = Event::Command {
                        session: NODE_SESSION,
                        msg_seq: 0,
                        command: Command::Tick,
                    };
                    append(&mut writer, &mut stamper, &t)?;
                    last_append = Instant::now();
                }
                idler.idle(n > 0);
            }
            if stamper.clamped() > 0 {
                tracing::warn!(
                    clamped = stamper.clamped(),
                    "clock went backwards; stamps were clamped"
                );
            }
            writer
                .close()
                .map(|_| ())
                .map_err(|e| format!("journal close: {e}"))
        })
}
