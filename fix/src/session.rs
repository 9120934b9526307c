//! The FIX session layer: logon, sequence numbers, heartbeats and test requests, resend
//! requests (answered with PossDup resends and gap fills), sequence resets, logout, and the
//! session-level Reject, with the rules and texts of QuickFIX (the acceptance suite compares
//! our answers with QuickFIX's byte for byte).
//!
//! The state machine is pure: it takes frames and the time, and writes the bytes to send into
//! [`Io::out`]. No I/O, no clock, no threads: the gateway drives it and the tests can too.

use std::collections::BTreeMap;

use super::builder::{Builder, Value};
use super::dictionary;
use super::message::{self, Field, Message};
use super::shape::Shapes;
use super::validate::{self, reason};

const NS: u64 = 1_000_000_000;

/// BusinessRejectReason (380) 4, "Application not available".
pub const BUSINESS_APPLICATION_NOT_AVAILABLE: u32 = 4;

/// Per-session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our CompID (their TargetCompID).
    pub sender_comp_id: String,
    /// Their CompID (their SenderCompID).
    pub target_comp_id: String,
    /// Reset both sequence numbers to 1 at every logon.
    pub reset_on_logon: bool,
    /// Check SendingTime against our clock.
    pub check_latency: bool,
    /// Largest SendingTime difference accepted, seconds.
    pub max_latency_s: u64,
    /// Seconds to wait for the answer to our Logout before disconnecting.
    pub logout_timeout_s: u64,
    /// Accepted HeartBtInt range, seconds (a Logon outside it is refused).
    pub heartbeat_min_s: u64,
    /// See `heartbeat_min_s`.
    pub heartbeat_max_s: u64,
    /// Username (553) and password (554) the Logon must carry, if set.
    pub credentials: Option<(String, String)>,
    /// Most messages held while a gap is being resent; more disconnects.
    pub max_queued: usize,
}

impl SessionConfig {
    /// Defaults of QuickFIX for an acceptor.
    pub fn new(sender_comp_id: &str, target_comp_id: &str) -> Self {
        SessionConfig {
            sender_comp_id: sender_comp_id.to_string(),
            target_comp_id: target_comp_id.to_string(),
            reset_on_logon: false,
            check_latency: true,
            max_latency_s: 120,
            logout_timeout_s: 2,
            heartbeat_min_s: 0,
            heartbeat_max_s: 3600,
            credentials: None,
            max_queued: 10_000,
        }
    }
}

/// Where sent messages are kept, to answer resend requests.
pub trait MessageStore {
    /// Records a sent message (every one that takes a sequence number, admin ones too: the
    /// store decides what it keeps).
    fn store(&mut self, seq: u64, message: &[u8], admin: bool);
    /// Calls `f` with every stored message in `begin..=end`, in sequence order.
    fn fetch(&self, begin: u64, end: u64, f: &mut dyn FnMut(u64, &[u8]));
    /// Forgets everything (a sequence reset).
    fn reset(&mut self);
    /// Highest MsgSeqNum of an application message the store no longer holds (0: it holds
    /// every one since the last reset). A ResendRequest that reaches it is refused, never
    /// gap-filled over a message the client did not see.
    fn dropped_through(&self) -> u64 {
        0
    }
}

/// What the application says about an application message.
#[derive(Debug)]
pub enum AppVerdict {
    /// Taken (the application answers later, through [`Session::send_app`]).
    Accept,
    /// Not a message type we handle: BusinessMessageReject, BusinessRejectReason 3.
    Unsupported,
    /// Refused with a BusinessMessageReject (reason, text, RefTagID).
    BusinessReject {
        /// BusinessRejectReason (380).
        reason: u32,
        /// Text (58).
        text: &'static str,
        /// The field concerned, if any.
        tag: Option<u32>,
    },
}

/// A message the application sends back at once (type and body fields).
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// MsgType.
    pub msg_type: Vec<u8>,
    /// Body fields (tag, value).
    pub body: Vec<(u32, Vec<u8>)>,
}

/// The application behind the session.
pub trait App {
    /// An application message passed every session check. `reply` collects messages to send
    /// back at once, in order (the echo application of the acceptance suite uses it).
    fn on_app(&mut self, msg: &Message<'_>, reply: &mut Vec<Reply>) -> AppVerdict;
    /// A Logon passed every session check: the application may still refuse it (Logout with
    /// the text, then the connection is closed).
    fn refuse_logon(&mut self) -> Option<&'static str> {
        None
    }
    /// The session logged on; `reset` if sequence numbers were reset to 1.
    fn on_logon(&mut self, _reset: bool) {}
    /// The session's connection ended.
    fn on_logout(&mut self) {}
    /// Log numbering: sequences a message the session decided to send on connection
    /// `connection`. False if it cannot be (its queue is at its bound): the connection is then
    /// closed.
    fn sequence_out(&mut self, _connection: u64, _msg: Deferred) -> bool {
        false
    }
}

