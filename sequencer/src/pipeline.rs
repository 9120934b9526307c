//! How the sequencer and engine agents get threads.
//!
//! * `inline` (the default): no thread of their own; both duty cycles run as one task on the
//!   gateway's runtime thread ([`run_inline`]): no wake-up anywhere between a FIX read and the
//!   ExecutionReport it causes.
//! * `shared`: one thread runs both duty cycles. Every input then reaches the
//!   engine without a thread wake-up between sequencer and engine (on this 2-core VM a wake-up
//!   costs tens of microseconds), and the pipeline takes one core, not two, leaving the other
//!   to the gateway. When idle the thread blocks on the input queue: a gateway send wakes it.
//! * `dedicated`: a thread each, the engine parked on a doorbell the sequencer rings. For
//!   machines with cores to spare (and `idle = "spin"`).
//!
//! Either way the journal comes first: the engine agent reads records only after the sequencer
//! has published them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ordo_journal::Positions;
use tokio::sync::Notify;

use crate::engine_runner::{EngineAgent, EngineWork};
use crate::idle::{Doorbell, IdleStrategy, Idler};
use crate::sequencing::{self, SequencerAgent};

/// Records the engine applies per shared duty cycle before the sequencer runs again (bounds
/// how long new input waits behind a backlog).
const ENGINE_BURST: usize = 512;
/// Longest block while outputs wait for an fsync or for room in the outbound channel. The
/// journal's durable listener (registered by every layout) ends a wait for an fsync at once;
/// nothing rings for outbound room, so that is polled.
const DURABLE_POLL: Duration = Duration::from_micros(50);

/// Thread layout of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipeline {
    /// Both agents as one task on the gateway's runtime thread.
    Inline,
    /// Sequencer and engine share one thread.
    Shared,
    /// A thread each.
    Dedicated,
}

impl std::str::FromStr for Pipeline {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "inline" => Ok(Pipeline::Inline),
            "shared" => Ok(Pipeline::Shared),
            "dedicated" => Ok(Pipeline::Dedicated),
            other => Err(format!("unknown pipeline {other:?}: inline, shared or dedicated")),
        }
    }
}

/// The running pipeline's threads.
pub struct Threads {
    /// The thread that owns the journal writer (and, shared, also the engine).
    pub sequencer: JoinHandle<Result<(), String>>,
    /// The engine thread (dedicated only).
    pub engine: Option<JoinHandle<Result<(), String>>>,
}

/// Starts the pipeline. `make_engine` builds the engine agent on the thread that runs it.
/// `stop` tells the engine no more input will come (shared: set by the thread itself once the
/// sequencer has stopped).
pub fn start(
    layout: Pipeline,
    sequencer: SequencerAgent,
    make_engine: impl FnOnce() -> Result<EngineAgent, String> + Send + 'static,
    idle: IdleStrategy,
    stop: Arc<AtomicBool>,
    durable: &Positions,
    on_failure: OnFailure,
) -> std::io::Result<Threads> {
    match layout {
        Pipeline::Inline => Err(std::io::Error::other(
            "the inline pipeline runs as a task: use pipeline::run_inline",
        )),
        Pipeline::Dedicated => {
            let bell = Arc::new(Doorbell::default());
            let engine_bell = Arc::clone(&bell);
            let engine_failure = Arc::clone(&on_failure);
            let engine = std::thread::Builder::new().name("engine".into()).spawn(move || {
                let run = move || {
                    let mut agent = make_engine()?;
                    let mut idler = Idler::new(idle);
                    engine_bell.register_current();
                    loop {
                        match agent.do_work()? {
                            EngineWork::Finished => return Ok(()),
                            EngineWork::Did(_) => idler.idle(true),
                            EngineWork::Idle { .. } => idler.idle(false),
                        }
                    }
                };
                reporting(&engine_failure, run())
            })?;
            // Outputs held for an fsync: the syncer wakes the engine when it has done it.
            let durable_bell = Arc::clone(&bell);
            durable.set_durable_listener(move || durable_bell.ring());
            let sequencer = sequencing::spawn(sequencer, idle, bell, on_failure)?;
            Ok(Threads {
                sequencer,
                engine: Some(engine),
            })
        }
        Pipeline::Shared => {
            let thread = std::thread::Builder::new()
                .name("pipeline".into())
                .spawn(move || {
                    let run = move || {
                        let mut engine = make_engine()?;
                        let mut sequencer = Some(sequencer);
                        let mut idler = Idler::new(idle);
                        loop {
                            let c = cycle(&mut sequencer, &mut engine, &stop)?;
                            if c.finished {
                                return Ok(());
                            }
                            if let Some(pause) = idler.idle_for(c.work > 0) {
                                match sequencer.as_mut() {
                                    Some(s) if !c.must_poll => s.block(pause),
                                    _ => std::thread::park_timeout(pause.min(DURABLE_POLL)),
                                }
                            }
                        }
                    };
                    reporting(&on_failure, run())
                })?;
            // Outputs held for an fsync: the syncer unparks the thread when it has done it.
            let parked = thread.thread().clone();
            durable.set_durable_listener(move || parked.unpark());
            Ok(Threads {
                sequencer: thread,
                engine: None,
            })
        }
    }
}

