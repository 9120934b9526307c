//! The node end to end: clean stop, crash and restart without losing an acknowledged order,
//! operator commands, the market-data feed, and bad input from clients.

use std::process::Command;
use std::time::Duration;

use ordo_tests::fix_client::{FixClient, Got, Msg};
use ordo_tests::{Node, ordo_bin};

const T: Duration = Duration::from_secs(10);

/// A day limit order on AAA.
fn new_order(c: &mut FixClient, clordid: &str, account: &str, side: &str, qty: &str, price: &str) {
    limit_on(c, "AAA", clordid, account, side, qty, price);
}

/// A day limit order.
fn limit_on(
    c: &mut FixClient,
    symbol: &str,
    clordid: &str,
    account: &str,
    side: &str,
    qty: &str,
    price: &str,
) {
    c.send(
        "D",
        &[
            (11, clordid),
            (1, account),
            (21, "1"),
            (55, symbol),
            (54, side),
            (60, "20261124-00:00:00"),
            (38, qty),
            (40, "2"),
            (44, price),
            (59, "1"),
        ],
    );
}

/// The node still answers a TestRequest on a healthy session.
fn healthy(c: &mut FixClient) {
    c.send("1", &[(112, "PING")]);
    loop {
        match c.read(T) {
            Got::Msg(m) if m.msg_type() == "0" && m.get(112) == Some("PING") => return,
            Got::Msg(_) => continue,
            other => panic!("healthy session got {other:?}"),
        }
    }
}

