//! Running a node: the journal and its sequencer thread, the engine thread, the sessions and
//! their resend windows, the FIX gateway, the router from engine outputs to sessions, and the
//! admin channel.
//!
//! Data flow: FIX bytes -> gateway (parse, validate, session checks) -> `NodeApp` -> bounded
//! queue -> sequencer thread (stamp, append, publish) -> journal -> engine thread (apply) ->
//! held until durable -> bounded channel -> router (ExecutionReport, windowed, written).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ordo_engine::command::InstrumentSpec;
use ordo_engine::{Admin, Command};
use ordo_journal::{Durability, JournalReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::catalog::{Catalog, InstrumentInfo};
use crate::config::NodeConfig;
use crate::echo::EchoApp;
use crate::leader::clock::{self, Stamper};
use crate::leader::fix_app::NodeApp;
use crate::leader::fix_port::FixPort;
use crate::leader::gateway::{Gateway, GatewayLimits, Registry, Slot};
use crate::leader::proposer::{self, LeaderGate};
use crate::leader::sequencing::{self, Inbound, InboundTx, Refused, SequencerAgent};
use crate::member::cluster::{ClusterSpec, Consensus, MemberView};
use crate::member::engine_runner::{EngineRunner, Outbound};
use crate::member::router::{Router, Serving, SnapshotWriter};
use crate::runtime::idle::IdleStrategy;
use crate::runtime::pipeline::{self, Pipeline};
use crate::schema::{self, Event};
use ordo_fix::session::{Session, SessionConfig};
use ordo_fix::window::ResendWindow;

/// The FIX session settings of a configured session.
pub fn session_config(s: &crate::config::SessionSettings) -> SessionConfig {
    let mut c = SessionConfig::new(&s.sender_comp_id, &s.target_comp_id);
    c.reset_on_logon = s.reset_on_logon;
    c.heartbeat_min_s = s.heartbeat_min_s;
    c.heartbeat_max_s = s.heartbeat_max_s;
    c.credentials = s.username.clone().zip(s.password.clone());
    c
}

/// Gateway limits from the configuration.
pub fn limits(cfg: &NodeConfig) -> GatewayLimits {
    GatewayLimits {
        max_connections: cfg.max_connections,
        logon_timeout_s: cfg.logon_timeout_s,
        max_message_bytes: cfg.max_message_bytes,
        max_pending_bytes: cfg.outbound_queue.saturating_mul(256),
    }
}

/// A session's allowed source addresses, canonical (an IPv4-mapped IPv6 address written in
/// the file compares equal to the IPv4 peer the gateway sees).
fn allowed_addresses(s: &crate::config::SessionSettings) -> Vec<std::net::IpAddr> {
    s.allowed_addresses.iter().map(|a| a.to_canonical()).collect()
}

/// A session's resend window bounds (messages, bytes).
fn window_bounds(s: &crate::config::SessionSettings) -> crate::member::snapshot::WindowBounds {
    (s.resend_window_messages, s.resend_window_bytes)
}

/// An empty resend window of a configured session.
fn empty_window(s: &crate::config::SessionSettings) -> ResendWindow {
    let (messages, bytes) = window_bounds(s);
    ResendWindow::new(messages, bytes)
}

/// Runs the echo node until `shutdown`: sessions with the echo application, resend windows.
pub async fn run_echo(cfg: NodeConfig, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    let mut registry = Registry::default();
    for (i, s) in cfg.sessions.iter().enumerate() {
        let session = Session::new(session_config(s), 1, 1);
        let mut slot = Slot::new(i as u32, session, empty_window(s), Box::new(EchoApp::default()));
        slot.allowed_addresses = allowed_addresses(s);
        registry.add(slot);
    }
    let gateway = Gateway::new(Arc::new(registry), limits(&cfg));
    gateway.serve(listener, shutdown).await;
}

/// What a scan of the journal at start finds.
#[derive(Debug, Default)]
struct JournalScan {
    /// Per session, the last inbound MsgSeqNum journaled since its last reset.
    last_inbound: Vec<u64>,
    /// Instruments added by operators (ids from `configured` on), the last definition of
    /// each id.
    added: BTreeMap<u32, InstrumentSpec>,
}

/// Scans the journal up to `until` (a member's committed position: a tail beyond it may yet be
/// cut).
fn scan_journal(dir: &Path, sessions: usize, configured: usize, until: u64) -> Result<JournalScan, String> {
    let mut scan = JournalScan {
        last_inbound: vec![0; sessions],
        added: BTreeMap::new(),
    };
    if !dir.exists() {
        return Ok(scan);
    }
    let mut reader =
        JournalReader::open_offline(dir, 1).map_err(|e| format!("journal {}: {e}", dir.display()))?;
    while let Some(r) = reader
        .next()
        .map_err(|e| format!("journal {}: {e}", dir.display()))?
    {
        if r.seq() > until {
            break;
        }
        if r.kind() == ordo_replica::entry::KIND_ENTRY || r.kind() == schema::KIND_SESSION_OUT {
            // Raft's own record of an entry (a cluster member's journal), a session message:
            // no inbound number, no instrument.
            continue;
        }
        let event = schema::decode(&r).map_err(|e| format!("journal {}: {e}", dir.display()))?;
        match event {
            Event::Command {
                command: Command::Admin(Admin::UpsertInstrument(spec)),
                ..
            } => {
                if spec.id as usize >= configured {
                    scan.added.insert(spec.id, spec);
                }
            }
            Event::Command { session, msg_seq, .. } | Event::StatusRequest { session, msg_seq, .. } => {
                if let Some(s) = scan.last_inbound.get_mut(session as usize) {
                    *s = (*s).max(msg_seq);
                }
            }
            Event::SessionReset { session } => {
                if let Some(s) = scan.last_inbound.get_mut(session as usize) {
                    *s = 0;
                }
            }
            Event::Genesis { .. }
            | Event::Clock { .. }
            | Event::Takeover { .. }
            | Event::Checkpoint { .. } => {}
        }
    }
    Ok(scan)
}

/// Where earlier versions kept a store journal per session: a cache of the log that no version
/// since the resend windows reads (`docs/REPLICATION.md`, 6.1a). Removed at start, so it does
/// not hold disk space for nothing.
const OLD_STORES_DIR: &str = "sessions";

fn remove_old_stores(data: &Path) -> Result<(), String> {
    let dir = data.join(OLD_STORES_DIR);
    if !dir.exists() {
        return Ok(());
    }
    std::fs::remove_dir_all(&dir)
        .map_err(|e| format!("remove the old session stores {}: {e}", dir.display()))?;
    tracing::info!(dir = %dir.display(), "removed the session stores of an earlier version: the log numbers every message now");
    Ok(())
}

/// A running node's handles, for the admin channel.
#[derive(Clone)]
pub struct NodeHandle {
    /// The sequencer's queue.
    pub inbound: InboundTx,
    /// The catalog.
    pub catalog: Arc<Catalog>,
    /// Pending operator results.
    pub admin: Arc<Mutex<crate::member::router::AdminResults>>,
    /// Held while an instrument is added: its id is chosen before it is sequenced, so two
    /// adds must not overlap.
    pub adding: Arc<tokio::sync::Mutex<()>>,
    /// The journal's positions.
    pub positions: Arc<ordo_journal::Positions>,
    /// The member's consensus (a single node is a cluster of one).
    pub member: MemberView,
}

impl NodeHandle {
    /// Sequences a command from the operator; returns its journal sequence number once it is
    /// journaled (for commands the engine answers only when it rejects them).
    pub async fn sequence(&self, command: Command) -> Result<u64, String> {
        if let Some(why) = self.member.refuse() {
            return Err(why);
        }
        let (seq_tx, seq_rx) = oneshot::channel();
        let event = Event::Command {
            session: self.catalog.admin_session(),
            msg_seq: 0,
            command,
        };
        // The safety lane: an operator's kill switch gets through a full order queue.
        self.inbound
            .send_admin(Inbound::Tracked(event, seq_tx))
            .map_err(|e| match e {
                Refused::Full => format!(
                    "{} operator commands already waiting to be sequenced",
                    sequencing::ADMIN_SAFETY_SLOTS
                ),
                Refused::Stopped => "sequencer stopped".to_string(),
            })?;
        seq_rx
            .await
            .map_err(|_| "not sequenced: the sequencer stopped or leadership ended".to_string())
    }

    /// `ordo admin transfer-leader N`: hands leadership to member `to`.
    pub async fn transfer_leader(&self, to: u64) -> Result<String, String> {
        self.member.transfer_leader(to).await
    }

    /// `ordo admin status`: the member's role, term, leader and positions.
    pub fn status(&self) -> String {
        self.member.status()
    }

    /// Sequences an operator command and waits for the engine's answer.
    pub async fn admin(&self, command: ordo_engine::Admin) -> Result<u64, String> {
        let seq = self.sequence(Command::Admin(command)).await?;
        self.admin_result(seq).await.map(|()| seq)
    }

    /// Waits for the engine's answer to the operator command journaled at `seq`.
    pub async fn admin_result(&self, seq: u64) -> Result<(), String> {
        let waited = self.admin.lock().unwrap_or_else(|p| p.into_inner()).wait_for(seq);
        let rx = match waited {
            Ok(r) => return r.map_err(|reason| reason.text().to_string()),
            Err(rx) => rx,
        };
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(reason.text().to_string()),
            _ => Err("no answer from the engine".to_string()),
        }
    }
}

