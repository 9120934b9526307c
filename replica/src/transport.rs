//! How members' messages travel: the [`Transport`] seam, and [`SimNet`], an in-process network
//! for tests that drops, duplicates, delays (and so reorders) and partitions messages, with its
//! choices drawn from a seed. Aeron's transport (`docs/REPLICATION.md`, 5) implements the same
//! trait.
//!
//! Delivery is best effort, as on a real network: raft retries what is lost. Every member's
//! inbox is bounded ([`INBOX_MESSAGES`]); a message that finds it full is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use crate::types::NodeId;

/// Messages a member's inbox holds (then messages to it are dropped).
pub const INBOX_MESSAGES: usize = 4096;

/// A member's incoming messages.
pub type Inbox = mpsc::Receiver<Vec<u8>>;

/// Sends bytes between members.
pub trait Transport: Send + Sync + 'static {
    /// Sends one message from member `from` to member `to`; it may be lost.
    fn send(&self, from: NodeId, to: NodeId, message: Vec<u8>);
}

/// The transport of a cluster of one: there is nobody to send to. Its inbox stays open and
/// empty while the transport lives.
pub struct NoPeers {
    _keep_open: mpsc::Sender<Vec<u8>>,
}

impl NoPeers {
    /// The transport and its (always empty) inbox.
    pub fn new() -> (Arc<NoPeers>, Inbox) {
        let (tx, rx) = mpsc::channel(1);
        (Arc::new(NoPeers { _keep_open: tx }), rx)
    }
}

impl Transport for NoPeers {
    fn send(&self, from: NodeId, to: NodeId, _message: Vec<u8>) {
        // Raft of one member sends nothing; a message here is a bug worth seeing in the logs.
        tracing::warn!(from, to, "a cluster of one has no member to send to");
    }
}

/// What [`SimNet`] does to messages, per mille and in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Messages dropped, per 1,000.
    pub drop_per_mille: u32,
    /// Messages delivered twice, per 1,000.
    pub duplicate_per_mille: u32,
    /// Each message is delayed by up to this many microseconds (uniform), which reorders them.
    pub delay_max_us: u64,
}

struct SimState {
    inboxes: BTreeMap<NodeId, mpsc::Sender<Vec<u8>>>,
    rng: StdRng,
    faults: Faults,
    /// Directed links that drop everything.
    cut: BTreeSet<(NodeId, NodeId)>,
}

/// An in-process network of members.
pub struct SimNet {
    state: Mutex<SimState>,
}

impl SimNet {
    /// A network with `faults`, its choices drawn from `seed`.
    pub fn new(seed: u64, faults: Faults) -> Arc<Self> {
        Arc::new(SimNet {
            state: Mutex::new(SimState {
                inboxes: BTreeMap::new(),
                rng: StdRng::seed_from_u64(seed),
                faults,
                cut: BTreeSet::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Member `id` joins (again): messages to it arrive in the returned inbox.
    pub fn join(&self, id: NodeId) -> Inbox {
        let (tx, rx) = mpsc::channel(INBOX_MESSAGES);
        self.lock().inboxes.insert(id, tx);
        rx
    }

    /// Member `id` is gone (killed): messages to it are lost.
    pub fn leave(&self, id: NodeId) {
        self.lock().inboxes.remove(&id);
    }

    /// Cuts member `id` off from every other member, both ways.
    pub fn isolate(&self, id: NodeId, members: &[NodeId]) {
        let mut s = self.lock();
        for &other in members {
            if other != id {
                s.cut.insert((id, other));
                s.cut.insert((other, id));
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    /// Changes the faults from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }
}

impl Transport for SimNet {
    fn send(&self, from: NodeId, to: NodeId, message: Vec<u8>) {
        let (tx, copies, delays) = {
            let mut s = self.lock();
            if s.cut.contains(&(from, to)) {
                return;
            }
            let Some(tx) = s.inboxes.get(&to).cloned() else {
                return;
            };
            let f = s.faults;
            if f.drop_per_mille > 0 && s.rng.random_range(0..1000) < f.drop_per_mille {
                return;
            }
            let copies = if f.duplicate_per_mille > 0 && s.rng.random_range(0..1000) < f.duplicate_per_mille {
                2
            } else {
                1
            };
            let mut delays = [0u64; 2];
            for d in delays.iter_mut().take(copies) {
                *d = if f.delay_max_us > 0 {
                    s.rng.random_range(0..=f.delay_max_us)
                } else {
                    0
                };
            }
            (tx, copies, delays)
        };
        for &delay_us in delays.iter().take(copies) {
            let m = message.clone();
            if delay_us == 0 {
                let _ = tx.try_send(m);
            } else {
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_micros(delay_us)).await;
                    let _ = tx.try_send(m);
                });
            }
        }
    }
}
