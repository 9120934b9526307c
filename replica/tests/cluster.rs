//! Three members in one process on the simulated network: openraft on the journal. After each
//! scenario the members' journals are compared over the committed prefix (`common`).

mod common;

use std::time::Duration;

use common::{Cluster, IDS, T};
use openraft::ServerState;
use ordo_replica::role::Role;
use ordo_replica::transport::Faults;
use ordo_replica::types::NodeId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_commit_identical_journals() {
    let c = Cluster::start(1, Faults::default()).await;
    let leader = c.leader().await;
    let mut role = c.members[&leader].role.clone();
    let _ = role.wait_for(|r| matches!(r, Role::Leader { .. })).await;
    let acked = c.write("w", 300).await;
    assert_eq!(acked.len(), 300);
    c.settle().await;
    let records = c.assert_identical(&acked);
    // Each batch of 1-4 records is an ENTRY record plus its records; plus openraft's own
    // entries (membership, a blank one per leader).
    assert!(records > 300 * 2, "{records} records");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survivors_carry_on_when_the_leader_is_killed_and_it_catches_up() {
    let mut c = Cluster::start(2, Faults::default()).await;
    let mut acked = c.write("before", 100).await;
    let old = c.leader().await;
    c.kill(old).await;
    let new = c.leader().await;
    assert_ne!(new, old);
    acked.extend(c.write("after", 100).await);
    c.settle().await;
    c.assert_identical(&acked);
    // The killed member comes back on its own journal and catches up from the leader's.
    c.revive(old).await;
    acked.extend(c.write("back", 20).await);
    c.settle().await;
    c.assert_identical(&acked);
    c.shutdown().await;
}

/// splitmix64: the test's own source of "random" points, from a fixed seed (the same points
/// every run; the threads' interleaving still varies).
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The leader killed at points drawn from a seed, each time with writes in flight (proposed,
/// some answered, some not), then revived on its journal: after every round, every write that
/// was acknowledged is in every member's committed prefix where its answer placed it, and the
/// committed prefixes are byte-identical. Writes that were not answered may or may not be
/// there, whole (a batch is one entry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_at_random_points_loses_no_acknowledged_write() {
    let mut c = Cluster::start(11, Faults::default()).await;
    let mut acked = c.write("start", 20).await;
    let mut rng = 0x5EED_0011u64;
    for round in 0..6 {
        let leader = c.leader().await;
        let raft = c.members[&leader].raft.clone();
        let writes = 20 + next_random(&mut rng) % 200;
        let mut pending = Vec::new();
        for i in 0..writes {
            let tag = format!("r{round}-{i}");
            let batch = c.batch(&tag, 1 + i as usize % 4);
            if let Ok(rx) = raft.client_write_ff(batch).await {
                pending.push((tag, rx));
            }
        }
        // Somewhere between nothing answered yet and everything answered.
        let delay_us = next_random(&mut rng) % 1_500;
        tokio::time::sleep(Duration::from_micros(delay_us)).await;
        c.kill(leader).await;
        let mut answered = 0;
        for (tag, rx) in pending {
            if let Ok(Ok(Ok(resp))) = tokio::time::timeout(Duration::from_secs(2), rx).await {
                acked.push((tag, resp.data));
                answered += 1;
            }
        }
        eprintln!(
            "round {round}: leader {leader} killed {delay_us} us after {writes} writes, {answered} answered"
        );
        let new = c.leader().await;
        assert_ne!(new, leader);
        acked.extend(c.write(&format!("after{round}"), 5).await);
        c.revive(leader).await;
        c.settle().await;
        c.assert_identical(&acked);
    }
    c.shutdown().await;
}

/// A member whose data directory is gone (a replaced disk, a new machine) comes back empty: it
/// takes the whole log from the leader's journal (nothing is purged) and ends byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restarted_from_empty_catches_up_the_whole_log() {
    let mut c = Cluster::start(5, Faults::default()).await;
    let mut acked = c.write("before", 200).await;
    let leader = c.leader().await;
    let follower = IDS.into_iter().find(|&id| id != leader).unwrap();
    c.kill(follower).await;
    c.wipe(follower);
    acked.extend(c.write("away", 100).await);
    c.revive(follower).await;
    acked.extend(c.write("back", 20).await);
    c.settle().await;
    let records = c.assert_identical(&acked);
    assert!(records > 320 * 2, "{records} records");
    c.shutdown().await;
}