/// The member's raft log and its sequencer.
struct Log {
    journal_dir: PathBuf,
    positions: Arc<ordo_journal::Positions>,
    sequencer: SequencerAgent,
    /// How far the engine reads (`docs/REPLICATION.md`, 3.2).
    read_limit: ordo_journal::ReadLimit,
    /// The start-up scan reads no further (a member's uncommitted tail may yet be cut).
    scan_until: u64,
    member: Member,
    clock_source: String,
}

/// A cluster member's parts.
struct Member {
    consensus: Consensus,
    view: MemberView,
    /// Whether the gateway serves FIX: opened by the router when it applies this member's
    /// Takeover record, closed by the role watch when leadership ends.
    serving: watch::Receiver<bool>,
    serving_tx: Arc<watch::Sender<bool>>,
    gate: Arc<LeaderGate>,
    role_task: tokio::task::JoinHandle<()>,
}

/// The first records of a log: the genesis record, then the configuration's setup commands.
fn genesis_events(catalog: &Catalog) -> Vec<Event> {
    let mut events = vec![Event::Genesis {
        config: catalog.engine_config(),
    }];
    for command in catalog.setup_commands() {
        events.push(Event::Command {
            session: sequencing::NODE_SESSION,
            msg_seq: 0,
            command,
        });
    }
    events
}

