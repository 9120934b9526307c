//! The FIX port: bound when the node starts, so that a port another process listens on is an
//! error at once (two nodes starting together on one port find out at `listen`), but listening
//! only once the node can answer. Until then a connection is refused (RST) instead of
//! waiting in the kernel's backlog: a member restarting after a crash scans its journal and
//! replays its engine for up to a second, and a client that connected meanwhile sat there, its
//! Logon unanswered, while another member was already serving (measured: a session that tried
//! the restarting member first logged on 1 s late; `docs/REPLICATION.md`, 8.1).

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Connections waiting to be accepted, at most (the kernel's bound on the backlog).
const BACKLOG: i32 = 1024;

/// A bound FIX port that does not listen yet.
#[derive(Debug)]
pub struct FixPort {
    socket: Socket,
    addr: SocketAddr,
}

impl FixPort {
    /// Binds `addr` (with SO_REUSEADDR, as a listener would), without listening.
    pub fn bind(addr: SocketAddr) -> std::io::Result<FixPort> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        let addr = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| std::io::Error::other("bound to a non-IP address"))?;
        Ok(FixPort { socket, addr })
    }

    /// The address bound (its port, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts listening: connections are accepted from now on. Needs a tokio runtime.
    pub fn listen(self) -> std::io::Result<TcpListener> {
        self.socket.listen(BACKLOG)?;
        self.socket.set_nonblocking(true)?;
        TcpListener::from_std(self.socket.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bound_port_refuses_until_it_listens_and_a_port_in_use_is_an_error() {
        let port = FixPort::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = port.local_addr();
        assert_ne!(addr.port(), 0);
        let refused = std::net::TcpStream::connect(addr).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        // A second node on the same port, both still starting: found out when it listens.
        let twin = FixPort::bind(addr).unwrap();
        let listener = port.listen().unwrap();
        assert!(twin.listen().is_err(), "two listeners on one port");
        assert!(
            FixPort::bind(addr).is_err(),
            "a port another listens on is an error at bind"
        );
        let client = tokio::net::TcpStream::connect(addr);
        let (accepted, connected) = tokio::join!(listener.accept(), client);
        assert!(accepted.is_ok() && connected.is_ok());
    }
}
