//! Real `ordo node --cluster` processes on loopback (`docs/REPLICATION.md`, 9): the leader
//! serves, followers close logons without a word, the leader killed with SIGKILL is replaced,
//! the new leader disconnects the dead leader's sessions for the venue (cancel-on-disconnect
//! across failover), and the killed member restarted on its journal catches up to an identical
//! committed prefix.

use std::time::{Duration, Instant};

use ordo_tests::cluster::Cluster;
use ordo_tests::fix_client::{FixClient, Got};

const T: Duration = Duration::from_secs(10);

fn limit(c: &mut FixClient, clordid: &str, account: &str, side: &str, qty: &str, price: &str) {
    c.send(
        "D",
        &[
            (11, clordid),
            (1, account),
            (21, "1"),
            (55, "AAA"),
            (54, side),
            (60, "20261201-00:00:00"),
            (38, qty),
            (40, "2"),
            (44, price),
            (59, "1"),
        ],
    );
}

/// A buy of 1 AAA at 90.00 (below every sell here: it rests), and its ack.
fn rest_one(c: &mut FixClient, clordid: &str) -> ordo_tests::fix_client::Msg {
    limit(c, clordid, "ACC1", "1", "1", "90.00");
    let ack = c.expect(T);
    assert_eq!((ack.get(150), ack.get(11)), (Some("0"), Some(clordid)), "{ack}");
    ack
}

/// Three members started under `root`, the one that leads, and a follower.
fn three_with_a_follower(root: &std::path::Path) -> (Cluster, u64, u64) {
    let cluster = Cluster::start(root, 3);
    let leader = cluster.leader_among(&[1, 2, 3], Duration::from_secs(30));
    let follower = (1..=3).find(|&id| id != leader).expect("three members");
    (cluster, leader, follower)
}

/// Every pair of `ids` has the same committed prefix (one is a prefix of the other).
fn committed_prefixes_agree(cluster: &Cluster, ids: &[u64]) {
    for (i, &a) in ids.iter().enumerate() {
        for &b in &ids[i + 1..] {
            let (code, text) = cluster.diff_committed(a, b);
            assert_eq!(code, 0, "members {a} and {b}: {text}");
        }
    }
}

#[test]
fn leader_serves_followers_refuse_and_a_killed_leader_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3);
    let all = [1, 2, 3];
    let leader = cluster.leader_among(&all, Duration::from_secs(30));
    let followers: Vec<u64> = all.iter().copied().filter(|&id| id != leader).collect();

    // A follower closes a Logon's connection without answering it (`docs/REPLICATION.md`,
    // 8.2: any message would take a number in the cluster's stream).
    let mut at_follower = FixClient::connect(cluster.fix_ports[&followers[0]], "CLIENT5", "ORDO").unwrap();
    at_follower.send("A", &[(98, "0"), (108, "30"), (553, "CLIENT5"), (554, "demo")]);
    let (closed, seen) = at_follower.closed_within(T);
    assert!(closed && seen.is_empty(), "a follower answered a logon: {seen:?}");

    // The leader trades; every ExecutionReport comes from a committed record.
    let port = cluster.fix_ports[&leader];
    let mut buyer = FixClient::logged_on(port, 1);
    let mut seller = FixClient::logged_on(port, 2);
    let mut rester = FixClient::logged_on(port, 3);
    limit(&mut buyer, "b1", "ACC1", "1", "100", "100.00");
    assert_eq!(buyer.expect(T).get(150), Some("0"));
    limit(&mut seller, "s1", "ACC2", "2", "100", "100.00");
    assert_eq!(seller.expect(T).get(150), Some("0"));
    let fill = seller.expect(T);
    assert_eq!((fill.get(150), fill.get(32)), (Some("F"), Some("100")), "{fill}");
    assert_eq!(buyer.expect(T).get(150), Some("F"));
    // CLIENT3 (cancel-on-disconnect in this cluster's settings) leaves a bid resting.
    limit(&mut rester, "r1", "ACC3", "1", "50", "99.00");
    assert_eq!(rester.expect(T).get(150), Some("0"));
    let committed = cluster.status(leader).unwrap().committed_seq;
    cluster.committed_on(&all, committed, T);
    committed_prefixes_agree(&cluster, &all);

    // The leader dies; the survivors elect one of them.
    let killed_at = Instant::now();
    cluster.kill9(leader);
    let new_leader = cluster.leader_among(&followers, Duration::from_secs(10));
    let elected_ms = killed_at.elapsed().as_millis();
    eprintln!(
        "leader {leader} killed: member {new_leader} leads after {elected_ms} ms (status polling included)"
    );
    for c in [&mut buyer, &mut seller, &mut rester] {
        // The dead leader's connections are gone (its socket closed by the kernel).
        assert!(
            matches!(c.read(T), Got::Closed),
            "a dead leader's connection stayed open"
        );
    }

    // On the new leader: CLIENT3's resting bid was cancelled by the takeover (the sessions of a
    // dead leader are disconnected for the venue), so a sell at its price rests instead of
    // trading.
    let port = cluster.fix_ports[&new_leader];
    let mut seller = FixClient::logged_on(port, 4);
    limit(&mut seller, "s2", "ACC4", "2", "50", "99.00");
    let ack = seller.expect(T);
    assert_eq!(ack.get(150), Some("0"), "{ack}");
    match seller.read(Duration::from_millis(500)) {
        Got::Timeout => {}
        other => panic!("the sell traded with a bid the takeover should have cancelled: {other:?}"),
    }
    // And the venue trades on: a buy from CLIENT1 fills against it.
    let mut buyer = FixClient::logged_on(port, 1);
    limit(&mut buyer, "b2", "ACC1", "1", "50", "99.00");
    assert_eq!(buyer.expect(T).get(150), Some("0"));
    assert_eq!(buyer.expect(T).get(150), Some("F"));
    assert_eq!(seller.expect(T).get(150), Some("F"));

    // The killed member restarts on its journal, catches up, and all three agree.
    cluster.spawn(leader);
    let committed = cluster.status(new_leader).unwrap().committed_seq;
    cluster.committed_on(&all, committed, Duration::from_secs(30));
    committed_prefixes_agree(&cluster, &all);
    assert_eq!(
        cluster.leader_among(&all, T),
        new_leader,
        "the restarted member took over"
    );
}

