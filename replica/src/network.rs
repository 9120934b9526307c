//! openraft's network over a [`Transport`]: each request gets a correlation id and a waiter; the
//! member's dispatcher ([`crate::member`]) completes the waiter when the answer arrives; a late
//! answer finds no waiter and is dropped. A waiter is removed however its request ends: answered,
//! timed out, or abandoned by openraft (which times AppendEntries out itself after one heartbeat
//! interval and retries at once).
//!
//! openraft 0.9 backs off 500 ms after an `Unreachable` error, longer than an election timeout:
//! one lost answer under load would then cost a leader change. So a request times out here only
//! well after openraft's own timeout would have fired, and the back-off after `Unreachable` is one
//! heartbeat interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tokio::sync::oneshot;

use crate::transport::Transport;
use crate::types::{Member, NodeId, TypeConfig};
use crate::wire::{self, Request, Response, Wire};

/// Requests of one member waiting for their answers. Bounded by what openraft has in flight:
/// one AppendEntries per follower and one vote round; a waiter is removed when answered or
/// timed out.
pub struct Rpc {
    me: NodeId,
    transport: Arc<dyn Transport>,
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Response>>>,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
#[error("member {to}: {reason}")]
pub(crate) struct NoAnswer {
    to: NodeId,
    reason: &'static str,
}

impl Rpc {
    /// The requests of member `me`, sent over `transport`.
    pub fn new(me: NodeId, transport: Arc<dyn Transport>) -> Arc<Self> {
        Arc::new(Rpc {
            me,
            transport,
            next_id: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
        })
    }

    /// This member's id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The transport.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Response>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `body` to `to` and waits for its answer for at most `ttl` times
    /// [`RPC_TIMEOUT_FACTOR`].
    pub(crate) async fn call(&self, to: NodeId, body: Request, ttl: Duration) -> Result<Response, NoAnswer> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = wire::encode(&Wire::Request {
            id,
            from: self.me,
            body,
        })
        .map_err(|_| NoAnswer {
            to,
            reason: "request does not encode",
        })?;
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(id, tx);
        // Removes the waiter when this future ends or is dropped (openraft's own timeout).
        let _waiter = Waiter { rpc: self, id };
        self.transport.send(self.me, to, bytes);
        let answer = tokio::time::timeout(ttl * RPC_TIMEOUT_FACTOR, rx).await;
        match answer {
            Ok(Ok(r)) => Ok(r),
            _ => Err(NoAnswer {
                to,
                reason: "no answer in time",
            }),
        }
    }

    /// An answer arrived: wakes its waiter (none if it timed out: dropped).
    pub fn complete(&self, id: u64, response: Response) {
        if let Some(tx) = self.waiting().remove(&id) {
            let _ = tx.send(response);
        }
    }
}

/// A request times out after this many of openraft's time-to-live (openraft's own timeout, one
/// heartbeat interval for AppendEntries, fires first and retries without backing off).
const RPC_TIMEOUT_FACTOR: u32 = 4;

/// Removes a request's waiter when the request ends, however it ends.
struct Waiter<'a> {
    rpc: &'a Rpc,
    id: u64,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.rpc.waiting().remove(&self.id);
    }
}

/// Makes one [`Connection`] per peer.
pub struct Network {
    rpc: Arc<Rpc>,
    backoff: Duration,
}

impl Network {
    /// openraft's network for the member that owns `rpc`; after an unanswered request a peer is
    /// not sent to for `backoff` (one heartbeat interval).
    pub fn new(rpc: Arc<Rpc>, backoff: Duration) -> Self {
        Network { rpc, backoff }
    }
}

/// Requests to one peer.
pub struct Connection {
    rpc: Arc<Rpc>,
    target: NodeId,
    backoff: Duration,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &Member) -> Connection {
        Connection {
            rpc: Arc::clone(&self.rpc),
            target,
            backoff: self.backoff,
        }
    }
}

fn unreachable<E: std::error::Error>(e: NoAnswer) -> RPCError<NodeId, Member, E> {
    RPCError::Unreachable(Unreachable::new(&e))
}

fn mismatched<E: std::error::Error>(target: NodeId) -> RPCError<NodeId, Member, E> {
    RPCError::Network(NetworkError::new(&NoAnswer {
        to: target,
        reason: "answer of another kind",
    }))
}

impl RaftNetwork<TypeConfig> for Connection {
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.backoff))
    }

    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        match self
            .rpc
            .call(self.target, Request::Append(req), option.hard_ttl())
            .await
            .map_err(unreachable)?
        {
            Response::Append(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(mismatched(self.target)),
        }
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self
            .rpc
            .call(self.target, Request::Snapshot(req), option.hard_ttl())
            .await
            .map_err(unreachable)?
        {
            Response::Snapshot(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(mismatched(self.target)),
        }
    }

    async fn vote(
        &mut self,
        req: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        match self
            .rpc
            .call(self.target, Request::Vote(req), option.hard_ttl())
            .await
            .map_err(unreachable)?
        {
            Response::Vote(r) => r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e))),
            _ => Err(mismatched(self.target)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network that loses everything.
    struct BlackHole;
    impl Transport for BlackHole {
        fn send(&self, _from: NodeId, _to: NodeId, _message: Vec<u8>) {}
    }

    fn vote() -> Request {
        Request::Vote(VoteRequest::new(openraft::Vote::new(1, 1), None))
    }

    #[tokio::test]
    async fn a_waiter_is_removed_whether_the_request_times_out_or_is_abandoned() {
        let rpc = Rpc::new(1, Arc::new(BlackHole));
        let r = rpc.call(2, vote(), Duration::from_millis(1)).await;
        assert!(r.is_err());
        assert!(rpc.waiting().is_empty(), "a timed-out request left its waiter");
        // openraft drops the request future when its own timeout fires first.
        let abandoned = tokio::time::timeout(
            Duration::from_millis(1),
            rpc.call(2, vote(), Duration::from_secs(60)),
        )
        .await;
        assert!(abandoned.is_err());
        assert!(rpc.waiting().is_empty(), "an abandoned request left its waiter");
    }
}