fn journal_verifies(dir: &std::path::Path) {
    let out = Command::new(ordo_bin())
        .args(["journal", "verify"])
        .arg(dir.join("journal"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn inline_pipeline_spinning_serves_trades_and_stops() {
    // `--idle spin` on the default inline pipeline: the task never waits, so the runtime
    // busy-polls its sockets. Orders must still trade, timers and SIGTERM still work.
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &["--idle", "spin"]);
    // Spinning means busy while idle: over a second without traffic the node uses a good
    // share of a core (measured: a whole one; a `backoff` node 0-1 ticks of 100). Only a tenth
    // is asked for, as other tests compete for the 2 cores.
    let cpu_ticks = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // Fields after the command name (which ends with ')'): utime and stime are 12th and 13th.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    // SAFETY: sysconf has no preconditions.
    let ticks_per_s = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap();
    // The first second after the ready line still holds start-up work (measured: a quarter of
    // a core for a debug build on `backoff`); the second one is idle (0-1 ticks on `backoff`).
    std::thread::sleep(Duration::from_secs(1));
    let before = cpu_ticks(node.child.id());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(node.child.id()) - before;
    assert!(
        used * 10 >= ticks_per_s,
        "an idle spinning node used {used} of {ticks_per_s} ticks in 1 s"
    );
    let mut buyer = FixClient::logged_on(node.port, 1);
    let mut seller = FixClient::logged_on(node.port, 2);
    new_order(&mut buyer, "b1", "ACC1", "1", "100", "100.00");
    assert_eq!(buyer.expect(T).get(150), Some("0"));
    new_order(&mut seller, "s1", "ACC2", "2", "100", "100.00");
    let ack = seller.expect(T);
    assert_eq!(ack.get(150), Some("0"), "{ack}");
    let fill = seller.expect(T);
    assert_eq!((fill.get(150), fill.get(32)), (Some("F"), Some("100")), "{fill}");
    let fill = buyer.expect(T);
    assert_eq!((fill.get(150), fill.get(39)), (Some("F"), Some("2")), "{fill}");
    healthy(&mut buyer);
    let status = node.terminate();
    assert!(status.success(), "exit status {status}");
    journal_verifies(dir.path());
}

/// After a restart, nothing but session traffic may come before the answer to our
/// TestRequest: an ExecutionReport there was sent twice. (The node asks again for our admin
/// messages, which it does not journal: they are gap-filled, as FIX prescribes.)
fn nothing_pending(c: &mut FixClient) {
    c.send("1", &[(112, "AFTER-RESTART")]);
    loop {
        let m = match c.read(T) {
            Got::Msg(m) => m,
            other => panic!("no answer to the TestRequest: {other:?}"),
        };
        match m.msg_type() {
            "0" if m.get(112) == Some("AFTER-RESTART") => return,
            "0" => {}
            "2" => {
                // Gap-fill up to our next number, then ask again (the node may have dropped
                // the first TestRequest as one of the numbers the gap fill skips).
                let begin: u64 = m.get(7).unwrap().parse().unwrap();
                let new_seq = c.next_out.to_string();
                c.send_with_seq(
                    "4",
                    begin,
                    &[(43, "Y"), (122, "20261125-00:00:00"), (36, &new_seq), (123, "Y")],
                );
                c.send("1", &[(112, "AFTER-RESTART")]);
            }
            _ => panic!("sent again after the restart: {m}"),
        }
    }
}

/// A client that logs on again with ResetSeqNumFlag starts a new sequence; a node restart
/// after that must neither send the earlier ExecutionReports again nor lose the new ones,
/// also when nothing was sent between the reset and the restart.
#[test]
fn restart_after_a_reset_logon_repeats_nothing() {
    for orders_after_reset in [0u64, 1] {
        let dir = tempfile::tempdir().unwrap();
        let port = ordo_tests::free_port();
        let node = Node::start_on(dir.path(), port, &[]);
        let mut c = FixClient::logged_on(node.port, 1);
        new_order(&mut c, "before-reset", "ACC1", "1", "100", "99.00");
        assert_eq!(c.expect(T).get(150), Some("0"));
        drop(c);
        // Logon with reset: both sequences restart at 1.
        let mut c = FixClient::logged_on(node.port, 1);
        if orders_after_reset == 1 {
            new_order(&mut c, "after-reset", "ACC1", "1", "100", "99.01");
            let ack = c.expect(T);
            assert_eq!((ack.get(150), ack.seq()), (Some("0"), 2), "{ack}");
        }
        // A clean Logout, so that the node's last message is known (not one sent at SIGTERM).
        c.send("5", &[]);
        let logout = c.expect(T);
        assert_eq!(
            (logout.msg_type(), logout.seq()),
            ("5", 2 + orders_after_reset),
            "{logout}"
        );
        drop(c);
        assert!(node.terminate().success());

        let node = Node::start_on(dir.path(), port, &[]);
        let mut c = FixClient::connect(node.port, "CLIENT1", "ORDO").unwrap();
        c.next_out = 3 + orders_after_reset;
        let logon = c.logon("CLIENT1", "demo", false);
        assert_eq!(
            (logon.msg_type(), logon.seq()),
            ("A", 3 + orders_after_reset),
            "{logon}"
        );
        nothing_pending(&mut c);
        // The orders are still known.
        let asked = if orders_after_reset == 1 {
            "after-reset"
        } else {
            "before-reset"
        };
        c.send("H", &[(11, asked), (55, "AAA"), (54, "1")]);
        let status = c.expect(T);
        assert_eq!(
            (status.get(150), status.get(11)),
            (Some("I"), Some(asked)),
            "{status}"
        );
        drop(c);
        assert!(node.terminate().success());
    }
}

/// After a restart the log decides where each client's sequence stands, as on every cluster
/// member (`docs/REPLICATION.md`, 6.1): the journal holds the client's orders, not its admin
/// messages, so a client that sent admin messages after its last order is asked for exactly
/// those (from the number after its last order), gap-fills them and carries on.
#[test]
fn a_restart_asks_only_for_the_admin_messages_after_the_last_order() {
    let dir = tempfile::tempdir().unwrap();
    let port = ordo_tests::free_port();
    let node = Node::start_on(dir.path(), port, &[]);
    let mut c = FixClient::logged_on(node.port, 3);
    new_order(&mut c, "c1", "ACC3", "1", "100", "99.00");
    assert_eq!(c.expect(T).get(150), Some("0"));
    // Admin traffic after the last order (MsgSeqNum 2): three TestRequests, then the Logout.
    for _ in 0..3 {
        healthy(&mut c);
    }
    c.send("5", &[]);
    assert_eq!(c.expect(T).msg_type(), "5");
    drop(c);
    assert!(node.terminate().success());

    let node = Node::start_on(dir.path(), port, &[]);
    let mut c = FixClient::connect(node.port, "CLIENT3", "ORDO").unwrap();
    c.next_out = 7; // logon, order, three TestRequests, logout
    let logon = c.logon("CLIENT3", "demo", false);
    assert_eq!(logon.msg_type(), "A", "{logon}");
    let ask = c.expect(T);
    assert_eq!(
        (ask.msg_type(), ask.get(7), ask.get(16)),
        ("2", Some("3"), Some("0")),
        "{ask}"
    );
    // Numbers 3..=6 were admin messages: one gap fill covers them.
    c.send_with_seq(
        "4",
        3,
        &[(43, "Y"), (122, "20260101-00:00:00.000"), (123, "Y"), (36, "8")],
    );
    c.send("1", &[(112, "CLEAN")]);
    match c.read(T) {
        Got::Msg(m) => assert_eq!(
            (m.msg_type(), m.get(112)),
            ("0", Some("CLEAN")),
            "expected the heartbeat, not: {m}"
        ),
        other => panic!("no answer: {other:?}"),
    }
    drop(c);
    assert!(node.terminate().success());
}

/// Writes a half-written frame (a length and a few bytes, wrong crc) after the last record of
/// the journal in `dir` (one segment): what kill -9 leaves when it lands inside a record's
/// copy. The end of the records comes from `ordo journal inspect` ("used N of M bytes").
fn tear_tail(dir: &std::path::Path) {
    let out = Command::new(ordo_bin())
        .args(["journal", "inspect"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let used: usize = text
        .split("used ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no 'used N' in: {text}"));
    let path = dir.join("00000000000000000001.seg");
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes[used..used + 64].iter().all(|&b| b == 0), "{text}");
    bytes[used..used + 4].copy_from_slice(&96u32.to_le_bytes());
    bytes[used + 4..used + 12].copy_from_slice(b"\xde\xad\xbe\xef\x01\x02\x03\x04");
    bytes[used + 40..used + 48].copy_from_slice(b"partial!");
    std::fs::write(&path, bytes).unwrap();
}

/// kill -9 can land in the middle of copying a record into the journal: the next start must
/// truncate that torn tail and run (it refused to start: the startup scan read the journal
/// before its writer had recovered it). The session stores of an earlier version (one journal
/// per session under `sessions/`) are removed at that start: the log numbers every message.
#[test]
fn a_torn_tail_after_a_crash_is_recovered_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = ordo_tests::free_port();
    let node = Node::start_on(dir.path(), port, &[]);
    let mut c = FixClient::logged_on(node.port, 4);
    new_order(&mut c, "t1", "ACC4", "1", "100", "99.00");
    assert_eq!(c.expect(T).get(150), Some("0"));
    drop(c);
    node.kill9();
    tear_tail(&dir.path().join("journal"));
    let old_store = dir.path().join("sessions").join("ORDO-CLIENT4");
    std::fs::create_dir_all(&old_store).unwrap();
    std::fs::write(old_store.join("00000000000000000001.seg"), b"an old store").unwrap();

    let node = Node::start_on(dir.path(), port, &[]);
    let mut c = FixClient::connect(node.port, "CLIENT4", "ORDO").unwrap();
    c.next_out = 3;
    let logon = c.logon("CLIENT4", "demo", false);
    assert_eq!(logon.msg_type(), "A", "{logon}");
    c.send("H", &[(11, "t1"), (55, "AAA"), (54, "1")]);
    let status = c.expect(T);
    assert_eq!(
        (status.get(150), status.get(11)),
        (Some("I"), Some("t1")),
        "{status}"
    );
    drop(c);
    assert!(node.terminate().success());
    journal_verifies(dir.path());
    assert!(
        !dir.path().join("sessions").exists(),
        "the old stores are removed"
    );
}

#[test]
fn sigterm_stops_cleanly_with_the_journal_synced() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]);
    let mut c = FixClient::logged_on(node.port, 1);
    new_order(&mut c, "o1", "ACC1", "1", "100", "99.50");
    let ack = c.expect(T);
    assert_eq!((ack.msg_type(), ack.get(150)), ("8", Some("0")), "{ack}");
    let status = node.terminate();
    assert!(status.success(), "exit status {status}");
    journal_verifies(dir.path());
}

