//! Members' messages over Aeron (rusteron): UDP unicast to each member's configured endpoint, a
//! media driver embedded in the member with SHARED threading and a backoff idle strategy
//! (nothing spins: `../shared/notes/aeron.md`).
//!
//! rusteron's handles are not `Send`, so one thread owns them all (the "aeron" thread): it takes
//! outgoing messages from a bounded queue (a full queue drops the message, as a congested network
//! would: raft retries), offers each to the peer's exclusive publication, and polls the member's
//! subscription through a fragment assembler (messages above the MTU arrive in fragments),
//! handing whole messages to the member's inbox.
//!
//! Idle: the embedded driver's thread backs off from 100 us to `driver_idle_max` (4 ms by
//! default) of sleep, in ppoll(2) on the driver's own UDP sockets and a bell
//! ([`crate::driver_idle`]): a datagram that arrives wakes it at once, and the aeron thread rings
//! the bell after every offer (a send leaves at once). It wakes the aeron thread whenever it did
//! work (it may have received something), so the aeron thread itself sleeps until woken (at most
//! 50 ms). The back-off bounds the driver's own duties (status messages, timers) on an idle
//! member (`docs/REPLICATION.md`, 5). On a shared driver the aeron thread backs off to 1 ms,
//! since nothing wakes it on a receive.
//!
//! Send sockets are not connected (`aeron.driver.connect=false`): on a connected socket a dead
//! peer's ICMP port unreachable made the driver resend the same datagrams on every duty cycle
//! (`docs/REPLICATION.md`, 5; test `a_peer_gone_does_not_make_the_driver_spin`).
//!
//! Each member's driver has its own directory, `<aeron_root>/ordo-aeron-<id>-<pid>`: two drivers
//! never share one (a driver silently takes over a live one's directory), and directories left
//! by killed members (their pid gone) are removed at start. Members of one host may instead use
//! one driver ([`AeronConfig::shared_driver`], [`SharedDriver`]): one set of driver threads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusteron_client::{
    Aeron, AeronContext, AeronExclusivePublication, AeronFragmentHandlerCallback, AeronHeader,
    AeronSubscription, Handler, Handlers, IntoCString,
};
use rusteron_media_driver::bindings::aeron_threading_mode_enum;
use rusteron_media_driver::{AeronDriver, AeronDriverContext};
use tokio::sync::mpsc;

use crate::driver_idle::{Bell, Sleeper};
use crate::transport::{INBOX_MESSAGES, Inbox, Transport};
use crate::types::NodeId;

/// The Aeron stream that carries raft's messages.
pub const RAFT_STREAM_ID: i32 = 1001;
/// Outgoing messages queued for the aeron thread, at most (then dropped).
pub const OUTBOX_MESSAGES: usize = 4096;
/// Fragments taken per poll.
const FRAGMENT_LIMIT: usize = 64;
/// Default longest sleep of an idle embedded driver ([`AeronConfig::driver_idle_max`]).
pub const DRIVER_IDLE_MAX: Duration = Duration::from_millis(4);
/// Longest sleep of the aeron thread on a driver of its own: the driver wakes it when it has
/// received something and a send wakes it, so this only bounds a missed wake.
const MAX_IDLE_WOKEN: Duration = Duration::from_millis(50);
/// Longest sleep of the aeron thread on a shared driver (nothing wakes it on a receive).
const MAX_IDLE_SHARED: Duration = Duration::from_millis(1);
/// Shortest sleep of an idle thread (the back-off doubles from here).
const MIN_IDLE: Duration = Duration::from_micros(100);
/// How long to wait for the driver, a publication or a subscription.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a member's Aeron lives.
#[derive(Debug, Clone)]
pub struct AeronConfig {
    /// This member.
    pub me: NodeId,
    /// Every member's UDP endpoint (this one's included: it subscribes there).
    pub endpoints: BTreeMap<NodeId, SocketAddr>,
    /// Where driver directories go (`/dev/shm` on Linux).
    pub aeron_root: PathBuf,
    /// A media driver already running on this host to use instead of embedding one (members
    /// of one host may share one driver: one set of driver threads instead of one per member).
    pub shared_driver: Option<PathBuf>,
    /// The longest an idle embedded driver sleeps ([`DRIVER_IDLE_MAX`] by default). A send or
    /// an arriving datagram wakes it at once; this bounds how late its own duties (status
    /// messages, timers) run on an idle member (`docs/REPLICATION.md`, 5).
    pub driver_idle_max: Duration,
}

