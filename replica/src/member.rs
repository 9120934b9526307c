//! One cluster member's consensus: its raft instance on its journal, its network, and the
//! dispatcher that feeds what arrives from the transport to raft (requests) or to their waiters
//! (answers).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{Config, SnapshotPolicy};
use ordo_journal::Durability;

use crate::campaign::CampaignTimer;
use crate::network::{Network, Rpc};
use crate::role::{LeaderWatch, Role};
use crate::storage::{self, JournalLog};
use crate::transport::{Inbox, Transport};
use crate::types::{NodeId, Raft};
use crate::wire::{self, Request, Response, Wire};

/// Entries per AppendEntries at most (openraft's default is 300). Each entry holds up to
/// [`crate::batch::MAX_BATCH_BYTES`] (128 KiB), so one request stays under 1 MiB: under Aeron's
/// largest message (2 MiB with the default term length; a bigger one is refused by the
/// publication and never arrives), and small enough to be appended and answered within
/// openraft 0.9's AppendEntries timeout, which is one heartbeat interval (20 ms) and cannot be
/// configured. With 300 a lagging follower was sent requests it could never answer in time,
/// and the leader resent them for ever (measured: commit stalled within 2 s at 20K orders/s).
pub const MAX_PAYLOAD_ENTRIES: u64 = 8;

const _: () = assert!(
    MAX_PAYLOAD_ENTRIES as usize * crate::batch::MAX_BATCH_BYTES <= 1024 * 1024,
    "an AppendEntries must stay under Aeron's largest message"
);

/// What a member needs to start.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// Its id.
    pub id: NodeId,
    /// Its data directory (`journal/`, `raft/`).
    pub dir: PathBuf,
    /// Its journal's durability policy: an entry counts towards a commit once durable under it.
    pub durability: Durability,
    /// Leader heartbeat, ms.
    pub heartbeat_ms: u64,
    /// A voter refuses every candidate for this long after it last heard a leader (openraft's
    /// leader lease: its `election_timeout_max`), ms.
    pub lease_ms: u64,
    /// This member campaigns after a quiet spell drawn from `[lo, hi)` ms (`crate::campaign`):
    /// above `lease_ms`, so a campaign comes when the voters can grant it.
    pub campaign_ms: (u64, u64),
    /// A leader that has heard no quorum for this long is cut off: below `lease_ms` by more
    /// than `watch_period_ms`, so it has stopped serving before any voter grants a vote.
    pub quorum_timeout_ms: u64,
    /// How often the role watch looks when the metrics do not change (a cut-off leader's quorum
    /// age grows without any change): well under the gap between `quorum_timeout_ms` and
    /// `lease_ms`.
    pub watch_period_ms: u64,
}

impl MemberConfig {
    /// Member `id` in `dir` with the default timings of `docs/REPLICATION.md` (4.7), campaigning
    /// after a quiet spell drawn from the whole default range (a cluster file gives each member
    /// a slice of its own instead).
    pub fn new(id: NodeId, dir: impl Into<PathBuf>) -> Self {
        let t = crate::cluster_file::Timings::default();
        MemberConfig {
            id,
            dir: dir.into(),
            durability: Durability::None,
            heartbeat_ms: t.heartbeat_ms,
            lease_ms: t.lease_ms(),
            campaign_ms: (t.election_timeout_min_ms, t.election_timeout_max_ms),
            quorum_timeout_ms: t.leader_timeout_ms,
            watch_period_ms: t.watch_period_ms(),
        }
    }

    /// openraft's configuration.
    pub fn raft_config(&self) -> Result<Config, String> {
        Config {
            cluster_name: "ordo".into(),
            heartbeat_interval: self.heartbeat_ms,
            // Only the lease (the maximum) is used: elections are ours (`crate::campaign`).
            election_timeout_min: self.lease_ms.saturating_sub(1).max(1),
            election_timeout_max: self.lease_ms.max(2),
            enable_elect: false,
            // Engine snapshots are not built yet; nothing is purged, so none is ever needed.
            snapshot_policy: SnapshotPolicy::Never,
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            ..Default::default()
        }
        .validate()
        .map_err(|e| format!("raft configuration: {e}"))
    }
}

