//! A small blocking FIX 4.4 initiator for tests that need to see every message: it builds and
//! parses with the node's own codec (whose output the QuickFIX peers validate separately).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ordo_fix::builder::{Builder, Value};
use ordo_fix::frame::{Frame, next_frame};
use ordo_fix::message::{self, Message};

/// A received message, owned.
#[derive(Debug, Clone)]
pub struct Msg {
    /// Fields in order.
    pub fields: Vec<(i64, String)>,
}

impl Msg {
    /// The first value of `tag`.
    pub fn get(&self, tag: i64) -> Option<&str> {
        self.fields
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| v.as_str())
    }
    /// MsgType.
    pub fn msg_type(&self) -> &str {
        self.get(35).unwrap_or("")
    }
    /// MsgSeqNum.
    pub fn seq(&self) -> u64 {
        self.get(34).and_then(|s| s.parse().ok()).unwrap_or(0)
    }
}

impl std::fmt::Display for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (t, v) in &self.fields {
            write!(f, "{t}={v}|")?;
        }
        Ok(())
    }
}

/// What reading found.
#[derive(Debug)]
pub enum Got {
    /// A message.
    Msg(Msg),
    /// Nothing within the timeout.
    Timeout,
    /// The peer closed the connection.
    Closed,
}

/// A client connection.
pub struct FixClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Our CompID.
    pub sender: String,
    /// The node's CompID.
    pub target: String,
    /// Next MsgSeqNum we send.
    pub next_out: u64,
    builder: Builder,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl FixClient {
    /// Connects.
    pub fn connect(port: u16, sender: &str, target: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        Ok(FixClient {
            stream,
            buf: Vec::new(),
            sender: sender.into(),
            target: target.into(),
            next_out: 1,
            builder: Builder::default(),
        })
    }

    /// Sends a message with our header and the next sequence number.
    pub fn send(&mut self, msg_type: &str, body: &[(u32, &str)]) {
        let seq = self.next_out;
        self.next_out += 1;
        self.send_with_seq(msg_type, seq, body);
    }

    /// Sends with an explicit sequence number (does not advance ours).
    pub fn send_with_seq(&mut self, msg_type: &str, seq: u64, body: &[(u32, &str)]) {
        let b = &mut self.builder;
        b.start(msg_type.as_bytes());
        b.field(49, Value::Bytes(self.sender.as_bytes()));
        b.field(56, Value::Bytes(self.target.as_bytes()));
        b.field(34, Value::U64(seq));
        b.field(52, Value::TimeMs(now_ns()));
        for (t, v) in body {
            b.field(*t, Value::Bytes(v.as_bytes()));
        }
        let mut out = Vec::new();
        b.finish(&mut out);
        self.send_raw(&out);
    }

    /// Writes raw bytes (a broken peer).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// [`FixClient::send`], reporting a failed write (the node closed the connection, or a
    /// write timeout set with [`FixClient::set_write_timeout`] passed).
    pub fn send_checked(&mut self, msg_type: &str, body: &[(u32, &str)]) -> std::io::Result<()> {
        let b = &mut self.builder;
        b.start(msg_type.as_bytes());
        b.field(49, Value::Bytes(self.sender.as_bytes()));
        b.field(56, Value::Bytes(self.target.as_bytes()));
        b.field(34, Value::U64(self.next_out));
        b.field(52, Value::TimeMs(now_ns()));
        for (t, v) in body {
            b.field(*t, Value::Bytes(v.as_bytes()));
        }
        let mut out = Vec::new();
        b.finish(&mut out);
        self.next_out += 1;
        self.stream.write_all(&out)
    }

    /// Bounds how long a write may block (None: for ever).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.stream.set_write_timeout(timeout)
    }

    /// Reads the next message.
    pub fn read(&mut self, timeout: Duration) -> Got {
        let deadline = Instant::now() + timeout;
        loop {
            if let Frame::Message { start, end } = next_frame(&self.buf, 1 << 20) {
                let frame = self.buf[start..end].to_vec();
                self.buf.drain(..end);
                let mut fields = Vec::new();
                message::parse(&frame, &mut fields).expect("the node sends valid FIX");
                let m = Message {
                    buf: &frame,
                    fields: &fields,
                };
                let owned = Msg {
                    fields: fields
                        .iter()
                        .map(|f| (f.tag, String::from_utf8_lossy(m.value(f)).into_owned()))
                        .collect(),
                };
                return Got::Msg(owned);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Got::Timeout;
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))
                .expect("timeout");
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Got::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return Got::Closed,
            }
        }
    }

    /// The next message that is not a Heartbeat; panics on timeout or close.
    pub fn expect(&mut self, timeout: Duration) -> Msg {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read(deadline.saturating_duration_since(Instant::now())) {
                Got::Msg(m) if m.msg_type() == "0" => continue,
                Got::Msg(m) => return m,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// Whether the node closes the connection within `timeout` (messages before it are
    /// returned in the vector).
    pub fn closed_within(&mut self, timeout: Duration) -> (bool, Vec<Msg>) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            match self.read(deadline.saturating_duration_since(Instant::now())) {
                Got::Closed => return (true, seen),
                Got::Timeout => return (false, seen),
                Got::Msg(m) => seen.push(m),
            }
        }
    }

    /// Connects as CLIENT`n` (password `demo`, the embedded defaults) and logs on with a
    /// sequence reset; panics unless the node answers with a Logon.
    pub fn logged_on(port: u16, n: u32) -> FixClient {
        let name = format!("CLIENT{n}");
        let mut c = FixClient::connect(port, &name, "ORDO").unwrap();
        let answer = c.logon(&name, "demo", true);
        assert_eq!(answer.msg_type(), "A", "{answer}");
        c
    }

    /// Logs on (Username/Password, HeartBtInt 30, optionally ResetSeqNumFlag) and returns the
    /// node's Logon answer.
    pub fn logon(&mut self, user: &str, password: &str, reset: bool) -> Msg {
        let mut body = vec![(98, "0"), (108, "30"), (553, user), (554, password)];
        if reset {
            body.push((141, "Y"));
        }
        self.send("A", &body);
        self.expect(Duration::from_secs(10))
    }
}