/// A cluster member: its raft log on its journal; its sequencer proposes while it leads.
#[allow(clippy::too_many_arguments)]
async fn member_log(
    cfg: &NodeConfig,
    spec: &ClusterSpec,
    durability: Durability,
    clock: Box<dyn clock::Clock>,
    inbound_rx: sequencing::InboundRx,
    inbound_tx: &InboundTx,
    catalog: &Catalog,
    tick: Duration,
) -> Result<Log, String> {
    let consensus = Consensus::start(spec, &cfg.data_dir, durability).await?;
    let log = consensus.member.log.clone();
    let gate = Arc::new(LeaderGate::default());
    let proposer = proposer::spawn(
        &consensus.handle(),
        consensus.member.raft.clone(),
        Arc::clone(&gate),
        inbound_tx.bell(),
        spec.file.timings.max_in_flight_entries,
    );
    // The leader of a new term disconnects every session for the venue: sessions connected to
    // the previous leader lost their connection with it (cancel-on-disconnect across failover).
    // With a grace, later, only those that did not come back (the router's takeover).
    let grace = spec.file.timings.takeover_grace_ms;
    let takeover = (0..catalog.sessions.len() as u32)
        .filter(|_| grace == 0)
        .filter(|&s| catalog.sessions[s as usize].cancel_on_disconnect)
        .map(|session| Event::Command {
            session,
            msg_seq: 0,
            command: Command::SessionDisconnected {
                session,
                cancel_orders: true,
            },
        })
        .collect();
    let stamper = Stamper::new(clock, 0);
    let clock_source = stamper.clock().source();
    let sequencer = SequencerAgent::member(
        proposer,
        stamper,
        inbound_rx,
        genesis_events(catalog),
        takeover,
        tick,
    );
    let (serving_tx, serving) = watch::channel(false);
    let serving_tx = Arc::new(serving_tx);
    let role_task = tokio::spawn(crate::member::cluster::follow_role(
        consensus.member.role.clone(),
        log.clone(),
        Arc::clone(&gate),
        inbound_tx.bell(),
        Arc::clone(&serving_tx),
    ));
    Ok(Log {
        journal_dir: log.journal_dir().to_path_buf(),
        positions: Arc::clone(log.positions()),
        sequencer,
        read_limit: ordo_journal::ReadLimit::Committed,
        scan_until: log.positions().committed(),
        member: Member {
            view: MemberView {
                serving: Some(serving.clone()),
                ..consensus.view(spec, Arc::clone(&gate), inbound_tx.bell())
            },
            consensus,
            serving,
            serving_tx,
            gate,
            role_task,
        },
        clock_source,
    })
}