/// A session carries on across a failover without a sequence reset (`docs/REPLICATION.md`,
/// 6.1): the new leader accepts the client's next MsgSeqNum as is, numbers its Logon answer after
/// what was numbered for the client while it was away, and answers a ResendRequest with the
/// old leader's ExecutionReport (the same bytes: its SendingTime comes back as OrigSendingTime)
/// and the fill it missed, each once.
#[test]
fn a_session_carries_on_across_a_failover_without_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3);
    let all = [1, 2, 3];
    let leader = cluster.leader_among(&all, Duration::from_secs(30));
    let survivors: Vec<u64> = all.iter().copied().filter(|&id| id != leader).collect();

    let mut c1 = FixClient::logged_on(cluster.fix_ports[&leader], 1);
    limit(&mut c1, "b1", "ACC1", "1", "100", "100.00");
    let ack = c1.expect(T);
    assert_eq!((ack.get(150), ack.get(11)), (Some("0"), Some("b1")), "{ack}");
    let ack_seq = ack.seq();
    let ack_sending_time = ack.get(52).unwrap().to_string();
    let committed = cluster.status(leader).unwrap().committed_seq;
    cluster.committed_on(&all, committed, T);

    cluster.kill9(leader);
    let new_leader = cluster.leader_among(&survivors, Duration::from_secs(10));
    let port = cluster.fix_ports[&new_leader];

    // While CLIENT1 is away, CLIENT2 sells into its bid: CLIENT1's fill is numbered for it.
    let mut c2 = FixClient::logged_on(port, 2);
    limit(&mut c2, "s1", "ACC2", "2", "100", "100.00");
    assert_eq!(c2.expect(T).get(150), Some("0"));
    assert_eq!(c2.expect(T).get(150), Some("F"));

    // CLIENT1 comes back with its next number and no reset.
    let mut back = FixClient::connect(port, "CLIENT1", "ORDO").unwrap();
    back.next_out = c1.next_out;
    let logon = back.logon("CLIENT1", "demo", false);
    assert_eq!(logon.msg_type(), "A", "{logon}");
    assert_eq!(
        logon.seq(),
        ack_seq + 2,
        "the Logon answer comes after the fill numbered while the client was away: {logon}"
    );
    // The client asks for what it has not seen since the ack, and for the ack itself again.
    back.send("2", &[(7, &ack_seq.to_string()), (16, "0")]);
    let again = back.expect(T);
    assert_eq!(
        (again.msg_type(), again.get(11), again.get(43), again.seq()),
        ("8", Some("b1"), Some("Y"), ack_seq),
        "{again}"
    );
    assert_eq!(
        again.get(122),
        Some(ack_sending_time.as_str()),
        "the new leader rendered the old leader's report with the same SendingTime"
    );
    let fill = back.expect(T);
    assert_eq!(
        (fill.get(150), fill.get(43), fill.seq(), fill.get(32)),
        (Some("F"), Some("Y"), ack_seq + 1, Some("100")),
        "{fill}"
    );
    let gap = back.expect(T);
    assert_eq!(
        (gap.msg_type(), gap.get(123), gap.seq(), gap.get(36)),
        (
            "4",
            Some("Y"),
            ack_seq + 2,
            Some((ack_seq + 3).to_string().as_str())
        ),
        "the Logon answer is gap-filled: {gap}"
    );
    // The session goes on: the next order is acknowledged with the next number, and nothing
    // else came (no ResendRequest from the node: it expected exactly the client's number).
    limit(&mut back, "b2", "ACC1", "1", "10", "99.00");
    let ack2 = back.expect(T);
    assert_eq!(
        (ack2.msg_type(), ack2.get(150), ack2.seq()),
        ("8", Some("0"), ack_seq + 3),
        "{ack2}"
    );
    match back.read(Duration::from_millis(300)) {
        Got::Timeout => {}
        other => panic!("unexpected after the ack: {other:?}"),
    }
}

