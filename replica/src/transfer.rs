//! Handing leadership to a chosen member (`ordo admin transfer-leader N`,
//! `docs/REPLICATION.md` 4.3). openraft 0.9 has no leader transfer; it has `trigger().elect()`,
//! which makes a follower campaign at once. The leader's part ([`Handover::transfer_to`]):
//!
//! 1. its caller has stopped proposing and every proposal is answered (the sequencer's hold),
//!    so the leader's log no longer grows;
//! 2. it waits until member N's replicated index reaches its own last index: N's log is then
//!    as long as any, so it can win;
//! 3. it waits until its own vote's lease has run out (openraft refreshes a follower's lease
//!    with every heartbeat, but a leader's only when it is elected): from then on it grants a
//!    vote to a candidate whose log is as long as its own, so N needs no other voter;
//! 4. it asks N to campaign ([`crate::wire::Request::Campaign`]); N checks that it still
//!    follows this leader in this term and holds its last index, then calls `elect()`;
//! 5. it waits until N leads in a higher term. It steps down either by granting N's vote or
//!    when a heartbeat meets N's higher term, whichever comes first.
//!
//! Nothing is lost (nothing is in flight when N campaigns) or duplicated (nothing is proposed
//! twice). If N is not elected in time, the caller takes input again where it still leads.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::ServerState;

use crate::member::MemberConfig;
use crate::network::Rpc;
use crate::types::{NodeId, Raft, RaftMetrics};
use crate::wire::{Request, Response};

/// How long a transfer waits for the chosen member to hold the leader's last index. No input
/// is taken meanwhile, so it is part of the pause; a follower further behind than this is not
/// a good choice of leader.
pub const CATCH_UP_MAX: Duration = Duration::from_secs(2);

/// How many leader cut-offs (`leader_timeout_ms`) a transfer waits for the chosen member to be
/// elected once it campaigns: one vote round and its fsync (measured here up to 195 ms).
const ELECTED_WITHIN_TIMEOUTS: u32 = 4;

/// Why a transfer did not happen (the leader may still lead: see [`TransferError::still_leads`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// This member does not lead.
    #[error("not the leader")]
    NotLeader,
    /// Asked to hand leadership to itself.
    #[error("member {0} leads already")]
    AlreadyLeader(NodeId),
    /// The target is not a voter.
    #[error("member {0} is not a voter of this cluster")]
    NotVoter(NodeId),
    /// The target's log did not reach the leader's in time.
    #[error("member {to} did not catch up within {waited_ms} ms (it holds index {matched:?} of {last:?})")]
    NotCaughtUp {
        /// The target.
        to: NodeId,
        /// Its replicated index.
        matched: Option<u64>,
        /// The leader's last index.
        last: Option<u64>,
        /// How long the leader waited.
        waited_ms: u64,
    },
    /// The target refused to campaign (it no longer follows this leader in this term).
    #[error("member {to} refused to campaign: {reason}")]
    Refused {
        /// The target.
        to: NodeId,
        /// Its reason.
        reason: String,
    },
    /// The target did not answer the campaign request.
    #[error("member {0} did not answer the request to campaign")]
    NoAnswer(NodeId),
    /// The target campaigned but was not seen leading in time.
    #[error("member {to} was not elected within {waited_ms} ms (now term {term}, leader {leader:?})")]
    NotElected {
        /// The target.
        to: NodeId,
        /// How long the leader waited.
        waited_ms: u64,
        /// The term now.
        term: u64,
        /// The leader now, if known.
        leader: Option<NodeId>,
    },
}

/// A transfer that happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transferred {
    /// The new leader.
    pub to: NodeId,
    /// Its term.
    pub term: u64,
    /// From the call to the target holding the leader's last index, ms.
    pub caught_up_ms: u64,
    /// From the call to the target seen leading, ms.
    pub elected_ms: u64,
}

/// A member's side of leader transfers (cloneable: the admin channel holds one).
#[derive(Clone)]
pub struct Handover {
    pub(crate) id: NodeId,
    pub(crate) raft: Raft,
    pub(crate) rpc: Arc<Rpc>,
    pub(crate) leading_since: Arc<Mutex<Option<(u64, Instant)>>>,
    pub(crate) config: MemberConfig,
}