/// Runs member `spec.id` of a cluster until `shutdown` (`ordo node --cluster FILE --id N`; a
/// single node is a cluster of one, `ClusterFile::single`); returns once the journal is synced.
pub async fn run_member(
    cfg: NodeConfig,
    spec: &ClusterSpec,
    port: FixPort,
    external_shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    // The node stops on the caller's signal, or by itself when the pipeline fails (a journal
    // that cannot be appended to): a node that cannot sequence must not keep sessions open.
    let (stop_node, shutdown) = watch::channel(false);
    forward_shutdown(external_shutdown, stop_node.clone());
    let catalog = Arc::new(Catalog::new(&cfg)?);
    let durability: Durability = cfg.durability.parse()?;
    let idle: IdleStrategy = cfg.idle.parse()?;
    let layout: Pipeline = cfg.pipeline.parse()?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| format!("create {}: {e}", cfg.data_dir.display()))?;
    // Inline: the pipeline task waits on this bell, rung by every send into its queue.
    let bell = (layout == Pipeline::Inline).then(|| Arc::new(tokio::sync::Notify::new()));
    let (inbound_tx, inbound_rx) =
        sequencing::inbound_channel(cfg.inbound_queue, catalog.sessions.len(), bell.clone());
    let tick = Duration::from_millis(cfg.tick_ms.max(1));
    let clock = clock::open(&cfg.clock)?;
    // A member that diverged stays down until an operator has looked.
    crate::member::checkpoint::refuse_if_halted(&cfg.data_dir)?;
    let log = member_log(
        &cfg,
        spec,
        durability,
        clock,
        inbound_rx,
        &inbound_tx,
        &catalog,
        tick,
    )
    .await?;
    let Log {
        journal_dir,
        positions,
        sequencer,
        read_limit,
        scan_until,
        member,
        clock_source,
    } = log;
    let journal_last = positions.written();
    let scan = scan_journal(
        &journal_dir,
        catalog.sessions.len(),
        catalog.configured().len(),
        scan_until,
    )?;
    publish_added_instruments(&catalog, &scan)?;
    let (out_tx, out_rx) = mpsc::channel::<Outbound>(cfg.outbound_channel);
    let stop = Arc::new(AtomicBool::new(false));
    let snapshots = snapshot_spec(&cfg, spec, &member);
    let bounds: Vec<_> = cfg.sessions.iter().map(window_bounds).collect();
    let mut restored = snapshots.as_ref().and_then(|s| s.restore(&bounds, &journal_dir));
    remove_old_stores(&cfg.data_dir)?;
    let registry = open_sessions(&cfg, &catalog, &inbound_tx, &scan, restored.as_mut());
    let restored_text = match &restored {
        Some(r) => format!(", engine from snapshot at seq {}", r.image.seq),
        None => String::new(),
    };
    let runner = EngineRunner {
        checkpoints: checkpoint_spec(&cfg, spec, &member, &inbound_tx),
        snapshots,
        restored,
        dir: journal_dir.clone(),
        sessions: catalog.sessions.len(),
        admin_session: catalog.admin_session(),
        max_held: cfg.max_held,
        read_limit,
    };
    let on_failure: crate::runtime::agent::OnFailure = {
        let stop_node = stop_node.clone();
        Arc::new(move |e: &str| {
            tracing::error!(error = %e, "pipeline failed: stopping the node");
            let _ = stop_node.send(true);
        })
    };
    let engine = {
        let (positions, stop) = (Arc::clone(&positions), Arc::clone(&stop));
        let caught_up = Arc::new(AtomicBool::new(false));
        move || runner.agent(positions, out_tx, stop, caught_up)
    };
    let pipeline = start_pipeline(
        layout, bell, sequencer, engine, idle, &stop, &positions, on_failure,
    )?;

    let handle = NodeHandle {
        inbound: inbound_tx.clone(),
        catalog: Arc::clone(&catalog),
        admin: Arc::default(),
        adding: Arc::default(),
        positions: Arc::clone(&positions),
        member: member.view.clone(),
    };
    let serving = member.serving.clone();
    let limits = limits(&cfg);
    let router = tokio::spawn(
        Router {
            registry: Arc::clone(&registry),
            catalog: Arc::clone(&catalog),
            admin: Arc::clone(&handle.admin),
            max_pending: limits.max_pending_bytes,
            snapshots: snapshot_spec(&cfg, spec, &member).map(|s| SnapshotWriter {
                dir: s.dir,
                writing: Arc::default(),
            }),
            member: Some(Serving {
                gate: Arc::clone(&member.gate),
                serving: Arc::clone(&member.serving_tx),
                grace: Some(spec.file.timings.takeover_grace_ms)
                    .filter(|&ms| ms > 0)
                    .map(|ms| (Duration::from_millis(ms), inbound_tx.clone())),
            }),
        }
        .run(out_rx),
    );
    let admin_socket = crate::admin::serve(&cfg.data_dir, handle.clone(), shutdown.clone())?;

    // A cluster of one leads at once: it listens once it serves, so that a client that
    // connects after the ready line is never turned away as if by a follower.
    if spec.file.members.len() == 1 {
        wait_until_serving(&member.view, &mut serving.clone(), shutdown.clone(), &positions).await?;
    }
    // Connections are accepted from here on; until now they were refused (`FixPort`).
    let listener = port
        .listen()
        .map_err(|e| format!("listen on {}: {e}", cfg.listen))?;
    // A single node's ready line is the one it printed before it was a cluster of one.
    let member_text = match spec.file.members.len() {
        1 => String::new(),
        n => format!("member {} of {n}, ", spec.id),
    };
    println!(
        "ordo node ready: {member_text}FIX on {} ({} sessions), journal {} (last seq {journal_last}), durability {durability}, clock {clock_source}{restored_text}",
        cfg.listen,
        catalog.sessions.len(),
        journal_dir.display()
    );
    let gateway = Gateway::new(Arc::clone(&registry), limits).serving_only_while(Some(serving));
    gateway.serve(listener, shutdown).await;

    // Shutdown: give connections a moment to send their Logout, then stop the pipeline in
    // order: no more input, journal closed (synced), engine drained.
    tokio::time::sleep(Duration::from_millis(200)).await;
    send_shutdown(&inbound_tx).await;
    drop(inbound_tx);
    drop(handle);
    let (seq_result, engine_result) = stop_pipeline(pipeline, &stop).await;
    router.abort();
    admin_socket.abort();
    member.role_task.abort();
    member.consensus.shutdown().await;
    seq_result?;
    engine_result
}