/// The ClOrdIDs of the new orders in the committed prefix of member `id`'s journal.
fn committed_clordids(cluster: &Cluster, id: u64) -> Vec<String> {
    let dir = cluster.data_dir(id).join("journal");
    let mut reader =
        ordo_journal::JournalReader::open_with(&dir, 1, ordo_journal::ReadLimit::Committed).unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next().unwrap() {
        if r.kind() != ordo_sequencer::schema::KIND_EVENT {
            continue;
        }
        if let ordo_sequencer::schema::Event::Command {
            command: ordo_engine::Command::NewOrder(o),
            ..
        } = ordo_sequencer::schema::decode(&r).unwrap()
        {
            out.push(o.clordid.as_str().to_string());
        }
    }
    out
}

/// A leader paused (SIGSTOP) past the election timeout, then resumed (`docs/REPLICATION.md`,
/// 8.1): an order that reached its socket while it was paused is never applied and never
/// answered, the client sees its connection closed without a word, and the old leader steps
/// down and rejoins with the new leader's log.
#[test]
fn a_paused_leader_sends_nothing_uncommitted_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3);
    let all = [1, 2, 3];
    let leader = cluster.leader_among(&all, Duration::from_secs(30));
    let others: Vec<u64> = all.iter().copied().filter(|&id| id != leader).collect();
    let mut c1 = FixClient::logged_on(cluster.fix_ports[&leader], 1);
    limit(&mut c1, "b1", "ACC1", "1", "10", "100.00");
    assert_eq!(c1.expect(T).get(150), Some("0"));

    cluster.signal(leader, libc::SIGSTOP);
    // Reaches the paused leader's socket; it can read it only once resumed.
    limit(&mut c1, "paused", "ACC1", "1", "10", "100.00");
    let new_leader = cluster.leader_among(&others, Duration::from_secs(10));
    cluster.signal(leader, libc::SIGCONT);

    // The old leader sends nothing: no ack of the order, no Heartbeat, no Logout.
    let (closed, seen) = c1.closed_within(T);
    assert!(closed, "the resumed leader kept the connection open");
    assert!(seen.is_empty(), "the resumed leader sent {seen:?}");
    // It steps down and follows the new leader.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = cluster.status(leader);
        if s.as_ref()
            .is_some_and(|s| s.role == "follower" && s.leader == Some(new_leader))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed leader did not follow: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The order it read after resuming was never committed, anywhere.
    let committed = cluster.status(new_leader).unwrap().committed_seq;
    cluster.committed_on(&all, committed, Duration::from_secs(30));
    committed_prefixes_agree(&cluster, &all);
    for id in all {
        let ids = committed_clordids(&cluster, id);
        assert!(ids.contains(&"b1".to_string()), "member {id}: {ids:?}");
        assert!(
            !ids.contains(&"paused".to_string()),
            "member {id} applied the paused order"
        );
    }
}