/// kill -9 in the middle of a run, restart: the client logs on again without a reset, every
/// acknowledged order is still known (OrderStatusRequest), and the ExecutionReports it missed
/// arrive through its ResendRequest.
#[test]
fn restart_after_kill9_loses_no_acknowledged_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]);
    let port = node.port;
    let mut c = FixClient::logged_on(port, 2);
    let mut acked = Vec::new();
    let mut last_in = 1u64;
    for i in 0..300 {
        // Resting buys at different prices: nothing trades, every ack is one ER.
        let price = format!("{}.{:02}", 95 + i % 4, i % 100);
        new_order(&mut c, &format!("r{i}"), "ACC2", "1", "100", &price);
    }
    // Read some acks, then crash the node while more are in flight.
    while acked.len() < 150 {
        let m = c.expect(T);
        last_in = m.seq();
        if m.msg_type() == "8" && m.get(150) == Some("0") {
            acked.push(m.get(11).unwrap().to_string());
        }
    }
    node.kill9();
    drop(c);

    let node = Node::start_on(dir.path(), port, &[]);
    let mut c = FixClient::connect(port, "CLIENT2", "ORDO").unwrap();
    c.next_out = 302; // 1 logon + 300 orders before the crash
    let logon = c.logon("CLIENT2", "demo", false);
    assert_eq!(logon.msg_type(), "A", "{logon}");
    // The node has sent more than we read: ask for everything after what we saw.
    if logon.seq() > last_in + 1 {
        let begin = (last_in + 1).to_string();
        c.send("2", &[(7, &begin), (16, "0")]);
    }
    // Collect acks until quiet: an ER the node sent before the crash and we never read comes back as a PossDup
    // resend; an ER the node had not yet sent (its input was journaled, its output not yet released) is produced
    // by the replayed engine and sent fresh after the logon.
    let mut orders_received_by_node = 300;
    loop {
        match c.read(Duration::from_secs(3)) {
            Got::Msg(m) if m.msg_type() == "8" => {
                if m.get(150) == Some("0") {
                    let clordid = m.get(11).unwrap().to_string();
                    let resend = m.get(43) == Some("Y");
                    if acked.contains(&clordid) {
                        assert!(resend, "an ack we already had came again without PossDup: {m}");
                    } else {
                        acked.push(clordid);
                    }
                }
            }
            Got::Msg(m) if m.msg_type() == "2" => {
                // The node did not journal all our orders before it died: those were never acknowledged, so we
                // gap-fill them (a real client would resend them as PossDup).
                let begin: u64 = m.get(7).unwrap().parse().unwrap();
                orders_received_by_node = begin - 2;
                let new_seq = c.next_out.to_string();
                c.send_with_seq(
                    "4",
                    begin,
                    &[(43, "Y"), (122, "20261124-00:00:00"), (36, &new_seq), (123, "Y")],
                );
            }
            Got::Msg(_) => {}
            Got::Timeout => break,
            Got::Closed => panic!("node closed the session after restart"),
        }
    }
    // Every order the node received before the crash is acknowledged exactly once, whether we saw the ack before
    // the crash, through a resend, or fresh after the restart.
    let mut expected: Vec<String> = (0..orders_received_by_node).map(|i| format!("r{i}")).collect();
    let mut got = acked.clone();
    expected.sort();
    got.sort();
    assert_eq!(
        got, expected,
        "acks after restart (node had received {orders_received_by_node} orders)"
    );
    // Every acknowledged order is still known.
    for (i, clordid) in acked.iter().enumerate() {
        let id = format!("s{i}");
        c.send("H", &[(11, clordid), (790, &id), (55, "AAA"), (54, "1")]);
        let m = loop {
            let m = c.expect(T);
            assert_ne!(m.msg_type(), "3", "{m}");
            if m.msg_type() == "8" && m.get(150) == Some("I") {
                break m;
            }
        };
        assert_eq!(
            (m.get(790), m.get(11)),
            (Some(id.as_str()), Some(clordid.as_str())),
            "{m}"
        );
        assert_eq!(
            m.get(39),
            Some("0"),
            "acknowledged order {clordid} unknown after restart: {m}"
        );
    }
    drop(node);
}

#[test]
fn admin_halt_and_resume_are_sequenced() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]);
    let admin = |cmd: &[&str]| admin(dir.path(), cmd);
    assert_eq!(admin(&["ping"]), (Some(0), "OK".to_string()));
    let (code, answer) = admin(&["halt", "AAA"]);
    assert_eq!(code, Some(0), "{answer}");
    assert!(answer.starts_with("OK seq="), "{answer}");
    let mut c = FixClient::logged_on(node.port, 3);
    new_order(&mut c, "h1", "ACC3", "1", "100", "100");
    let m = c.expect(T);
    assert_eq!(
        (m.get(150), m.get(58)),
        (Some("8"), Some("instrument halted")),
        "{m}"
    );
    assert_eq!(admin(&["resume", "AAA"]).0, Some(0));
    new_order(&mut c, "h2", "ACC3", "1", "100", "100");
    assert_eq!(c.expect(T).get(150), Some("0"));
    let (code, answer) = admin(&["halt", "ZZZ"]);
    assert_eq!(code, Some(1));
    assert!(answer.contains("unknown instrument"), "{answer}");
    // A wrong token is refused.
    std::fs::write(dir.path().join("admin.token"), "not-the-token\n").unwrap();
    let (code, answer) = admin(&["halt", "AAA"]);
    assert_eq!((code, answer.as_str()), (Some(1), "ERROR bad token"));
}

/// `ordo admin ...` against the node with data directory `dir`: (exit code, answer line).
fn admin(dir: &std::path::Path, cmd: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(ordo_bin())
        .arg("admin")
        .arg("--data-dir")
        .arg(dir)
        .args(cmd)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// A single node is a cluster of one: it leads its own term and serves, and refuses a
/// leadership transfer with the reason.
#[test]
fn a_single_node_is_a_cluster_of_one_that_leads() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]);
    let (code, status) = admin(dir.path(), &["status"]);
    assert_eq!(code, Some(0), "{status}");
    assert!(
        status.starts_with("OK id=1 role=leader term=") && status.contains(" leader=1 serving=yes "),
        "{status}"
    );
    let (code, answer) = admin(dir.path(), &["transfer-leader", "2"]);
    assert_eq!(code, Some(1), "{answer}");
    assert!(
        answer.contains("a cluster of one: there is no other member to lead"),
        "{answer}"
    );
    drop(node);
}