/// A running member.
pub struct RunningMember {
    /// Its id.
    pub id: NodeId,
    /// Its raft instance.
    pub raft: Raft,
    /// Its log (the journal).
    pub log: JournalLog,
    /// Its role, updated on every metrics change and every `watch_period_ms`.
    pub role: tokio::sync::watch::Receiver<Role>,
    /// Its requests to the other members (openraft's, and the leader transfer's).
    pub(crate) rpc: Arc<Rpc>,
    /// The term it leads and since when it was seen leading it (`crate::transfer` waits for
    /// its own lease to run out from there).
    pub(crate) leading_since: Arc<std::sync::Mutex<Option<(u64, Instant)>>>,
    /// Its timings.
    pub(crate) config: MemberConfig,
    dispatcher: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
    campaigner: tokio::task::JoinHandle<()>,
}

impl RunningMember {
    /// Opens the member's journal as its raft log and starts raft and the dispatcher of `inbox`.
    pub async fn start(
        cfg: &MemberConfig,
        transport: Arc<dyn Transport>,
        inbox: Inbox,
    ) -> Result<Self, String> {
        let (log, sm) = storage::open(&cfg.dir, cfg.durability).map_err(|e| match e {
            // The one journal an operator is likely to have that is not a raft log.
            e @ storage::OpenError::NotARaftLog { seq: 1, .. } => format!(
                "{e} (a journal that `ordo node` wrote before every node ran as a cluster member is not a raft log: start on a new data directory, and keep the old one for `ordo journal`)"
            ),
            e => e.to_string(),
        })?;
        // Read before raft starts: its metrics are not yet loaded from the log at first.
        let empty = log.last_seq() == 0;
        let rpc = Rpc::new(cfg.id, transport);
        let raft = Raft::new(
            cfg.id,
            Arc::new(cfg.raft_config()?),
            Network::new(Arc::clone(&rpc), Duration::from_millis(cfg.heartbeat_ms.max(1))),
            log.clone(),
            sm,
        )
        .await
        .map_err(|e| format!("member {}: raft: {e}", cfg.id))?;
        let lease = Duration::from_millis(cfg.lease_ms);
        let timer = Arc::new(CampaignTimer::new(cfg.id, cfg.campaign_ms, Instant::now()));
        // Settle: twice openraft's timeout for an AppendEntries answer (a heartbeat interval):
        // an answer sent before the data was lost is counted or dropped by then.
        let settle = Duration::from_millis(2 * cfg.heartbeat_ms.max(1));
        let guard = Arc::new(crate::rejoin::Guard::new(empty, settle));
        let dispatcher = tokio::spawn(dispatch(
            inbox,
            raft.clone(),
            Arc::clone(&rpc),
            lease,
            Arc::clone(&guard),
            Arc::clone(&timer),
        ));
        // A pre-vote question waits up to a heartbeat (times the RPC factor) for its answer.
        let campaigner = tokio::spawn(crate::campaign::campaign_when_quiet(
            raft.clone(),
            timer,
            Arc::clone(&rpc),
            Duration::from_millis(cfg.heartbeat_ms.max(1)),
        ));
        let (role_tx, role) = tokio::sync::watch::channel(Role::Follower {
            term: 0,
            leader: None,
        });
        let watch = LeaderWatch::new(Duration::from_millis(cfg.quorum_timeout_ms));
        let every = Duration::from_millis(cfg.watch_period_ms.max(1));
        let leading_since = Arc::new(std::sync::Mutex::new(None));
        let watcher = tokio::spawn(watch_role(
            raft.clone(),
            watch,
            every,
            role_tx,
            Arc::clone(&leading_since),
            guard,
        ));
        Ok(RunningMember {
            id: cfg.id,
            raft,
            log,
            role,
            rpc,
            leading_since,
            config: cfg.clone(),
            dispatcher,
            watcher,
            campaigner,
        })
    }