/// Twenty leaders killed with SIGKILL under `ordo loadgen --connect` all three members (`ordo
/// demo --failovers 20`, each killed member restarted on its journal once a new leader serves):
/// every acknowledged order is in the last leader's committed journal, no fill is reported
/// twice, every session follows each new leader without a reset, and each failover ends with
/// an ExecutionReport from the new leader.
#[test]
fn twenty_leaders_killed_under_load_lose_and_duplicate_nothing() {
    let stdout =
        demo_loses_and_duplicates_nothing(&["--failovers", "20", "--rate", "200", "--duration-s", "100"]);
    assert!(
        stdout.contains("demo: 20 failovers"),
        "not every failover ended with a report:\n{stdout}"
    );
}

/// Runs `ordo demo ARGS` in a directory of its own; asserts its DEMO line says nothing was lost
/// or duplicated and that it succeeded; returns its output.
fn demo_loses_and_duplicates_nothing(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(ordo_tests::ordo_bin())
        .arg("demo")
        .args(args)
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("run ordo demo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("DEMO "))
        .unwrap_or_else(|| panic!("no DEMO line:\n{stdout}\n{stderr}"));
    eprintln!("{line}");
    assert!(
        line.contains(" lost=0 ") && line.contains(" duplicates=0 "),
        "{line}"
    );
    assert!(
        out.status.success(),
        "ordo demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// `ordo admin transfer-leader N` (`docs/REPLICATION.md`, 4.3): refused where it cannot be
/// done; done, the member named leads, the old leader's clients are disconnected and carry on
/// with it without a reset, and the committed prefixes agree.
#[test]
fn leadership_is_handed_to_the_member_named_and_a_session_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3);
    let all = [1, 2, 3];
    let leader = cluster.leader_among(&all, Duration::from_secs(30));
    let target = *all.iter().find(|&&id| id != leader).unwrap();
    let other = *all.iter().find(|&&id| id != leader && id != target).unwrap();

    let (code, text) = cluster.admin(other, &["transfer-leader", &target.to_string()]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("not the leader: member {leader} leads")),
        "{text}"
    );
    let (code, text) = cluster.admin(leader, &["transfer-leader", "9"]);
    assert!(
        code == 1 && text.contains("no member 9 in the cluster file"),
        "{text}"
    );
    let (code, text) = cluster.admin(leader, &["transfer-leader", &leader.to_string()]);
    assert!(
        code == 1 && text.contains(&format!("member {leader} leads already")),
        "{text}"
    );

    let mut c1 = FixClient::logged_on(cluster.fix_ports[&leader], 1);
    limit(&mut c1, "b1", "ACC1", "1", "100", "100.00");
    let ack = c1.expect(T);
    assert_eq!((ack.get(150), ack.get(11)), (Some("0"), Some("b1")), "{ack}");

    let (code, text) = cluster.admin(leader, &["transfer-leader", &target.to_string()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with(&format!("OK to={target} term=")), "{text}");
    assert!(text.contains(" pause_ms="), "{text}");
    assert_eq!(cluster.leader_among(&all, Duration::from_secs(10)), target);
    // The old leader closed the connection without a word (it no longer leads).
    let (closed, seen) = c1.closed_within(T);
    assert!(closed && seen.is_empty(), "the old leader sent {seen:?}");

    // Back at the new leader with its next number and no reset: the session carries on.
    let mut back = FixClient::connect(cluster.fix_ports[&target], "CLIENT1", "ORDO").unwrap();
    back.next_out = c1.next_out;
    let logon = back.logon("CLIENT1", "demo", false);
    assert_eq!((logon.msg_type(), logon.seq()), ("A", ack.seq() + 1), "{logon}");
    limit(&mut back, "b2", "ACC1", "1", "10", "99.00");
    let ack2 = back.expect(T);
    assert_eq!(
        (ack2.msg_type(), ack2.get(150), ack2.get(11), ack2.seq()),
        ("8", Some("0"), Some("b2"), ack.seq() + 2),
        "{ack2}"
    );
    let committed = cluster.status(target).unwrap().committed_seq;
    cluster.committed_on(&all, committed, T);
    committed_prefixes_agree(&cluster, &all);
}

/// Leadership handed over three times under load (`ordo demo --transfer`): nothing
/// acknowledged is lost, nothing is duplicated, and every transfer is answered.
#[test]
fn leadership_handed_over_under_load_loses_and_duplicates_nothing() {
    let stdout = demo_loses_and_duplicates_nothing(&[
        "--transfer",
        "--failovers",
        "3",
        "--rate",
        "500",
        "--duration-s",
        "12",
    ]);
    let transfers = stdout
        .lines()
        .filter(|l| l.starts_with("demo: transfer-leader ") && l.contains(": OK to="))
        .count();
    assert_eq!(transfers, 3, "{stdout}");
}

/// A follower restarted after a kill -9 starts its engine from its newest snapshot
/// (`docs/REPLICATION.md`, 6.3; this cluster takes one every 200 records), applies only the
/// records after it, and agrees with the leader (the checkpoints after it compare state hashes:
/// a member that differed would halt). Handed leadership, it serves a session that carries on
/// without a reset: the messages numbered before the snapshot are resent from its store, the
/// orders placed before it are known to OrderStatusRequest.
#[test]
fn a_follower_restarts_from_its_snapshot_and_can_take_over() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, leader, follower) = three_with_a_follower(dir.path());
    let all = [1, 2, 3];

    let mut c1 = FixClient::logged_on(cluster.fix_ports[&leader], 1);
    let place = |c: &mut FixClient, n: u32| rest_one(c, &format!("o{n}"));
    // About two records per order (the entry's own record and the order's).
    let first = place(&mut c1, 1);
    for n in 2..=250 {
        place(&mut c1, n);
    }
    let committed = cluster.status(leader).unwrap().committed_seq;
    cluster.committed_on(&all, committed, T);
    let snapshots = cluster.data_dir(follower).join("snapshots");
    let deadline = Instant::now() + T;
    while std::fs::read_dir(&snapshots).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "member {follower} wrote no snapshot");
        std::thread::sleep(Duration::from_millis(20));
    }

    cluster.kill9(follower);
    // A tail it must take from the leader's log.
    let mut last = first.clone();
    for n in 251..=270 {
        last = place(&mut c1, n);
    }
    let ready = cluster.spawn(follower);
    let seq: u64 = ready
        .split("engine from snapshot at seq ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("member {follower} did not start from a snapshot: {ready}"));
    assert!(seq >= 200 && seq.is_multiple_of(200), "snapshot at seq {seq}");
    let committed = cluster.status(leader).unwrap().committed_seq;
    cluster.committed_on(&all, committed, Duration::from_secs(30));
    committed_prefixes_agree(&cluster, &all);

    let (code, text) = cluster.admin(leader, &["transfer-leader", &follower.to_string()]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(cluster.leader_among(&all, Duration::from_secs(10)), follower);
    let (closed, _) = c1.closed_within(T);
    assert!(closed, "the old leader kept the connection");

    let mut back = FixClient::connect(cluster.fix_ports[&follower], "CLIENT1", "ORDO").unwrap();
    back.next_out = c1.next_out;
    let logon = back.logon("CLIENT1", "demo", false);
    assert_eq!((logon.msg_type(), logon.seq()), ("A", last.seq() + 1), "{logon}");
    // The first ack, numbered long before the snapshot, comes back from the restarted store.
    let first_seq = first.seq().to_string();
    back.send("2", &[(7, &first_seq), (16, &first_seq)]);
    let again = back.expect(T);
    assert_eq!(
        (again.msg_type(), again.get(11), again.get(43), again.seq()),
        ("8", Some("o1"), Some("Y"), first.seq()),
        "{again}"
    );
    // The engine restored from the snapshot knows the first order.
    back.send("H", &[(11, "o1"), (54, "1"), (55, "AAA")]);
    let status = back.expect(T);
    assert_eq!(
        (status.get(150), status.get(39), status.get(11), status.seq()),
        (Some("I"), Some("0"), Some("o1"), last.seq() + 2),
        "{status}"
    );
    let next = place(&mut back, 271);
    assert_eq!(next.seq(), last.seq() + 3, "{next}");
}

/// A follower whose data directory is gone (a replaced disk) comes back empty: the leader
/// carries on (openraft 0.9 would stop it on the follower's log going backwards, unless built
/// with `loosen-follower-log-revert`), the member takes the whole log and ends with the same
/// committed prefix, and the leader stays.
#[test]
fn a_follower_restarted_from_empty_takes_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, leader, follower) = three_with_a_follower(dir.path());
    let all = [1, 2, 3];
    let mut c1 = FixClient::logged_on(cluster.fix_ports[&leader], 1);
    for n in 1..=50 {
        rest_one(&mut c1, &format!("e{n}"));
    }
    let committed = cluster.status(leader).unwrap().committed_seq;
    cluster.committed_on(&all, committed, T);
    cluster.kill9(follower);
    std::fs::remove_dir_all(cluster.data_dir(follower)).unwrap();
    // It is brought in (and may take much of the log) before it prints its ready line.
    cluster.spawn(follower);
    rest_one(&mut c1, "e51");
    let committed = cluster.status(leader).unwrap().committed_seq;
    cluster.committed_on(&all, committed, Duration::from_secs(30));
    committed_prefixes_agree(&cluster, &all);
    assert_eq!(cluster.leader_among(&all, T), leader, "leadership moved");
}