/// A member restarted from empty that has not caught up grants no vote to a running cluster's
/// candidates (`ordo_replica::rejoin`): with the leader gone before it caught up, the one member
/// left cannot win with its vote (it may lack an entry the emptied member had acknowledged).
/// Once the leader is back, the two members that kept their logs elect one, and the emptied
/// member catches up from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_member_votes_for_no_one_until_it_has_caught_up() {
    let mut c = Cluster::start(6, Faults::default()).await;
    let mut acked = c.write("before", 100).await;
    c.settle().await;
    let leader = c.leader().await;
    let emptied = IDS.into_iter().find(|&id| id != leader).unwrap();
    let other = IDS.into_iter().find(|&id| id != leader && id != emptied).unwrap();
    c.kill(emptied).await;
    c.wipe(emptied);
    // Back empty, but cut off from the leader, which then dies.
    c.sim().isolate(leader, &[emptied]);
    c.revive(emptied).await;
    c.kill(leader).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in [emptied, other] {
        assert_ne!(
            c.members[&id].raft.metrics().borrow().state,
            ServerState::Leader,
            "member {id} was elected with the vote of a member that started empty"
        );
    }
    c.sim().heal();
    c.revive(leader).await;
    let new = c.leader().await;
    assert_ne!(new, emptied);
    acked.extend(c.write("after", 20).await);
    c.settle().await;
    c.assert_identical(&acked);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_loses_its_uncommitted_tail_when_it_rejoins() {
    let c = Cluster::start(3, Faults::default()).await;
    let mut acked = c.write("before", 50).await;
    c.settle().await;
    let old = c.leader().await;
    c.sim().isolate(old, &IDS);
    // Writes to the cut-off leader are appended to its journal but can never commit.
    let stranded = c.batch("stranded", 3);
    let r = tokio::time::timeout(
        Duration::from_millis(500),
        c.members[&old].raft.client_write(stranded),
    )
    .await;
    assert!(
        !matches!(r, Ok(Ok(_))),
        "a write committed without a majority: {r:?}"
    );
    let old_last = c.members[&old].raft.metrics().borrow().last_log_index;
    // openraft still calls it leader (no CheckQuorum in 0.9); its role says it must stop.
    let mut role = c.members[&old].role.clone();
    let deadline = tokio::time::Instant::now() + T;
    while !matches!(*role.borrow_and_update(), Role::CutOff { .. }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cut-off leader was never told it is cut off"
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), role.changed()).await;
    }
    assert_eq!(c.members[&old].raft.metrics().borrow().state, ServerState::Leader);
    // The majority elects a leader of its own and goes on.
    let others: Vec<NodeId> = IDS.iter().copied().filter(|&id| id != old).collect();
    let deadline = tokio::time::Instant::now() + T;
    let new = loop {
        let found = others
            .iter()
            .copied()
            .find(|id| c.members[id].raft.metrics().borrow().state == ServerState::Leader);
        if let Some(id) = found {
            break id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the majority elected no leader"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    for i in 0..30 {
        let b = c.batch(&format!("majority-{i}"), 2);
        let resp = c.members[&new].raft.client_write(b).await.unwrap();
        acked.push((format!("majority-{i}"), resp.data));
    }
    assert!(
        c.members[&old].log.positions().written() > c.members[&old].log.positions().committed(),
        "the cut-off leader holds an uncommitted tail (last log {old_last:?})"
    );
    // Healed: the old leader hears the higher term, its tail is truncated and replaced.
    c.sim().heal();
    c.settle().await;
    c.assert_identical(&acked);
    let old_records = c.records(old);
    assert!(
        !old_records.iter().any(|r| r.payload.starts_with(b"stranded")),
        "the uncommitted write survived on the old leader"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_agree_over_a_network_that_drops_duplicates_and_reorders() {
    let faults = Faults {
        drop_per_mille: 50,
        duplicate_per_mille: 50,
        delay_max_us: 3_000,
    };
    let c = Cluster::start(4, faults).await;
    let acked = c.write("lossy", 200).await;
    c.sim().set_faults(Faults::default());
    c.settle().await;
    c.assert_identical(&acked);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_is_handed_to_the_member_named_and_refused_where_it_cannot_be() {
    use ordo_replica::transfer::TransferError;
    let c = Cluster::start(5, Faults::default()).await;
    let mut acked = c.write("before", 50).await;
    let old = c.leader().await;
    let follower = *IDS.iter().find(|&&id| id != old).unwrap();
    let term = c.members[&old].raft.metrics().borrow().current_term;
    // Refused: to itself, to a member that is not in the cluster, from a follower.
    let leader_side = c.members[&old].handover();
    assert_eq!(
        leader_side.transfer_to(old).await,
        Err(TransferError::AlreadyLeader(old))
    );
    assert_eq!(leader_side.transfer_to(9).await, Err(TransferError::NotVoter(9)));
    assert_eq!(
        c.members[&follower].handover().transfer_to(old).await,
        Err(TransferError::NotLeader)
    );
    // Handed over: the member named leads in a later term, and the log carries on unbroken.
    let done = leader_side.transfer_to(follower).await.expect("transferred");
    assert_eq!(done.to, follower);
    assert!(done.term > term, "term {} after {term}", done.term);
    assert_eq!(c.leader().await, follower);
    // The role watch follows raft's metrics on its own task: give it until the deadline.
    let mut role = c.members[&old].role.clone();
    let deadline = tokio::time::Instant::now() + T;
    while matches!(*role.borrow_and_update(), Role::Leader { .. }) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old leader still leads"
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), role.changed()).await;
    }
    acked.extend(c.write("after", 50).await);
    c.settle().await;
    c.assert_identical(&acked);
    c.shutdown().await;
}

