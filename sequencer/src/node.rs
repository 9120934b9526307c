//! Running a node: the gateway, and (unless in echo mode) the sequencer and engine threads.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::NodeConfig;
use crate::echo::EchoApp;
use crate::fix::session::{MemoryStore, Session, SessionConfig};
use crate::gateway::{Gateway, GatewayLimits, Registry, Slot};

/// The FIX session settings of a configured session.
pub fn session_config(s: &crate::config::SessionSettings) -> SessionConfig {
    let mut c = SessionConfig::new(&s.sender_comp_id, &s.target_comp_id);
    c.reset_on_logon = s.reset_on_logon;
    c.heartbeat_min_s = s.heartbeat_min_s;
    c.heartbeat_max_s = s.heartbeat_max_s;
    c.credentials = s.username.clone().zip(s.password.clone());
    c
}

/// Gateway limits from the configuration.
pub fn limits(cfg: &NodeConfig) -> GatewayLimits {
    GatewayLimits {
        max_connections: cfg.max_connections,
        logon_timeout_s: cfg.logon_timeout_s,
        max_message_bytes: cfg.max_message_bytes,
        max_pending_bytes: cfg.outbound_queue.saturating_mul(256),
    }
}

/// Runs the echo node until `shutdown`: sessions with the echo application, in-memory stores.
pub async fn run_echo(cfg: NodeConfig, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    let mut registry = Registry::default();
    for (i, s) in cfg.sessions.iter().enumerate() {
        let session = Session::new(session_config(s), 1, 1);
        registry.add(Slot::new(i as u32, session, Box::new(MemoryStore::default()), Box::new(EchoApp::default())));
    }
    let gateway = Gateway::new(Arc::new(registry), limits(&cfg));
    gateway.serve(listener, shutdown).await;
}
