//! A three-member cluster in one process, on the simulated network or on Aeron over loopback
//! UDP, and the checks every scenario ends with: the members' journals compared record by record
//! (seq, timestamp, kind, CRC, payload) over the committed prefix, which must hold every
//! acknowledged write.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::{BasicNode, ServerState};
use ordo_journal::JournalReader;
use ordo_replica::aeron::{AeronConfig, AeronTransport, SharedDriver};
use ordo_replica::batch::Batch;
use ordo_replica::member::{MemberConfig, RunningMember};
use ordo_replica::transport::{Faults, SimNet};
use ordo_replica::types::{NodeId, Placed};

pub const IDS: [NodeId; 3] = [1, 2, 3];
/// Bound on every wait (liveness, not speed: nothing asserts on time).
pub const T: Duration = Duration::from_secs(30);

/// Record kind the test's batches carry (the sequencer's events are kind 1).
const KIND_TEST: u16 = 1;

/// How the members reach each other.
pub enum Net {
    /// The simulated network.
    Sim(Arc<SimNet>),
    /// Aeron, UDP on loopback: each member's endpoint, and where drivers keep their files.
    Aeron {
        endpoints: BTreeMap<NodeId, std::net::SocketAddr>,
        root: tempfile::TempDir,
        running: BTreeMap<NodeId, Arc<AeronTransport>>,
        /// The members' one driver, when they share one.
        driver: Option<SharedDriver>,
    },
}

pub struct Cluster {
    pub net: Net,
    _root: tempfile::TempDir,
    configs: BTreeMap<NodeId, MemberConfig>,
    pub members: BTreeMap<NodeId, RunningMember>,
    clock_ns: AtomicU64,
}

/// One journal record, as compared between members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub seq: u64,
    pub ts: u64,
    pub kind: u16,
    pub crc: u32,
    pub payload: Vec<u8>,
}

impl Cluster {
    /// Three members on the simulated network.
    pub async fn start(seed: u64, faults: Faults) -> Cluster {
        Self::start_on(Net::Sim(SimNet::new(seed, faults))).await
    }

    /// Three members on Aeron over loopback UDP (free ports, drivers under /dev/shm), each with
    /// its own media driver, or (`shared`) all on one.
    pub async fn start_aeron(shared: bool) -> Cluster {
        let endpoints = IDS
            .iter()
            .map(|&id| {
                let port = std::net::UdpSocket::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                (id, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            })
            .collect();
        let shm = std::path::Path::new("/dev/shm");
        let root = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let driver = shared.then(|| SharedDriver::launch(&root.path().join("shared-driver")).unwrap());
        Self::start_on(Net::Aeron {
            endpoints,
            root,
            running: BTreeMap::new(),
            driver,
        })
        .await
    }

    async fn start_on(net: Net) -> Cluster {
        let root = tempfile::tempdir().unwrap();
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
    pub async fn revive(&mut self, id: NodeId) {
        let (transport, inbox): (Arc<dyn ordo_replica::transport::Transport>, _) = match &mut self.net {
            Net::Sim(net) => (net.clone(), net.join(id)),
            Net::Aeron {
                endpoints,
                root,
                running,
                driver,
            } => {
                let cfg = AeronConfig {
                    me: id,
                    endpoints: endpoints.clone(),
                    aeron_root: root.path().join(format!("m{id}")),
                    shared_driver: driver.as_ref().map(|d| d.dir().to_path_buf()),
                    driver_idle_max: ordo_replica::aeron::DRIVER_IDLE_MAX,
                };
                std::fs::create_dir_all(&cfg.aeron_root).unwrap();
                let (t, inbox) = AeronTransport::start(&cfg).unwrap();
                running.insert(id, Arc::clone(&t));
                (t, inbox)
            }
        };
        let m = RunningMember::start(&self.configs[&id], transport, inbox)
            .await
            .unwrap();
        self.members.insert(id, m);
    }

    /// Removes the data directory of member `id` (killed first): it comes back empty.
    pub fn wipe(&self, id: NodeId) {
        assert!(!self.members.contains_key(&id), "member {id} is running");
        std::fs::remove_dir_all(&self.configs[&id].dir).unwrap();
    }

    /// The simulated network (panics on Aeron).
    pub fn sim(&self) -> &Arc<SimNet> {
        match &self.net {
            Net::Sim(n) => n,
            Net::Aeron { .. } => panic!("not a simulated network"),
        }
    }

    /// Kills member `id`: it disappears from the network and stops (its journal stays as a
    /// crash would leave it under `none`: in the page cache).
    pub async fn kill(&mut self, id: NodeId) {
        match &mut self.net {
            Net::Sim(net) => net.leave(id),
            Net::Aeron { running, .. } => {
                if let Some(t) = running.remove(&id) {
                    t.shutdown();
                }
            }
        }
        self.members.remove(&id).unwrap().shutdown().await;
    }

    /// The leader that the running members agree on.
    pub async fn leader(&self) -> NodeId {
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

    pub fn batch(&self, tag: &str, records: usize) -> Batch {
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
    pub async fn write(&self, prefix: &str, n: usize) -> Vec<(String, Placed)> {
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
    pub async fn settle(&self) -> u64 {
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

    pub fn records(&self, id: NodeId) -> Vec<Rec> {
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
    pub fn assert_identical(&self, acked: &[(String, Placed)]) -> usize {
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

    pub async fn shutdown(mut self) {
        for (_, m) in std::mem::take(&mut self.members) {
            m.shutdown().await;
        }
        if let Net::Aeron { running, driver, .. } = &mut self.net {
            for (_, t) in std::mem::take(running) {
                t.shutdown();
            }
            drop(driver.take());
        }
    }
}