/// `ordo admin add` puts a new instrument into a running node: refused before, it trades
/// after (with its own tick), it survives a restart (its definition is in the journal), a
/// second add of the same symbol and bad settings are refused, and the bound
/// (ADDED_INSTRUMENTS_MAX, 16) answers an error.
#[test]
fn admin_add_instrument_trades_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]);
    let port = node.port;
    let mut c = FixClient::logged_on(port, 3);
    limit_on(&mut c, "EEE", "e0", "ACC3", "1", "10", "20.05");
    let m = c.expect(T);
    assert_eq!(
        (m.get(150), m.get(39)),
        (Some("8"), Some("8")),
        "unknown before: {m}"
    );

    let (code, answer) = admin(dir.path(), &["add", "EEE", "tick=0.05", "reference=20.00"]);
    assert_eq!(code, Some(0), "{answer}");
    assert!(answer.starts_with("OK seq="), "{answer}");
    // Its tick is 0.05: 20.02 is refused, 20.05 rests; a crossing sell trades with it.
    limit_on(&mut c, "EEE", "e1", "ACC3", "1", "10", "20.02");
    let m = c.expect(T);
    assert_eq!(m.get(150), Some("8"), "not a tick multiple: {m}");
    // Its reference price (20.00) is in force: 25.00 is beyond the default 10% collar.
    limit_on(&mut c, "EEE", "e1c", "ACC3", "1", "10", "25.00");
    let m = c.expect(T);
    assert_eq!(m.get(150), Some("8"), "outside the collar: {m}");
    limit_on(&mut c, "EEE", "e2", "ACC3", "1", "10", "20.05");
    let m = c.expect(T);
    assert_eq!((m.get(150), m.get(55)), (Some("0"), Some("EEE")), "{m}");
    let mut seller = FixClient::logged_on(port, 4);
    limit_on(&mut seller, "EEE", "s1", "ACC4", "2", "10", "20.05");
    let fill = loop {
        let m = seller.expect(T);
        if m.get(150) == Some("F") {
            break m;
        }
    };
    assert_eq!(
        (fill.get(31), fill.get(32)),
        (Some("20.05"), Some("10")),
        "{fill}"
    );

    let (code, answer) = admin(dir.path(), &["add", "EEE", "tick=0.01", "reference=1"]);
    assert_eq!((code, answer.as_str()), (Some(1), "ERROR instrument EEE exists"));
    let (code, answer) = admin(dir.path(), &["add", "FFF", "tick=0.05", "reference=20.01"]);
    assert_eq!(code, Some(1), "{answer}");
    assert!(answer.contains("not a positive multiple of the tick"), "{answer}");
    let (code, answer) = admin(dir.path(), &["add", "FFF", "tick=0.05"]);
    assert_eq!(code, Some(1), "{answer}");
    assert!(answer.contains("reference"), "{answer}");
    drop(c);
    drop(seller);
    assert!(node.terminate().success());

    // After a restart the node knows EEE from its journal: new orders on it are accepted.
    let node = Node::start_on(dir.path(), port, &[]);
    let mut c = FixClient::logged_on(port, 3);
    limit_on(&mut c, "EEE", "e3", "ACC3", "1", "10", "19.95");
    let m = c.expect(T);
    assert_eq!(
        (m.get(150), m.get(55)),
        (Some("0"), Some("EEE")),
        "after restart: {m}"
    );
    // The bound: 15 more fit, the next is refused with the reason.
    for k in 0..15 {
        let symbol = format!("X{k:02}");
        let (code, answer) = admin(dir.path(), &["add", &symbol, "tick=0.01", "reference=10"]);
        assert_eq!(code, Some(0), "{symbol}: {answer}");
    }
    let (code, answer) = admin(dir.path(), &["add", "X15", "tick=0.01", "reference=10"]);
    assert_eq!(code, Some(1), "{answer}");
    assert!(answer.contains("no room for another instrument"), "{answer}");
    limit_on(&mut c, "X14", "x1", "ACC3", "1", "10", "10.00");
    let m = c.expect(T);
    assert_eq!((m.get(150), m.get(55)), (Some("0"), Some("X14")), "{m}");
    drop(c);
    assert!(node.terminate().success());
    journal_verifies(dir.path());
}

#[test]
fn market_data_feed_moves_the_reference_price() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]);
    let mut feed = FixClient::connect(node.port, "FEED", "ORDO").unwrap();
    feed.send("A", &[(98, "0"), (108, "30"), (141, "Y")]);
    assert_eq!(feed.expect(T).msg_type(), "A");
    feed.send("W", &[(55, "AAA"), (268, "1"), (269, "2"), (270, "150.00")]);
    let mut c = FixClient::logged_on(node.port, 5);
    std::thread::sleep(Duration::from_millis(200));
    // 100.00 is now 33% below the reference: outside the 10% collar.
    new_order(&mut c, "m1", "ACC5", "1", "100", "100.00");
    let m = c.expect(T);
    assert_eq!(
        (m.get(150), m.get(58)),
        (Some("8"), Some("price outside collar")),
        "{m}"
    );
    new_order(&mut c, "m2", "ACC5", "1", "100", "149.00");
    assert_eq!(c.expect(T).get(150), Some("0"));
}

// ----- bad input: each gets the right answer or a disconnect; the node and other sessions live on.

fn bad_input_setup() -> (tempfile::TempDir, Node, FixClient) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]);
    let healthy_session = FixClient::logged_on(node.port, 8);
    (dir, node, healthy_session)
}

fn after(mut node: Node, mut healthy_session: FixClient) {
    healthy(&mut healthy_session);
    assert!(node.alive());
}

#[test]
fn garbage_bytes_are_skipped() {
    let (_d, node, h) = bad_input_setup();
    let mut c = FixClient::logged_on(node.port, 1);
    c.send_raw(b"\x00\xffgarbage 8=not fix\x01\x01\x01 random junk");
    healthy(&mut c);
    after(node, h);
}

#[test]
fn oversized_frame_closes_the_connection() {
    let (_d, node, h) = bad_input_setup();
    let mut c = FixClient::logged_on(node.port, 1);
    c.send_raw(b"8=FIX.4.4\x019=99999999\x0135=D\x01");
    let (closed, _) = c.closed_within(T);
    assert!(closed);
    after(node, h);
}

#[test]
fn wrong_password_gets_a_logout() {
    let (_d, node, h) = bad_input_setup();
    let mut c = FixClient::connect(node.port, "CLIENT1", "ORDO").unwrap();
    c.send(
        "A",
        &[
            (98, "0"),
            (108, "30"),
            (553, "CLIENT1"),
            (554, "wrong"),
            (141, "Y"),
        ],
    );
    let (closed, seen) = c.closed_within(T);
    assert!(closed);
    assert!(
        seen.iter()
            .any(|m| m.msg_type() == "5" && m.get(58) == Some("Invalid username or password")),
        "{seen:?}"
    );
    after(node, h);
}

#[test]
fn unknown_comp_id_is_disconnected_without_answer() {
    let (_d, node, h) = bad_input_setup();
    let mut c = FixClient::connect(node.port, "INTRUDER", "ORDO").unwrap();
    c.send("A", &[(98, "0"), (108, "30")]);
    let (closed, seen) = c.closed_within(T);
    assert!(closed && seen.is_empty(), "{seen:?}");
    after(node, h);
}

