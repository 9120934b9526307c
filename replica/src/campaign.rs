//! Who campaigns, and when (`docs/REPLICATION.md`, 4.5).
//!
//! openraft 0.9's own election timer is off (`Config::enable_elect = false`): it makes a follower
//! wait its leader lease *plus* its election timeout, so a leader's cut-off (4.4) had to come
//! before half the failover time. Instead each member campaigns once it has been quiet for its
//! campaign time T: no AppendEntries from a leader, no vote granted by it and no campaign of its
//! own for T. Voters still refuse any candidate until their lease (openraft's
//! `election_timeout_max`) has run out since they last heard a leader, and T is above the lease,
//! so a campaign comes once it can be won.
//!
//! Before it campaigns a member asks the others whether they would vote now ([`Request::PreVote`],
//! the pre-vote of the Raft thesis, 9.6): a member that has heard a leader within its lease says
//! no. Only when a majority (itself included) says yes does it call openraft's election. Without
//! it a member that merely did not hear the leader (restarted and not yet reached, or alone
//! behind a partition) raised the term, and the leader, seeing the higher term, stepped down:
//! five leader changes in a twenty-failover run. The pre-vote only holds elections back; what is
//! elected, and what is committed, stays openraft's.
//!
//! [`CampaignTimer`] is the state and the arithmetic, driven by the instants it is given (a
//! simulator gives its own); [`campaign_when_quiet`] is the task that acts on it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::ServerState;

use crate::network::Rpc;
use crate::types::{NodeId, Raft};
use crate::wire::{Request, Response};

/// When a member last heard what keeps it from campaigning, and how long it waits.
#[derive(Debug)]
pub struct CampaignTimer {
    id: NodeId,
    /// The campaign time is drawn from `[lo, hi)` ms.
    range_ms: (u64, u64),
    state: Mutex<Quiet>,
}

#[derive(Debug, Clone, Copy)]
struct Quiet {
    /// The last AppendEntries, vote granted or campaign (or the start).
    since: Instant,
    /// The last AppendEntries from a leader.
    leader_heard: Option<Instant>,
}