/// The session's output for one call.
pub struct Io<'a, S: MessageStore + ?Sized> {
    /// Bytes to write to the connection, in order.
    pub out: &'a mut Vec<u8>,
    /// Close the connection after writing `out`.
    pub disconnect: bool,
    /// The store of sent messages.
    pub store: &'a mut S,
}

/// A reply body: fields after the header, each (tag, value).
type Body<'b> = &'b [(u32, Value<'b>)];

/// Who gives the messages a session sends their MsgSeqNum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    /// The session, as it sends them (the echo application, tests).
    Local,
    /// The log: a message the session decides to send is handed out as a [`Deferred`]
    /// ([`Session::take_deferred`]); once its record is committed it comes back through
    /// [`Session::send_committed`], which numbers, stores and writes it. Every member applies
    /// the same committed records in the same order, so every member gives every message the
    /// same number, and a member that takes over can serve the session (`docs/REPLICATION.md`,
    /// 6.1). Resends and gap fills take no new number and are written at once.
    Log,
}

/// A message a [`Numbering::Log`] session decided to send, before it has a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    /// MsgType.
    pub msg_type: Vec<u8>,
    /// Every field but the standard header's own (BeginString, BodyLength, MsgType,
    /// MsgSeqNum, CompIDs, SendingTime) and the CheckSum: `tag=value<SOH>` runs, header
    /// fields (routing) first, as [`Builder::fields_run`] writes them.
    pub fields: Vec<u8>,
}

/// One FIX session's state.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    next_sender: u64,
    next_target: u64,
    received_logon: bool,
    sent_logon: bool,
    sent_logout: bool,
    received_reset: bool,
    heartbeat_s: u64,
    last_received_ns: u64,
    last_sent_ns: u64,
    test_requests: u32,
    resend_range: Option<(u64, u64)>,
    queue: BTreeMap<u64, Vec<u8>>,
    builder: Builder,
    scratch: Vec<u8>,
    fields: Vec<Field>,
    /// This connection's remembered message shapes (parse + validate in one pass for a
    /// message shaped like one proven before); boxed, ~5 KiB.
    shapes: Box<Shapes>,
    numbering: Numbering,
    /// Log numbering: messages decided and not yet handed out.
    deferred: Vec<Deferred>,
    /// Log numbering: our Logon answer has been written to this connection (nothing else is
    /// written before it).
    wire_logon_sent: bool,
}

/// Why processing stopped early (QuickFIX's exceptions inside verify).
struct Abort;

impl Session {
    /// A session with sequence numbers `next_sender` / `next_target` (1 / 1 when new; from the
    /// journal after a restart).
    pub fn new(cfg: SessionConfig, next_sender: u64, next_target: u64) -> Self {
        Session {
            cfg,
            next_sender,
            next_target,
            received_logon: false,
            sent_logon: false,
            sent_logout: false,
            received_reset: false,
            heartbeat_s: 0,
            last_received_ns: 0,
            last_sent_ns: 0,
            test_requests: 0,
            resend_range: None,
            queue: BTreeMap::new(),
            builder: Builder::default(),
            scratch: Vec::new(),
            fields: Vec::new(),
            shapes: Box::default(),
            numbering: Numbering::Local,
            deferred: Vec::new(),
            wire_logon_sent: false,
        }
    }

    /// The session numbers what it sends through the log ([`Numbering::Log`]).
    pub fn with_log_numbering(mut self) -> Self {
        self.numbering = Numbering::Log;
        self
    }

    /// How the session numbers what it sends.
    pub fn numbering(&self) -> Numbering {
        self.numbering
    }

    /// Log numbering: the messages decided since the last call, in order. The caller
    /// sequences each; [`Session::send_committed`] sends it once committed.
    pub fn take_deferred(&mut self) -> Vec<Deferred> {
        std::mem::take(&mut self.deferred)
    }