/// A session's address allow-list: a connection from an address not on it is closed
/// without an answer, even with the right password; a session that allows the address logs
/// on from it; the others are unaffected.
#[test]
fn address_not_on_the_allow_list_is_disconnected_without_answer() {
    let dir = tempfile::tempdir().unwrap();
    let session = |name: &str, allowed: &str| {
        format!(
            "[[session]]\nsender_comp_id = \"ORDO\"\ntarget_comp_id = \"{name}\"\nusername = \"{name}\"\n\
             password = \"demo\"\naccounts = [\"ACC{name}\"]\nallowed_addresses = [{allowed}]\n"
        )
    };
    let text = format!(
        "{}\n{}\n{}",
        ordo_sequencer::config::DEFAULT_CONFIG,
        session("FAR", "\"10.9.9.9\""),
        // Written IPv4-mapped: compared canonically, it is the IPv4 peer.
        session("NEAR", "\"10.9.9.9\", \"::ffff:127.0.0.1\"")
    );
    let config = dir.path().join("node.toml");
    std::fs::write(&config, text).unwrap();
    let node = Node::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    let h = FixClient::logged_on(node.port, 8);
    let mut far = FixClient::connect(node.port, "FAR", "ORDO").unwrap();
    far.send("A", &[(98, "0"), (108, "30"), (553, "FAR"), (554, "demo")]);
    let (closed, seen) = far.closed_within(T);
    assert!(closed && seen.is_empty(), "{seen:?}");
    let mut near = FixClient::connect(node.port, "NEAR", "ORDO").unwrap();
    let answer = near.logon("NEAR", "demo", true);
    assert_eq!(answer.msg_type(), "A", "{answer}");
    healthy(&mut near);
    after(node, h);
}

#[test]
fn message_before_logon_is_disconnected() {
    let (_d, node, h) = bad_input_setup();
    let mut c = FixClient::connect(node.port, "CLIENT1", "ORDO").unwrap();
    c.send(
        "D",
        &[
            (11, "x"),
            (21, "1"),
            (55, "AAA"),
            (54, "1"),
            (60, "20261124-00:00:00"),
            (38, "1"),
            (40, "2"),
            (44, "1"),
        ],
    );
    let (closed, seen) = c.closed_within(T);
    assert!(closed && seen.is_empty(), "{seen:?}");
    after(node, h);
}

#[test]
fn forbidden_account_is_rejected() {
    let (_d, node, h) = bad_input_setup();
    let mut c = FixClient::logged_on(node.port, 1);
    new_order(&mut c, "f1", "ACC2", "1", "100", "100");
    let m: Msg = c.expect(T);
    assert_eq!(
        (m.msg_type(), m.get(150), m.get(58)),
        ("8", Some("8"), Some("account not permitted for this session")),
        "{m}"
    );
    healthy(&mut c);
    after(node, h);
}

#[test]
fn connection_flood_is_bounded() {
    let (_d, node, h) = bad_input_setup();
    // Far more connections than max_connections (64): the node refuses the excess at accept,
    // closes idle ones at the logon timeout, and keeps serving logged-on sessions.
    let mut conns = Vec::new();
    for _ in 0..200 {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", node.port)) {
            conns.push(s);
        }
    }
    let mut h = h;
    healthy(&mut h);
    drop(conns);
    after(node, h);
}

/// Whether the peer has closed `s` (EOF or reset), without waiting.
fn closed_by_peer(s: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 64];
    let closed = match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    s.set_nonblocking(false).unwrap();
    closed
}

#[test]
fn connection_bound_refuses_exactly_the_excess_and_idle_connections_time_out() {
    // max_connections = 4: one logged-on session holds one, so of ten raw connections three
    // are accepted (waiting to log on) and seven are closed at accept. The three are closed
    // when the logon timeout (2 s) passes; the logged-on session is unaffected throughout.
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_settings(dir.path(), "max_connections = 4\nlogon_timeout_s = 2");
    let mut h = FixClient::logged_on(node.port, 8);
    let opened = std::time::Instant::now();
    let mut conns: Vec<_> = (0..10)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", node.port)).unwrap())
        .collect();
    // The node closes a refused connection right after accepting it; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let open = conns
        .iter_mut()
        .map(closed_by_peer)
        .filter(|closed| !closed)
        .count();
    assert!(
        opened.elapsed() < Duration::from_secs(2),
        "checked after the logon timeout: the count means nothing"
    );
    assert_eq!(open, 3, "connections kept beside the logged-on session (bound 4)");
    healthy(&mut h);
    // The accepted ones never log on: closed once the timeout passes, not before.
    let mut survivors: Vec<_> = conns
        .into_iter()
        .filter_map(|mut c| (!closed_by_peer(&mut c)).then_some(c))
        .collect();
    for c in &mut survivors {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 64];
        let r = std::io::Read::read(c, &mut b);
        assert!(
            matches!(r, Ok(0) | Err(_)),
            "an idle connection was answered: {r:?}"
        );
        assert!(
            !matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
            "an idle connection outlived the logon timeout by 10 s"
        );
    }
    assert!(
        opened.elapsed() >= Duration::from_millis(1500),
        "idle connections closed before the 2 s logon timeout"
    );
    // Their places are free again: a new session can log on.
    let mut again = FixClient::logged_on(node.port, 2);
    healthy(&mut again);
    after(node, h);
}

#[test]
fn slow_consumer_is_disconnected_and_others_are_unaffected() {
    // An outbound bound (512 KiB) smaller than what the socket buffers hold, so the node's write
    // blocks on the full socket before the bound is passed: the case that must not hang.
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_settings(dir.path(), "outbound_queue = 2000");
    let mut h = FixClient::logged_on(node.port, 8);
    let mut slow = FixClient::logged_on(node.port, 1);
    slow.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    // Orders that rest (no trades), and never a read: every ack piles up in the node. Once the
    // client's socket buffers are full the node's pending output passes its bound, and it
    // closes the connection; our writes then fail (or block, once it stops reading us).
    let mut sent = 0u32;
    let mut write_error = None;
    while sent < 200_000 && write_error.is_none() {
        let clordid = format!("s{sent}");
        write_error = slow.send_checked("D", &resting_buy(&clordid, "AAA")).err();
        sent += 1;
        if sent.is_multiple_of(5_000) {
            // Meanwhile another session is served normally.
            healthy(&mut h);
        }
    }
    // The node must have closed the connection by itself, while we were still not reading: our
    // write then fails because the connection is gone (reset or broken pipe). A write that merely
    // timed out means the node was still holding the connection open, blocked on us.
    let kind = write_error.map(|e| e.kind());
    assert!(
        matches!(
            kind,
            Some(std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)
        ),
        "after {sent} unread orders the node had not closed the slow connection: {kind:?}"
    );
    healthy(&mut h);
    after(node, h);
}

