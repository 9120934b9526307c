//! The node as a cluster member (`ordo node --cluster FILE --id N`, `docs/REPLICATION.md`): its
//! consensus (openraft on its journal, Aeron to the other members), and how its role drives
//! the node: the sequencer proposes only while the member leads ([`LeaderGate`]), and the
//! gateway serves FIX only then (`serving`).
//!
//! Every member runs the same node: the engine agent applies the committed prefix on every
//! member (`crate::member::engine_runner`, member mode), so a follower that is elected has its engine
//! at the committed position already.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::BasicNode;
use ordo_journal::Durability;
use ordo_replica::aeron::{AeronConfig, AeronTransport};
use ordo_replica::cluster_file::ClusterFile;
use ordo_replica::member::{MemberConfig, RunningMember};
use ordo_replica::role::Role;
use ordo_replica::storage::JournalLog;
use ordo_replica::transfer::Handover;
use ordo_replica::types::{NodeId, Raft};
use tokio::sync::watch;

use crate::leader::proposer::LeaderGate;
use crate::leader::sequencing::Bell;

/// How long a transfer waits for the sequencer to go quiet: every proposal answered, which
/// under load is one commit's latency (p99 measured at ~330 ms at 5000 orders/s).
const QUIET_MAX: Duration = Duration::from_secs(2);

/// Which member of which cluster this node is.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The cluster file, parsed.
    pub file: ClusterFile,
    /// This member's id (in `file`).
    pub id: NodeId,
    /// Where Aeron's driver directories go (`/dev/shm` by default).
    pub aeron_root: PathBuf,
}

/// A member's consensus, running.
pub struct Consensus {
    /// The member (raft, its log, its role).
    pub member: RunningMember,
    /// Its transport to the other members (none for a cluster of one).
    transport: Option<Arc<AeronTransport>>,
    /// The runtime raft runs on: threads of its own, so that neither a busy gateway nor a
    /// blocking fsync of the vote (measured up to 195 ms on this VM's disk) holds up heartbeats
    /// and votes. Taken at shutdown.
    runtime: Option<tokio::runtime::Runtime>,
}

/// Threads of the consensus runtime: openraft's core may block in an fsync of the vote while
/// the dispatcher answers on the other.
const RAFT_THREADS: usize = 2;

/// What the admin channel reads of a member.
#[derive(Clone)]
pub struct MemberView {
    /// Its id.
    pub id: NodeId,
    /// Its raft.
    pub raft: Raft,
    /// Its log.
    pub log: JournalLog,
    /// Its role.
    pub role: watch::Receiver<Role>,
    /// Each member's FIX address, by id.
    pub fix: BTreeMap<NodeId, std::net::SocketAddr>,
    /// Whether the gateway serves FIX now (set once the node has made its switch).
    pub serving: Option<watch::Receiver<bool>>,
    /// The member's side of leader transfers.
    pub handover: Handover,
    /// The sequencer's gate (a transfer holds it).
    pub gate: Arc<LeaderGate>,
    /// Wakes the sequencer.
    pub bell: Bell,
    /// Held while a transfer runs: one at a time.
    pub transferring: Arc<tokio::sync::Mutex<()>>,
}

impl MemberView {
    /// `id=… role=… term=… leader=… serving=yes|no last_seq=… committed_seq=…` (`ordo admin
    /// status`).
    pub fn status(&self) -> String {
        let m = self.raft.metrics().borrow().clone();
        let role = match *self.role.borrow() {
            Role::Leader { .. } => "leader",
            Role::CutOff { .. } => "cut-off",
            Role::Follower { .. } => "follower",
            Role::Stopped => "stopped",
        };
        let positions = self.log.positions();
        let serving = self.serving.as_ref().is_some_and(|s| *s.borrow());
        format!(
            "id={} role={role} term={} leader={} serving={} last_seq={} committed_seq={}",
            self.id,
            m.current_term,
            m.current_leader.map_or("none".to_string(), |l| l.to_string()),
            if serving { "yes" } else { "no" },
            positions.written(),
            positions.committed()
        )
    }

    /// Why an operator command cannot be sequenced here, if it cannot: only the leader
    /// sequences.
    pub fn refuse(&self) -> Option<String> {
        match *self.role.borrow() {
            Role::Leader { .. } => None,
            _ => {
                let leader = self.raft.metrics().borrow().current_leader;
                Some(match leader.and_then(|l| self.fix.get(&l).map(|a| (l, a))) {
                    Some((l, addr)) if l != self.id => {
                        format!("not the leader: member {l} leads (FIX {addr})")
                    }
                    _ => "not the leader: no leader known".to_string(),
                })
            }
        }
    }
}