impl Handover {
    /// Hands leadership to member `to`. Precondition: nothing more is proposed through this
    /// member and every proposal is answered (module docs, step 1).
    pub async fn transfer_to(&self, to: NodeId) -> Result<Transferred, TransferError> {
        let start = Instant::now();
        let m = self.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return Err(TransferError::NotLeader);
        }
        if to == self.id {
            return Err(TransferError::AlreadyLeader(to));
        }
        if !m.membership_config.membership().voter_ids().any(|v| v == to) {
            return Err(TransferError::NotVoter(to));
        }
        let term = m.current_term;
        let last_index = self.caught_up(to, term).await?;
        let caught_up_ms = elapsed_ms(start);
        self.lease_run_out(term).await;
        let ttl = Duration::from_millis(self.config.quorum_timeout_ms.max(1));
        match self
            .rpc
            .call(to, Request::Campaign { term, last_index }, ttl)
            .await
        {
            Ok(Response::Campaign(Ok(()))) => {}
            Ok(Response::Campaign(Err(reason))) => return Err(TransferError::Refused { to, reason }),
            Ok(_) | Err(_) => return Err(TransferError::NoAnswer(to)),
        }
        let new_term = self.elected(to, term).await?;
        Ok(Transferred {
            to,
            term: new_term,
            caught_up_ms,
            elected_ms: elapsed_ms(start),
        })
    }

    /// Waits until `to` holds this leader's last index; returns that index.
    async fn caught_up(&self, to: NodeId, term: u64) -> Result<Option<u64>, TransferError> {
        let holds = |m: &RaftMetrics| {
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&to).copied().flatten())
                .map(|l| l.index);
            (matched, m.last_log_index)
        };
        let waited = self
            .raft
            .wait(Some(CATCH_UP_MAX))
            .metrics(
                |m| !leads(m, term) || holds(m).0 >= holds(m).1,
                "target caught up",
            )
            .await;
        match waited {
            Ok(m) if leads(&m, term) => Ok(m.last_log_index),
            Ok(_) => Err(TransferError::NotLeader),
            Err(_) => {
                let (matched, last) = holds(&self.raft.metrics().borrow());
                Err(TransferError::NotCaughtUp {
                    to,
                    matched,
                    last,
                    waited_ms: CATCH_UP_MAX.as_millis() as u64,
                })
            }
        }
    }

    /// Sleeps until this leader's vote lease (the cluster's lease, from its
    /// election) has run out, and one heartbeat more.
    async fn lease_run_out(&self, term: u64) {
        let since = match *self.leading_since.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((t, at)) if t == term => at,
            _ => Instant::now(),
        };
        let lease = Duration::from_millis(self.config.lease_ms + self.config.heartbeat_ms);
        tokio::time::sleep_until((since + lease).into()).await;
    }

    /// Waits until `to` leads in a term above `term`; returns its term.
    async fn elected(&self, to: NodeId, term: u64) -> Result<u64, TransferError> {
        let within = Duration::from_millis(self.config.quorum_timeout_ms.max(1)) * ELECTED_WITHIN_TIMEOUTS;
        let waited = self
            .raft
            .wait(Some(within))
            .metrics(
                |m| m.current_term > term && m.current_leader == Some(to),
                "target elected",
            )
            .await;
        match waited {
            Ok(m) => Ok(m.current_term),
            Err(_) => {
                let m = self.raft.metrics().borrow().clone();
                Err(TransferError::NotElected {
                    to,
                    waited_ms: within.as_millis() as u64,
                    term: m.current_term,
                    leader: m.current_leader,
                })
            }
        }
    }
}

fn leads(m: &RaftMetrics, term: u64) -> bool {
    m.state == ServerState::Leader && m.current_term == term
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// The target's part: campaigns if it still follows `from` in `term` and its log holds
/// `last_index`; otherwise says why not.
pub(crate) async fn campaign(
    raft: &Raft,
    from: NodeId,
    term: u64,
    last_index: Option<u64>,
) -> Result<(), String> {
    let m = raft.metrics().borrow().clone();
    if m.state != ServerState::Follower {
        return Err(format!("it is {:?}, not a follower", m.state));
    }
    if m.current_term != term || m.current_leader != Some(from) {
        return Err(format!(
            "it follows {:?} in term {}, not member {from} in term {term}",
            m.current_leader, m.current_term
        ));
    }
    if m.last_log_index < last_index {
        return Err(format!(
            "its log ends at index {:?}, before {:?}",
            m.last_log_index, last_index
        ));
    }
    tracing::info!(from, term, "asked to take over: campaigning");
    raft.trigger().elect().await.map_err(|e| format!("raft: {e}"))
}