/// A node whose engine holds at most one output and whose engine -> sessions channel holds one:
/// both are at their bound for a burst of orders; `inbound_queue` bounds the gateway ->
/// sequencer queue.
fn tiny_queues_node(dir: &std::path::Path, inbound_queue: usize) -> Node {
    node_with_settings(
        dir,
        &format!("inbound_queue = {inbound_queue}\noutbound_channel = 1\nmax_held = 1"),
    )
}

/// A node on the embedded configuration with `settings` (top-level TOML keys) added; data in
/// `dir/data`.
fn node_with_settings(dir: &std::path::Path, settings: &str) -> Node {
    let config = dir.join("node.toml");
    let text = format!("{settings}\n{}", ordo_sequencer::config::DEFAULT_CONFIG);
    std::fs::write(&config, text).unwrap();
    Node::start(&dir.join("data"), &["--config", config.to_str().unwrap()])
}

/// `n` resting orders from CLIENT1 (ClOrdIDs q0..), framed back to back for one write.
fn burst_bytes(c: &mut FixClient, n: usize) -> Vec<u8> {
    use ordo_fix::builder::{Builder, Value};
    let mut burst = Vec::new();
    let mut b = Builder::default();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for i in 0..n {
        let clordid = format!("q{i}");
        b.start(b"D");
        b.field(49, Value::Bytes(b"CLIENT1"))
            .field(56, Value::Bytes(b"ORDO"))
            .field(34, Value::U64(c.next_out))
            .field(52, Value::TimeMs(now_ns))
            .field(11, Value::Bytes(clordid.as_bytes()))
            .field(1, Value::Bytes(b"ACC1"))
            .field(55, Value::Bytes(b"AAA"))
            .field(54, Value::Bytes(b"1"))
            .field(60, Value::Bytes(b"20261125-08:00:00"))
            .field(38, Value::U64(1))
            .field(40, Value::Bytes(b"2"))
            .field(44, Value::Bytes(b"90"))
            .field(59, Value::Bytes(b"0"));
        c.next_out += 1;
        let mut one = Vec::new();
        b.finish(&mut one);
        burst.extend_from_slice(&one);
    }
    burst
}

/// Sends `n` resting orders from CLIENT1 in one write; returns (acks, busy rejects) once every
/// order has its one answer.
fn burst_of_orders(c: &mut FixClient, n: usize) -> (usize, usize) {
    let burst = burst_bytes(c, n);
    c.send_raw(&burst);
    // Every order gets exactly one answer: an ack (ClOrdID in 11), or BusinessMessageReject
    // "system busy" naming it in BusinessRejectRefID (379). Refusals are immediate and acks
    // come through the pipeline, so they interleave in any order.
    let (mut acks, mut busy) = (0, 0);
    let mut answered = std::collections::BTreeSet::new();
    while acks + busy < n {
        let m = c.expect(T);
        let id = match (m.msg_type(), m.get(150)) {
            ("8", Some("0")) => {
                acks += 1;
                m.get(11)
            }
            ("j", _) => {
                assert_eq!(m.get(58), Some("system busy: sequencer queue full"), "{m}");
                busy += 1;
                m.get(379)
            }
            _ => panic!("unexpected answer {m}"),
        };
        let id = id
            .unwrap_or_else(|| panic!("answer names no order: {m}"))
            .to_string();
        assert!(answered.insert(id), "two answers for one order: {m}");
    }
    let expected: std::collections::BTreeSet<String> = (0..n).map(|i| format!("q{i}")).collect();
    assert_eq!(answered, expected);
    eprintln!("{acks} acked, {busy} refused as busy");
    (acks, busy)
}

#[test]
fn full_sequencer_queue_answers_system_busy_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = tiny_queues_node(dir.path(), 1);
    let mut h = FixClient::logged_on(node.port, 8);
    let mut c = FixClient::logged_on(node.port, 1);
    // The gateway takes the burst faster than the pipeline runs: the one-deep queue is full.
    let (acks, busy) = burst_of_orders(&mut c, 200);
    // How many fit depends on whether the pipeline ran between reads (the logon's own event
    // may still hold the one slot): all 200 refused is as correct as 1 acked and 199 refused.
    assert!(busy >= 1, "acks {acks}, busy {busy}: the bound was not reached");
    // Nothing more comes (no duplicate, no late answer); this session and another are healthy.
    healthy(&mut c);
    healthy(&mut h);
    let node_dir = node.data_dir.clone();
    assert!(node.terminate().success());
    journal_verifies(&node_dir);
}

/// A disconnect that meets a full sequencer queue still cancels the session's orders: the
/// safety lane takes it (before, the SessionDisconnected was dropped and the order kept resting
/// after cancel-on-disconnect).
#[test]
fn cancel_on_disconnect_gets_through_a_full_queue() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    // CLIENT1 (the first session) cancels on disconnect; the order queue holds one input.
    let text = format!("inbound_queue = 1\n{}", ordo_sequencer::config::DEFAULT_CONFIG).replacen(
        "cancel_on_disconnect = false",
        "cancel_on_disconnect = true",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let node = Node::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    let mut c = FixClient::logged_on(node.port, 1);
    new_order(&mut c, "rest1", "ACC1", "1", "5", "101");
    assert_eq!(c.expect(T).get(150), Some("0"));
    // A burst that fills the one-deep queue, and the connection closed right behind it: the
    // gateway reads the orders (refusing most as busy) and then the close, with the queue full.
    let burst = burst_bytes(&mut c, 200);
    c.send_raw(&burst);
    drop(c);
    // rest1 is gone: a sell at its price from another account does not trade; it rests.
    let mut s = FixClient::logged_on(node.port, 2);
    new_order(&mut s, "sell1", "ACC2", "2", "5", "101");
    let m = s.expect(T);
    assert_eq!((m.get(11), m.get(150)), (Some("sell1"), Some("0")), "{m}");
    nothing_pending(&mut s);
    let node_dir = node.data_dir.clone();
    assert!(node.terminate().success());
    journal_verifies(&node_dir);
}

#[test]
fn engine_back_pressure_delays_but_loses_no_output() {
    let dir = tempfile::tempdir().unwrap();
    // Room for the whole burst in the queue; one held output and a one-deep channel after it.
    let node = tiny_queues_node(dir.path(), 1024);
    let mut c = FixClient::logged_on(node.port, 1);
    let (acks, busy) = burst_of_orders(&mut c, 300);
    assert_eq!((acks, busy), (300, 0));
    healthy(&mut c);
    let node_dir = node.data_dir.clone();
    assert!(node.terminate().success());
    journal_verifies(&node_dir);
}

