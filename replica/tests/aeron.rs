//! Three members on Aeron over loopback UDP (embedded drivers, SHARED threading, backoff idle):
//! the same checks as on the simulated network, through the real transport.

mod common;

use common::Cluster;

async fn commit_and_survive_the_leader(shared_driver: bool) {
    let mut c = Cluster::start_aeron(shared_driver).await;
    let mut acked = c.write("udp", 200).await;
    assert_eq!(acked.len(), 200);
    c.settle().await;
    c.assert_identical(&acked);
    let old = c.leader().await;
    c.kill(old).await;
    let new = c.leader().await;
    assert_ne!(new, old);
    acked.extend(c.write("after", 50).await);
    c.settle().await;
    c.assert_identical(&acked);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_on_aeron_commit_identical_journals_and_survive_the_leader() {
    commit_and_survive_the_leader(false).await;
}

/// Members of one host on one media driver (`AeronConfig::shared_driver`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_sharing_one_driver_do_the_same() {
    commit_and_survive_the_leader(true).await;
}

/// A peer that was connected and then went away (its port closed: the kernel answers with ICMP
/// port unreachable) must not make the driver spin. With connected send sockets, Aeron 1.54's
/// sender met ECONNREFUSED on every sendmmsg and resent the same datagrams on every duty cycle,
/// about 90,000 busy cycles a second (`docs/REPLICATION.md`, 5). The bound below is a count of
/// cycles that found work, not a time: a slower machine only lowers it.
#[test]
fn a_peer_gone_does_not_make_the_driver_spin() {
    use ordo_replica::aeron::{AeronConfig, AeronTransport, DRIVER_IDLE_MAX};
    use ordo_replica::transport::Transport;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};
    let root = tempfile::tempdir().unwrap();
    let port = || {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let endpoints: BTreeMap<u64, std::net::SocketAddr> = [(1, port()), (2, port())].into();
    let start = |me: u64| {
        let cfg = AeronConfig {
            me,
            endpoints: endpoints.clone(),
            aeron_root: root.path().join(format!("m{me}")),
            shared_driver: None,
            driver_idle_max: DRIVER_IDLE_MAX,
        };
        std::fs::create_dir_all(&cfg.aeron_root).unwrap();
        AeronTransport::start(&cfg).unwrap()
    };
    let (one, _inbox_one) = start(1);
    let (two, mut inbox_two) = start(2);
    // Connected: something of ours arrived at member 2.
    let deadline = Instant::now() + Duration::from_secs(20);
    while inbox_two.try_recv().is_err() {
        assert!(Instant::now() < deadline, "member 2 never heard from member 1");
        one.send(1, 2, vec![7; 1200]);
        std::thread::sleep(Duration::from_millis(10));
    }
    two.shutdown();
    drop(inbox_two);
    // A leader keeps sending heartbeats and entries to a member that is gone: 50 a second,
    // each above the MTU, for 2 s before the measurement and 2 s during it.
    let send_for = |d: Duration| {
        let until = Instant::now() + d;
        while Instant::now() < until {
            one.send(1, 2, vec![9; 3000]);
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    send_for(Duration::from_secs(2));
    let before = one.driver_busy_cycles().expect("an embedded driver");
    send_for(Duration::from_secs(2));
    let busy = one.driver_busy_cycles().unwrap() - before;
    eprintln!("busy duty cycles in 2 s with the peer gone: {busy}");
    assert!(
        busy < 20_000,
        "the driver spins with a peer gone: {busy} busy cycles in 2 s"
    );
    one.shutdown();
}