/// A takeover grace (`takeover_grace_ms`, `docs/REPLICATION.md` 8.3): a cancel-on-disconnect
/// session that logs on to the new leader within the grace keeps its orders; one that does not
/// is disconnected for the venue when the grace is over, and its orders are cancelled. (The
/// grace is 4 s and the test waits 7 s after the new leader serves: margins on both sides,
/// since the timer runs on wall-clock time. With 2 s and 5 s it failed once, in the second of
/// four runs with the rest of the suite beside it; its message was not kept.)
#[test]
fn with_a_takeover_grace_a_session_back_in_time_keeps_its_orders() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start_with(dir.path(), 3, "takeover_grace_ms = 4000\n");
    let all = [1, 2, 3];
    let leader = cluster.leader_among(&all, Duration::from_secs(30));
    let survivors: Vec<u64> = all.iter().copied().filter(|&id| id != leader).collect();
    let port = cluster.fix_ports[&leader];
    let mut c3 = FixClient::logged_on(port, 3);
    limit(&mut c3, "kept", "ACC3", "1", "10", "99.00");
    assert_eq!(c3.expect(T).get(150), Some("0"));
    let mut c6 = FixClient::logged_on(port, 6);
    limit(&mut c6, "gone", "ACC6", "1", "10", "98.00");
    let gone_ack = c6.expect(T);
    assert_eq!(gone_ack.get(150), Some("0"));
    let committed = cluster.status(leader).unwrap().committed_seq;
    cluster.committed_on(&all, committed, T);

    cluster.kill9(leader);
    let new_leader = cluster.leader_among(&survivors, Duration::from_secs(10));
    let port = cluster.fix_ports[&new_leader];
    let mut back = FixClient::connect(port, "CLIENT3", "ORDO").unwrap();
    back.next_out = c3.next_out;
    let logon = back.logon("CLIENT3", "demo", false);
    assert_eq!(logon.msg_type(), "A", "{logon}");
    std::thread::sleep(Duration::from_secs(7));

    // A sell of 20 down to 98.00: CLIENT3's bid at 99.00 is there, CLIENT6's at 98.00 is not.
    let mut seller = FixClient::logged_on(port, 4);
    limit(&mut seller, "s1", "ACC4", "2", "20", "98.00");
    assert_eq!(seller.expect(T).get(150), Some("0"));
    let fill = seller.expect(T);
    assert_eq!((fill.get(150), fill.get(32)), (Some("F"), Some("10")), "{fill}");
    match seller.read(Duration::from_millis(500)) {
        Got::Timeout => {}
        other => panic!("CLIENT6's bid was still there after the grace: {other:?}"),
    }
    let fill = back.expect(T);
    assert_eq!((fill.get(150), fill.get(11)), (Some("F"), Some("kept")), "{fill}");

    // CLIENT6 comes back late: its bid was cancelled while it was away (numbered for it then).
    let mut late = FixClient::connect(port, "CLIENT6", "ORDO").unwrap();
    late.next_out = c6.next_out;
    let logon = late.logon("CLIENT6", "demo", false);
    let gap_from = gone_ack.seq() + 1;
    assert!(
        logon.seq() > gap_from,
        "nothing numbered for CLIENT6 while away: {logon}"
    );
    late.send("2", &[(7, &gap_from.to_string()), (16, "0")]);
    let cancel = late.expect(T);
    assert_eq!(
        (cancel.get(150), cancel.get(11), cancel.get(43)),
        (Some("4"), Some("gone"), Some("Y")),
        "{cancel}"
    );
}