    /// Its side of leader transfers (`crate::transfer`).
    pub fn handover(&self) -> crate::transfer::Handover {
        crate::transfer::Handover {
            id: self.id,
            raft: self.raft.clone(),
            rpc: Arc::clone(&self.rpc),
            leading_since: Arc::clone(&self.leading_since),
            config: self.config.clone(),
        }
    }

    /// Stops raft and the dispatcher (a clean stop; a killed member just disappears).
    pub async fn shutdown(self) {
        let _ = self.raft.shutdown().await;
        self.dispatcher.abort();
        self.watcher.abort();
        self.campaigner.abort();
    }
}

/// Publishes the member's role whenever the metrics change, and at least every `every` (a cut-off
/// leader's quorum age grows without any other change).
async fn watch_role(
    raft: Raft,
    mut watch: LeaderWatch,
    every: Duration,
    tx: tokio::sync::watch::Sender<Role>,
    leading_since: Arc<std::sync::Mutex<Option<(u64, Instant)>>>,
    guard: Arc<crate::rejoin::Guard>,
) {
    let mut metrics = raft.metrics();
    loop {
        let now = Instant::now();
        let role = watch.observe(&metrics.borrow_and_update(), now);
        {
            let mut since = leading_since.lock().unwrap_or_else(|p| p.into_inner());
            *since = match (role, *since) {
                (Role::Leader { term } | Role::CutOff { term }, Some((t, at))) if t == term => Some((t, at)),
                (Role::Leader { term } | Role::CutOff { term }, _) => Some((term, now)),
                _ => None,
            };
        }
        if matches!(role, Role::Leader { .. }) {
            guard.led();
        }
        tx.send_if_modified(|r| std::mem::replace(r, role) != role);
        if role == Role::Stopped {
            return;
        }
        // Raft gone (its metrics sender dropped): stopped. A timeout: look again.
        if let Ok(Err(_)) = tokio::time::timeout(every, metrics.changed()).await {
            let _ = tx.send(Role::Stopped);
            return;
        }
    }
}

/// Feeds arriving messages to raft (requests, each answered on a task of its own so that a slow
/// append never holds up a vote) or to their waiters (answers). A message that does not decode
/// is logged and dropped, as a damaged packet.
async fn dispatch(
    mut inbox: Inbox,
    raft: Raft,
    rpc: Arc<Rpc>,
    lease: Duration,
    guard: Arc<crate::rejoin::Guard>,
    heard: Arc<CampaignTimer>,
) {
    while let Some(bytes) = inbox.recv().await {
        match wire::decode(&bytes) {
            Ok(Wire::Response { id, body }) => rpc.complete(id, body),
            Ok(Wire::Request { id, from, body }) => {
                let raft = raft.clone();
                let rpc = Arc::clone(&rpc);
                let heard = Arc::clone(&heard);
                let guard = Arc::clone(&guard);
                tokio::spawn(async move {
                    let body = match body {
                        Request::Campaign { term, last_index } => {
                            Response::Campaign(crate::transfer::campaign(&raft, from, term, last_index).await)
                        }
                        Request::PreVote => Response::PreVote(crate::campaign::would_vote(
                            &raft,
                            &heard,
                            lease,
                            Instant::now(),
                        )),
                        Request::Vote(r) => {
                            let ours = raft.metrics().borrow().vote;
                            if let Some(refused) = guard.refuse(&r, ours) {
                                Response::Vote(Ok(refused))
                            } else {
                                let (theirs, their_vote) = (r.last_log_id, r.vote);
                                let answer = raft.vote(r).await;
                                if answer.as_ref().is_ok_and(|a| a.vote_granted) {
                                    heard.reset(Instant::now());
                                }
                                take_over_from_a_shorter_log(
                                    &heard, &raft, &answer, theirs, their_vote, lease,
                                );
                                Response::Vote(answer)
                            }
                        }
                        Request::Append(r) => {
                            // A leader of this term or a later one (a deposed leader's heartbeat
                            // is refused by raft and keeps no one from campaigning). The server
                            // metrics: they change with the vote only, not with every entry.
                            if r.vote.leader_id().term >= raft.server_metrics().borrow().vote.leader_id().term
                            {
                                heard.heard_leader(Instant::now());
                            }
                            // What the guard needs, taken before raft consumes the request.
                            let seen = guard.holding().then(|| {
                                let ours = r.entries.last().map(|e| e.log_id).or(r.prev_log_id);
                                (ours, r.leader_commit)
                            });
                            let answer = raft.append_entries(r).await;
                            if let (
                                Some((ours, commit)),
                                Ok(openraft::raft::AppendEntriesResponse::Success),
                            ) = (seen, &answer)
                            {
                                guard.appended(ours, commit);
                            }
                            Response::Append(answer)
                        }
                        Request::Snapshot(r) => Response::Snapshot(raft.install_snapshot(r).await),
                    };
                    match wire::encode(&Wire::Response { id, body }) {
                        Ok(bytes) => rpc.transport().send(rpc.me(), from, bytes),
                        Err(e) => tracing::error!(%e, "raft answer does not encode"),
                    }
                });
            }
            Err(e) => tracing::warn!(%e, "dropped a message"),
        }
    }
}