/// Called (on the failing thread) with the error when a pipeline thread fails, so the node
/// can stop instead of keeping sessions open that nothing will answer.
pub type OnFailure = Arc<dyn Fn(&str) + Send + Sync>;

/// Passes `result` through, calling `on_failure` if it is an error.
pub(crate) fn reporting(on_failure: &OnFailure, result: Result<(), String>) -> Result<(), String> {
    if let Err(e) = &result {
        on_failure(e);
    }
    result
}

/// What one pass over both agents did.
struct Cycle {
    /// Records appended, applied and outputs released.
    work: usize,
    /// The engine waits for something that does not ring (durability, outbound room).
    must_poll: bool,
    /// The engine has finished (stopped and drained).
    finished: bool,
}

/// One pass: the sequencer appends what is queued (closing the journal once it has taken the
/// Shutdown, which tells the engine no more input comes), then the engine applies up to
/// [`ENGINE_BURST`] records.
fn cycle(
    sequencer: &mut Option<SequencerAgent>,
    engine: &mut EngineAgent,
    stop: &AtomicBool,
) -> Result<Cycle, String> {
    let mut work = 0;
    if let Some(s) = sequencer.as_mut() {
        work += s.do_work()?;
        if s.stopped() {
            sequencer.take().expect("present").close()?;
            stop.store(true, Ordering::Release);
        }
    }
    for _ in 0..ENGINE_BURST {
        match engine.do_work()? {
            EngineWork::Did(n) => work += n,
            EngineWork::Idle { must_poll } => {
                return Ok(Cycle {
                    work,
                    must_poll,
                    finished: false,
                });
            }
            EngineWork::Finished => {
                return Ok(Cycle {
                    work,
                    must_poll: false,
                    finished: true,
                });
            }
        }
    }
    Ok(Cycle {
        work,
        must_poll: false,
        finished: false,
    })
}

/// Starts [`run_inline`] as a task on the current runtime: `bell` becomes the journal's
/// durable listener, and a failure is reported to `on_failure` before the task ends.
pub fn spawn_inline(
    sequencer: SequencerAgent,
    engine: EngineAgent,
    bell: Arc<Notify>,
    idle: IdleStrategy,
    stop: Arc<AtomicBool>,
    durable: &Positions,
    on_failure: OnFailure,
) -> tokio::task::JoinHandle<Result<(), String>> {
    let durable_bell = Arc::clone(&bell);
    durable.set_durable_listener(move || durable_bell.notify_one());
    tokio::spawn(async move { reporting(&on_failure, run_inline(sequencer, engine, bell, idle, stop).await) })
}

/// The inline pipeline: the sequencer and engine agents as one task on the gateway's runtime
/// thread. An input then goes from the socket to the journal, the engine and back out as an
/// ExecutionReport without any thread wake-up (on this 2-core VM each costs tens of
/// microseconds and a context switch), and the whole node takes one core. The gateway rings
/// `bell` whenever it queues an input; after a cycle that did work the task yields, so
/// connections and the router run between batches. When idle it waits for the bell, the next
/// Tick, or (outputs waiting for an fsync or for room) a poll interval. [`spawn_inline`]
/// registers the bell as the journal's durable listener, so outputs held for an fsync leave as
/// soon as the syncer has made them durable, not at the next poll (the runtime's timer has 1 ms
/// resolution).
pub async fn run_inline(
    sequencer: SequencerAgent,
    mut engine: EngineAgent,
    bell: Arc<Notify>,
    idle: IdleStrategy,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let mut sequencer = Some(sequencer);
    loop {
        let c = cycle(&mut sequencer, &mut engine, &stop)?;
        if c.finished {
            return Ok(());
        }
        // `spin`: never wait. A yielded task makes the runtime poll its sockets without
        // blocking (epoll_wait with a zero timeout) before running the task again, so the
        // thread busy-polls the network and the pipeline: no sleep, no wake-up, a whole core.
        if c.work > 0 || idle == IdleStrategy::Spin {
            tokio::task::yield_now().await;
            continue;
        }
        let wait = match &sequencer {
            Some(s) if !c.must_poll => s.until_tick(),
            _ => DURABLE_POLL,
        };
        // A ring between the cycle and this wait is kept as a permit: nothing is missed.
        let _ = tokio::time::timeout(wait, bell.notified()).await;
    }
}