/// A media driver of its own, for members of one host to share ([`AeronConfig::shared_driver`]).
/// Stopped (and its directory removed) when dropped.
pub struct SharedDriver {
    dir: PathBuf,
    _driver: RunningDriver,
}

impl SharedDriver {
    /// Launches a driver in `dir` (SHARED threading, backoff idle).
    pub fn launch(dir: &Path) -> Result<SharedDriver, String> {
        Ok(SharedDriver {
            dir: dir.to_path_buf(),
            _driver: RunningDriver::launch(dir, None, DRIVER_IDLE_MAX, Arc::default())?,
        })
    }

    /// Its directory, for [`AeronConfig::shared_driver`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A member's Aeron transport.
pub struct AeronTransport {
    outbox: SyncSender<(NodeId, Vec<u8>)>,
    thread: std::thread::Thread,
    stop: Arc<AtomicBool>,
    handle: std::sync::Mutex<Option<JoinHandle<()>>>,
    dir: PathBuf,
    /// The embedded driver's busy duty cycles (none on a shared driver).
    busy_cycles: Option<Arc<AtomicU64>>,
}

impl std::fmt::Debug for AeronTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AeronTransport")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The aeron directory of member `me` in this process.
fn driver_dir(root: &Path, me: NodeId) -> PathBuf {
    root.join(format!("ordo-aeron-{me}-{}", std::process::id()))
}

/// Removes driver directories of member `me` whose process is gone (a killed member's).
fn remove_stale_dirs(root: &Path, me: NodeId) {
    let prefix = format!("ordo-aeron-{me}-");
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&prefix).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl AeronTransport {
    /// Starts the member's driver and its aeron thread; whole messages that arrive go to the
    /// returned inbox. Fails (never panics) when the driver, the subscription or a publication
    /// cannot be set up within `SETUP_TIMEOUT` (10 s).
    pub fn start(cfg: &AeronConfig) -> Result<(Arc<AeronTransport>, Inbox), String> {
        let own = *cfg
            .endpoints
            .get(&cfg.me)
            .ok_or_else(|| format!("member {} has no endpoint in the cluster", cfg.me))?;
        remove_stale_dirs(&cfg.aeron_root, cfg.me);
        let (dir, embed) = match &cfg.shared_driver {
            Some(d) => (d.clone(), false),
            None => (driver_dir(&cfg.aeron_root, cfg.me), true),
        };
        let (outbox, outgoing) = sync_channel(OUTBOX_MESSAGES);
        let (inbox_tx, inbox) = mpsc::channel(INBOX_MESSAGES);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let peers: Vec<(NodeId, SocketAddr)> = cfg
            .endpoints
            .iter()
            .filter(|(id, _)| **id != cfg.me)
            .map(|(id, a)| (*id, *a))
            .collect();
        let thread_stop = Arc::clone(&stop);
        let thread_dir = dir.clone();
        let driver_idle_max = cfg.driver_idle_max;
        let busy_cycles = Arc::new(AtomicU64::new(0));
        let driver_busy = embed.then(|| (driver_idle_max, Arc::clone(&busy_cycles)));
        let handle = std::thread::Builder::new()
            .name(format!("aeron-{}", cfg.me))
            .spawn(
                move || match Wired::set_up(&thread_dir, driver_busy, own, &peers) {
                    Ok(wired) => {
                        let _ = ready_tx.send(Ok(()));
                        wired.run(&outgoing, &inbox_tx, &thread_stop);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                },
            )
            .map_err(|e| format!("spawn the aeron thread: {e}"))?;
        let thread = handle.thread().clone();
        match ready_rx.recv_timeout(SETUP_TIMEOUT * 2) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = handle.join();
                return Err(e);
            }
            Err(_) => {
                return Err(format!(
                    "aeron {}: not set up within {:?}",
                    dir.display(),
                    SETUP_TIMEOUT * 2
                ));
            }
        }
        let transport = Arc::new(AeronTransport {
            outbox,
            thread,
            stop,
            handle: std::sync::Mutex::new(Some(handle)),
            dir,
            busy_cycles: embed.then_some(busy_cycles),
        });
        Ok((transport, inbox))
    }