impl MemberView {
    /// `ordo admin transfer-leader N` (`docs/REPLICATION.md`, 4.3): holds the sequencer (inputs
    /// wait in their lanes), waits until every proposal is answered, then hands leadership to
    /// `to`. Once `to` leads, this member follows: its gateway closes every connection, its
    /// held inputs are dropped, and their clients resend them to the new leader as after a
    /// failover. If `to` is not elected, this member takes input again while it still leads.
    /// Answers `to=N term=T pause_ms=P quiet_ms=Q caught_up_ms=C`: P from the hold to `to`
    /// leading, Q from the hold to every proposal answered, C from then to `to` holding the
    /// leader's last index.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<String, String> {
        if let Some(why) = self.refuse() {
            return Err(why);
        }
        if self.fix.len() == 1 {
            return Err("a cluster of one: there is no other member to lead".to_string());
        }
        if !self.fix.contains_key(&to) {
            return Err(format!("no member {to} in the cluster file"));
        }
        let Ok(_one) = self.transferring.try_lock() else {
            return Err("a transfer is in progress".to_string());
        };
        let start = Instant::now();
        self.gate.hold();
        let quiet = self.gate.quiet(&self.bell, QUIET_MAX).await;
        let quiet_ms = start.elapsed().as_millis();
        let result = match quiet {
            Ok(()) => self.handover.transfer_to(to).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match result {
            Ok(t) => {
                let pause_ms = start.elapsed().as_millis();
                tracing::info!(to, term = t.term, pause_ms, quiet_ms, "leadership transferred");
                Ok(format!(
                    "to={} term={} pause_ms={pause_ms} quiet_ms={quiet_ms} caught_up_ms={}",
                    t.to, t.term, t.caught_up_ms
                ))
            }
            Err(e) => {
                // Where this member still leads, it takes input again.
                self.gate.release();
                self.bell.ring();
                tracing::warn!(to, %e, "leader transfer failed");
                Err(format!("transfer to member {to}: {e}"))
            }
        }
    }
}

impl Consensus {
    /// Starts member `spec.id`'s consensus on the raft log in `data_dir` (its `journal/` and
    /// `raft/`). A member whose log is empty waits a few election timeouts for the others to
    /// bring it in, then initializes the cluster itself (every member doing so with the same
    /// membership is safe, openraft says; waiting first spares a live cluster the elections
    /// of a member restarted from empty).
    pub async fn start(
        spec: &ClusterSpec,
        data_dir: &Path,
        durability: Durability,
    ) -> Result<Consensus, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RAFT_THREADS)
            .thread_name("raft")
            .enable_all()
            .build()
            .map_err(|e| format!("raft runtime: {e}"))?;
        let (spec_owned, dir) = (spec.clone(), data_dir.to_path_buf());
        let started = runtime
            .spawn(async move { Self::start_here(&spec_owned, &dir, durability).await })
            .await
            .map_err(|e| format!("raft runtime: {e}"));
        match started {
            Ok(Ok((member, transport))) => Ok(Consensus {
                member,
                transport,
                runtime: Some(runtime),
            }),
            Ok(Err(e)) | Err(e) => {
                runtime.shutdown_background();
                Err(e)
            }
        }
    }

    /// The consensus runtime's handle (the proposer's tasks run there).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.as_ref().expect("running").handle().clone()
    }

    async fn start_here(
        spec: &ClusterSpec,
        data_dir: &Path,
        durability: Durability,
    ) -> Result<(RunningMember, Option<Arc<AeronTransport>>), String> {
        let me = spec
            .file
            .members
            .iter()
            .find(|m| m.id == spec.id)
            .ok_or_else(|| format!("cluster file has no member {}", spec.id))?;
        let t = spec.file.timings;
        // Each member campaigns after a quiet spell drawn from a narrow slice of its own, by its
        // place among the members' ids (`docs/REPLICATION.md`, 4.5): two followers of a dead
        // leader never campaign together.
        let place = spec.file.members.iter().filter(|m| m.id < spec.id).count() as u64;
        let count = spec.file.members.len() as u64;
        let cfg = MemberConfig {
            id: spec.id,
            dir: data_dir.to_path_buf(),
            durability,
            heartbeat_ms: t.heartbeat_ms,
            lease_ms: t.lease_ms(),
            campaign_ms: t.election_slice(place, count),
            quorum_timeout_ms: t.leader_timeout_ms,
            watch_period_ms: t.watch_period_ms(),
        };
        let (transport, member) = if spec.file.members.len() == 1 {
            let (transport, inbox) = ordo_replica::transport::NoPeers::new();
            (None, RunningMember::start(&cfg, transport, inbox).await?)
        } else {
            let endpoints = spec.file.members.iter().map(|m| (m.id, m.raft)).collect();
            let (transport, inbox) = AeronTransport::start(&AeronConfig {
                me: spec.id,
                endpoints,
                aeron_root: spec.aeron_root.clone(),
                shared_driver: None,
                driver_idle_max: Duration::from_micros(t.transport_idle_max_us),
            })?;
            let member = RunningMember::start(&cfg, transport.clone(), inbox).await?;
            (Some(transport), member)
        };
        tracing::info!(id = spec.id, raft = %me.raft, "member started");
        initialize(
            &member.raft,
            spec,
            Duration::from_millis(t.election_timeout_max_ms * 3),
        )
        .await?;
        Ok((member, transport))
    }

    /// What the admin channel reads and does; `gate` and `bell` are the sequencer's.
    pub fn view(&self, spec: &ClusterSpec, gate: Arc<LeaderGate>, bell: Bell) -> MemberView {
        MemberView {
            id: self.member.id,
            raft: self.member.raft.clone(),
            log: self.member.log.clone(),
            role: self.member.role.clone(),
            fix: spec.file.members.iter().map(|m| (m.id, m.fix)).collect(),
            serving: None,
            handover: self.member.handover(),
            gate,
            bell,
            transferring: Arc::default(),
        }
    }

    /// Stops raft and the transport.
    pub async fn shutdown(mut self) {
        let runtime = self.runtime.take().expect("running");
        let (member, transport) = (self.member, self.transport);
        let _ = runtime
            .spawn(async move {
                member.shutdown().await;
                if let Some(t) = transport {
                    // Joins the aeron thread: off the runtime's own threads.
                    let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
                }
            })
            .await;
        // A runtime may not be dropped inside another's context: its threads end on their own.
        runtime.shutdown_background();
    }
}