/// A candidate whose log is shorter than this member's was refused. Only a member with the
/// longest log can win, and this one would otherwise campaign only when its own timer runs out
/// (measured: 60-70 ms later, in two failovers of three; 150 ms when both had campaigned). If it
/// has heard no leader for its lease (so it refused for the log, not for a live leader), it
/// campaigns now, in a vote the candidate grants: a vote is ordered by term, then by id, and the
/// candidate voted for itself, so this member's must be of a higher term, or of the same term
/// with a higher id. When a higher id went first (seen in the members' logs of a twenty-failover
/// run), openraft's first election is in the candidate's own term (it refused without taking
/// that term) and is lost, so it elects again at once (without it, the next try came at its
/// election timeout, 380-500 ms later).
fn take_over_from_a_shorter_log(
    heard: &CampaignTimer,
    raft: &Raft,
    answer: &Result<openraft::raft::VoteResponse<NodeId>, openraft::error::RaftError<NodeId>>,
    theirs: Option<crate::types::LogId>,
    their_vote: crate::types::Vote,
    lease: Duration,
) {
    let Ok(answer) = answer else { return };
    let silent = heard.leader_silent_for(lease, Instant::now());
    if answer.vote_granted || answer.last_log_id <= theirs || !silent {
        return;
    }
    // A candidate too: two members that campaigned together (their last AppendEntries
    // arrived apart by more than the slices' spacing) refuse each other, and only the one
    // with the longer log can win; it campaigns again at once, in a higher term.
    let state = raft.metrics().borrow().state;
    if !matches!(
        state,
        openraft::ServerState::Follower | openraft::ServerState::Candidate
    ) {
        return;
    }
    tracing::info!(?theirs, ours = ?answer.last_log_id, "refused a candidate with a shorter log: campaigning");
    heard.reset(Instant::now());
    let raft = raft.clone();
    let (me, term_now) = {
        let m = raft.metrics();
        let m = m.borrow();
        (m.id, m.current_term)
    };
    let (their_term, their_id) = (their_vote.leader_id().term, their_vote.leader_id().voted_for());
    let next = term_now + 1;
    let one_is_enough = next > their_term || (next == their_term && their_id.is_some_and(|id| me > id));
    tokio::spawn(async move {
        if raft.trigger().elect().await.is_ok() && !one_is_enough {
            // One term above the first: openraft handles the two in order.
            let _ = raft.trigger().elect().await;
        }
    });
}
