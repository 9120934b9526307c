//! One FIX 4.4 initiator session of the load generator: a non-blocking TCP connection with an
//! outbound buffer, framing of what arrives, and the session-level duties a load generator
//! cannot skip (logon with a sequence reset, answering TestRequests, gap-filling a
//! ResendRequest). Everything else is left to the driver.

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
    /// The node answered the logon with something else.
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
/// How long one Logon waits for its answer (it is committed before it is sent).
const LOGON_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected, logged-on initiator session.
pub struct Connection {
    /// SenderCompID (ours).
    pub sender: String,
    target: String,
    stream: TcpStream,
    /// The addresses to try (a cluster's members), and the one connected now.
    addrs: Vec<SocketAddr>,
    addr_at: usize,
    password: String,
    heartbeat_s: u32,
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

impl Connection {
    /// Connects to the first of `addrs` that answers the Logon, with ResetSeqNumFlag (a load
    /// run starts a fresh sequence).
    pub fn logon(
        addrs: &[SocketAddr],
        sender: &str,
        target: &str,
        password: &str,
        heartbeat_s: u32,
    ) -> Result<Connection, SessionError> {
        let mut last = SessionError::Io("no address".into());
        for (at, &addr) in addrs.iter().enumerate() {
            match Self::logon_at(addrs, at, sender, target, password, heartbeat_s) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::debug!(%addr, %e, "logon refused: trying the next member");
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn logon_at(
        addrs: &[SocketAddr],
        at: usize,
        sender: &str,
        target: &str,
        password: &str,
        heartbeat_s: u32,
    ) -> Result<Connection, SessionError> {
        let addr = addrs[at];
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| SessionError::Io(format!("connect {addr}: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| SessionError::Io(e.to_string()))?;
        let mut c = Connection {
            sender: sender.to_string(),
            target: target.to_string(),
            stream,
            addrs: addrs.to_vec(),
            addr_at: at,
            password: password.to_string(),
            heartbeat_s,
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
        c.log_on(true, Duration::from_secs(5))?;
        Ok(c)
    }

    /// The address connected now.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[self.addr_at]
    }

    /// After the connection was lost: tries the addresses in turn (the one that served first)
    /// until one answers a Logon without a reset, for up to [`RECONNECT_TIMEOUT`]. Output not
    /// yet written is dropped: its requests never reached the node (their numbers are
    /// gap-filled when the node asks for them). Asks for what it missed (ResendRequest) when the
    /// node's Logon answer is beyond the next number expected.
    pub fn reconnect(&mut self) -> Result<(), SessionError> {
        let deadline = Instant::now() + RECONNECT_TIMEOUT;
        self.out.clear();
        self.out_sent = 0;
        self.input_len = 0;
        let mut last = String::new();
        while Instant::now() < deadline {
            for _ in 0..self.addrs.len() {
                let addr = self.addrs[self.addr_at];
                match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        self.stream = stream;
                        match self.log_on(false, LOGON_ANSWER_TIMEOUT) {
                            Ok(()) => return Ok(()),
                            Err(e) => last = format!("{addr}: {e}"),
                        }
                    }
                    Err(e) => last = format!("{addr}: {e}"),
                }
                self.addr_at = (self.addr_at + 1) % self.addrs.len();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(SessionError::Logon(format!(
            "no member answered a logon within {RECONNECT_TIMEOUT:?} (last: {last})"
        )))
    }

    /// Sends our Logon on the current stream and waits for the answer; the stream is then
    /// non-blocking.
    fn log_on(&mut self, reset: bool, wait: Duration) -> Result<(), SessionError> {
        let c = self;
        if reset {
            c.next_out_seq = 1;
            c.got.clear();
            c.last_in_seq = 0;
        }
        c.stream
            .set_nonblocking(false)
            .map_err(|e| SessionError::Io(e.to_string()))?;
        c.start(b"A");
        c.builder
            .field(98, Value::U64(0))
            .field(108, Value::U64(u64::from(c.heartbeat_s)));
        if reset {
            c.builder.field(141, Value::Bytes(b"Y"));
        }
        c.builder
            .field(553, Value::Bytes(c.sender.as_bytes()))
            .field(554, Value::Bytes(c.password.as_bytes()));
        c.finish();
        c.stream
            .set_read_timeout(Some(wait))
            .map_err(|e| SessionError::Io(e.to_string()))?;
        c.flush_blocking()?;
        let expected = c.last_in_seq + 1;
        let deadline = Instant::now() + wait;
        loop {
            if Instant::now() > deadline {
                return Err(SessionError::Logon("no answer within 5 s".into()));
            }
            let n = c
                .stream
                .read(&mut c.input[c.input_len..])
                .map_err(|e| SessionError::Io(format!("waiting for the logon answer: {e}")))?;
            if n == 0 {
                return Err(SessionError::Logon("connection closed".into()));
            }
            c.input_len += n;
            let mut answer = None;
            c.poll_messages(|m| {
                if answer.is_none() {
                    answer = Some((m.msg_type().to_vec(), m.get_str(58).unwrap_or("").to_string()));
                }
            })?;
            match answer {
                Some((t, _)) if t == b"A" => break,
                Some((t, text)) => {
                    return Err(SessionError::Logon(format!(
                        "35={} {text}",
                        String::from_utf8_lossy(&t)
                    )));
                }
                None => {}
            }
        }
        c.stream
            .set_nonblocking(true)
            .map_err(|e| SessionError::Io(e.to_string()))?;
        if !reset && c.last_in_seq > expected {
            // Numbered for us while we were away (or before): ask for it.
            c.start(b"2");
            c.field(7, Value::U64(expected)).field(16, Value::U64(0));
            c.finish();
        }
        Ok(())
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
        self.stream.as_raw_fd()
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
        while self.out_sent < self.out.len() {
            match self.stream.write(&self.out[self.out_sent..]) {
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

    fn flush_blocking(&mut self) -> Result<(), SessionError> {
        self.stream
            .write_all(&self.out[self.out_sent..])
            .map_err(|e| SessionError::Io(format!("write: {e}")))?;
        self.out.clear();
        self.out_sent = 0;
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
        let any = loop {
            match self.stream.read(&mut self.input[self.input_len..]) {
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
        self.start(b"5");
        self.finish();
        let _ = self.stream.set_nonblocking(false);
        let _ = self.flush_blocking();
        let _ = self.stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 4096];
        let _ = self.stream.read(&mut buf);
    }
}
