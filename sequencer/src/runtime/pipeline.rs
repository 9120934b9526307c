//! How the sequencer and engine agents get threads.
//!
//! * `inline` (the default): no thread of their own; both duty cycles run as one task on the
//!   gateway's runtime thread ([`crate::runtime::agent::run_inline`], [`spawn_inline`]): no wake-up anywhere between a FIX read and the
//!   ExecutionReport it causes.
//! * `shared`: one thread runs both duty cycles. Every input then reaches the
//!   engine without a thread wake-up between sequencer and engine (on this 2-core VM a wake-up
//!   costs tens of microseconds), and the pipeline takes one core, not two, leaving the other
//!   to the gateway. When idle the thread parks: every gateway send rings its doorbell.
//! * `dedicated`: a thread each, the engine parked on a doorbell the sequencer rings. For
//!   machines with cores to spare (and `idle = "spin"`).
//!
//! Either way the journal comes first: the engine agent reads records only after the sequencer
//! has published them. Every layout runs [`crate::runtime::agent::Agent`]s on the one runner of
//! `crate::runtime::agent`: [`Sequencing`] and the engine agent alone, or composed into [`Both`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ordo_journal::Positions;
use tokio::sync::Notify;

use crate::leader::sequencing::SequencerAgent;
use crate::member::engine_runner::{EngineAgent, EngineWork};
use crate::runtime::agent::{self, Agent, OnFailure, POLL_INTERVAL, Work};
use crate::runtime::idle::{Doorbell, IdleStrategy};

/// Records the engine applies per shared duty cycle before the sequencer runs again (bounds
/// how long new input waits behind a backlog).
const ENGINE_BURST: usize = 512;

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

/// Starts the pipeline on threads of its own (`shared`, `dedicated`). `make_engine` builds the
/// engine agent on the thread that runs it. `stop` tells the engine no more input will come: the
/// sequencing agent sets it once it has closed the journal.
pub fn start(
    layout: Pipeline,
    sequencer: SequencerAgent,
    make_engine: impl FnOnce() -> Result<EngineAgent, String> + Send + 'static,
    idle: IdleStrategy,
    stop: Arc<AtomicBool>,
    durable: &Positions,
    on_failure: OnFailure,
) -> std::io::Result<Threads> {
    // The thread that runs the sequencer registers the doorbell every input rings.
    let inputs = sequencer.doorbell();
    let sequencing = Sequencing::new(sequencer, Arc::clone(&stop));
    match layout {
        Pipeline::Inline => Err(std::io::Error::other(
            "the inline pipeline runs as a task: use pipeline::spawn_inline",
        )),
        Pipeline::Dedicated => {
            // The engine parks on a doorbell the sequencer rings after every batch, and the
            // syncer rings after every fsync (outputs held for it).
            let bell = Arc::new(Doorbell::default());
            let durable_bell = Arc::clone(&bell);
            wake_on_release(durable, move || durable_bell.ring());
            let engine = agent::spawn(
                "engine",
                make_engine,
                idle,
                Some(Arc::clone(&bell)),
                None,
                Arc::clone(&on_failure),
            )?;
            let sequencer = agent::spawn(
                "sequencer",
                move || Ok(sequencing),
                idle,
                None,
                Some(bell),
                on_failure,
            )?;
            Ok(Threads {
                sequencer,
                engine: Some(engine),
            })
        }
        Pipeline::Shared => {
            let thread = agent::spawn(
                "pipeline",
                move || Ok(Both::new(sequencing, make_engine()?)),
                idle,
                Some(inputs),
                None,
                on_failure,
            )?;
            // Outputs held for an fsync: the syncer unparks the thread when it has done it.
            let parked = thread.thread().clone();
            wake_on_release(durable, move || parked.unpark());
            Ok(Threads {
                sequencer: thread,
                engine: None,
            })
        }
    }
}

/// Calls `wake` whenever held outputs may be released: when the committed position moves (every
/// node) and when the durable position moves (a bare journal under an fsyncing policy: tests).
/// A member's raft log may have taken the durable listener for itself (it tells raft
/// when appends are durable): the committed one is then what matters.
fn wake_on_release(positions: &Positions, wake: impl Fn() + Clone + Send + Sync + 'static) {
    positions.set_durable_listener(wake.clone());
    positions.set_committed_listener(wake);
}