    /// The driver's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many of its embedded driver's duty cycles found work so far (`None` on a shared
    /// driver). An idle member's driver finds some every few milliseconds (status messages,
    /// heartbeats); one that finds it on every cycle is spinning.
    pub fn driver_busy_cycles(&self) -> Option<u64> {
        self.busy_cycles.as_ref().map(|c| c.load(Ordering::Relaxed))
    }

    /// Stops the aeron thread and the driver (which removes its directory).
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        self.thread.unpark();
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for AeronTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Transport for AeronTransport {
    fn send(&self, _from: NodeId, to: NodeId, message: Vec<u8>) {
        // A full outbox drops the message: raft retries, as after a lost packet.
        if self.outbox.try_send((to, message)).is_ok() {
            self.thread.unpark();
        }
    }
}

/// Hands each whole message to the member's inbox (dropped when the inbox is full).
struct ToInbox {
    inbox: mpsc::Sender<Vec<u8>>,
}

impl AeronFragmentHandlerCallback for ToInbox {
    fn handle_aeron_fragment_handler(&mut self, msg: &[u8], _header: AeronHeader) {
        let _ = self.inbox.try_send(msg.to_vec());
    }
}

/// What the aeron thread owns.
struct Wired {
    // Field order is drop order: publications and the subscription before the client, the
    // client before the driver.
    publications: BTreeMap<NodeId, AeronExclusivePublication>,
    subscription: AeronSubscription,
    _client: Aeron,
    driver: Option<RunningDriver>,
}

impl Wired {
    /// On the aeron thread: the driver (embedded when `embed` gives its longest idle sleep and
    /// its busy-cycle counter; it then wakes this thread when it has received something), the
    /// client, the subscription and a publication per peer.
    fn set_up(
        dir: &Path,
        embed: Option<(Duration, Arc<AtomicU64>)>,
        own: SocketAddr,
        peers: &[(NodeId, SocketAddr)],
    ) -> Result<Wired, String> {
        let driver = match embed {
            Some((idle_max, busy_cycles)) => Some(RunningDriver::launch(
                dir,
                Some(std::thread::current()),
                idle_max,
                busy_cycles,
            )?),
            None => None,
        };
        let aeron_error =
            |what: &str, e: rusteron_client::AeronCError| format!("aeron {}: {what}: {e:?}", dir.display());
        let ctx = AeronContext::new().map_err(|e| aeron_error("client context", e))?;
        ctx.set_dir(&dir.display().to_string().into_c_string())
            .map_err(|e| aeron_error("client dir", e))?;
        ctx.set_error_handler(Some(|code: i32, msg: &str| {
            tracing::warn!(code, msg, "aeron error")
        }))
        .map_err(|e| aeron_error("error handler", e))?;
        let client = Aeron::new(&ctx).map_err(|e| aeron_error("client", e))?;
        client.start().map_err(|e| aeron_error("client start", e))?;
        let channel = |addr: &SocketAddr| format!("aeron:udp?endpoint={addr}").into_c_string();
        let subscription = client
            .async_add_subscription(&channel(&own), RAFT_STREAM_ID, Handlers::NONE, Handlers::NONE)
            .map_err(|e| aeron_error("subscription", e))?
            .poll_blocking(SETUP_TIMEOUT)
            .map_err(|e| aeron_error("subscription", e))?;
        let mut publications = BTreeMap::new();
        for (id, addr) in peers {
            let p = client
                .async_add_exclusive_publication(&channel(addr), RAFT_STREAM_ID)
                .map_err(|e| aeron_error("publication", e))?
                .poll_blocking(SETUP_TIMEOUT)
                .map_err(|e| aeron_error("publication", e))?;
            publications.insert(*id, p);
        }
        Ok(Wired {
            publications,
            subscription,
            _client: client,
            driver,
        })
    }

