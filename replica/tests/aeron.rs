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