/// Starts `client`, SIGKILLs the leader once it has committed `records` more records (the
/// client's traffic: an idle leader's ticks alone would not be a run under load), and returns
/// the client's exit status and output (stdout, then stderr) once it ends. With an `outage`,
/// the other members are stopped (SIGSTOP) just before the kill and resumed that long after
/// it: no leader serves meanwhile, however fast the election.
fn kill_the_leader_under(
    cluster: &mut Cluster,
    leader: u64,
    mut client: std::process::Command,
    records: u64,
    outage: Duration,
) -> (std::process::ExitStatus, String) {
    let others: Vec<u64> = cluster
        .fix_ports
        .keys()
        .copied()
        .filter(|&id| id != leader)
        .collect();
    let before = cluster.status(leader).expect("the leader answers").committed_seq;
    let child = client
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the client");
    cluster.committed_on(&[leader], before + records, T * 3);
    let paused = !outage.is_zero();
    for &id in others.iter().filter(|_| paused) {
        cluster.signal(id, libc::SIGSTOP);
    }
    cluster.kill9(leader);
    if paused {
        std::thread::sleep(outage);
        for &id in &others {
            cluster.signal(id, libc::SIGCONT);
        }
    }
    let out = child.wait_with_output().expect("the client ends");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status, text)
}

