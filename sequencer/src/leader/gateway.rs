//! The FIX acceptor: TCP connections, framing, binding a connection to its configured session,
//! and driving the session state machine. Every byte a session sends (its own answers and the
//! application's ExecutionReports) is appended to that session's outbound buffer under its
//! lock, so messages leave in sequence-number order; the connection task writes the buffer.
//!
//! Bounds: `max_connections` connections (more are closed at accept), `logon_timeout_s` to log
//! on, `max_message_bytes` per message (a larger frame closes the connection), and
//! `outbound_queue` bytes of unsent output per session (a slower reader is disconnected, with a
//! log line, and the other sessions never wait for it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use ordo_fix::frame::{Frame, next_frame};
use ordo_fix::message;
use ordo_fix::session::{App, Io, Session};
use ordo_fix::window::ResendWindow;

/// Wall-clock time in ns (session timestamps, heartbeats: the FIX session layer is not part of
/// the deterministic core).
pub fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Gateway limits.
#[derive(Debug, Clone)]
pub struct GatewayLimits {
    /// Most connections at once.
    pub max_connections: usize,
    /// Seconds to log on.
    pub logon_timeout_s: u64,
    /// Largest message.
    pub max_message_bytes: usize,
    /// Unsent output bytes per session before it is disconnected.
    pub max_pending_bytes: usize,
}

/// The connection currently bound to a session.
#[derive(Debug)]
pub struct ConnHandle {
    id: u64,
    wake: Arc<Notify>,
}

