//! One duty-cycle trait for every agent of a member, and one runner (Aeron's agent pattern).
//!
//! An [`Agent`] does a bounded amount of work per [`Agent::do_work`] call and says what it did;
//! the runner decides how to idle between calls ([`IdleStrategy`]: spin, yield, or back off to
//! blocking, the default, so that nothing busy-spins). An agent runs on a thread of its own
//! ([`spawn`]) or as a task on the gateway's runtime thread ([`run_inline`]); several agents that
//! must not wake each other share one duty cycle by being composed into one agent
//! (`crate::runtime::pipeline`).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::Notify;

use crate::runtime::idle::{Doorbell, IdleStrategy, Idler};

/// Longest block while the agent waits for something that rings nothing (an fsync, room in a
/// channel): it polls this often. The journal's durable listener ends a wait for an fsync at
/// once; nothing rings for channel room.
pub const POLL_INTERVAL: Duration = Duration::from_micros(50);

/// What one duty cycle did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// This much work was done (records appended, applied, outputs released): call again.
    Did(usize),
    /// Nothing to do now.
    Idle {
        /// The agent waits for something that rings nothing when it changes (a durable
        /// position, room downstream): the runner polls instead of blocking until rung.
        must_poll: bool,
    },
    /// Done for good: the agent has closed what it owns.
    Finished,
}

/// A duty cycle.
pub trait Agent {
    /// The agent's role, for thread names and logs.
    fn name(&self) -> &'static str;

    /// One bounded unit of work. An error stops the agent (and, through the runner's failure
    /// callback, the member: an agent that cannot do its duty must not leave sessions open).
    fn do_work(&mut self) -> Result<Work, String>;

    /// Blocks the thread for at most `pause`, returning early when work arrives. The default
    /// parks the thread (a [`Doorbell`] ring unparks it); an agent with an input queue blocks
    /// on that queue instead.
    fn wait(&mut self, pause: Duration) {
        std::thread::park_timeout(pause);
    }

    /// How long until the agent has timed work due by itself (a Tick), if it has any.
    fn due_in(&self) -> Option<Duration> {
        None
    }
}

/// Called (on the failing thread) with the error when an agent fails.
pub type OnFailure = Arc<dyn Fn(&str) + Send + Sync>;

/// Passes `result` through, calling `on_failure` if it is an error.
pub fn reporting(on_failure: &OnFailure, result: Result<(), String>) -> Result<(), String> {
    if let Err(e) = &result {
        on_failure(e);
    }
    result
}

/// Runs `agent` on the calling thread until it finishes or fails. `after_work` is rung after
/// every cycle that did work (a downstream agent on another thread waits on it).
pub fn run<A: Agent + ?Sized>(
    agent: &mut A,
    idle: IdleStrategy,
    after_work: Option<&Doorbell>,
) -> Result<(), String> {
    let mut idler = Idler::new(idle);
    loop {
        match agent.do_work()? {
            Work::Finished => return Ok(()),
            Work::Did(_) => {
                if let Some(bell) = after_work {
                    bell.ring();
                }
                idler.idle_for(true);
            }
            Work::Idle { must_poll } => {
                if let Some(pause) = idler.idle_for(false) {
                    agent.wait(if must_poll {
                        pause.min(POLL_INTERVAL)
                    } else {
                        pause
                    });
                }
            }
        }
    }
}

/// Starts a thread named for the agent that builds it with `make` (rusteron handles and the
/// journal's readers are made on the thread that uses them) and [`run`]s it; `bell`, if given,
/// is registered as the thread's wake-up. A failure is reported to `on_failure`.
pub fn spawn<A, F>(
    name: &'static str,
    make: F,
    idle: IdleStrategy,
    bell: Option<Arc<Doorbell>>,
    after_work: Option<Arc<Doorbell>>,
    on_failure: OnFailure,
) -> std::io::Result<JoinHandle<Result<(), String>>>
where
    A: Agent,
    F: FnOnce() -> Result<A, String> + Send + 'static,
{
    std::thread::Builder::new().name(name.into()).spawn(move || {
        let body = move || {
            if let Some(bell) = &bell {
                bell.register_current();
            }
            let mut agent = make()?;
            run(&mut agent, idle, after_work.as_deref())
        };
        reporting(&on_failure, body())
    })
}

/// Runs `agent` as a task on the current (gateway) runtime thread: no thread wake-up between a
/// FIX read and the work it causes. `bell` is rung by whoever gives the agent work; after a
/// cycle that did work the task yields, so connections run between batches. When idle it waits
/// for the bell, the agent's next timed work, or (`must_poll`) [`POLL_INTERVAL`]. A ring between
/// a cycle and the wait is kept by `Notify` as a permit: nothing is missed.
pub async fn run_inline<A: Agent>(mut agent: A, bell: Arc<Notify>, idle: IdleStrategy) -> Result<(), String> {
    loop {
        let work = agent.do_work()?;
        // `spin`: never wait. A yielded task makes the runtime poll its sockets without
        // blocking (epoll_wait with a zero timeout) before running the task again, so the
        // thread busy-polls the network and the agent: no sleep, no wake-up, a whole core.
        let must_poll = match work {
            Work::Finished => return Ok(()),
            Work::Did(_) => {
                tokio::task::yield_now().await;
                continue;
            }
            _ if idle == IdleStrategy::Spin => {
                tokio::task::yield_now().await;
                continue;
            }
            Work::Idle { must_poll } => must_poll,
        };
        let wait = match agent.due_in() {
            Some(due) if !must_poll => due,
            _ => POLL_INTERVAL,
        };
        let _ = tokio::time::timeout(wait, bell.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts down, then finishes; idles every other cycle.
    struct Countdown {
        left: u32,
        idled: u32,
        waited: u32,
    }

    impl Agent for Countdown {
        fn name(&self) -> &'static str {
            "countdown"
        }
        fn do_work(&mut self) -> Result<Work, String> {
            if self.left == 0 {
                return Ok(Work::Finished);
            }
            if self.idled < self.left {
                self.idled += 1;
                return Ok(Work::Idle { must_poll: false });
            }
            self.left -= 1;
            Ok(Work::Did(1))
        }
        fn wait(&mut self, _pause: Duration) {
            self.waited += 1;
        }
    }

    #[test]
    fn the_runner_calls_until_finished_and_waits_only_when_the_strategy_blocks() {
        let mut a = Countdown {
            left: 3,
            idled: 0,
            waited: 0,
        };
        run(&mut a, IdleStrategy::Backoff, None).unwrap();
        assert_eq!(a.left, 0);
        // Backoff spins a few hundred polls before it blocks: three idle polls never block.
        assert_eq!(a.waited, 0);
    }

    #[test]
    fn an_agent_error_stops_the_runner_and_is_reported() {
        struct Failing;
        impl Agent for Failing {
            fn name(&self) -> &'static str {
                "failing"
            }
            fn do_work(&mut self) -> Result<Work, String> {
                Err("journal append: disk full".into())
            }
        }
        let seen = Arc::new(std::sync::Mutex::new(String::new()));
        let seen_by_callback = Arc::clone(&seen);
        let on_failure: OnFailure =
            Arc::new(move |e: &str| *seen_by_callback.lock().unwrap() = e.to_string());
        let thread = spawn(
            "failing",
            || Ok(Failing),
            IdleStrategy::Backoff,
            None,
            None,
            on_failure,
        )
        .unwrap();
        assert_eq!(
            thread.join().unwrap(),
            Err("journal append: disk full".to_string())
        );
        assert_eq!(*seen.lock().unwrap(), "journal append: disk full");
    }
}
