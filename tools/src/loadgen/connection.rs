//! One FIX 4.4 initiator session of the load generator: a non-blocking TCP connection with an
//! outbound buffer, framing of what arrives, and the session-level duties a load generator
//! cannot skip (logon with a sequence reset, answering TestRequests, gap-filling a
//! ResendRequest). Everything else is left to the driver.
//!
//! Logging on, first or again after the connection was lost, is a state machine driven by the
//! same poll loop as the load ([`Connection::advance`]): a non-blocking connect, our Logon,
//! its answer, each step bounded in time, the members tried in turn. So a session that is
//! looking for the new leader after a failover never holds up the sessions that are still
//! sending, nor those that found it first.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ordo_fix::builder::{Builder, Value};
use ordo_fix::frame::{Frame, next_frame};
use ordo_fix::message::{Field, Message, parse};

/// Largest message we accept from the node (ExecutionReports are a few hundred bytes).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Bytes read per `read` call.
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Bound of the unsent outbound bytes: beyond it the node is not reading and the run is
/// reported as failed rather than buffering without limit.
pub const MAX_PENDING_OUT_BYTES: usize = 64 * 1024 * 1024;

/// Why a session failed.
#[derive(Debug)]
pub enum SessionError {
    /// Socket error or the peer closed.
    Io(String),
    /// No member answered the logon with a Logon.
    Logon(String),
    /// The node sent a Logout or a session-level Reject.
    Protocol(String),
    /// The node stopped reading: the outbound bound was hit.
    Backlog,
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Io(e) => write!(f, "i/o: {e}"),
            SessionError::Logon(e) => write!(f, "logon refused: {e}"),
            SessionError::Protocol(e) => write!(f, "session: {e}"),
            SessionError::Backlog => write!(f, "node not reading: {MAX_PENDING_OUT_BYTES} bytes unsent"),
        }
    }
}

/// How long a session tries the members, in turn, to log on again after its connection was
/// lost (a failover: the new leader is elected and serves within this).
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the first logon of a run may take (one round of the members).
const FIRST_LOGON_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one Logon waits for its answer (it is committed before it is sent).
const LOGON_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause after every member refused us, before the next round (while a leader is elected).
const ROUND_PAUSE: Duration = Duration::from_millis(10);

/// Where a session's link to the cluster stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Logged on: the load flows.
    Up,
    /// A non-blocking TCP connect to the member at `addr_at` is in progress.
    Connecting,
    /// Our Logon is written: its answer is awaited.
    LoggingOn,
    /// Every member refused us in this round: the next starts at `step_until`.
    Pausing,
}

/// A FIX initiator session, logged on or logging on.
pub struct Connection {
    /// SenderCompID (ours).
    pub sender: String,
    target: String,
    /// The socket; none between attempts.
    stream: Option<TcpStream>,
    /// The addresses to try (a cluster's members), and the one connected or tried now.
    addrs: Vec<SocketAddr>,
    addr_at: usize,
    password: String,
    heartbeat_s: u32,
    link: Link,
    /// The end of the current step (connect, logon answer, pause).
    step_until: Instant,
    /// The end of the whole logon; after it the session has failed.
    give_up_at: Instant,
    /// Members tried in the current round.
    tried: usize,
    /// The first logon of a run resets the sequence numbers and tries one round only.
    first: bool,
    /// Why the last attempt failed.
    last_error: String,
    /// The inbound MsgSeqNum expected when our Logon was sent.
    expected_at_logon: u64,
    next_out_seq: u64,
    /// Inbound MsgSeqNums processed since the last reset (one bit each): a resent message
    /// already seen is dropped, one never seen is processed once.
    got: Vec<u64>,
    /// The highest inbound MsgSeqNum seen.
    last_in_seq: u64,
    builder: Builder,
    scratch: Vec<u8>,
    out: Vec<u8>,
    out_sent: usize,
    input: Vec<u8>,
    input_len: usize,
    fields: Vec<Field>,
    /// The SendingTime of the current millisecond, rebuilt once per millisecond.
    sending_time: Vec<u8>,
    sending_time_ms: u64,
}