/// A session with everything it needs, behind one lock.
pub struct Slot {
    /// Session id (its index in the configuration).
    pub id: u32,
    /// The state machine.
    pub session: Session,
    /// The last application messages it was sent, for resends (`docs/REPLICATION.md`, 6.1a).
    pub store: ResendWindow,
    /// Its application.
    pub app: Box<dyn App + Send>,
    /// Bytes waiting to be written to the connection.
    pub pending: Vec<u8>,
    /// Close the connection once `pending` is written.
    pub close: bool,
    /// The connection passed its bound of unsent output: close it at once, even with output
    /// unwritten (the client does not read).
    pub slow: bool,
    /// Source addresses it may connect from (empty: any).
    pub allowed_addresses: Vec<IpAddr>,
    /// Log numbering: messages this connection's session decided to send and the log has not
    /// given back yet.
    pub awaiting: u32,
    /// Close the connection once `awaiting` is zero (a Logout or Reject decided just before
    /// closing must reach the client: it has its number in the log).
    pub close_when_sent: bool,
    conn: Option<ConnHandle>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("id", &self.id)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Slot {
    /// A slot for a session.
    pub fn new(id: u32, session: Session, store: ResendWindow, app: Box<dyn App + Send>) -> Self {
        Slot {
            id,
            session,
            store,
            app,
            pending: Vec::new(),
            close: false,
            slow: false,
            allowed_addresses: Vec::new(),
            awaiting: 0,
            close_when_sent: false,
            conn: None,
        }
    }

    /// The id of the connection bound now (0: none).
    pub fn connection(&self) -> u64 {
        self.conn.as_ref().map_or(0, |c| c.id)
    }

    /// A message this connection's session decided to send came back from the log (and is
    /// in `pending`): the connection closes now if it was waiting for that.
    pub fn sent_one(&mut self) {
        self.awaiting = self.awaiting.saturating_sub(1);
        if self.awaiting == 0 && self.close_when_sent {
            self.close = true;
            if let Some(c) = &self.conn {
                c.wake.notify_one();
            }
        }
    }

    /// Whether a connection is bound.
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Runs `f` with the session's I/O, then wakes the connection to write what it produced.
    pub fn with_io<R>(
        &mut self,
        limit: usize,
        f: impl FnOnce(&mut Session, &mut Io<'_, ResendWindow>, &mut (dyn App + Send)) -> R,
    ) -> R {
        let mut io = Io {
            out: &mut self.pending,
            disconnect: false,
            store: &mut self.store,
        };
        let r = f(&mut self.session, &mut io, &mut *self.app);
        let disconnect = io.disconnect;
        // Log numbering: what the session decided goes to the sequencer, in order.
        let connection = self.connection();
        let mut refused = false;
        for d in self.session.take_deferred() {
            if !refused && self.app.sequence_out(connection, d) {
                self.awaiting += 1;
            } else {
                refused = true;
            }
        }
        if refused {
            tracing::warn!(
                session = self.id,
                "session messages beyond the sequencer's bound: disconnecting"
            );
            self.close = true;
        } else if disconnect {
            if self.awaiting > 0 {
                self.close_when_sent = true;
            } else {
                self.close = true;
            }
        }
        if self.pending.len() > limit && self.conn.is_some() {
            tracing::warn!(
                session = self.id,
                pending = self.pending.len(),
                "slow consumer: disconnecting"
            );
            self.close = true;
            self.slow = true;
        }
        if let Some(c) = &self.conn {
            c.wake.notify_one();
        }
        r
    }
}

/// All sessions, found by (our CompID, their CompID).
#[derive(Debug, Default)]
pub struct Registry {
    slots: Vec<Arc<Mutex<Slot>>>,
    by_comp_ids: HashMap<(String, String), usize>,
}

/// Locks a slot; a poisoned lock (a panic elsewhere) still holds consistent data.
pub fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    /// Adds a session.
    pub fn add(&mut self, slot: Slot) {
        let key = (
            slot.session.config().sender_comp_id.clone(),
            slot.session.config().target_comp_id.clone(),
        );
        self.by_comp_ids.insert(key, self.slots.len());
        self.slots.push(Arc::new(Mutex::new(slot)));
    }

    /// The session with this id.
    pub fn get(&self, id: u32) -> Option<&Arc<Mutex<Slot>>> {
        self.slots.get(id as usize)
    }

    /// All sessions.
    pub fn all(&self) -> &[Arc<Mutex<Slot>>] {
        &self.slots
    }

    fn find(&self, ours: &[u8], theirs: &[u8]) -> Option<&Arc<Mutex<Slot>>> {
        let key = (
            String::from_utf8_lossy(ours).into_owned(),
            String::from_utf8_lossy(theirs).into_owned(),
        );
        self.by_comp_ids.get(&key).map(|&i| &self.slots[i])
    }
}

/// How long a connection's socket may stay full (not a byte written) before the client is a
/// slow consumer and is disconnected.
pub const WRITE_STALL: Duration = Duration::from_secs(1);

/// The acceptor.
#[derive(Debug)]
pub struct Gateway {
    /// Sessions.
    pub registry: Arc<Registry>,
    /// Limits.
    pub limits: GatewayLimits,
    connections: AtomicUsize,
    next_conn: AtomicUsize,
    /// A cluster member serves FIX only while this says so (None: always, the echo application).
    serving: Option<watch::Receiver<bool>>,
}

/// Returns once `serving` says the member no longer serves (never without a `serving`).
async fn serving_ends(serving: &mut Option<watch::Receiver<bool>>) {
    match serving {
        Some(rx) => {
            let _ = rx.wait_for(|serving| !*serving).await;
        }
        None => std::future::pending().await,
    }
}

impl Gateway {
    /// A gateway over `registry`.
    pub fn new(registry: Arc<Registry>, limits: GatewayLimits) -> Arc<Self> {
        Arc::new(Gateway {
            registry,
            limits,
            connections: AtomicUsize::new(0),
            next_conn: AtomicUsize::new(1),
            serving: None,
        })
    }

    /// Serves only while `serving` is true (a cluster member: while it leads). A connection
    /// that arrives meanwhile is closed without an answer, and when serving ends every
    /// connection is closed at once, its unsent output discarded: a member whose leadership is
    /// in doubt sends nothing (`docs/REPLICATION.md`, 4.4, 8.2).
    pub fn serving_only_while(mut self: Arc<Self>, serving: Option<watch::Receiver<bool>>) -> Arc<Self> {
        Arc::get_mut(&mut self)
            .expect("set before the gateway serves")
            .serving = serving;
        self
    }

    fn serving_now(&self) -> bool {
        self.serving.as_ref().is_none_or(|s| *s.borrow())
    }