/// How long a cluster of one may take to lead after its start: its election needs no peer, so
/// seconds on a loaded machine at worst.
const SOLE_MEMBER_LEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a cluster of one that leads but does not serve yet says how far its replay is.
const REPLAY_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Waits until a cluster of one may serve, or the node stops. Leading is bounded
/// ([`SOLE_MEMBER_LEAD_TIMEOUT`]); serving then waits for the engine to apply the whole journal
/// up to this term's Takeover record, which takes as long as the journal is long: no bound,
/// but progress is logged, and a pipeline that fails stops the node (`shutdown`), which ends
/// the wait.
async fn wait_until_serving(
    member: &MemberView,
    serving: &mut watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
    positions: &ordo_journal::Positions,
) -> Result<(), String> {
    let mut role = member.role.clone();
    let lead = async {
        tokio::select! {
            r = role.wait_for(|r| matches!(r, ordo_replica::role::Role::Leader { .. })) => {
                r.map(|_| ()).map_err(|_| "the role watch ended".to_string())
            }
            _ = shutdown.wait_for(|s| *s) => Ok(()),
        }
    };
    tokio::time::timeout(SOLE_MEMBER_LEAD_TIMEOUT, lead)
        .await
        .map_err(|_| {
            format!(
                "the cluster of one did not lead within {} s",
                SOLE_MEMBER_LEAD_TIMEOUT.as_secs()
            )
        })??;
    loop {
        let wait = async {
            tokio::select! {
                r = serving.wait_for(|s| *s) => r.map(|_| ()).map_err(|_| "the role watch ended".to_string()),
                _ = shutdown.wait_for(|s| *s) => Ok(()),
            }
        };
        match tokio::time::timeout(REPLAY_PROGRESS_EVERY, wait).await {
            Ok(r) => return r,
            Err(_) => tracing::info!(
                committed_seq = positions.committed(),
                "leading; applying the journal before serving FIX"
            ),
        }
    }
}