/// The body of a NewOrderSingle from CLIENT1 (account ACC1): buy 5 at 95.00, GTC, far below
/// the reference price of the embedded defaults, so it rests.
fn resting_buy<'a>(clordid: &'a str, symbol: &'a str) -> [(u32, &'a str); 9] {
    [
        (11, clordid),
        (1, "ACC1"),
        (55, symbol),
        (54, "1"),
        (60, "20261125-00:00:00"),
        (38, "5"),
        (40, "2"),
        (44, "95"),
        (59, "1"),
    ]
}

fn order_on(c: &mut FixClient, clordid: &str, symbol: &str) {
    c.send("D", &resting_buy(clordid, symbol));
    let m = c.expect(T);
    assert_eq!((m.msg_type(), m.get(150)), ("8", Some("0")), "{m}");
}

/// Reads the ExecutionReports and the OrderMassCancelReport of one mass cancel.
fn mass_cancel_answers(c: &mut FixClient, expected_cancels: usize) -> (Vec<String>, Msg) {
    let mut cancelled = Vec::new();
    loop {
        let m = c.expect(T);
        match m.msg_type() {
            "8" => {
                assert_eq!((m.get(150), m.get(39)), (Some("4"), Some("4")), "{m}");
                cancelled.push(m.get(11).unwrap_or_default().to_string());
            }
            "r" => {
                assert_eq!(cancelled.len(), expected_cancels, "{m}");
                return (cancelled, m);
            }
            _ => panic!("unexpected {m}"),
        }
    }
}

#[test]
fn mass_cancel_by_symbol_then_all() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]);
    let mut c = FixClient::logged_on(node.port, 1);
    for (id, sym) in [("m1", "AAA"), ("m2", "AAA"), ("m3", "AAA"), ("m4", "BBB")] {
        order_on(&mut c, id, sym);
    }
    // MassCancelRequestType 1: the orders in AAA only.
    c.send(
        "q",
        &[
            (11, "mc1"),
            (530, "1"),
            (55, "AAA"),
            (54, "1"),
            (60, "20261125-00:00:00"),
        ],
    );
    let (mut cancelled, report) = mass_cancel_answers(&mut c, 3);
    cancelled.sort();
    assert_eq!(cancelled, ["m1", "m2", "m3"]);
    assert_eq!(
        (
            report.get(11),
            report.get(530),
            report.get(531),
            report.get(533),
            report.get(55)
        ),
        (Some("mc1"), Some("1"), Some("1"), Some("3"), Some("AAA")),
        "{report}"
    );
    // MassCancelRequestType 7: everything left (the BBB order).
    c.send("q", &[(11, "mc2"), (530, "7"), (60, "20261125-00:00:00")]);
    let (cancelled, report) = mass_cancel_answers(&mut c, 1);
    assert_eq!(cancelled, ["m4"]);
    assert_eq!(
        (report.get(530), report.get(531), report.get(533)),
        (Some("7"), Some("7"), Some("1")),
        "{report}"
    );
    // An unknown symbol is refused with MassCancelRejectReason 1 (unknown security).
    c.send(
        "q",
        &[
            (11, "mc3"),
            (530, "1"),
            (55, "ZZZ"),
            (54, "1"),
            (60, "20261125-00:00:00"),
        ],
    );
    let (_, report) = mass_cancel_answers(&mut c, 0);
    assert_eq!(
        (report.get(531), report.get(532)),
        (Some("0"), Some("1")),
        "{report}"
    );
    healthy(&mut c);
    assert!(node.terminate().success());
}

#[test]
fn node_stops_by_itself_when_its_journal_cannot_be_applied() {
    for pipeline in ["inline", "shared", "dedicated"] {
        stops_on_unappliable_journal(pipeline);
    }
}

/// The threaded layouts (`shared`: both agents on one thread; `dedicated`: a thread each, on the
/// one agent runner) trade, answer with `batch` durability (outputs held for the fsync, the
/// durable listener waking the right thread), and stop cleanly with the journal synced.
#[test]
fn threaded_pipelines_serve_trades_and_stop() {
    for pipeline in ["shared", "dedicated"] {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(dir.path(), &["--pipeline", pipeline, "--durability", "batch"]);
        let mut buyer = FixClient::logged_on(node.port, 1);
        let mut seller = FixClient::logged_on(node.port, 2);
        new_order(&mut buyer, "b1", "ACC1", "1", "100", "100.00");
        assert_eq!(buyer.expect(T).get(150), Some("0"), "{pipeline}");
        new_order(&mut seller, "s1", "ACC2", "2", "100", "100.00");
        assert_eq!(seller.expect(T).get(150), Some("0"), "{pipeline}");
        let fill = seller.expect(T);
        assert_eq!(
            (fill.get(150), fill.get(32)),
            (Some("F"), Some("100")),
            "{pipeline}: {fill}"
        );
        let fill = buyer.expect(T);
        assert_eq!(
            (fill.get(150), fill.get(39)),
            (Some("F"), Some("2")),
            "{pipeline}: {fill}"
        );
        healthy(&mut buyer);
        let status = node.terminate();
        assert!(status.success(), "{pipeline}: exit status {status}");
        journal_verifies(dir.path());
    }
}

fn stops_on_unappliable_journal(pipeline: &str) {
    // A raft log (the node is a cluster of one) whose first event is not the genesis record
    // (written here with the journal API, as a damaged or foreign journal would be): the
    // engine refuses it. The node must say so and stop, not keep sessions open that nothing
    // will ever answer.
    use openraft::{BasicNode, CommittedLeaderId, EntryPayload, Membership};
    use ordo_replica::entry::{KIND_ENTRY, encode};
    use ordo_replica::types::{Entry, LogId};
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("journal");
    std::fs::create_dir_all(&journal_dir).unwrap();
    {
        let mut w =
            ordo_journal::JournalWriter::open(ordo_journal::JournalConfig::new(&journal_dir)).unwrap();
        let log_id = |index| LogId::new(CommittedLeaderId::new(1, 1), index);
        let nodes = std::collections::BTreeMap::from([(1u64, BasicNode::new("127.0.0.1:0"))]);
        let membership = Entry {
            log_id: log_id(0),
            payload: EntryPayload::Membership(Membership::new(
                vec![std::collections::BTreeSet::from([1u64])],
                nodes,
            )),
        };
        let ts = 1_800_000_000_000_000_000;
        w.append(ts, KIND_ENTRY, &encode(&membership, 0)).unwrap();
        let normal = Entry {
            log_id: log_id(1),
            payload: EntryPayload::Normal(Default::default()),
        };
        w.append(ts, KIND_ENTRY, &encode(&normal, 1)).unwrap();
        let tick = ordo_sequencer::schema::Event::Command {
            session: u32::MAX,
            msg_seq: 0,
            command: ordo_engine::Command::Tick,
        };
        w.append_archived(ts, ordo_sequencer::schema::KIND_EVENT, &tick)
            .unwrap();
        w.close().unwrap();
    }
    let mut child = Command::new(ordo_bin())
        .arg("node")
        .args(["--pipeline", pipeline])
        .args(["--listen", &format!("127.0.0.1:{}", ordo_tests::free_port())])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("pipeline {pipeline}: the node kept running on a journal it cannot apply");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "pipeline {pipeline}: {stderr}");
    assert!(
        stderr.contains("record 3 comes before the genesis record"),
        "pipeline {pipeline}: {stderr}"
    );
}

