//! Idle strategies for the threads that poll (sequencer, engine): what to do when a poll finds
//! no work. On 2 cores, spinning threads starve each other; the default backs off to sleeping.

use std::time::Duration;

/// How a polling thread waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleStrategy {
    /// Busy-spin (lowest latency; needs a dedicated core per spinning thread).
    Spin,
    /// `sched_yield` between polls.
    Yield,
    /// Spin a little, then yield, then sleep with growing pauses up to 1 ms.
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

    /// Call after a poll: `work` says whether it found any.
    #[inline]
    pub fn idle(&mut self, work: bool) {
        if work {
            self.idle_polls = 0;
            return;
        }
        self.idle_polls = self.idle_polls.saturating_add(1);
        match self.strategy {
            IdleStrategy::Spin => std::hint::spin_loop(),
            IdleStrategy::Yield => std::thread::yield_now(),
            IdleStrategy::Backoff => match self.idle_polls {
                0..=100 => std::hint::spin_loop(),
                101..=200 => std::thread::yield_now(),
                n => std::thread::sleep(Duration::from_micros(u64::from((n - 200).min(20)) * 50)),
            },
        }
    }
}