/// Stops the node (`stop_node`) when the caller's `external` signal says so.
fn forward_shutdown(mut external: watch::Receiver<bool>, stop_node: watch::Sender<bool>) {
    tokio::spawn(async move {
        while !*external.borrow_and_update() {
            if external.changed().await.is_err() {
                return;
            }
        }
        let _ = stop_node.send(true);
    });
}

/// Instruments operators added in earlier runs: the engine replays their definitions from the
/// journal, the gateway learns their symbols here, before it accepts a connection.
fn publish_added_instruments(catalog: &Catalog, scan: &JournalScan) -> Result<(), String> {
    for spec in scan.added.values() {
        let info = InstrumentInfo::from_spec(spec).ok_or_else(|| {
            format!(
                "journal: added instrument {} has a symbol that is not UTF-8",
                spec.id
            )
        })?;
        catalog
            .publish_added(info)
            .map_err(|e| format!("journal: an added instrument does not fit the configuration: {e}"))?;
    }
    Ok(())
}

/// Every configured session: its outbound number and resend window from the snapshot the
/// engine starts from (taken from it), else 1 and empty (the engine's replay from seq 1 then
/// numbers and windows every message again, as the leader did: `docs/REPLICATION.md`, 6.1a).
fn open_sessions(
    cfg: &NodeConfig,
    catalog: &Arc<Catalog>,
    inbound_tx: &InboundTx,
    scan: &JournalScan,
    mut restored: Option<&mut crate::member::snapshot::Restored>,
) -> Arc<Registry> {
    let mut registry = Registry::default();
    for (i, s) in cfg.sessions.iter().enumerate() {
        let (next_sender, window) = match restored.as_deref_mut() {
            Some(r) => (
                r.image.sent[i].next_sender,
                std::mem::replace(&mut r.windows[i], empty_window(s)),
            ),
            None => (1, empty_window(s)),
        };
        // The log gives the last application message (admin ones are gap-filled); a new
        // leader's Takeover sets it again from the committed log (`docs/REPLICATION.md`, 6.1).
        let next_target = scan.last_inbound[i] + 1;
        // Every message the session sends takes its number from the log (`docs/REPLICATION.md`,
        // 6.1): a restart, and on a cluster every member, numbers them alike.
        let session = Session::new(session_config(s), next_sender, next_target).with_log_numbering();
        let app = NodeApp::new(i as u32, Arc::clone(catalog), inbound_tx.clone());
        let mut slot = Slot::new(i as u32, session, window, Box::new(app));
        slot.allowed_addresses = allowed_addresses(s);
        registry.add(slot);
    }
    Arc::new(registry)
}