    /// The duty cycle: send what is queued, poll what arrived, back off when idle.
    fn run(self, outgoing: &Receiver<(NodeId, Vec<u8>)>, inbox: &mpsc::Sender<Vec<u8>>, stop: &AtomicBool) {
        let Ok((assembler, _delegate)) = Handler::with_fragment_assembler(ToInbox { inbox: inbox.clone() })
        else {
            tracing::error!("aeron: no fragment assembler: the transport stops");
            return;
        };
        let mut idle = Duration::ZERO;
        let max_idle = match &self.driver {
            Some(_) => MAX_IDLE_WOKEN,
            None => MAX_IDLE_SHARED,
        };
        while !stop.load(Ordering::Acquire) {
            let mut work = 0usize;
            let mut sent = false;
            loop {
                match outgoing.try_recv() {
                    Ok((to, bytes)) => {
                        work += 1;
                        sent = true;
                        if let Some(p) = self.publications.get(&to) {
                            // Not connected yet, back-pressured or closed: lost, raft retries.
                            if let Err(e) = p.offer(&bytes) {
                                tracing::debug!(to, bytes = bytes.len(), error = ?e, "aeron offer failed");
                            }
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if sent && let Some(d) = &self.driver {
                // The driver may be asleep: what was offered leaves now, not at its next wake.
                d.kick();
            }
            match self.subscription.poll(Some(&assembler), FRAGMENT_LIMIT) {
                Ok(n) => work += n as usize,
                Err(e) => tracing::warn!(?e, "aeron poll"),
            }
            if work > 0 {
                idle = Duration::ZERO;
                continue;
            }
            idle = (idle * 2).clamp(MIN_IDLE, max_idle);
            std::thread::park_timeout(idle);
        }
        drop(self.publications);
        drop(self.subscription);
        if let Some(d) = self.driver {
            d.stop();
        }
    }
}

/// The embedded media driver, on a thread of its own, stopped and joined by [`RunningDriver::stop`].
struct RunningDriver {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    /// Wakes its thread (a send, or the stop).
    bell: Arc<Bell>,
    /// Set with each wake for a send ([`RunningDriver::kick`]).
    kicked: Arc<AtomicBool>,
}

impl RunningDriver {
    /// Something was offered: the driver sends it now, and backs off from the shortest sleep
    /// again (the answer may follow at once).
    fn kick(&self) {
        self.kicked.store(true, Ordering::Release);
        self.bell.ring();
    }
}

impl RunningDriver {
    /// Launches a driver on `dir` (which must not exist: see the module docs), SHARED threading,
    /// on a thread that backs off from 10 us to `idle_max` of sleep when idle and wakes `wake`
    /// (the aeron thread of its member) whenever a duty cycle did work (it may have received
    /// something for the subscription).
    fn launch(
        dir: &Path,
        wake: Option<std::thread::Thread>,
        idle_max: Duration,
        busy_cycles: Arc<AtomicU64>,
    ) -> Result<RunningDriver, String> {
        let fail = |what: &str, e: rusteron_media_driver::AeronCError| {
            format!("aeron driver {}: {what}: {e:?}", dir.display())
        };
        let ctx = AeronDriverContext::new().map_err(|e| fail("context", e))?;
        ctx.set_dir(&dir.display().to_string().into_c_string())
            .map_err(|e| fail("dir", e))?;
        ctx.set_dir_delete_on_start(true)
            .map_err(|e| fail("delete on start", e))?;
        ctx.set_dir_delete_on_shutdown(true)
            .map_err(|e| fail("delete on shutdown", e))?;
        // Unconnected send sockets. A connected UDP socket reports a dead peer's ICMP port
        // unreachable as ECONNREFUSED on its next send; Aeron 1.54's sender then sees a partial
        // sendmmsg, does not advance the publication's position and sends the same datagrams
        // again on every duty cycle: with a member down, each survivor's driver spun a core
        // (docs/REPLICATION.md, 5). Unconnected, the kernel drops those errors and the sender
        // stops at the flow-control window as it would for any silent receiver.
        ctx.set_connect_enabled(false).map_err(|e| fail("connect", e))?;
        ctx.set_threading_mode(aeron_threading_mode_enum::AERON_THREADING_MODE_SHARED)
            .map_err(|e| fail("threading", e))?;
        // Its own idle strategy is not used: the thread below sleeps and is woken instead.
        ctx.set_shared_idle_strategy(c"backoff")
            .map_err(|e| fail("idle strategy", e))?;
        // Aeron's UDP transport with its sockets noted, so the thread sleeps on them.
        let bindings = crate::driver_idle::bindings()?;
        ctx.set_udp_channel_transport_bindings(bindings)
            .map_err(|e| fail("transport bindings", e))?;
        let bell =
            Arc::new(Bell::new().map_err(|e| format!("aeron driver {}: eventfd: {e}", dir.display()))?);
        let thread_bell = Arc::clone(&bell);
        let stop = Arc::new(AtomicBool::new(false));
        let kicked = Arc::new(AtomicBool::new(false));
        let thread_kicked = Arc::clone(&kicked);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_stop = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("aeron-driver".into())
            .spawn(move || {
                let driver = match AeronDriver::new(&ctx).and_then(|d| d.start(true).map(|_| d)) {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{e:?}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut idle = Duration::ZERO;
                let mut last_wake = Instant::now();
                let mut sleeper = Sleeper::new(&thread_bell);
                while !thread_stop.load(Ordering::Acquire) {
                    match driver.main_do_work() {
                        Ok(work) => {
                            sleeper.after_cycle(work > 0);
                            if work > 0 {
                                busy_cycles.fetch_add(1, Ordering::Relaxed);
                            }
                            // Wakes the aeron thread, at most once per MIN_IDLE: should the
                            // driver find work on every cycle (as it did with a peer gone and
                            // connected sockets, 90,000 cycles a second), waking the aeron
                            // thread for each would spin that thread too.
                            if work > 0
                                && let Some(t) = &wake
                                && last_wake.elapsed() >= MIN_IDLE
                            {
                                t.unpark();
                                last_wake = Instant::now();
                            }
                            // A send of ours: one more cycle at once, and the back-off starts
                            // over (its answer may come within microseconds). Taken once: a
                            // send that cannot leave (a peer that is gone) must not keep the
                            // thread from sleeping.
                            if thread_kicked.swap(false, Ordering::AcqRel) {
                                idle = Duration::ZERO;
                                continue;
                            }
                            if work > 0 {
                                // The driver's own duties (status messages, heartbeats of idle
                                // streams, timers) only shorten the back-off: they come every
                                // few ms and would otherwise keep it waking every 100 us.
                                idle /= 4;
                                continue;
                            }
                            idle = (idle * 2).clamp(MIN_IDLE, idle_max);
                            sleeper.sleep(idle);
                        }
                        Err(e) => {
                            tracing::error!(?e, "aeron driver stopped");
                            return;
                        }
                    }
                }
            })
            .map_err(|e| format!("spawn the aeron driver: {e}"))?;
        match ready_rx.recv_timeout(SETUP_TIMEOUT) {
            Ok(Ok(())) => Ok(RunningDriver {
                stop,
                kicked,
                bell,
                handle: Some(handle),
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(format!("aeron driver {}: {e}", dir.display()))
            }
            Err(_) => Err(format!(
                "aeron driver {}: not started within {SETUP_TIMEOUT:?}",
                dir.display()
            )),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        self.bell.ring();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for RunningDriver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.bell.ring();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