/// A 64-bit mix (splitmix64's finaliser): spreads `(id, term)` over the slice.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl CampaignTimer {
    /// A timer for member `id` that campaigns after a quiet spell drawn from `range_ms`
    /// (`[lo, hi)`, lo > 0), quiet from `now`.
    pub fn new(id: NodeId, range_ms: (u64, u64), now: Instant) -> Self {
        assert!(
            range_ms.0 > 0 && range_ms.0 < range_ms.1,
            "campaign range {range_ms:?}"
        );
        CampaignTimer {
            id,
            range_ms,
            state: Mutex::new(Quiet {
                since: now,
                leader_heard: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Quiet> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An AppendEntries from a leader arrived.
    pub fn heard_leader(&self, now: Instant) {
        let mut q = self.lock();
        q.since = q.since.max(now);
        q.leader_heard = Some(now);
    }

    /// This member granted a vote (the candidate gets its chance before this member campaigns),
    /// or campaigned itself, or leads.
    pub fn reset(&self, now: Instant) {
        let mut q = self.lock();
        q.since = q.since.max(now);
    }

    /// How long this member stays quiet before it campaigns in the term after `term`:
    /// deterministic in `(id, term)`, and different from one term to the next, so two members
    /// whose campaigns clashed once do not clash again.
    pub fn wait(&self, term: u64) -> Duration {
        let (lo, hi) = self.range_ms;
        let offset = mix(self.id.rotate_left(32) ^ term) % (hi - lo);
        Duration::from_millis(lo + offset)
    }

    /// When this member campaigns if nothing is heard meanwhile.
    pub fn due(&self, term: u64) -> Instant {
        self.lock().since + self.wait(term)
    }

    /// Whether no leader has been heard for at least `lease` at `now`.
    pub fn leader_silent_for(&self, lease: Duration, now: Instant) -> bool {
        self.lock()
            .leader_heard
            .is_none_or(|at| now.saturating_duration_since(at) > lease)
    }
}

/// The answer to a pre-vote: yes unless this member leads or has heard a leader within `lease`.
pub fn would_vote(raft: &Raft, timer: &CampaignTimer, lease: Duration, now: Instant) -> bool {
    let state = raft.metrics().borrow().state;
    matches!(state, ServerState::Follower | ServerState::Candidate) && timer.leader_silent_for(lease, now)
}

/// Asks every other voter whether it would vote now; true once a majority (this member
/// included) says yes, false once that can no longer happen (a question unanswered within the
/// RPC timeout for `ttl` counts as no).
async fn pre_vote(raft: &Raft, rpc: &Arc<Rpc>, ttl: Duration) -> bool {
    let me = rpc.me();
    let voters = voters(raft);
    if !voters.contains(&me) {
        return false;
    }
    let majority = voters.len() / 2 + 1;
    let mut yes = 1;
    let mut open = voters.len() - 1;
    let mut asks = tokio::task::JoinSet::new();
    for to in voters.into_iter().filter(|&v| v != me) {
        let rpc = Arc::clone(rpc);
        asks.spawn(async move {
            matches!(
                rpc.call(to, Request::PreVote, ttl).await,
                Ok(Response::PreVote(true))
            )
        });
    }
    while yes < majority && yes + open >= majority {
        match asks.join_next().await {
            Some(answer) => {
                open -= 1;
                yes += usize::from(answer.unwrap_or(false));
            }
            None => break,
        }
    }
    yes >= majority
}

/// The voters of the membership in effect.
fn voters(raft: &Raft) -> Vec<NodeId> {
    raft.server_metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

/// Whether `me` is a voter, and whether it is the only one.
fn standing(
    m: &openraft::metrics::RaftServerMetrics<NodeId, crate::types::Member>,
    me: NodeId,
) -> (bool, bool) {
    let mut voters = 0usize;
    let mut mine = false;
    for v in m.membership_config.membership().voter_ids() {
        voters += 1;
        mine |= v == me;
    }
    (mine, mine && voters == 1)
}

/// Campaigns whenever the member has been quiet for its campaign time and a pre-vote finds a
/// majority, until raft stops. A leader is never quiet (it resets its own timer); a member that
/// is not a voter (a learner, or not yet initialised) never campaigns; the only voter of a
/// cluster of one campaigns at once. `ttl` bounds each pre-vote question.
pub async fn campaign_when_quiet(raft: Raft, timer: Arc<CampaignTimer>, rpc: Arc<Rpc>, ttl: Duration) {
    // The server metrics change only with the state, the vote, the leader or the membership
    // (not with every entry, as the full metrics do).
    let mut metrics = raft.server_metrics();
    loop {
        let (state, term, (voter, only)) = {
            let m = metrics.borrow_and_update();
            (m.state, m.vote.leader_id().term, standing(&m, rpc.me()))
        };
        let now = Instant::now();
        match state {
            ServerState::Shutdown => return,
            ServerState::Leader | ServerState::Learner => timer.reset(now),
            ServerState::Follower | ServerState::Candidate => {
                // Alone: no one to hear from. Only from Follower, so that the election just
                // triggered (the member a Candidate meanwhile) is not triggered again.
                let alone = only && state == ServerState::Follower;
                if !voter {
                    timer.reset(now);
                } else if alone || now >= timer.due(term) {
                    timer.reset(now);
                    let quiet_ms = timer.wait(term).as_millis() as u64;
                    if !alone && !pre_vote(&raft, &rpc, ttl).await {
                        // Quiet again from the answers (a dead member's takes up to `ttl`).
                        timer.reset(Instant::now());
                        tracing::info!(
                            term,
                            quiet_ms,
                            "no leader heard, but no majority would vote: not campaigning"
                        );
                        continue;
                    }
                    tracing::info!(term, quiet_ms, "no leader heard: campaigning");
                    if raft.trigger().elect().await.is_err() {
                        return;
                    }
                }
            }
        }
        // Look again when due, or when the metrics change (a new term or state moves the due
        // time; an AppendEntries only pushes it later, which the next look finds).
        let due = timer.due(term);
        let sleep = tokio::time::sleep_until(due.max(now + Duration::from_millis(1)).into());
        tokio::select! {
            _ = sleep => {}
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_stays_in_its_slice_and_moves_with_the_term() {
        let t = CampaignTimer::new(2, (210, 215), Instant::now());
        let waits: Vec<u64> = (0..50).map(|term| t.wait(term).as_millis() as u64).collect();
        assert!(waits.iter().all(|w| (210..215).contains(w)), "{waits:?}");
        assert!(
            waits.windows(2).any(|w| w[0] != w[1]),
            "the term moves the wait: {waits:?}"
        );
        let other = CampaignTimer::new(3, (210, 215), Instant::now());
        assert!((0..50).any(|term| t.wait(term) != other.wait(term)), "ids differ");
    }

    #[test]
    fn hearing_a_leader_or_granting_a_vote_pushes_the_campaign_back() {
        let start = Instant::now();
        let t = CampaignTimer::new(1, (190, 191), start);
        assert_eq!(t.due(5), start + Duration::from_millis(190));
        assert!(t.leader_silent_for(Duration::from_millis(163), start));
        let later = start + Duration::from_millis(100);
        t.heard_leader(later);
        assert_eq!(t.due(5), later + Duration::from_millis(190));
        assert!(!t.leader_silent_for(Duration::from_millis(163), later + Duration::from_millis(163)));
        assert!(t.leader_silent_for(Duration::from_millis(163), later + Duration::from_millis(164)));
        // A reset never moves the due time earlier.
        t.reset(start);
        assert_eq!(t.due(5), later + Duration::from_millis(190));
        let vote = later + Duration::from_millis(150);
        t.reset(vote);
        assert_eq!(t.due(5), vote + Duration::from_millis(190));
    }
}