/// A cluster member's checkpoints (`docs/REPLICATION.md`, 3.3), unless its file turns them off.
fn checkpoint_spec(
    cfg: &NodeConfig,
    spec: &ClusterSpec,
    m: &Member,
    inbound_tx: &InboundTx,
) -> Option<crate::member::checkpoint::CheckpointSpec> {
    let every = spec.file.timings.checkpoint_every;
    (every > 0).then(|| crate::member::checkpoint::CheckpointSpec {
        every,
        leader: Some((Arc::clone(&m.gate), inbound_tx.clone())),
        data_dir: cfg.data_dir.clone(),
    })
}

/// A cluster member's snapshots (`docs/REPLICATION.md`, 6.3), unless its file turns them off.
fn snapshot_spec(
    cfg: &NodeConfig,
    spec: &ClusterSpec,
    m: &Member,
) -> Option<crate::member::engine_runner::SnapshotSpec> {
    let every = spec.file.timings.snapshot_every;
    (every > 0).then(|| crate::member::engine_runner::SnapshotSpec {
        every,
        dir: cfg.data_dir.join(crate::member::snapshot::SNAPSHOT_DIR),
        gate: Arc::clone(&m.gate),
    })
}

/// Gives the sequencer and engine agents their threads (or the inline task).
#[allow(clippy::too_many_arguments)]
fn start_pipeline<E>(
    layout: Pipeline,
    bell: Option<Arc<tokio::sync::Notify>>,
    sequencer: SequencerAgent,
    make_engine: E,
    idle: IdleStrategy,
    stop: &Arc<AtomicBool>,
    positions: &Arc<ordo_journal::Positions>,
    on_failure: crate::runtime::agent::OnFailure,
) -> Result<Running, String>
where
    E: FnOnce() -> Result<crate::member::engine_runner::EngineAgent, String> + Send + 'static,
{
    Ok(match bell {
        Some(bell) => Running::Inline(pipeline::spawn_inline(
            sequencer,
            make_engine()?,
            bell,
            idle,
            Arc::clone(stop),
            positions,
            on_failure,
        )),
        None => Running::Threads(
            pipeline::start(
                layout,
                sequencer,
                make_engine,
                idle,
                Arc::clone(stop),
                positions,
                on_failure,
            )
            .map_err(|e| format!("start pipeline: {e}"))?,
        ),
    })
}

/// Asks the sequencer to stop. The queue may be full: retry without blocking the runtime (the
/// inline pipeline drains it on this very thread).
async fn send_shutdown(inbound_tx: &InboundTx) {
    while let Err(e) = inbound_tx.try_send(Inbound::Shutdown) {
        match e {
            Refused::Full => tokio::time::sleep(Duration::from_millis(1)).await,
            Refused::Stopped => break,
        }
    }
}

/// Waits for the sequencer (journal closed, synced), then stops and waits for the engine.
async fn stop_pipeline(pipeline: Running, stop: &AtomicBool) -> (Result<(), String>, Result<(), String>) {
    match pipeline {
        Running::Inline(task) => {
            let r = task.await.map_err(|_| "pipeline task panicked".to_string());
            (r.and_then(|r| r), Ok(()))
        }
        Running::Threads(threads) => {
            let seq_result = tokio::task::spawn_blocking(move || threads.sequencer.join()).await;
            stop.store(true, Ordering::Release);
            let engine_result = match threads.engine {
                Some(engine) => tokio::task::spawn_blocking(move || engine.join()).await,
                None => Ok(Ok(Ok(()))),
            };
            let flatten = |r: Result<std::thread::Result<Result<(), String>>, _>, what: &str| match r {
                Ok(Ok(r)) => r,
                _ => Err(format!("{what} thread panicked")),
            };
            (flatten(seq_result, "sequencer"), flatten(engine_result, "engine"))
        }
    }
}

/// The pipeline of a running node.
enum Running {
    /// A task on this runtime.
    Inline(tokio::task::JoinHandle<Result<(), String>>),
    /// Threads of its own.
    Threads(pipeline::Threads),
}