/// Starts a non-blocking TCP connect; true if it completed at once.
fn start_connect(addr: SocketAddr) -> std::io::Result<(TcpStream, bool)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    let done = match socket.connect(&addr.into()) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => false,
        Err(e) => return Err(e),
    };
    let stream = TcpStream::from(socket);
    stream.set_nodelay(true)?;
    Ok((stream, done))
}

impl Connection {
    /// Logs on to the first of `addrs` that answers the Logon, with ResetSeqNumFlag (a load
    /// run starts a fresh sequence), trying each member once; blocks until then.
    pub fn logon(
        addrs: &[SocketAddr],
        sender: &str,
        target: &str,
        password: &str,
        heartbeat_s: u32,
    ) -> Result<Connection, SessionError> {
        assert!(!addrs.is_empty(), "at least one address");
        let now = Instant::now();
        let mut c = Connection {
            sender: sender.to_string(),
            target: target.to_string(),
            stream: None,
            addrs: addrs.to_vec(),
            addr_at: 0,
            password: password.to_string(),
            heartbeat_s,
            link: Link::Pausing,
            step_until: now,
            give_up_at: now + FIRST_LOGON_TIMEOUT,
            tried: 0,
            first: true,
            last_error: String::new(),
            expected_at_logon: 1,
            got: Vec::new(),
            last_in_seq: 0,
            next_out_seq: 1,
            builder: Builder::default(),
            scratch: Vec::with_capacity(512),
            out: Vec::with_capacity(1 << 20),
            out_sent: 0,
            input: vec![0; READ_CHUNK_BYTES * 2],
            input_len: 0,
            fields: Vec::with_capacity(64),
            sending_time: Vec::new(),
            sending_time_ms: 0,
        };
        c.connect_next(now);
        while !c.is_up() {
            let mut fd = [libc::pollfd {
                fd: c.fd(),
                events: c.poll_events(),
                revents: 0,
            }];
            let wait = c.wake_at().saturating_duration_since(Instant::now());
            let timeout_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX).max(1);
            // SAFETY: fd is one initialised pollfd (a negative fd is ignored by poll).
            unsafe {
                libc::poll(fd.as_mut_ptr(), 1, timeout_ms);
            }
            c.advance(Instant::now(), fd[0].revents, |_| {})?;
        }
        Ok(c)
    }

    /// The address connected now (or tried now).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[self.addr_at]
    }

    /// Whether the session is logged on.
    pub fn is_up(&self) -> bool {
        self.link == Link::Up
    }

    /// The connection was lost: starts logging on again, without a reset, trying the members
    /// in turn (the one that served first) for up to [`RECONNECT_TIMEOUT`]; [`advance`] does
    /// the rest. Output not yet written is dropped: its requests never reached the node (their
    /// numbers are gap-filled when the node asks for them). Once logged on, asks for what it
    /// missed (ResendRequest) when the node's Logon answer is beyond the next number expected.
    ///
    /// [`advance`]: Connection::advance
    pub fn lost(&mut self, now: Instant) {
        self.first = false;
        self.tried = 0;
        self.give_up_at = now + RECONNECT_TIMEOUT;
        self.connect_next(now);
    }

    /// When the current logon step ends (only meaningful while not up).
    pub fn wake_at(&self) -> Instant {
        self.step_until.min(self.give_up_at)
    }

    /// The poll(2) events the session waits for.
    pub fn poll_events(&self) -> i16 {
        let out = if self.pending_out() > 0 { libc::POLLOUT } else { 0 };
        match self.link {
            Link::Up | Link::LoggingOn => libc::POLLIN | out,
            Link::Connecting => libc::POLLOUT,
            Link::Pausing => 0,
        }
    }

    /// Starts the next attempt, at the member at `addr_at`.
    fn connect_next(&mut self, now: Instant) {
        self.stream = None;
        self.out.clear();
        self.out_sent = 0;
        self.input_len = 0;
        let addr = self.addrs[self.addr_at];
        match start_connect(addr) {
            Ok((stream, done)) => {
                self.stream = Some(stream);
                self.link = Link::Connecting;
                self.step_until = now + CONNECT_TIMEOUT;
                if done {
                    self.send_logon(now);
                }
            }
            Err(e) => self.refused(now, format!("connect {addr}: {e}")),
        }
    }

    /// The member at `addr_at` did not take us: the next is tried when its turn comes (after a
    /// pause once every member has refused in this round).
    fn refused(&mut self, now: Instant, why: String) {
        tracing::debug!(sender = %self.sender, addr = %self.addr(), %why, "logon attempt failed");
        self.stream = None;
        self.last_error = why;
        self.addr_at = (self.addr_at + 1) % self.addrs.len();
        self.tried += 1;
        self.link = Link::Pausing;
        self.step_until = now;
        if self.tried >= self.addrs.len() {
            self.tried = 0;
            self.step_until = now + ROUND_PAUSE;
            if self.first {
                // The first logon of a run tries one round: a refusal then is an error.
                self.give_up_at = now;
            }
        }
    }

    /// Writes our Logon on the connected stream.
    fn send_logon(&mut self, now: Instant) {
        if self.first {
            self.next_out_seq = 1;
            self.got.clear();
            self.last_in_seq = 0;
        }
        self.expected_at_logon = self.last_in_seq + 1;
        self.start(b"A");
        self.builder
            .field(98, Value::U64(0))
            .field(108, Value::U64(u64::from(self.heartbeat_s)));
        if self.first {
            self.builder.field(141, Value::Bytes(b"Y"));
        }
        self.builder
            .field(553, Value::Bytes(self.sender.as_bytes()))
            .field(554, Value::Bytes(self.password.as_bytes()));
        self.finish();
        self.link = Link::LoggingOn;
        self.step_until = now + LOGON_ANSWER_TIMEOUT;
        if let Err(e) = self.flush() {
            self.refused(now, format!("sending the logon: {e}"));
        }
    }

    /// Moves a session that is not up one step on: `revents` is what poll(2) reported for its
    /// socket. Messages that follow the Logon answer go to `on_app`. Ok(true) once logged on;
    /// Err once [`RECONNECT_TIMEOUT`] has passed (or the first logon's round failed).
    pub fn advance(
        &mut self,
        now: Instant,
        revents: i16,
        on_app: impl FnMut(&Message<'_>),
    ) -> Result<bool, SessionError> {
        debug_assert!(self.link != Link::Up, "advance is for a session logging on");
        match self.link {
            Link::Up => return Ok(true),
            Link::Pausing if now >= self.step_until && now < self.give_up_at => self.connect_next(now),
            Link::Pausing => {}
            Link::Connecting if revents != 0 => self.connected(now),
            Link::Connecting if now >= self.step_until => {
                self.refused(
                    now,
                    format!("connect {}: no answer within {CONNECT_TIMEOUT:?}", self.addr()),
                );
            }
            Link::Connecting => {}
            Link::LoggingOn if revents & !libc::POLLOUT != 0 => self.logon_answer(now, on_app),
            Link::LoggingOn if revents & libc::POLLOUT != 0 => {
                if let Err(e) = self.flush() {
                    self.refused(now, format!("sending the logon: {e}"));
                }
            }
            Link::LoggingOn if now >= self.step_until => {
                self.refused(
                    now,
                    format!("no answer to the logon within {LOGON_ANSWER_TIMEOUT:?}"),
                );
            }
            Link::LoggingOn => {}
        }
        if self.link == Link::Up {
            return Ok(true);
        }
        if now >= self.give_up_at {
            let within = if self.first {
                FIRST_LOGON_TIMEOUT
            } else {
                RECONNECT_TIMEOUT
            };
            return Err(SessionError::Logon(format!(
                "no member answered a logon within {within:?} (last: {})",
                self.last_error
            )));
        }
        Ok(false)
    }

    /// The connect finished, one way or the other.
    fn connected(&mut self, now: Instant) {
        let addr = self.addr();
        let error = match self.stream.as_ref().map(TcpStream::take_error) {
            Some(Ok(None)) => None,
            Some(Ok(Some(e)) | Err(e)) => Some(e.to_string()),
            None => Some("no socket".to_string()),
        };
        match error {
            None => self.send_logon(now),
            Some(e) => self.refused(now, format!("connect {addr}: {e}")),
        }
    }

    /// Reads while awaiting the Logon answer: a Logon means logged on, anything else (a Logout,
    /// a Reject, the connection closed) that this member refused us.
    fn logon_answer(&mut self, now: Instant, mut on_app: impl FnMut(&Message<'_>)) {
        let addr = self.addr();
        let mut answer: Option<Vec<u8>> = None;
        let result = self.receive(|m| match &answer {
            None => answer = Some(m.msg_type().to_vec()),
            Some(_) => on_app(m),
        });
        match (result, answer) {
            (_, Some(t)) if t == b"A" => self.logged_on(),
            (Err(e), _) => self.refused(now, format!("{addr}: {e}")),
            (Ok(_), Some(t)) => {
                self.refused(
                    now,
                    format!(
                        "{addr}: answered the logon with 35={}",
                        String::from_utf8_lossy(&t)
                    ),
                );
            }
            (Ok(_), None) => {}
        }
    }

    /// The Logon answer arrived.
    fn logged_on(&mut self) {
        self.link = Link::Up;
        self.tried = 0;
        if !self.first && self.last_in_seq > self.expected_at_logon {
            // Numbered for us while we were away (or before): ask for it.
            self.start(b"2");
            self.field(7, Value::U64(self.expected_at_logon))
                .field(16, Value::U64(0));
            self.finish();
        }
    }

    /// Notes inbound MsgSeqNum `seq`; false if it was processed before (a resend of it).
    fn first_time(&mut self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if self.got.len() <= w {
            self.got.resize(w + 1, 0);
        }
        let was = self.got[w] & (1 << b) != 0;
        self.got[w] |= 1 << b;
        self.last_in_seq = self.last_in_seq.max(seq);
        !was
    }

    /// The socket, for poll(2).
    pub fn fd(&self) -> RawFd {
        self.stream.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    /// Unsent outbound bytes.
    pub fn pending_out(&self) -> usize {
        self.out.len() - self.out_sent
    }

    /// Starts an application or session message (the header is added here).
    pub fn start(&mut self, msg_type: &[u8]) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        if now_ms != self.sending_time_ms {
            self.sending_time_ms = now_ms;
            self.sending_time.clear();
            ordo_fix::timefmt::write_timestamp(now_ms * 1_000_000, 3, &mut self.sending_time);
        }
        self.builder.start(msg_type);
        self.builder
            .field(49, Value::Bytes(self.sender.as_bytes()))
            .field(56, Value::Bytes(self.target.as_bytes()))
            .field(34, Value::U64(self.next_out_seq))
            .field(52, Value::Bytes(&self.sending_time));
    }

    /// Adds a body field to the message being built.
    pub fn field(&mut self, tag: u32, value: Value<'_>) -> &mut Self {
        self.builder.field(tag, value);
        self
    }

    /// Adds TransactTime (60): the current SendingTime (a generator needs no finer time, and it
    /// costs no clock read).
    pub fn transact_time(&mut self) {
        self.builder.field(60, Value::Bytes(&self.sending_time));
    }

    /// Finishes the message and queues it (sent by [`Connection::flush`]).
    pub fn finish(&mut self) {
        self.builder.finish(&mut self.scratch);
        self.out.extend_from_slice(&self.scratch);
        self.next_out_seq += 1;
    }

    /// Writes what the socket takes now. Errors if the node has stopped reading.
    pub fn flush(&mut self) -> Result<(), SessionError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(SessionError::Io("not connected".into()));
        };
        while self.out_sent < self.out.len() {
            match stream.write(&self.out[self.out_sent..]) {
                Ok(0) => return Err(SessionError::Io("write returned 0".into())),
                Ok(n) => self.out_sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(SessionError::Io(format!("write: {e}"))),
            }
        }
        if self.out_sent == self.out.len() {
            self.out.clear();
            self.out_sent = 0;
        } else if self.pending_out() > MAX_PENDING_OUT_BYTES {
            return Err(SessionError::Backlog);
        } else if self.out_sent > self.out.len() / 2 {
            self.out.drain(..self.out_sent);
            self.out_sent = 0;
        }
        Ok(())
    }

    /// Reads what is available (non-blocking) and hands every application message to `on_app`.
    /// Session messages are answered here. Returns whether anything was read.
    pub fn receive(&mut self, on_app: impl FnMut(&Message<'_>)) -> Result<bool, SessionError> {
        // One read per call: the driver polls again, so the buffer never grows beyond one
        // chunk plus one partial frame (MAX_MESSAGE_BYTES).
        if self.input.len() - self.input_len < READ_CHUNK_BYTES {
            self.input.resize(self.input_len + READ_CHUNK_BYTES, 0);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(SessionError::Io("not connected".into()));
        };
        let any = loop {
            match stream.read(&mut self.input[self.input_len..]) {
                Ok(0) => return Err(SessionError::Io("the node closed the connection".into())),
                Ok(n) => {
                    self.input_len += n;
                    break true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(SessionError::Io(format!("read: {e}"))),
            }
        };
        if any {
            self.poll_messages(on_app)?;
        }
        Ok(any)
    }

    /// Parses complete frames from the input buffer.
    fn poll_messages(&mut self, mut on_app: impl FnMut(&Message<'_>)) -> Result<(), SessionError> {
        let mut consumed = 0usize;
        let mut answers: Vec<(u8, Vec<u8>)> = Vec::new();
        loop {
            let buf = &self.input[consumed..self.input_len];
            match next_frame(buf, MAX_MESSAGE_BYTES) {
                Frame::Message { start, end } => {
                    let frame = &buf[start..end];
                    let parsed = parse(frame, &mut self.fields).is_ok();
                    let seq = if parsed {
                        Message {
                            buf: frame,
                            fields: &self.fields,
                        }
                        .get_u64(34)
                        .unwrap_or(0)
                    } else {
                        0
                    };
                    // A message seen before (resent after a reconnect) is not processed again.
                    let fresh = !parsed || seq == 0 || self.first_time(seq);
                    let buf = &self.input[consumed..self.input_len];
                    let frame = &buf[start..end];
                    if parsed && fresh {
                        let m = Message {
                            buf: frame,
                            fields: &self.fields,
                        };
                        match m.msg_type() {
                            b"0" => {}
                            b"1" => answers.push((b'1', m.get(112).unwrap_or_default().to_vec())),
                            b"2" => answers.push((b'2', Vec::new())),
                            b"3" => {
                                return Err(SessionError::Protocol(format!(
                                    "the node rejected a message: 45={} 373={} 58={}",
                                    m.get_str(45).unwrap_or(""),
                                    m.get_str(373).unwrap_or(""),
                                    m.get_str(58).unwrap_or("")
                                )));
                            }
                            b"5" => {
                                return Err(SessionError::Protocol(format!(
                                    "logout from the node: {}",
                                    m.get_str(58).unwrap_or("")
                                )));
                            }
                            _ => on_app(&m),
                        }
                    }
                    consumed += end;
                }
                Frame::Incomplete { skip } => {
                    consumed += skip;
                    break;
                }
                Frame::Garbage { skip } => consumed += skip,
                Frame::TooLarge { announced } => {
                    return Err(SessionError::Protocol(format!(
                        "frame of {announced} bytes from the node"
                    )));
                }
            }
        }
        self.input.copy_within(consumed..self.input_len, 0);
        self.input_len -= consumed;
        for (kind, test_req_id) in answers {
            match kind {
                b'1' => {
                    self.start(b"0");
                    self.field(112, Value::Bytes(&test_req_id));
                    self.finish();
                }
                _ => {
                    // We keep no history: a SequenceReset-Reset to our next number skips the
                    // whole gap (what a load generator may do: the orders it would have resent
                    // were never acknowledged).
                    let next = self.next_out_seq;
                    self.builder.start(b"4");
                    self.builder
                        .field(49, Value::Bytes(self.sender.as_bytes()))
                        .field(56, Value::Bytes(self.target.as_bytes()))
                        .field(34, Value::U64(next))
                        .field(52, Value::Bytes(&self.sending_time))
                        .field(36, Value::U64(next))
                        .field(123, Value::Bytes(b"N"));
                    self.builder.finish(&mut self.scratch);
                    self.out.extend_from_slice(&self.scratch);
                }
            }
        }
        Ok(())
    }

    /// Sends a Logout and waits briefly for the answer (best effort at the end of a run).
    pub fn logout(mut self) {
        if !self.is_up() {
            return;
        }
        self.start(b"5");
        self.finish();
        let Some(mut stream) = self.stream.take() else {
            return;
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.write_all(&self.out[self.out_sent..]);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
    }
}