/// The sequencer agent as the journal's one writer: once it has taken the Shutdown it closes
/// (syncs) the journal and sets `stop`, which tells the engine no more input comes.
pub struct Sequencing {
    agent: Option<SequencerAgent>,
    stop: Arc<AtomicBool>,
}

impl Sequencing {
    /// Wraps the sequencer agent.
    pub fn new(agent: SequencerAgent, stop: Arc<AtomicBool>) -> Self {
        Sequencing {
            agent: Some(agent),
            stop,
        }
    }
}

impl Agent for Sequencing {
    fn name(&self) -> &'static str {
        "sequencer"
    }

    fn do_work(&mut self) -> Result<Work, String> {
        let Some(s) = self.agent.as_mut() else {
            return Ok(Work::Finished);
        };
        let appended = s.do_work()?;
        if s.stopped() {
            self.agent.take().expect("present").close()?;
            self.stop.store(true, Ordering::Release);
        }
        Ok(match appended {
            0 if self.agent.is_none() => Work::Finished,
            0 => Work::Idle { must_poll: false },
            n => Work::Did(n),
        })
    }

    /// Waits for input (a gateway send ends the wait), never past the next Tick.
    fn wait(&mut self, pause: Duration) {
        if let Some(s) = self.agent.as_mut() {
            s.block(pause);
        }
    }

    fn due_in(&self) -> Option<Duration> {
        self.agent.as_ref().map(SequencerAgent::until_tick)
    }
}

impl Agent for EngineAgent {
    fn name(&self) -> &'static str {
        "engine"
    }

    fn do_work(&mut self) -> Result<Work, String> {
        Ok(match EngineAgent::do_work(self)? {
            EngineWork::Did(n) => Work::Did(n),
            EngineWork::Idle { must_poll } => Work::Idle { must_poll },
            EngineWork::Finished => Work::Finished,
        })
    }
}

/// The sequencer and the engine in one duty cycle (`inline`, `shared`): every input reaches the
/// engine without a thread wake-up. Each cycle the sequencer appends what is queued, then the
/// engine applies up to `ENGINE_BURST` (512) records.
pub struct Both {
    sequencing: Sequencing,
    engine: EngineAgent,
    /// The engine's last cycle waits for something that rings nothing (outbound room): the
    /// thread then parks at most [`POLL_INTERVAL`] instead of until input or the next Tick.
    must_poll: bool,
}

impl Both {
    /// Composes the two agents.
    pub fn new(sequencing: Sequencing, engine: EngineAgent) -> Self {
        Both {
            sequencing,
            engine,
            must_poll: false,
        }
    }
}

impl Agent for Both {
    fn name(&self) -> &'static str {
        "pipeline"
    }

    fn do_work(&mut self) -> Result<Work, String> {
        let mut work = match self.sequencing.do_work()? {
            Work::Did(n) => n,
            Work::Idle { .. } | Work::Finished => 0,
        };
        self.must_poll = false;
        for _ in 0..ENGINE_BURST {
            match Agent::do_work(&mut self.engine)? {
                Work::Did(n) => work += n,
                Work::Idle { must_poll } => {
                    self.must_poll = must_poll;
                    break;
                }
                Work::Finished => return Ok(Work::Finished),
            }
        }
        Ok(if work > 0 {
            Work::Did(work)
        } else {
            Work::Idle {
                must_poll: self.must_poll,
            }
        })
    }

    fn wait(&mut self, pause: Duration) {
        if self.must_poll || self.sequencing.agent.is_none() {
            std::thread::park_timeout(pause.min(POLL_INTERVAL));
        } else {
            self.sequencing.wait(pause);
        }
    }

    fn due_in(&self) -> Option<Duration> {
        self.sequencing.due_in()
    }
}

/// Starts the inline pipeline ([`Both`] as a task on the current runtime, see
/// [`agent::run_inline`]): no wake-up anywhere between a FIX read and the ExecutionReport it
/// causes, and the whole node takes one core. The gateway rings `bell` whenever it queues an
/// input; `bell` also becomes the journal's durable listener, so outputs held for an fsync leave
/// as soon as the syncer has made them durable, not at the next poll (the runtime's timer has
/// 1 ms resolution). A failure is reported to `on_failure` before the task ends.
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
    wake_on_release(durable, move || durable_bell.notify_one());
    let both = Both::new(Sequencing::new(sequencer, stop), engine);
    tokio::spawn(async move { agent::reporting(&on_failure, agent::run_inline(both, bell, idle).await) })
}