    /// Accepts connections until `shutdown` turns true.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((socket, peer)) = accepted else { continue };
                    if !self.serving_now() {
                        tracing::debug!(%peer, "connection closed: this member does not lead");
                        drop(socket);
                        continue;
                    }
                    if self.connections.load(Ordering::Relaxed) >= self.limits.max_connections {
                        tracing::warn!(%peer, "connection refused: max_connections reached");
                        drop(socket);
                        continue;
                    }
                    self.connections.fetch_add(1, Ordering::Relaxed);
                    let gw = Arc::clone(&self);
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        let _ = socket.set_nodelay(true);
                        // Canonical: an IPv4 client of a dual-stack listener is compared as IPv4.
                        gw.connection(socket, peer.ip().to_canonical(), shutdown).await;
                        gw.connections.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                _ = ticker.tick() => {}
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { break; }
                }
            }
        }
    }

    async fn connection(&self, mut socket: TcpStream, peer: IpAddr, mut shutdown: watch::Receiver<bool>) {
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed) as u64;
        let wake = Arc::new(Notify::new());
        let mut buf: Vec<u8> = Vec::with_capacity(self.limits.max_message_bytes * 2);
        let mut read_chunk = vec![0u8; 64 * 1024];
        let mut slot: Option<Arc<Mutex<Slot>>> = None;
        let logon_deadline = tokio::time::Instant::now() + Duration::from_secs(self.limits.logon_timeout_s);
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        let mut out: Vec<u8> = Vec::new();
        let mut serving = self.serving.clone();
        'conn: loop {
            let mut close = false;
            tokio::select! {
                read = socket.read(&mut read_chunk) => {
                    match read {
                        Ok(0) | Err(_) => break 'conn,
                        Ok(n) => {
                            buf.extend_from_slice(&read_chunk[..n]);
                            close = self.frames(&mut buf, &mut slot, conn_id, peer, &wake);
                        }
                    }
                }
                _ = wake.notified() => {}
                _ = serving_ends(&mut serving) => {
                    tracing::info!(conn = conn_id, "leadership ended: closing without a word");
                    if let Some(s) = &slot {
                        lock(s).pending.clear();
                    }
                    break 'conn;
                }
                _ = ticker.tick() => {
                    match &slot {
                        Some(s) => {
                            let mut g = lock(s);
                            let limit = self.limits.max_pending_bytes;
                            g.with_io(limit, |session, io, _| session.on_timer(wall_clock_ns(), io));
                            if !g.session.is_logged_on() && tokio::time::Instant::now() >= logon_deadline {
                                g.close = true;
                            }
                        }
                        None => if tokio::time::Instant::now() >= logon_deadline {
                            tracing::info!(conn = conn_id, "no logon within the logon timeout: closing");
                            break 'conn;
                        }
                    }
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        if let Some(s) = &slot {
                            let mut g = lock(s);
                            let limit = self.limits.max_pending_bytes;
                            g.with_io(limit, |session, io, _| session.initiate_logout("", wall_clock_ns(), io));
                            g.close = true;
                        } else {
                            break 'conn;
                        }
                    }
                }
            }
            if let Some(s) = &slot {
                let mut g = lock(s);
                std::mem::swap(&mut out, &mut g.pending);
                close |= g.close;
            }
            if !out.is_empty() {
                if !self
                    .write_out(&mut socket, &out, slot.as_ref(), &wake, conn_id)
                    .await
                {
                    break 'conn;
                }
                out.clear();
            }
            if close {
                break 'conn;
            }
        }
        let _ = socket.shutdown().await;
        if let Some(s) = slot {
            let mut g = lock(&s);
            if g.conn.as_ref().is_some_and(|c| c.id == conn_id) {
                g.conn = None;
                g.close = false;
                g.slow = false;
                g.awaiting = 0;
                g.close_when_sent = false;
                g.pending.clear();
                let Slot { session, app, .. } = &mut *g;
                session.disconnected(&mut **app);
            }
        }
    }

    /// Writes `out` to the socket; false if the connection must close. A client that stops
    /// reading fills its socket buffers and the write waits; meanwhile the router keeps adding
    /// to the session's pending output until it passes `max_pending_bytes` and marks the slot
    /// for closing (a slow consumer). The wait watches for that mark, so a stuck client is
    /// disconnected instead of holding its connection task (and a growing buffer) for ever.
    async fn write_out(
        &self,
        socket: &mut TcpStream,
        out: &[u8],
        slot: Option<&Arc<Mutex<Slot>>>,
        wake: &Notify,
        conn_id: u64,
    ) -> bool {
        let mut written = 0;
        let mut stalled_at = tokio::time::Instant::now() + WRITE_STALL;
        while written < out.len() {
            tokio::select! {
                // Writing first: a plain close (a Logout) must not cut its own last message.
                biased;
                r = socket.write(&out[written..]) => match r {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => {
                        written += n;
                        stalled_at = tokio::time::Instant::now() + WRITE_STALL;
                    }
                },
                // The client has read nothing for this long while we have output for it: a
                // slow consumer, even when what is pending stays below its bound (its input is
                // not read meanwhile, so nothing new piles up to reach the bound).
                _ = tokio::time::sleep_until(stalled_at) => {
                    tracing::warn!(
                        conn = conn_id,
                        unsent = out.len() - written,
                        "slow consumer: nothing could be written for {WRITE_STALL:?}"
                    );
                    if let Some(s) = slot {
                        lock(s).slow = true;
                    }
                    return false;
                }
                _ = wake.notified() => {
                    if slot.is_some_and(|s| lock(s).slow) {
                        tracing::warn!(
                            conn = conn_id,
                            unsent = out.len() - written,
                            "slow consumer: closed while its socket was full"
                        );
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Processes every complete frame in `buf`; returns whether to close.
    fn frames(
        &self,
        buf: &mut Vec<u8>,
        slot: &mut Option<Arc<Mutex<Slot>>>,
        conn_id: u64,
        peer: IpAddr,
        wake: &Arc<Notify>,
    ) -> bool {
        let mut consumed = 0;
        let mut close = false;
        loop {
            match next_frame(&buf[consumed..], self.limits.max_message_bytes) {
                Frame::Incomplete { skip } => {
                    consumed += skip;
                    break;
                }
                Frame::Garbage { skip } => consumed += skip,
                Frame::TooLarge { announced } => {
                    tracing::warn!(
                        conn = conn_id,
                        announced,
                        "frame larger than max_message_bytes: closing"
                    );
                    close = true;
                    break;
                }
                Frame::Message { start, end } => {
                    let frame = &buf[consumed + start..consumed + end];
                    consumed += end;
                    if slot.is_none() {
                        match self.bind(frame, conn_id, peer, wake) {
                            Some(s) => *slot = Some(s),
                            None => {
                                close = true;
                                break;
                            }
                        }
                    }
                    let s = slot.as_ref().expect("bound above");
                    let mut g = lock(s);
                    let limit = self.limits.max_pending_bytes;
                    g.with_io(limit, |session, io, app| {
                        session.on_frame(frame, wall_clock_ns(), io, app)
                    });
                    if g.close {
                        break;
                    }
                }
            }
        }
        buf.drain(..consumed.min(buf.len()));
        if buf.len() > self.limits.max_message_bytes * 4 {
            tracing::warn!(conn = conn_id, "unframed input beyond bounds: closing");
            close = true;
        }
        close
    }

    /// Finds the session of a connection's first message (by its CompIDs, reversed) and binds
    /// the connection to it. None (close) if unknown, not allowed from `peer`, or already
    /// connected.
    fn bind(&self, frame: &[u8], conn_id: u64, peer: IpAddr, wake: &Arc<Notify>) -> Option<Arc<Mutex<Slot>>> {
        let mut fields = Vec::new();
        if message::parse(frame, &mut fields).is_err() {
            tracing::info!(conn = conn_id, "first message is not valid FIX: closing");
            return None;
        }
        let msg = message::Message {
            buf: frame,
            fields: &fields,
        };
        if msg.get(8) != Some(b"FIX.4.4") {
            tracing::info!(conn = conn_id, "first message is not FIX.4.4: closing");
            return None;
        }
        let (Some(theirs), Some(ours)) = (msg.get(49), msg.get(56)) else {
            return None;
        };
        let Some(s) = self.registry.find(ours, theirs) else {
            tracing::info!(conn = conn_id, sender = %String::from_utf8_lossy(theirs), target = %String::from_utf8_lossy(ours), "unknown CompIDs: closing");
            return None;
        };
        let mut g = lock(s);
        if !g.allowed_addresses.is_empty() && !g.allowed_addresses.contains(&peer) {
            tracing::warn!(
                conn = conn_id,
                session = g.id,
                %peer,
                "connection from an address the session does not allow: closing"
            );
            return None;
        }
        if g.conn.is_some() {
            tracing::info!(
                conn = conn_id,
                session = g.id,
                "session already connected: closing the new connection"
            );
            return None;
        }
        g.conn = Some(ConnHandle {
            id: conn_id,
            wake: Arc::clone(wake),
        });
        g.close = false;
        g.slow = false;
        g.awaiting = 0;
        g.close_when_sent = false;
        g.pending.clear();
        Some(Arc::clone(s))
    }
}
