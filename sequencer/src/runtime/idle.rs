//! Idle strategies for the threads that poll (sequencer, engine): what to do when a poll finds
//! no work. On 2 cores, spinning threads starve each other; the default backs off to blocking,
//! and the producer wakes the blocked thread (a channel send, a [`Doorbell`] ring).

use std::sync::OnceLock;
use std::thread::Thread;
use std::time::Duration;

/// Polls a backing-off thread spins before it blocks. No `sched_yield` phase: on this VM a
/// yield that switches threads costs more than the futex wake-up that ends a block (measured
/// with `ordo loadgen`: yields made the pipeline thread the second-largest CPU user at 20K/s).
const BACKOFF_SPINS: u32 = 200;

/// How a polling thread waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleStrategy {
    /// Busy-spin (lowest latency; needs a dedicated core per spinning thread).
    Spin,
    /// `sched_yield` between polls.
    Yield,
    /// Spin a little, then block with growing timeouts up to 1 ms; the producer's wake-up
    /// ends a block at once.
    Backoff,
}

impl std::str::FromStr for IdleStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "spin" => Ok(IdleStrategy::Spin),
            "yield" => Ok(IdleStrategy::Yield),
            "backoff" => Ok(IdleStrategy::Backoff),
            other => Err(format!("unknown idle strategy {other:?}: spin, yield or backoff")),
        }
    }
}

/// The state of one thread's idling.
#[derive(Debug)]
pub struct Idler {
    strategy: IdleStrategy,
    idle_polls: u32,
}

impl Idler {
    /// A fresh idler.
    pub fn new(strategy: IdleStrategy) -> Self {
        Idler {
            strategy,
            idle_polls: 0,
        }
    }

    /// Call after a poll: `work` says whether it found any. Blocks (parks) when the strategy
    /// says so; a [`Doorbell`] ring ends the park at once.
    #[inline]
    pub fn idle(&mut self, work: bool) {
        if let Some(pause) = self.idle_for(work) {
            std::thread::park_timeout(pause);
        }
    }

    /// Spins or yields as the strategy says, or returns how long the thread may now block on
    /// whatever wakes it (a channel receive, a park). Blocking instead of sleeping matters: a
    /// sleeping thread adds its remaining sleep to the latency of the message that arrives;
    /// a blocked one is woken by the producer within microseconds.
    #[inline]
    pub fn idle_for(&mut self, work: bool) -> Option<Duration> {
        if work {
            self.idle_polls = 0;
            return None;
        }
        self.idle_polls = self.idle_polls.saturating_add(1);
        match self.strategy {
            IdleStrategy::Spin => std::hint::spin_loop(),
            IdleStrategy::Yield => std::thread::yield_now(),
            IdleStrategy::Backoff => match self.idle_polls {
                0..=BACKOFF_SPINS => std::hint::spin_loop(),
                n => return Some(Duration::from_micros(u64::from((n - BACKOFF_SPINS).min(20)) * 50)),
            },
        }
        None
    }
}

/// Wakes a polling thread that parked in [`Idler::idle`] when its producer has published work.
/// Ringing costs an atomic operation when the thread is not parked, a futex wake when it is.
#[derive(Debug, Default)]
pub struct Doorbell {
    thread: OnceLock<Thread>,
}

impl Doorbell {
    /// The calling thread is the one to wake (call once, from the polling thread).
    pub fn register_current(&self) {
        let _ = self.thread.set(std::thread::current());
    }

    /// Wakes the registered thread if it is parked (otherwise its next park returns at once).
    #[inline]
    pub fn ring(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}
