//! The session's resends from a bounded window: within it, PossDup resends and gap fills;
//! reaching below it, a Logout that names the range and the first number it can resend, never a
//! gap fill over an application message the client did not see.

use ordo_fix::builder::{Builder, Value};
use ordo_fix::message::{self, Message};
use ordo_fix::session::{App, AppVerdict, Io, Reply, Session, SessionConfig};
use ordo_fix::window::ResendWindow;

const NOW_NS: u64 = 1_700_000_000_000_000_000;

struct Quiet;

impl App for Quiet {
    fn on_app(&mut self, _msg: &Message<'_>, _reply: &mut Vec<Reply>) -> AppVerdict {
        AppVerdict::Accept
    }
}

/// A message from the client (SenderCompID CLIENT) numbered `seq`.
fn from_client(msg_type: &[u8], seq: u64, body: &[(u32, Value<'_>)]) -> Vec<u8> {
    let mut b = Builder::default();
    b.start(msg_type);
    b.field(34, Value::U64(seq));
    b.field(49, Value::Bytes(b"CLIENT"));
    b.field(52, Value::TimeMs(NOW_NS));
    b.field(56, Value::Bytes(b"ORDO"));
    for &(tag, v) in body {
        b.field(tag, v);
    }
    let mut out = Vec::new();
    b.finish(&mut out);
    out
}

/// Each message in `bytes`: (MsgType, MsgSeqNum, the value of `tag` if present).
fn messages(bytes: &[u8], tag: u32) -> Vec<(String, u64, Option<String>)> {
    let mut found = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = rest
            .windows(4)
            .position(|w| w == b"\x0110=")
            .map(|at| at + 8)
            .expect("a checksum ends every message");
        let mut fields = Vec::new();
        message::parse(&rest[..end], &mut fields).expect("our own bytes parse");
        let m = Message {
            buf: &rest[..end],
            fields: &fields,
        };
        let text = |t: u32| {
            m.get(i64::from(t))
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        found.push((
            String::from_utf8_lossy(m.msg_type()).into_owned(),
            m.get_u64(34).unwrap_or(0),
            text(tag),
        ));
        rest = &rest[end..];
    }
    found
}

fn feed(session: &mut Session, window: &mut ResendWindow, frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut io = Io {
        out: &mut out,
        disconnect: false,
        store: window,
    };
    session.on_frame(frame, NOW_NS, &mut io, &mut Quiet);
    out
}

/// A logged-on session that has sent the Logon (1) and application messages 2..=7, with a
/// window of three messages: 5, 6 and 7 are held, 2..=4 have left it.
fn session_with_six_reports() -> (Session, ResendWindow) {
    let mut cfg = SessionConfig::new("ORDO", "CLIENT");
    cfg.check_latency = false;
    let mut session = Session::new(cfg, 1, 1);
    let mut window = ResendWindow::new(3, 1 << 20);
    let logon = from_client(b"A", 1, &[(98, Value::Bytes(b"0")), (108, Value::U64(30))]);
    let answer = feed(&mut session, &mut window, &logon);
    assert_eq!(messages(&answer, 58)[0].0, "A");
    for n in 0..6u64 {
        let mut out = Vec::new();
        let mut io = Io {
            out: &mut out,
            disconnect: false,
            store: &mut window,
        };
        let id = format!("E{n}");
        session.send_app(b"8", &[(17, Value::Bytes(id.as_bytes()))], NOW_NS, &mut io);
    }
    assert_eq!(session.next_sender(), 8);
    assert_eq!(window.dropped_through(), 4);
    (session, window)
}

#[test]
fn a_resend_within_the_window_resends_what_was_asked() {
    let (mut session, mut window) = session_with_six_reports();
    // From 5: everything asked for is held.
    let ask = from_client(b"2", 2, &[(7, Value::U64(5)), (16, Value::U64(0))]);
    let sent = messages(&feed(&mut session, &mut window, &ask), 43);
    let got: Vec<(&str, u64)> = sent.iter().map(|m| (m.0.as_str(), m.1)).collect();
    assert_eq!(got, vec![("8", 5), ("8", 6), ("8", 7)]);
    assert!(
        sent.iter().all(|m| m.2.as_deref() == Some("Y")),
        "PossDup: {sent:?}"
    );
}

#[test]
fn a_resend_reaching_below_the_window_is_refused_by_name_not_gap_filled() {
    let (mut session, mut window) = session_with_six_reports();
    let ask = from_client(b"2", 2, &[(7, Value::U64(3)), (16, Value::U64(0))]);
    let sent = messages(&feed(&mut session, &mut window, &ask), 58);
    assert_eq!(sent.len(), 1, "one Logout, no resend and no gap fill: {sent:?}");
    let (msg_type, seq, text) = &sent[0];
    assert_eq!((msg_type.as_str(), *seq), ("5", 8));
    let text = text.as_deref().unwrap_or_default();
    assert!(
        text.contains("ResendRequest 3-7") && text.contains("from MsgSeqNum 5 on"),
        "{text}"
    );
    assert!(text.contains("OrderStatusRequest"), "{text}");
    // The ResendRequest was counted; nothing else moved.
    assert_eq!((session.next_target(), session.next_sender()), (3, 9));
}

#[test]
fn a_resend_of_only_the_logon_below_the_window_is_a_gap_fill() {
    // Nothing application-level left the window: the Logon (admin) is gap-filled as ever.
    let mut cfg = SessionConfig::new("ORDO", "CLIENT");
    cfg.check_latency = false;
    let mut session = Session::new(cfg, 1, 1);
    let mut window = ResendWindow::new(3, 1 << 20);
    let logon = from_client(b"A", 1, &[(98, Value::Bytes(b"0")), (108, Value::U64(30))]);
    feed(&mut session, &mut window, &logon);
    let mut out = Vec::new();
    let mut io = Io {
        out: &mut out,
        disconnect: false,
        store: &mut window,
    };
    session.send_app(b"8", &[(17, Value::Bytes(b"E0"))], NOW_NS, &mut io);
    let ask = from_client(b"2", 2, &[(7, Value::U64(1)), (16, Value::U64(0))]);
    let sent = messages(&feed(&mut session, &mut window, &ask), 36);
    let got: Vec<(&str, u64)> = sent.iter().map(|m| (m.0.as_str(), m.1)).collect();
    assert_eq!(got, vec![("4", 1), ("8", 2)], "{sent:?}");
    assert_eq!(sent[0].2.as_deref(), Some("2"), "NewSeqNo 2");
}
