//! What a member may do now, from openraft's metrics: serve FIX (the leader with a live quorum),
//! follow, or stop serving because it is cut off.
//!
//! openraft 0.9 has no CheckQuorum: a leader cut off from the majority keeps its role until it
//! hears a higher term. [`LeaderWatch`] closes the gap (`docs/REPLICATION.md`, 4.4): a leader whose
//! last quorum acknowledgement is older than `quorum_timeout` (the election timeout's maximum),
//! or that has had none that long since it became leader, is [`Role::CutOff`]: it must stop
//! serving at once, since a new leader may already have been elected by then.
//!
//! The watch is a pure function of the metrics and the time it is given, so a simulator drives
//! it with its own clock.

use std::time::{Duration, Instant};

use openraft::{RaftMetrics, ServerState};

use crate::types::{Member, NodeId};

/// A member's role, as the rest of the member acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Leader with a quorum heard from within the timeout: it may sequence and serve FIX.
    Leader {
        /// Its term.
        term: u64,
    },
    /// Leader by openraft's account, but no quorum acknowledged it within the timeout: it must
    /// stop serving (close FIX connections without sending anything) and wait for the new term.
    CutOff {
        /// Its term.
        term: u64,
    },
    /// Following `leader` (if known), or campaigning.
    Follower {
        /// The current term.
        term: u64,
        /// The leader, when known.
        leader: Option<NodeId>,
    },
    /// Raft has stopped (shut down, or a fatal storage error).
    Stopped,
}

/// Turns metrics into a [`Role`], remembering when the member became leader.
#[derive(Debug, Clone)]
pub struct LeaderWatch {
    quorum_timeout: Duration,
    /// The term, and when this member was first seen leading it.
    leading_since: Option<(u64, Instant)>,
}

impl LeaderWatch {
    /// A watch that calls a leader cut off after `quorum_timeout` without a quorum.
    pub fn new(quorum_timeout: Duration) -> Self {
        LeaderWatch {
            quorum_timeout,
            leading_since: None,
        }
    }

    /// The role the metrics show at `now`.
    pub fn observe(&mut self, m: &RaftMetrics<NodeId, Member>, now: Instant) -> Role {
        if m.running_state.is_err() || m.state == ServerState::Shutdown {
            self.leading_since = None;
            return Role::Stopped;
        }
        let term = m.current_term;
        if m.state != ServerState::Leader {
            self.leading_since = None;
            return Role::Follower {
                term,
                leader: m.current_leader,
            };
        }
        let since = match self.leading_since {
            Some((t, at)) if t == term => at,
            _ => {
                self.leading_since = Some((term, now));
                now
            }
        };
        let acked_recently = match m.millis_since_quorum_ack {
            Some(ms) => Duration::from_millis(ms) <= self.quorum_timeout,
            // No acknowledgement yet in this term: allowed for one timeout after election.
            None => now.saturating_duration_since(since) <= self.quorum_timeout,
        };
        if acked_recently {
            Role::Leader { term }
        } else {
            Role::CutOff { term }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(state: ServerState, term: u64, ack_ms: Option<u64>) -> RaftMetrics<NodeId, Member> {
        let mut m = RaftMetrics::new_initial(1);
        m.state = state;
        m.current_term = term;
        m.current_leader = (state == ServerState::Leader).then_some(1);
        m.millis_since_quorum_ack = ack_ms;
        m
    }

    #[test]
    fn a_leader_without_a_quorum_for_longer_than_the_timeout_is_cut_off() {
        let t0 = Instant::now();
        let mut w = LeaderWatch::new(Duration::from_millis(160));
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(
            w.observe(&metrics(ServerState::Leader, 4, Some(20)), ms(0)),
            Role::Leader { term: 4 }
        );
        assert_eq!(
            w.observe(&metrics(ServerState::Leader, 4, Some(160)), ms(140)),
            Role::Leader { term: 4 }
        );
        assert_eq!(
            w.observe(&metrics(ServerState::Leader, 4, Some(161)), ms(141)),
            Role::CutOff { term: 4 }
        );
        // Heard from a quorum again: serving again (same term: nobody else can have led it).
        assert_eq!(
            w.observe(&metrics(ServerState::Leader, 4, Some(5)), ms(200)),
            Role::Leader { term: 4 }
        );
    }

    #[test]
    fn a_new_leader_never_acknowledged_is_cut_off_one_timeout_after_its_election() {
        let t0 = Instant::now();
        let mut w = LeaderWatch::new(Duration::from_millis(100));
        assert_eq!(
            w.observe(&metrics(ServerState::Follower, 6, None), t0),
            Role::Follower {
                term: 6,
                leader: None
            }
        );
        let elected = t0 + Duration::from_millis(10);
        assert_eq!(
            w.observe(&metrics(ServerState::Leader, 7, None), elected),
            Role::Leader { term: 7 }
        );
        assert_eq!(
            w.observe(
                &metrics(ServerState::Leader, 7, None),
                elected + Duration::from_millis(100)
            ),
            Role::Leader { term: 7 }
        );
        assert_eq!(
            w.observe(
                &metrics(ServerState::Leader, 7, None),
                elected + Duration::from_millis(101)
            ),
            Role::CutOff { term: 7 }
        );
        let mut stopped = metrics(ServerState::Leader, 7, Some(1));
        stopped.state = ServerState::Shutdown;
        assert_eq!(w.observe(&stopped, elected), Role::Stopped);
    }
}