/// The fields of each FIX message in QuickFIX's message logs under `dir` (both directions:
/// `<time> : 8=FIX.4.4<SOH>...`), in the order logged.
fn quickfix_logged_messages(dir: &std::path::Path) -> Vec<std::collections::BTreeMap<u32, String>> {
    let mut messages = Vec::new();
    for entry in std::fs::read_dir(dir).expect("QuickFIX's log directory") {
        let path = entry.expect("a log file").path();
        if !path.to_string_lossy().contains("messages") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a QuickFIX log");
        for line in text.lines() {
            let Some((_, raw)) = line.split_once(" : ") else {
                continue;
            };
            let fields = raw
                .split('\u{1}')
                .filter_map(|f| f.split_once('='))
                .filter_map(|(t, v)| Some((t.parse().ok()?, v.to_string())))
                .collect();
            messages.push(fields);
        }
    }
    messages
}

/// The leader killed with SIGKILL under `qf_client.py` (QuickFIX's C++ initiator, an
/// independent peer, `../shared/fix`), connected through a front door that joins each
/// connection to the serving leader. qf_client ends its run at the disconnect (it counts one as
/// a violation and stops), so up to the kill its own checks hold (every answer consistent, no
/// duplicate ExecID, no session-level reject), the only complaints are the disconnect and the
/// orders and requests it had in flight; then, on the new leader, every order QuickFIX logged
/// as sent is answered by OrderStatusRequest, and every order it saw acknowledged is known
/// there (nothing acknowledged lost); the survivors' committed prefixes agree.
#[test]
fn a_leader_killed_under_quickfix_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, leader, _) = three_with_a_follower(dir.path());
    let proxy = cluster.leader_proxy();
    let log_dir = dir.path().join("quickfix-log");
    let mut client = std::process::Command::new(ordo_tests::python());
    client
        .arg(ordo_tests::shared_fix().join("qf_client.py"))
        .args([
            "--port",
            &proxy.port.to_string(),
            "--sender",
            "CLIENT4",
            "--target",
            "ORDO",
        ])
        .args(["--username", "CLIENT4", "--password", "demo", "--account", "ACC4"])
        .args(["--orders", "20000", "--rate", "400", "--symbols", "AAA,BBB"])
        .args([
            "--cancel-ratio",
            "0.1",
            "--no-reset",
            "--max-report",
            "50",
            "--msg-log",
        ])
        .arg(&log_dir);
    // Some orders, fills and cancels first (the run would send for 50 s).
    let (_, text) = kill_the_leader_under(&mut cluster, leader, client, 1_000, Duration::ZERO);
    let summary = text
        .lines()
        .find(|l| l.starts_with("SUMMARY"))
        .unwrap_or_else(|| panic!("no SUMMARY line:\n{text}"));
    eprintln!("{summary}");
    let complaints: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("  - ")).collect();
    let disconnect = "session: logged out / disconnected by the acceptor before the run finished";
    let in_flight = |c: &str| {
        c.contains(" NewOrderSingle without ack after ")
            || c.contains(" cancel/replace requests without answer after ")
    };
    let unexpected: Vec<&&str> = complaints
        .iter()
        .filter(|c| **c != disconnect && !in_flight(c))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}\n{text}");
    // The kill reached the session (else this run proved nothing about a failover).
    assert!(
        complaints.contains(&disconnect),
        "the session never lost its leader:\n{text}"
    );
    assert!(summary.contains(" sess_rejects=0 "), "{summary}");

    // What QuickFIX sent and what it saw acknowledged, from its own message log. An order is
    // named by every ClOrdID it has had (its own, then its replaces' and cancel's, 41 -> 11):
    // it is known if OrderStatusRequest knows it by one of them.
    let messages = quickfix_logged_messages(&log_dir);
    let field = |m: &std::collections::BTreeMap<u32, String>, t: u32| m.get(&t).cloned().unwrap_or_default();
    let mut root: std::collections::BTreeMap<String, String> = Default::default();
    let mut orders: std::collections::BTreeMap<String, (String, String, Vec<String>)> = Default::default();
    for m in messages.iter().filter(|m| field(m, 49) == "CLIENT4") {
        let clordid = field(m, 11);
        let first = match field(m, 35).as_str() {
            "D" => clordid.clone(),
            "F" | "G" => match root.get(&field(m, 41)) {
                Some(r) => r.clone(),
                None => continue,
            },
            _ => continue,
        };
        root.insert(clordid.clone(), first.clone());
        orders
            .entry(first)
            .or_insert_with(|| (field(m, 55), field(m, 54), Vec::new()))
            .2
            .push(clordid);
    }
    let acked: std::collections::BTreeSet<String> = messages
        .iter()
        .filter(|m| field(m, 35) == "8" && field(m, 49) == "ORDO" && field(m, 150) == "0")
        .map(|m| field(m, 11))
        .collect();
    assert!(
        orders.len() > 100,
        "{} orders logged as sent:\n{text}",
        orders.len()
    );
    let survivors: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let new_leader = cluster.leader_among(&survivors, T * 3);
    let mut c = FixClient::logged_on(cluster.fix_ports[&new_leader], 4);
    let mut asked = 0;
    let mut known_by = |c: &mut FixClient, clordid: &str, symbol: &str, side: &str| -> bool {
        asked += 1;
        let id = format!("s{asked}");
        c.send("H", &[(11, clordid), (790, &id), (55, symbol), (54, side)]);
        loop {
            let m = c.expect(T);
            assert_ne!(m.msg_type(), "3", "{m}");
            if m.msg_type() == "8" && m.get(150) == Some("I") && m.get(790) == Some(id.as_str()) {
                assert_eq!(m.get(11), Some(clordid), "{m}");
                return m.get(39) != Some("8");
            }
        }
    };
    let mut unknown_unacked = 0;
    for (first, (symbol, side, names)) in &orders {
        let known = names.iter().any(|n| known_by(&mut c, n, symbol, side));
        assert!(
            known || !acked.contains(first),
            "order {first} (named {names:?}) was acknowledged before the kill and is unknown to the new leader"
        );
        unknown_unacked += usize::from(!known);
    }
    eprintln!(
        "{} orders sent, {} acknowledged before the kill, {unknown_unacked} unknown to the new leader",
        orders.len(),
        acked.len()
    );
    drop(c);
    committed_prefixes_agree(&cluster, &survivors);
    drop(proxy);
}

/// The load generator's bound on the requests it holds for a session while that session logs on
/// again (`--max-held-per-session`, lowered here from its 8M): beyond it the run fails, naming
/// the session and the bound, instead of holding without limit.
#[test]
fn requests_held_beyond_the_load_generators_bound_fail_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, leader, _) = three_with_a_follower(dir.path());
    let connect = cluster
        .fix_ports
        .values()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut loadgen = std::process::Command::new(ordo_tests::ordo_bin());
    loadgen
        .args([
            "loadgen",
            "--connect",
            &connect,
            "--rate",
            "2000",
            "--duration-s",
            "20",
        ])
        .args(["--warmup-s", "1", "--drain-s", "1", "--max-held-per-session", "5"]);
    // 500 requests/s a session, and no leader for a second: far more than 5 come due while
    // the sessions are away (a failover alone can be over before they notice).
    let outage = Duration::from_secs(1);
    let (status, text) = kill_the_leader_under(&mut cluster, leader, loadgen, 500, outage);
    assert!(!status.success(), "{text}");
    assert!(
        text.contains(": 5 requests held while logging on again"),
        "{text}"
    );
}
