//! Three members in one process on the simulated network: openraft on the journal. After each
//! scenario the members' journals are compared record by record (seq, timestamp, kind, CRC,
//! payload): the committed prefix must be byte-identical, and every acknowledged write in it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::{BasicNode, ServerState};
use ordo_journal::JournalReader;
use ordo_replica::batch::Batch;
use ordo_replica::member::{MemberConfig, RunningMember};
use ordo_replica::role::Role;
use ordo_replica::transport::{Faults, SimNet};
use ordo_replica::types::{NodeId, Placed};

const IDS: [NodeId; 3] = [1, 2, 3];
/// Bound on every wait (liveness, not speed: nothing asserts on time).
const T: Duration = Duration::from_secs(30);

/// Record kind the test's batches carry (the sequencer's events are kind 1).
const KIND_TEST: u16 = 1;

struct Cluster {
    net: Arc<SimNet>,
    _root: tempfile::TempDir,
    configs: BTreeMap<NodeId, MemberConfig>,
    members: BTreeMap<NodeId, RunningMember>,
    clock_ns: AtomicU64,
}

/// One journal record, as compared between members.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    seq: u64,
    ts: u64,
    kind: u16,
    crc: u32,
    payload: Vec<u8>,
}

impl Cluster {
    async fn start(seed: u64, faults: Faults) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let net = SimNet::new(seed, faults);
        let mut c = Cluster {
            net,
            configs: IDS
                .iter()
                .map(|&id| (id, MemberConfig::new(id, root.path().join(format!("m{id}")))))
                .collect(),
            _root: root,
            members: BTreeMap::new(),
            clock_ns: AtomicU64::new(1_800_000_000_000_000_000),
        };
        for id in IDS {
            c.revive(id).await;
        }
        let nodes: BTreeMap<NodeId, BasicNode> = IDS
            .iter()
            .map(|&id| (id, BasicNode::new(format!("m{id}"))))
            .collect();
        c.members[&1].raft.initialize(nodes).await.unwrap();
        c
    }

    /// Starts member `id` on its directory (again, after a kill).
    async fn revive(&mut self, id: NodeId) {
        let inbox = self.net.join(id);
        let m = RunningMember::start(&self.configs[&id], self.net.clone(), inbox)
            .await
            .unwrap();
        self.members.insert(id, m);
    }

    /// Kills member `id`: it disappears from the network and stops (its journal stays as a
    /// crash would leave it under `none`: in the page cache).
    async fn kill(&mut self, id: NodeId) {
        self.net.leave(id);
        self.members.remove(&id).unwrap().shutdown().await;
    }

    /// The leader that the running members agree on.
    async fn leader(&self) -> NodeId {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            for (id, m) in &self.members {
                let metrics = m.raft.metrics().borrow().clone();
                if metrics.state == ServerState::Leader
                    && metrics.current_leader == Some(*id)
                    && self
                        .members
                        .values()
                        .filter(|o| o.raft.metrics().borrow().current_leader == Some(*id))
                        .count()
                        * 2
                        > IDS.len()
                {
                    return *id;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                for (id, m) in &self.members {
                    let x = m.raft.metrics().borrow().clone();
                    eprintln!(
                        "member {id}: {:?} leader {:?} term {} last {:?} applied {:?} running {:?}",
                        x.state,
                        x.current_leader,
                        x.current_term,
                        x.last_log_index,
                        x.last_applied,
                        x.running_state
                    );
                }
                panic!("no leader within {T:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn batch(&self, tag: &str, records: usize) -> Batch {
        let mut b = Batch::default();
        for r in 0..records {
            let ts = self.clock_ns.fetch_add(1_000, Ordering::Relaxed);
            b.push(ts, KIND_TEST, format!("{tag}/{r}").as_bytes()).unwrap();
        }
        b
    }

    /// Writes `n` batches through the leader, all in flight at once; returns each acknowledged
    /// one's tag and placement. Writes refused or unanswered (a leader change) are retried on
    /// the new leader until acknowledged.
    async fn write(&self, prefix: &str, n: usize) -> Vec<(String, Placed)> {
        let mut acked = Vec::new();
        let mut todo: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
        let deadline = tokio::time::Instant::now() + T;
        while !todo.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "writes not acknowledged within {T:?}"
            );
            let leader = self.members[&self.leader().await].raft.clone();
            // Stamped and proposed in order, from one task, as the sequencer does (the journal
            // refuses a timestamp below the previous record's); answers awaited afterwards.
            let mut pending = Vec::new();
            let mut retry = Vec::new();
            for tag in &todo {
                let batch = self.batch(tag, 1 + tag.len() % 4);
                match leader.client_write_ff(batch).await {
                    Ok(rx) => pending.push((tag.clone(), rx)),
                    Err(_) => retry.push(tag.clone()),
                }
            }
            for (tag, rx) in pending {
                match tokio::time::timeout(Duration::from_secs(2), rx).await {
                    Ok(Ok(Ok(resp))) => acked.push((tag, resp.data)),
                    _ => retry.push(tag),
                }
            }
            todo = retry;
        }
        acked
    }

    /// Waits until every running member has applied everything the leader has.
    async fn settle(&self) -> u64 {
        let leader = self.leader().await;
        let last = self.members[&leader]
            .raft
            .metrics()
            .borrow()
            .last_log_index
            .unwrap();
        for m in self.members.values() {
            m.raft
                .wait(Some(T))
                .applied_index_at_least(Some(last), "settle")
                .await
                .unwrap();
        }
        last
    }

    fn records(&self, id: NodeId) -> Vec<Rec> {
        let dir = self.configs[&id].dir.join("journal");
        let mut reader = JournalReader::open(&dir, 1).unwrap();
        let committed = self.members[&id].log.positions().committed();
        let mut out = Vec::new();
        while let Some(r) = reader.next().unwrap() {
            if r.seq() > committed {
                break;
            }
            out.push(Rec {
                seq: r.seq(),
                ts: r.timestamp_ns(),
                kind: r.kind(),
                crc: r.crc(),
                payload: r.payload().to_vec(),
            });
        }
        out
    }

    /// The running members' committed journals agree over the shortest one (a member may have
    /// learnt of a later commit a heartbeat before another), and it holds every acked write.
    fn assert_identical(&self, acked: &[(String, Placed)]) -> usize {
        let journals: Vec<(NodeId, Vec<Rec>)> =
            self.members.keys().map(|&id| (id, self.records(id))).collect();
        let n = journals.iter().map(|(_, j)| j.len()).min().unwrap();
        assert!(n > 0, "empty journals");
        let (first_id, first) = &journals[0];
        for (id, j) in &journals[1..] {
            for (a, b) in first[..n].iter().zip(&j[..n]) {
                assert_eq!(a, b, "members {first_id} and {id} differ at seq {}", a.seq);
            }
        }
        for (tag, placed) in acked {
            let wanted = format!("{tag}/0");
            let rec = first[..n]
                .iter()
                .find(|r| r.payload == wanted.as_bytes())
                .unwrap_or_else(|| panic!("acknowledged write {tag} is not in the committed prefix"));
            assert_eq!(
                rec.seq,
                placed.entry_seq + 1,
                "write {tag} is not where its answer placed it"
            );
        }
        n
    }

    async fn shutdown(mut self) {
        for (_, m) in std::mem::take(&mut self.members) {
            m.shutdown().await;
        }
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_loses_its_uncommitted_tail_when_it_rejoins() {
    let c = Cluster::start(3, Faults::default()).await;
    let mut acked = c.write("before", 50).await;
    c.settle().await;
    let old = c.leader().await;
    c.net.isolate(old, &IDS);
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
    c.net.heal();
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
    c.net.set_faults(Faults::default());
    c.settle().await;
    c.assert_identical(&acked);
    c.shutdown().await;
}
