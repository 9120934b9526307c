//! A member that starts with an empty log (a new machine, a replaced disk, a data directory an
//! operator removed) may be one that lost what it had acknowledged and voted
//! (`docs/REPLICATION.md`, 8.1). Until its log has caught up with a leader's commit, it grants no
//! vote to a candidate whose log holds anything beyond the cluster's first entry:
//!
//! * **Lost acknowledgements.** An entry committed with this member's acknowledgement may now be
//!   held by a minority only. A candidate lacking it could win with this member's vote, and the
//!   entry would be lost. Refusing means such a candidate cannot win while this member is
//!   needed for a majority; the cluster then waits for a member that holds it (availability is
//!   given up, never an acknowledged order).
//! * **A lost vote.** The member may have voted in the current term already; voting again could
//!   make two leaders of one term. While it refuses, it votes in no term at all; once caught up
//!   it has the leader's term and openraft refuses a second vote in it.
//!
//! A cluster being formed is told apart by the candidate's log: the member that initializes it
//! writes one membership entry at index 0, so the first candidates' last log index is 0 (or
//! none). Every candidate of a cluster that ran has index 1 or above (each leader's blank entry).
//!
//! Caught up: a successful AppendEntries left this member's log at or past the leader's commit
//! index, and at least [`Guard::new`]'s `settle` (twice openraft's timeout for an AppendEntries
//! answer) has passed since start. The wait covers acknowledgements this member sent before it
//! lost its data: the leader counts each within that timeout or drops it as late, so any commit
//! it made with them is made by then. What is left assumed: an AppendEntries the leader sent
//! before counting such an acknowledgement does not arrive after this member restarted and the
//! settle time passed (a restart from empty takes far longer than one timeout).
//!
//! A member elected leader is caught up by raft's election rule (its log holds every committed
//! entry): the guard lets go there too (the first leader of a new cluster started empty).
//!
//! Never caught up (the leader died first, and the member that could lead lacks what this one
//! may have acknowledged): the guard holds and no leader is elected while this member is needed
//! for a majority. That is right: with one member gone and one emptied, the majority that held
//! each commit may be gone too, and an operator decides.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use openraft::raft::{VoteRequest, VoteResponse};

use crate::types::{LogId, NodeId, Vote};

/// The guard of one member.
#[derive(Debug)]
pub struct Guard {
    state: Mutex<State>,
    /// Set once the guard lets go: every later AppendEntries and vote checks only this.
    free: AtomicBool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Started empty: holds until it has reached a leader's commit and `until` has passed.
    Holding { until: Instant, reached: bool },
    /// Caught up, or started on its log.
    Free,
}

impl Guard {
    /// For a member whose log is `empty` at start; holds at least `settle`.
    pub fn new(empty: bool, settle: Duration) -> Self {
        let state = if empty {
            State::Holding {
                until: Instant::now() + settle,
                reached: false,
            }
        } else {
            State::Free
        };
        Guard {
            free: AtomicBool::new(!empty),
            state: Mutex::new(state),
        }
    }

    /// Whether the guard still holds (lets go here once both conditions are met).
    pub fn holding(&self) -> bool {
        if self.free.load(Ordering::Acquire) {
            return false;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match *state {
            State::Holding { until, reached: true } if Instant::now() >= until => {
                tracing::info!("caught up after starting empty: votes again");
                *state = State::Free;
                self.free.store(true, Ordering::Release);
                false
            }
            State::Holding { .. } => true,
            State::Free => false,
        }
    }

    /// The refusal to answer `req` with, if it is one this member must not grant: the guard
    /// holds and the candidate's log holds more than the first entry. `ours` is this member's
    /// vote; the answer carries the greater of the two (openraft wants `resp.vote >= req.vote`),
    /// and no last log id (a candidate reads nothing from it when refused).
    pub fn refuse(&self, req: &VoteRequest<NodeId>, ours: Vote) -> Option<VoteResponse<NodeId>> {
        let forming = req.last_log_id.is_none_or(|l| l.index == 0);
        if forming || !self.holding() {
            return None;
        }
        let vote = if ours.partial_cmp(&req.vote) == Some(std::cmp::Ordering::Greater) {
            ours
        } else {
            req.vote
        };
        tracing::warn!(candidate = ?req.vote, "vote refused: this member started empty and has not caught up");
        Some(VoteResponse {
            vote,
            vote_granted: false,
            last_log_id: None,
        })
    }

    /// This member leads: raft elected it, so its log holds every committed entry.
    pub fn led(&self) {
        if self.free.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, State::Holding { .. }) {
            *state = State::Free;
            self.free.store(true, Ordering::Release);
        }
    }

    /// After an AppendEntries was accepted (`ours`: the last entry it carried, else its
    /// previous log id; `leader_commit`: the leader's commit index it carried): notes whether
    /// this member's log has reached that commit index.
    pub fn appended(&self, ours: Option<LogId>, leader_commit: Option<LogId>) {
        if self.free.load(Ordering::Acquire) {
            return;
        }
        let reached_now = match (ours, leader_commit) {
            (_, None) => true,
            (Some(o), Some(c)) => o.index >= c.index,
            (None, Some(_)) => false,
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let State::Holding { reached, .. } = &mut *state {
            *reached |= reached_now;
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn candidate(last: Option<LogId>) -> VoteRequest<NodeId> {
        VoteRequest::new(openraft::Vote::new(5, 2), last)
    }

    #[test]
    fn an_empty_member_refuses_a_running_clusters_candidates_until_caught_up() {
        let g = Guard::new(true, Duration::ZERO);
        let ours = openraft::Vote::default();
        // A cluster being formed: granted (raft decides).
        assert!(g.refuse(&candidate(None), ours).is_none());
        assert!(g.refuse(&candidate(Some(log_id(0, 0))), ours).is_none());
        // A candidate of a cluster that ran: refused, with the candidate's vote (the greater).
        let r = g.refuse(&candidate(Some(log_id(4, 90))), ours).unwrap();
        assert!(!r.vote_granted);
        assert_eq!(r.vote, openraft::Vote::new(5, 2));
        // Entries short of the leader's commit: still refusing.
        g.appended(Some(log_id(5, 40)), Some(log_id(5, 100)));
        assert!(g.holding());
        // At the commit: votes again.
        g.appended(Some(log_id(5, 100)), Some(log_id(5, 100)));
        assert!(!g.holding());
        assert!(g.refuse(&candidate(Some(log_id(4, 90))), ours).is_none());
        // Elected: caught up by raft's rule.
        let g = Guard::new(true, Duration::from_secs(3600));
        g.led();
        assert!(!g.holding());
    }

    #[test]
    fn a_member_that_starts_on_its_log_never_refuses_and_the_settle_time_holds() {
        let g = Guard::new(false, Duration::from_secs(3600));
        assert!(
            g.refuse(&candidate(Some(log_id(4, 90))), openraft::Vote::default())
                .is_none()
        );
        let g = Guard::new(true, Duration::from_millis(50));
        g.appended(Some(log_id(5, 100)), Some(log_id(5, 100)));
        assert!(g.holding(), "let go before the settle time");
        // Once it has passed, it lets go without another AppendEntries (the leader may be gone).
        std::thread::sleep(Duration::from_millis(60));
        assert!(!g.holding());
    }
}