    /// Sets the next inbound MsgSeqNum (a member that takes over: what the committed log says
    /// the session sent last, plus one).
    pub fn set_next_target(&mut self, next_target: u64) {
        self.next_target = next_target;
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Logged on (a Logon received and answered, no Logout yet).
    pub fn is_logged_on(&self) -> bool {
        self.received_logon && self.sent_logon
    }

    /// Next sequence number we send.
    pub fn next_sender(&self) -> u64 {
        self.next_sender
    }

    /// Next sequence number we expect.
    pub fn next_target(&self) -> u64 {
        self.next_target
    }

    /// The connection ended: back to logged out (sequence numbers kept).
    pub fn disconnected(&mut self, app: &mut (impl App + ?Sized)) {
        if self.received_logon || self.sent_logon {
            app.on_logout();
        }
        self.received_logon = false;
        self.sent_logon = false;
        self.sent_logout = false;
        self.received_reset = false;
        self.queue.clear();
        self.resend_range = None;
        self.test_requests = 0;
        self.wire_logon_sent = false;
    }

    fn reset_sequences<S: MessageStore + ?Sized>(&mut self, io: &mut Io<'_, S>) {
        self.next_target = 1;
        if self.numbering == Numbering::Local {
            self.next_sender = 1;
            io.store.reset();
        }
        // Log numbering: the outbound side restarts when the reset's record is committed
        // ([`Session::committed_reset`]), after every message numbered before it.
    }

    /// Log numbering: a committed sequence reset (a Logon with ResetSeqNumFlag): the next
    /// message sent is number 1, and the store forgets the old sequence.
    pub fn committed_reset<S: MessageStore + ?Sized>(&mut self, io: &mut Io<'_, S>) {
        self.next_sender = 1;
        io.store.reset();
    }

    // ----- sending ---------------------------------------------------------------------------

    /// Builds and sends a message: header (our CompIDs, `seq` or the next number, SendingTime),
    /// then `body`. Admin messages other than Logon, Logout, ResendRequest and SequenceReset
    /// are only written while logged on; application messages are stored either way.
    fn send_raw<S: MessageStore + ?Sized>(
        &mut self,
        msg_type: &[u8],
        header_extra: Body<'_>,
        body: Body<'_>,
        seq: Option<u64>,
        now: u64,
        io: &mut Io<'_, S>,
    ) {
        if seq.is_none() && self.numbering == Numbering::Log {
            self.defer(msg_type, header_extra, body);
            // Decided now: the timers count from here, not from when the record comes back.
            self.last_sent_ns = now;
            return;
        }
        let admin = dictionary::is_admin(msg_type);
        let b = &mut self.builder;
        b.start(msg_type);
        // In tag order: the builder then needs no sort.
        b.field(34, Value::U64(seq.unwrap_or(self.next_sender)));
        b.field(49, Value::Bytes(self.cfg.sender_comp_id.as_bytes()));
        b.field(52, Value::TimeMs(now));
        b.field(56, Value::Bytes(self.cfg.target_comp_id.as_bytes()));
        for &(tag, v) in header_extra.iter().chain(body) {
            b.field(tag, v);
        }
        b.finish(&mut self.scratch);
        if seq.is_none() {
            io.store.store(self.next_sender, &self.scratch, admin);
            self.next_sender += 1;
        }
        let write = if admin {
            matches!(msg_type, b"A" | b"5" | b"2" | b"4") || self.is_logged_on()
        } else {
            self.is_logged_on()
        };
        if write {
            io.out.extend_from_slice(&self.scratch);
            self.last_sent_ns = now;
        }
    }

    /// Log numbering: keeps the message for [`Session::take_deferred`].
    fn defer(&mut self, msg_type: &[u8], header_extra: Body<'_>, body: Body<'_>) {
        let b = &mut self.builder;
        b.start(msg_type);
        for &(tag, v) in header_extra.iter().chain(body) {
            b.field(tag, v);
        }
        let mut fields = Vec::with_capacity(64);
        b.fields_run(&mut fields);
        self.deferred.push(Deferred {
            msg_type: msg_type.to_vec(),
            fields,
        });
    }

    /// Sends an application message the session itself decided on (a reply of the
    /// application): `body` is every field after the header. Stored for resends; written now
    /// if logged on (log numbering: deferred, like every message the session decides).
    pub fn send_app<S: MessageStore + ?Sized>(
        &mut self,
        msg_type: &[u8],
        body: Body<'_>,
        now: u64,
        io: &mut Io<'_, S>,
    ) {
        self.send_raw(msg_type, &[], body, None, now, io);
    }

    /// Sends an application message derived from a committed journal record: numbered, stored,
    /// and written if logged on, whatever the numbering (the record it comes from is committed
    /// already). `now` is its SendingTime: the record's timestamp, so that every member renders
    /// the same bytes. Returns its sequence number.
    pub fn send_app_from<S: MessageStore + ?Sized>(
        &mut self,
        msg_type: &[u8],
        body: Body<'_>,
        now: u64,
        io: &mut Io<'_, S>,
    ) -> u64 {
        let seq = self.next_sender;
        match self.numbering {
            Numbering::Local => self.send_raw(msg_type, &[], body, None, now, io),
            Numbering::Log => {
                self.builder.start(msg_type);
                for &(tag, v) in body {
                    self.builder.field(tag, v);
                }
                self.emit_committed(msg_type, true, now, io);
            }
        }
        seq
    }

    /// Log numbering: a message this session decided on ([`Deferred`]), its record committed at
    /// `ts` (its SendingTime). `this_connection`: decided on the connection that is bound now
    /// (else it is numbered and stored, not written). `Err` with the offset of a damaged field.
    pub fn send_committed<S: MessageStore + ?Sized>(
        &mut self,
        msg_type: &[u8],
        fields: &[u8],
        this_connection: bool,
        ts: u64,
        io: &mut Io<'_, S>,
    ) -> Result<u64, usize> {
        debug_assert_eq!(self.numbering, Numbering::Log);
        let seq = self.next_sender;
        self.builder.start(msg_type);
        self.builder.fields_from(fields)?;
        self.emit_committed(msg_type, this_connection, ts, io);
        Ok(seq)
    }

    /// Log numbering: numbers, stores and (if it may) writes the message in the builder. A
    /// Logon answer is written to the connection it was decided on; nothing else is written
    /// before it (a client must see our Logon first: what was numbered before it reaches the
    /// client through its ResendRequest).
    fn emit_committed<S: MessageStore + ?Sized>(
        &mut self,
        msg_type: &[u8],
        this_connection: bool,
        ts: u64,
        io: &mut Io<'_, S>,
    ) {
        let admin = dictionary::is_admin(msg_type);
        let b = &mut self.builder;
        b.field(34, Value::U64(self.next_sender));
        b.field(49, Value::Bytes(self.cfg.sender_comp_id.as_bytes()));
        b.field(52, Value::TimeMs(ts));
        b.field(56, Value::Bytes(self.cfg.target_comp_id.as_bytes()));
        b.finish(&mut self.scratch);
        io.store.store(self.next_sender, &self.scratch, admin);
        self.next_sender += 1;
        // A Logout may answer a Logon that was refused (not received as a logon).
        let write = this_connection
            && match msg_type {
                b"A" | b"5" | b"2" | b"4" => true,
                _ => self.received_logon && self.wire_logon_sent,
            };
        if write {
            if msg_type == b"A" {
                self.wire_logon_sent = true;
            }
            io.out.extend_from_slice(&self.scratch);
        }
    }

    fn logout<S: MessageStore + ?Sized>(&mut self, text: &str, now: u64, io: &mut Io<'_, S>) {
        if text.is_empty() {
            self.send_raw(b"5", &[], &[], None, now, io);
        } else {
            self.send_raw(b"5", &[], &[(58, Value::Bytes(text.as_bytes()))], None, now, io);
        }
        self.sent_logout = true;
    }

    fn reject<S: MessageStore + ?Sized>(
        &mut self,
        msg: &Message<'_>,
        err: u32,
        tag: Option<i64>,
        now: u64,
        io: &mut Io<'_, S>,
    ) -> Result<(), Abort> {
        let seq = msg.get_u64(34);
        let msg_type = msg.msg_type();
        if msg_type != b"A" && msg_type != b"4" && seq == Some(self.next_target) {
            self.next_target += 1;
        }
        if !self.received_logon {
            // QuickFIX: "Tried to send a reject while not logged on".
            return Err(Abort);
        }
        let route = reverse_route(msg);
        let mut body: Vec<(u32, Value<'_>)> = Vec::with_capacity(8);
        let seq_bytes = msg.get(34).filter(|v| !v.is_empty());
        if let Some(s) = seq_bytes {
            body.push((45, Value::Bytes(s)));
        }
        if !msg_type.is_empty() {
            body.push((372, Value::Bytes(msg_type)));
        }
        body.push((373, Value::U64(u64::from(err))));
        body.push((58, Value::Bytes(reason::text(err).as_bytes())));
        if tag.is_some() || err == reason::INVALID_TAG {
            body.push((371, Value::I64(tag.unwrap_or(0))));
        }
        self.send_raw(b"3", &route, &body, None, now, io);
        Ok(())
    }

    fn business_reject<S: MessageStore + ?Sized>(
        &mut self,
        msg: &Message<'_>,
        reason: u32,
        text: &str,
        tag: Option<u32>,
        now: u64,
        io: &mut Io<'_, S>,
    ) {
        self.next_target += 1;
        let mut body: Vec<(u32, Value<'_>)> = vec![
            (380, Value::U64(u64::from(reason))),
            (372, Value::Bytes(msg.msg_type())),
        ];
        if let Some(s) = msg.get(34) {
            body.push((45, Value::Bytes(s)));
        }
        // "Application not available" (the node is busy or stopping) refuses one order-entry
        // message: BusinessRejectRefID names it by its ClOrdID so the client can match the
        // refusal to its request. (Not on other business rejects, which must stay QuickFIX's.)
        if reason == BUSINESS_APPLICATION_NOT_AVAILABLE
            && let Some(id) = msg.get(11)
        {
            body.push((379, Value::Bytes(id)));
        }
        let owned;
        match tag {
            Some(t) => {
                owned = format!("{text} ({t})");
                body.push((58, Value::Bytes(owned.as_bytes())));
            }
            None => body.push((58, Value::Bytes(text.as_bytes()))),
        }
        self.send_raw(b"j", &[], &body, None, now, io);
    }

    fn sequence_reset<S: MessageStore + ?Sized>(
        &mut self,
        begin: u64,
        new_seq: u64,
        now: u64,
        io: &mut Io<'_, S>,
    ) {
        let mut ts = Vec::with_capacity(24);
        super::timefmt::write_timestamp(now, 3, &mut ts);
        let header = [(43, Value::Bytes(b"Y")), (122, Value::Bytes(&ts))];
        let body = [(36, Value::U64(new_seq)), (123, Value::Bytes(b"Y"))];
        self.send_raw(b"4", &header, &body, Some(begin), now, io);
    }

    // ----- receiving -------------------------------------------------------------------------

    /// Processes one frame received on the connection.
    pub fn on_frame<S: MessageStore + ?Sized>(
        &mut self,
        frame: &[u8],
        now: u64,
        io: &mut Io<'_, S>,
        app: &mut (impl App + ?Sized),
    ) {
        self.next_frame(frame, now, io, app, false);
    }

    fn next_frame<S: MessageStore + ?Sized>(
        &mut self,
        frame: &[u8],
        now: u64,
        io: &mut Io<'_, S>,
        app: &mut (impl App + ?Sized),
        queued: bool,
    ) {
        let mut fields = std::mem::take(&mut self.fields);
        // Proven valid in one pass (the common case), or parsed here and validated in
        // `next_message`, which then names the problem QuickFIX would.
        let proven = self.shapes.parse_valid(frame, &mut fields);
        let parsed = if proven {
            Ok(())
        } else {
            message::parse(frame, &mut fields)
        };
        match parsed {
            Err(_) => {
                // Not a message: dropped without an answer; a broken Logon ends the connection.
                if identify_type(frame) == Some(b"A") {
                    io.disconnect = true;
                }
            }
            Ok(()) => {
                let msg = Message {
                    buf: frame,
                    fields: &fields,
                };
                let _ = self.next_message(&msg, proven, now, io, app);
                if !queued && !io.disconnect {
                    self.next_queued(now, io, app);
                }
            }
        }
        self.fields = fields;
    }

    fn next_queued<S: MessageStore + ?Sized>(
        &mut self,
        now: u64,
        io: &mut Io<'_, S>,
        app: &mut (impl App + ?Sized),
    ) {
        while !io.disconnect {
            let Some(frame) = self.queue.remove(&self.next_target) else {
                break;
            };
            let msg_type = identify_type(&frame).unwrap_or_default().to_vec();
            if msg_type == b"A" || msg_type == b"2" {
                self.next_target += 1;
            } else {
                self.next_frame(&frame, now, io, app, true);
            }
        }
    }

    /// `proven`: `msg` is known to pass `validate::validate` already.
    fn next_message<S: MessageStore + ?Sized>(
        &mut self,
        msg: &Message<'_>,
        proven: bool,
        now: u64,
        io: &mut Io<'_, S>,
        app: &mut (impl App + ?Sized),
    ) -> Result<(), Abort> {
        let msg_type = msg.msg_type();
        for tag in [49, 56] {
            if !msg.has(tag) {
                if dictionary::is_admin(msg_type) {
                    let r = self.reject(msg, reason::REQUIRED_MISSING, Some(tag), now, io);
                    if msg_type == b"A" {
                        io.disconnect = true;
                    }
                    return r;
                }
                self.business_reject(
                    msg,
                    5,
                    "Conditionally Required Field Missing",
                    Some(tag as u32),
                    now,
                    io,
                );
                return Ok(());
            }
        }
        if msg.get(8) != Some(b"FIX.4.4") {
            if msg_type == b"5" {
                return self.next_logout(msg, now, io, app);
            }
            self.logout("Incorrect BeginString", now, io);
            self.next_target += 1;
            return Ok(());
        }
        if !proven && let Err(invalid) = validate::validate(msg) {
            return self.reject(msg, invalid.reason, invalid.tag, now, io);
        }
        match msg_type {
            b"A" => self.next_logon(msg, now, io, app),
            b"0" => {
                self.verify(msg, true, true, now, io, app)?;
                self.next_target += 1;
                Ok(())
            }
            b"1" => {
                self.verify(msg, true, true, now, io, app)?;
                let id = msg.get(112);
                match id {
                    Some(id) => self.send_raw(b"0", &[], &[(112, Value::Bytes(id))], None, now, io),
                    None => self.send_raw(b"0", &[], &[], None, now, io),
                }
                self.next_target += 1;
                Ok(())
            }
            b"2" => self.next_resend_request(msg, now, io, app),
            b"3" => {
                self.verify(msg, false, true, now, io, app)?;
                self.next_target += 1;
                Ok(())
            }
            b"4" => self.next_sequence_reset(msg, now, io, app),
            b"5" => self.next_logout(msg, now, io, app),
            _ => {
                let mut replies = Vec::new();
                let verdict = self.verify_app(msg, now, io, app, &mut replies)?;
                for r in &replies {
                    let body: Vec<(u32, Value<'_>)> =
                        r.body.iter().map(|(t, v)| (*t, Value::Bytes(v))).collect();
                    self.send_app(&r.msg_type, &body, now, io);
                }
                match verdict {
                    AppVerdict::Accept => self.next_target += 1,
                    AppVerdict::Unsupported => {
                        self.business_reject(msg, 3, "Unsupported Message Type", None, now, io)
                    }
                    AppVerdict::BusinessReject { reason, text, tag } => {
                        self.business_reject(msg, reason, text, tag, now, io)
                    }
                }
                Ok(())
            }
        }
    }

    fn verify_app<S: MessageStore + ?Sized>(
        &mut self,
        msg: &Message<'_>,
        now: u64,
        io: &mut Io<'_, S>,
        app: &mut (impl App + ?Sized),
        replies: &mut Vec<Reply>,
    ) -> Result<AppVerdict, Abort> {
        self.verify_checks(msg, true, true, now, io)?;
        Ok(app.on_app(msg, replies))
    }

    /// QuickFIX's `verify`, for admin messages.
    fn verify<S: MessageStore + ?Sized>(
        &mut self,
        msg: &Message<'_>,
        too_high: bool,
        too_low: bool,
        now: u64,
        io: &mut Io<'_, S>,
        _app: &mut (impl App + ?Sized),
    ) -> Result<(), Abort> {
        self.verify_checks(msg, too_high, too_low, now, io)
    }

    fn verify_checks<S: MessageStore + ?Sized>(
        &mut self,
        msg: &Message<'_>,
        too_high: bool,
        too_low: bool,
        now: u64,
        io: &mut Io<'_, S>,
    ) -> Result<(), Abort> {
        let msg_type = msg.msg_type();
        let seq = msg.get_u64(34).unwrap_or(0);
        if !self.valid_logon_state(msg_type) {
            io.disconnect = true;
            return Err(Abort);
        }
        let sending = msg.get(52).and_then(super::timefmt::parse_timestamp).unwrap_or(0);
        if !self.good_time(sending, now) {
            if self.reject(msg, reason::SENDING_TIME, None, now, io).is_err() {
                io.disconnect = true;
                return Err(Abort);
            }
            self.logout("", now, io);
            return Err(Abort);
        }
        let comp_ok = msg.get(49) == Some(self.cfg.target_comp_id.as_bytes())
            && msg.get(56) == Some(self.cfg.sender_comp_id.as_bytes());
        if !comp_ok {
            if self.reject(msg, reason::COMP_ID, None, now, io).is_err() {
                io.disconnect = true;
                return Err(Abort);
            }
            self.logout("", now, io);
            return Err(Abort);
        }
        if too_high && seq > self.next_target {
            self.target_too_high(msg, seq, now, io)?;
            return Err(Abort);
        } else if too_low && seq < self.next_target {
            self.target_too_low(msg, seq, now, io)?;
            return Err(Abort);
        }
        if (too_high || too_low)
            && let Some((_, end)) = self.resend_range
            && seq >= end
        {
            self.resend_range = None;
        }
        self.last_received_ns = now;
        self.test_requests = 0;
        Ok(())
    }

    fn good_time(&self, sending_ns: u64, now: u64) -> bool {
        !self.cfg.check_latency || (now / NS).abs_diff(sending_ns / NS) <= self.cfg.max_latency_s
    }

    fn valid_logon_state(&self, msg_type: &[u8]) -> bool {
        let logon = msg_type == b"A";
        self.received_reset
            || (logon && !self.received_logon)
            || (!logon && self.received_logon)
            || (msg_type == b"5" && self.sent_logon)
            || (msg_type != b"5" && self.sent_logout)
            || msg_type == b"4"
            || msg_type == b"3"
    }

    fn target_too_high<S: MessageStore + ?Sized>(
        &mut self,
        msg: &Message<'_>,
        seq: u64,
        now: u64,
        io: &mut Io<'_, S>,
    ) -> Result<(), Abort> {
        if self.queue.len() >= self.cfg.max_queued {
            // A peer that never fills its gap: the bound on what we hold for it.
            io.disconnect = true;
            return Err(Abort);
        }
        self.queue.insert(seq, msg.buf.to_vec());
        if let Some((begin, _)) = self.resend_range
            && seq >= begin
        {
            return Ok(());
        }
        let begin = self.next_target;
        self.send_raw(
            b"2",
            &[],
            &[(7, Value::U64(begin)), (16, Value::U64(0))],
            None,
            now,
            io,
        );
        self.resend_range = Some((begin, seq - 1));
        Ok(())
    }

    fn target_too_low<S: MessageStore + ?Sized>(
        &mut self,
        msg: &Message<'_>,
        seq: u64,
        now: u64,
        io: &mut Io<'_, S>,
    ) -> Result<(), Abort> {
        if !msg.flag(43) {
            let text = format!(
                "MsgSeqNum too low, expecting {} but received {}",
                self.next_target, seq
            );
            self.logout(&text, now, io);
            io.disconnect = true;
            return Err(Abort);
        }
        // PossDup: QuickFIX's doPossDup.
        if msg.msg_type() != b"4" {
            let Some(orig) = msg.get(122) else {
                return self.reject(msg, reason::REQUIRED_MISSING, Some(122), now, io);
            };
            let orig = super::timefmt::parse_timestamp(orig).unwrap_or(0);
            let sending = msg.get(52).and_then(super::timefmt::parse_timestamp).unwrap_or(0);
            if orig / NS > sending / NS {
                self.reject(msg, reason::SENDING_TIME, None, now, io)?;
                self.logout("", now, io);
            }
        }
        Ok(())
    }

    fn next_logon<S: MessageStore + ?Sized>(
        &mut self,
        msg: &Message<'_>,
        now: u64,
        io: &mut Io<'_, S>,
        app: &mut (impl App + ?Sized),
    ) -> Result<(), Abort> {
        let reset_flag = msg.flag(141);
        self.received_reset = reset_flag;
        let mut reset = false;
        if reset_flag || self.cfg.reset_on_logon {
            self.reset_sequences(io);
            reset = true;
        }
        // Our own checks (credentials, heartbeat range): a Logout with the reason, then close.
        if let Some(problem) = self.logon_problem(msg).or_else(|| app.refuse_logon()) {
            if self.verify_checks(msg, false, true, now, io).is_ok() {
                self.logout(problem, now, io);
            }
            io.disconnect = true;
            return Err(Abort);
        }
        self.verify_checks(msg, false, true, now, io)?;
        self.received_logon = true;
        self.heartbeat_s = msg.get_u64(108).unwrap_or(0);
        let mut body: Vec<(u32, Value<'_>)> = vec![(98, Value::U64(0)), (108, Value::U64(self.heartbeat_s))];
        if self.received_reset {
            body.push((141, Value::Bytes(b"Y")));
        }
        self.sent_logon = true;
        self.send_raw(b"A", &[], &body, None, now, io);
        self.received_reset = false;
        app.on_logon(reset);
        let seq = msg.get_u64(34).unwrap_or(0);
        if seq > self.next_target && !reset_flag {
            self.target_too_high(msg, seq, now, io)?;
        } else {
            self.next_target += 1;
            self.next_queued(now, io, app);
        }
        Ok(())
    }

    fn logon_problem(&self, msg: &Message<'_>) -> Option<&'static str> {
        let hb = msg.get_u64(108).unwrap_or(0);
        if hb < self.cfg.heartbeat_min_s || hb > self.cfg.heartbeat_max_s {
            return Some("HeartBtInt out of range");
        }
        if let Some((user, password)) = &self.cfg.credentials
            && (msg.get(553) != Some(user.as_bytes()) || msg.get(554) != Some(password.as_bytes()))
        {
            return Some("Invalid username or password");
        }
        None
    }

    fn next_logout<S: MessageStore + ?Sized>(
        &mut self,
        msg: &Message<'_>,
        now: u64,
        io: &mut Io<'_, S>,
        app: &mut (impl App + ?Sized),
    ) -> Result<(), Abort> {
        self.verify(msg, false, false, now, io, app)?;
        if !self.sent_logout {
            self.logout("", now, io);
        }
        self.next_target += 1;
        io.disconnect = true;
        Ok(())
    }

    fn next_sequence_reset<S: MessageStore + ?Sized>(
        &mut self,
        msg: &Message<'_>,
        now: u64,
        io: &mut Io<'_, S>,
        app: &mut (impl App + ?Sized),
    ) -> Result<(), Abort> {
        let gap_fill = msg.flag(123);
        self.verify(msg, gap_fill, gap_fill, now, io, app)?;
        if let Some(new_seq) = msg.get_u64(36) {
            if new_seq > self.next_target {
                self.next_target = new_seq;
            } else if new_seq < self.next_target {
                self.reject(msg, reason::BAD_VALUE, None, now, io)?;
            }
        }
        Ok(())
    }

    fn next_resend_request<S: MessageStore + ?Sized>(
        &mut self,
        msg: &Message<'_>,
        now: u64,
        io: &mut Io<'_, S>,
        app: &mut (impl App + ?Sized),
    ) -> Result<(), Abort> {
        self.verify(msg, false, false, now, io, app)?;
        let begin = msg.get_u64(7).unwrap_or(0);
        let mut end = msg.get_u64(16).unwrap_or(0);
        if end == 0 || end >= self.next_sender {
            end = self.next_sender - 1;
        }
        let dropped = io.store.dropped_through();
        if begin <= end && begin <= dropped {
            self.refuse_resend(msg, begin, end, dropped, now, io);
            return Ok(());
        }
        let mut stored: Vec<(u64, Vec<u8>)> = Vec::new();
        if begin <= end {
            io.store
                .fetch(begin, end, &mut |seq, m| stored.push((seq, m.to_vec())));
        }
        let mut gap_begin = 0u64;
        let mut current = begin;
        let mut last_seq = 0u64;
        for (seq, bytes) in &stored {
            if current != *seq && gap_begin == 0 {
                gap_begin = current;
            }
            if identify_type(bytes).is_some_and(dictionary::is_admin) {
                if gap_begin == 0 {
                    gap_begin = *seq;
                }
            } else {
                if gap_begin != 0 {
                    self.sequence_reset(gap_begin, *seq, now, io);
                }
                self.resend(bytes, now, io);
                gap_begin = 0;
            }
            current = seq + 1;
            last_seq = *seq;
        }
        if gap_begin != 0 {
            self.sequence_reset(gap_begin, last_seq + 1, now, io);
        }
        if end > last_seq {
            let new_seq = (end + 1).min(self.next_sender);
            self.sequence_reset(begin.max(last_seq + 1), new_seq, now, io);
        }
        let seq = msg.get_u64(34).unwrap_or(0);
        if seq == self.next_target {
            self.next_target += 1;
        }
        Ok(())
    }

    /// A ResendRequest for `begin..=end` that reaches application messages no longer held
    /// (through `dropped`): a Logout naming the range, the first number that can be resent, and
    /// OrderStatusRequest as the way to learn those orders' state. Numbers stay as they are:
    /// the client may log on again and ask from that number.
    fn refuse_resend<S: MessageStore + ?Sized>(
        &mut self,
        msg: &Message<'_>,
        begin: u64,
        end: u64,
        dropped: u64,
        now: u64,
        io: &mut Io<'_, S>,
    ) {
        let text = format!(
            "ResendRequest {begin}-{end} reaches messages no longer held: resends are possible from \
             MsgSeqNum {} on; OrderStatusRequest gives the state of any order",
            dropped + 1
        );
        if msg.get_u64(34).unwrap_or(0) == self.next_target {
            self.next_target += 1;
        }
        self.logout(&text, now, io);
    }

    /// Resends a stored application message: PossDupFlag=Y, OrigSendingTime = its SendingTime,
    /// a new SendingTime, the same sequence number.
    fn resend<S: MessageStore + ?Sized>(&mut self, stored: &[u8], now: u64, io: &mut Io<'_, S>) {
        let mut fields = Vec::new();
        if message::parse(stored, &mut fields).is_err() {
            return;
        }
        let m = Message {
            buf: stored,
            fields: &fields,
        };
        let b = &mut self.builder;
        b.start(m.msg_type());
        for f in &fields[3..fields.len() - 1] {
            match f.tag {
                52 => {
                    b.field(122, Value::Bytes(m.value(f)));
                }
                43 | 122 => {}
                tag => {
                    b.field(tag as u32, Value::Bytes(m.value(f)));
                }
            }
        }
        b.field(43, Value::Bytes(b"Y"));
        b.field(52, Value::TimeMs(now));
        b.finish(&mut self.scratch);
        io.out.extend_from_slice(&self.scratch);
        self.last_sent_ns = now;
    }

    /// Timer duty: heartbeats, test requests, timeouts (call about once a second).
    pub fn on_timer<S: MessageStore + ?Sized>(&mut self, now: u64, io: &mut Io<'_, S>) {
        if !self.received_logon || self.heartbeat_s == 0 {
            return;
        }
        let since_sent = now / NS - self.last_sent_ns / NS;
        let since_received = now / NS - self.last_received_ns / NS;
        if self.sent_logout && since_sent >= self.cfg.logout_timeout_s {
            io.disconnect = true;
            return;
        }
        let hb = self.heartbeat_s;
        if since_sent < hb && since_received < hb {
            return;
        }
        if since_received * 10 >= 24 * hb {
            io.disconnect = true;
        } else if since_received * 10 >= 12 * (u64::from(self.test_requests) + 1) * hb {
            self.send_raw(b"1", &[], &[(112, Value::Bytes(b"TEST"))], None, now, io);
            self.test_requests += 1;
        } else if since_sent >= hb && self.test_requests == 0 {
            self.send_raw(b"0", &[], &[], None, now, io);
        }
    }

    /// Sends a Logout (operator or shutdown) and waits for the answer (or the timeout).
    pub fn initiate_logout<S: MessageStore + ?Sized>(&mut self, text: &str, now: u64, io: &mut Io<'_, S>) {
        if self.is_logged_on() && !self.sent_logout {
            self.logout(text, now, io);
        }
    }
}

/// The MsgType of raw bytes, found without full parsing.
pub fn identify_type(frame: &[u8]) -> Option<&[u8]> {
    let at = frame.windows(4).position(|w| w == b"\x0135=")? + 4;
    let end = frame[at..].iter().position(|&b| b == super::frame::SOH)? + at;
    Some(&frame[at..end])
}

/// Routing fields reversed for a reply (QuickFIX's reverseRoute): OnBehalfOf <-> DeliverTo.
fn reverse_route<'a>(msg: &Message<'a>) -> Vec<(u32, Value<'a>)> {
    let mut out = Vec::new();
    for (from, to) in [
        (115, 128),
        (128, 115),
        (116, 129),
        (129, 116),
        (144, 145),
        (145, 144),
    ] {
        if let Some(v) = msg.get(from).filter(|v| !v.is_empty()) {
            out.push((to, Value::Bytes(v)));
        }
    }
    out
}