/// A transfer to a member the leader cannot reach gives up at its bound (`CATCH_UP_MAX`: the
/// member never holds the leader's last index) with the reason, and the leader goes on leading
/// in its term; once the link is back the member catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_to_an_unreachable_member_gives_up_at_its_bound_and_the_leader_leads_on() {
    use ordo_replica::transfer::{CATCH_UP_MAX, TransferError};
    let c = Cluster::start(5, Faults::default()).await;
    let mut acked = c.write("before", 20).await;
    c.settle().await;
    let leader = c.leader().await;
    let term = c.members[&leader].raft.metrics().borrow().current_term;
    let target = IDS.into_iter().find(|&id| id != leader).unwrap();
    c.sim().isolate(target, &[leader]);
    // Entries the target lacks: committed by the leader and the other follower.
    acked.extend(c.write("while-cut", 20).await);
    let start = tokio::time::Instant::now();
    let refused = c.members[&leader].handover().transfer_to(target).await;
    assert!(
        matches!(refused, Err(TransferError::NotCaughtUp { to, .. }) if to == target),
        "{refused:?}"
    );
    assert!(
        start.elapsed() >= CATCH_UP_MAX,
        "gave up after {:?}",
        start.elapsed()
    );
    assert_eq!(c.leader().await, leader);
    assert_eq!(c.members[&leader].raft.metrics().borrow().current_term, term);
    acked.extend(c.write("after-refusal", 20).await);
    c.sim().heal();
    c.settle().await;
    c.assert_identical(&acked);
    c.shutdown().await;
}

/// A follower that does not hear the leader, while the other follower does, never deposes it:
/// its pre-vote finds no majority, so it never raises the term (`docs/REPLICATION.md`, 4.5).
/// Without the pre-vote it campaigned every campaign time, and once the link was back the leader
/// saw its higher term and stepped down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_from_the_leader_alone_does_not_depose_it() {
    let c = Cluster::start(5, Faults::default()).await;
    let mut acked = c.write("before", 20).await;
    c.settle().await;
    let leader = c.leader().await;
    let term = c.members[&leader].raft.metrics().borrow().current_term;
    let lonely = IDS.into_iter().find(|&id| id != leader).unwrap();
    c.sim().isolate(lonely, &[leader]);
    // Several campaign times (190-250 ms) without the leader.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    acked.extend(c.write("during", 20).await);
    c.sim().heal();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.leader().await, leader, "the leader was deposed");
    for (id, m) in &c.members {
        assert_eq!(
            m.raft.metrics().borrow().current_term,
            term,
            "member {id}'s term moved: an election was held"
        );
    }
    acked.extend(c.write("after", 20).await);
    c.settle().await;
    c.assert_identical(&acked);
    c.shutdown().await;
}