/// Initializes the cluster from this member if, after `wait`, no other member has brought it in.
async fn initialize(raft: &Raft, spec: &ClusterSpec, wait: Duration) -> Result<(), String> {
    let initialized = || async { raft.is_initialized().await.map_err(|e| format!("raft: {e}")) };
    if initialized().await? {
        return Ok(());
    }
    if spec.file.members.len() > 1 {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if initialized().await? {
                return Ok(());
            }
        }
    }
    let nodes: BTreeMap<NodeId, BasicNode> = spec
        .file
        .members
        .iter()
        .map(|m| (m.id, BasicNode::new(m.raft)))
        .collect();
    match raft.initialize(nodes).await {
        Ok(()) => Ok(()),
        // Another member got there first: the cluster is formed, which is the point.
        Err(openraft::error::RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(format!("initialize the cluster: {e}")),
    }
}

/// Follows the member's role: while it leads, the sequencer proposes (gate; the router opens
/// `serving` once the term's Takeover record is applied); otherwise neither. Leadership begins with the log's last timestamp as the
/// stamper's floor, and with the genesis records if the log holds no event yet. Ends when raft
/// stops.
pub async fn follow_role(
    mut role: watch::Receiver<Role>,
    log: JournalLog,
    gate: Arc<LeaderGate>,
    bell: Bell,
    serving: Arc<watch::Sender<bool>>,
) {
    loop {
        let now = *role.borrow_and_update();
        tracing::info!(role = ?now, "member role");
        match now {
            Role::Leader { term } => {
                // Serving begins when the router applies this term's Takeover record.
                if gate.term() != term {
                    gate.lead(term, log.last_timestamp_ns(), !log.holds_events());
                    bell.ring();
                }
            }
            Role::CutOff { .. } | Role::Follower { .. } | Role::Stopped => {
                // Serving stops first: no connection may send anything once leadership is in
                // doubt (`docs/REPLICATION.md`, 4.4).
                serving.send_if_modified(|s| std::mem::replace(s, false));
                gate.step_down();
                bell.ring();
                if now == Role::Stopped {
                    return;
                }
            }
        }
        if role.changed().await.is_err() {
            serving.send_if_modified(|s| std::mem::replace(s, false));
            gate.step_down();
            bell.ring();
            return;
        }
    }
}