/// OrderStatusRequest for orders that left the book: a filled order answers 39=2 with its
/// CumQty and AvgPx, a cancelled one 39=4 with what it had filled, before and after a restart
/// (the engine rebuilds what it keeps from the journal); an order never seen stays unknown.
#[test]
fn orders_that_left_the_book_answer_status_requests_with_their_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let port = ordo_tests::free_port();
    let node = Node::start_on(dir.path(), port, &[]);
    let mut buyer = FixClient::logged_on(node.port, 1);
    let mut seller = FixClient::logged_on(node.port, 2);
    new_order(&mut seller, "s1", "ACC2", "2", "100", "100.00");
    assert_eq!(seller.expect(T).get(150), Some("0"));
    new_order(&mut buyer, "b1", "ACC1", "1", "100", "100.00");
    assert_eq!(buyer.expect(T).get(150), Some("0"));
    assert_eq!(buyer.expect(T).get(39), Some("2"));
    assert_eq!(seller.expect(T).get(39), Some("2"));
    // Partly filled, then cancelled.
    new_order(&mut seller, "s2", "ACC2", "2", "30", "101.00");
    assert_eq!(seller.expect(T).get(150), Some("0"));
    new_order(&mut buyer, "b2", "ACC1", "1", "100", "101.00");
    assert_eq!(buyer.expect(T).get(150), Some("0"));
    assert_eq!(buyer.expect(T).get(39), Some("1"));
    assert_eq!(seller.expect(T).get(39), Some("2"));
    buyer.send(
        "F",
        &[
            (11, "b2x"),
            (41, "b2"),
            (55, "AAA"),
            (54, "1"),
            (60, "20261124-00:00:00"),
        ],
    );
    assert_eq!(buyer.expect(T).get(39), Some("4"));

    let ask = |c: &mut FixClient, clordid: &str| {
        c.send("H", &[(11, clordid), (790, "q"), (55, "AAA"), (54, "1")]);
        let m = c.expect(T);
        assert_eq!(
            (m.msg_type(), m.get(150), m.get(790)),
            ("8", Some("I"), Some("q")),
            "{m}"
        );
        (
            m.get(39).unwrap_or("").to_string(),
            m.get(14).unwrap_or("").to_string(),
            m.get(6).unwrap_or("").to_string(),
        )
    };
    let expected = |c: &mut FixClient| {
        assert_eq!(ask(c, "b1"), ("2".into(), "100".into(), "100".into()));
        assert_eq!(ask(c, "b2"), ("4".into(), "30".into(), "101".into()));
        assert_eq!(ask(c, "never").0, "8", "an order never seen is unknown");
    };
    expected(&mut buyer);
    drop(buyer);
    drop(seller);
    assert!(node.terminate().success());

    let node = Node::start_on(dir.path(), port, &[]);
    let mut buyer = FixClient::logged_on(node.port, 1);
    expected(&mut buyer);
    drop(buyer);
    assert!(node.terminate().success());
}

/// Resends come from a bounded window that the node rebuilds from its journal at start: after a
/// restart, a ResendRequest within it gets the messages back as first sent (PossDup); one that
/// reaches below it gets a Logout that names the range and the first number it can resend, not
/// a gap fill over acknowledgements the client never saw.
#[test]
fn a_resend_below_the_window_is_refused_with_a_logout_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    // CLIENT1's window holds three application messages.
    let text = ordo_sequencer::config::DEFAULT_CONFIG.replacen(
        "cancel_on_disconnect = false",
        "cancel_on_disconnect = false\nresend_window_messages = 3",
        1,
    );
    assert_ne!(text, ordo_sequencer::config::DEFAULT_CONFIG);
    std::fs::write(&config, text).unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let port = ordo_tests::free_port();
    let node = Node::start_on(&dir.path().join("data"), port, &args);
    let mut c = FixClient::logged_on(node.port, 1);
    let mut acks = Vec::new();
    for i in 0..5 {
        new_order(&mut c, &format!("w{i}"), "ACC1", "1", "5", "95.00");
        let ack = c.expect(T);
        assert_eq!(ack.get(150), Some("0"), "{ack}");
        acks.push((ack.seq(), ack.get(52).map(str::to_string)));
    }
    assert_eq!(acks.iter().map(|a| a.0).collect::<Vec<_>>(), [2, 3, 4, 5, 6]);
    drop(c);
    assert!(node.terminate().success());

    let node = Node::start_on(&dir.path().join("data"), port, &args);
    let mut c = FixClient::connect(node.port, "CLIENT1", "ORDO").unwrap();
    c.next_out = 7;
    let logon = c.logon("CLIENT1", "demo", false);
    // After the acks: the Logout of the clean stop if it was sequenced before the stop, then
    // this answer.
    let logon_seq = logon.seq();
    assert!(logon.msg_type() == "A" && (7..=8).contains(&logon_seq), "{logon}");
    let after_logon = (logon_seq + 1).to_string();
    c.send("2", &[(7, "4"), (16, "0")]);
    for &(seq, ref sending_time) in &acks[2..] {
        let m = c.expect(T);
        assert_eq!(
            (m.msg_type(), m.seq(), m.get(43), m.get(122).map(str::to_string)),
            ("8", seq, Some("Y"), sending_time.clone()),
            "the ack resent as first sent: {m}"
        );
    }
    let fill = c.expect(T);
    assert_eq!(
        (fill.msg_type(), fill.seq(), fill.get(123), fill.get(36)),
        ("4", 7, Some("Y"), Some(after_logon.as_str())),
        "the Logout and the Logon gap-filled: {fill}"
    );
    c.send("2", &[(7, "2"), (16, "0")]);
    let refusal = c.expect(T);
    assert_eq!(refusal.msg_type(), "5", "{refusal}");
    let text = refusal.get(58).unwrap_or_default();
    assert!(
        text.contains(&format!("ResendRequest 2-{logon_seq}")) && text.contains("from MsgSeqNum 4 on"),
        "{text}"
    );
    drop(c);
    assert!(node.terminate().success());
}
