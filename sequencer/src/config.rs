//! Node configuration: a TOML file, or the embedded defaults (`ordo node` with no file).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

/// The embedded default configuration: FIX on 127.0.0.1:9878, sessions CLIENT1..CLIENT8 (our
/// CompID ORDO), each trading account ACCn only, password `demo`; instruments AAA, BBB, CCC,
/// DDD with tick 0.01 and reference price 100.00; a market-data feed session FEED.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

/// What a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// Order entry (D, F, G, q, H).
    #[default]
    Orders,
    /// A market-data feed (W, X) that updates reference prices.
    MarketData,
}

/// One FIX session.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    /// Our CompID (the client's TargetCompID).
    pub sender_comp_id: String,
    /// The client's CompID.
    pub target_comp_id: String,
    /// Source addresses the session may connect from; empty (the default): any. A
    /// connection from elsewhere that names this session is closed before its Logon is read.
    #[serde(default)]
    pub allowed_addresses: Vec<IpAddr>,
    /// Logon Username (553), checked with `password` when set.
    #[serde(default)]
    pub username: Option<String>,
    /// Logon Password (554).
    #[serde(default)]
    pub password: Option<String>,
    /// Accounts the session may trade (Account, tag 1); the first is the default.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Reset sequence numbers at every logon.
    #[serde(default)]
    pub reset_on_logon: bool,
    /// Cancel the session's resting orders when it disconnects.
    #[serde(default)]
    pub cancel_on_disconnect: bool,
    /// Order-entry messages per second (0 = no throttle), counted on event time by the engine.
    #[serde(default)]
    pub throttle_per_second: u32,
    /// Accepted HeartBtInt range, seconds.
    #[serde(default = "default_heartbeat_min")]
    pub heartbeat_min_s: u64,
    /// See `heartbeat_min_s`.
    #[serde(default = "default_heartbeat_max")]
    pub heartbeat_max_s: u64,
    /// Orders or market data.
    #[serde(default)]
    pub kind: SessionKind,
    /// Application messages the session's resend window holds (the oldest leave first; a
    /// ResendRequest below the window is refused with a Logout that says so). Every member of
    /// a cluster must have the same bounds, or their answers to a resend differ.
    #[serde(default = "default_resend_window_messages")]
    pub resend_window_messages: usize,
    /// Bytes the session's resend window holds, at most.
    #[serde(default = "default_resend_window_bytes")]
    pub resend_window_bytes: usize,
}

fn default_resend_window_messages() -> usize {
    ordo_fix::window::DEFAULT_MAX_MESSAGES
}
fn default_resend_window_bytes() -> usize {
    ordo_fix::window::DEFAULT_MAX_BYTES
}

fn default_heartbeat_min() -> u64 {
    1
}
fn default_heartbeat_max() -> u64 {
    3600
}

/// One instrument.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentSettings {
    /// Symbol (FIX 55).
    pub symbol: String,
    /// Tick size as a decimal, e.g. "0.01".
    pub tick: String,
    /// Initial reference price as a decimal.
    pub reference: String,
    /// Lowest and highest price accepted, as decimals.
    #[serde(default = "default_min_price")]
    pub min_price: String,
    /// See `min_price`.
    #[serde(default = "default_max_price")]
    pub max_price: String,
    /// Collar around the reference, basis points.
    #[serde(default = "default_collar")]
    pub collar_bps: u32,
    /// Circuit breaker band, basis points (0 = none).
    #[serde(default)]
    pub breaker_bps: u32,
    /// Circuit breaker window, seconds.
    #[serde(default = "default_breaker_window")]
    pub breaker_window_s: u64,
    /// Circuit breaker halt, seconds.
    #[serde(default = "default_breaker_halt")]
    pub breaker_halt_s: u64,
}

impl InstrumentSettings {
    /// An instrument with the configuration file's defaults for everything but its symbol,
    /// tick and reference price (as `ordo admin add` starts from), except that its lowest
    /// price is one tick (the file's default, 0.01, is no multiple of a coarser tick).
    pub fn new(symbol: &str, tick: &str, reference: &str) -> Self {
        InstrumentSettings {
            symbol: symbol.to_string(),
            tick: tick.to_string(),
            reference: reference.to_string(),
            min_price: tick.to_string(),
            max_price: default_max_price(),
            collar_bps: default_collar(),
            breaker_bps: 0,
            breaker_window_s: default_breaker_window(),
            breaker_halt_s: default_breaker_halt(),
        }
    }
}

fn default_min_price() -> String {
    "0.01".into()
}
fn default_max_price() -> String {
    "10000.00".into()
}
fn default_collar() -> u32 {
    1_000
}
fn default_breaker_window() -> u64 {
    60
}
fn default_breaker_halt() -> u64 {
    30
}

/// The node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// FIX listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Data directory (journal, snapshots, admin socket).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Most connections at once (more are refused at accept).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a connection may take to log on.
    #[serde(default = "default_logon_timeout")]
    pub logon_timeout_s: u64,
    /// Largest FIX message accepted, bytes (a larger frame closes the connection).
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Messages queued for one session's socket before it is disconnected as too slow.
    #[serde(default = "default_outbound_bound")]
    pub outbound_queue: usize,
    /// Bound of the gateway -> sequencer queue, inputs; at the bound new messages get
    /// BusinessMessageReject "system busy".
    #[serde(default = "default_queue_bound")]
    pub inbound_queue: usize,
    /// Bound of the engine -> sessions channel, outputs; at the bound the engine waits.
    #[serde(default = "default_queue_bound")]
    pub outbound_channel: usize,
    /// Outputs the engine holds while they wait for durability; at the bound it stops
    /// applying records until the durable position advances.
    #[serde(default = "default_queue_bound")]
    pub max_held: usize,
    /// Journal durability: `none`, `batch`, `interval` or `interval:<us>`.
    #[serde(default = "default_durability")]
    pub durability: String,
    /// Clock: "system", "ptp:/dev/ptpN" or "test".
    #[serde(default = "default_clock")]
    pub clock: String,
    /// Idle strategy of the sequencer and engine threads: spin, yield or backoff.
    #[serde(default = "default_idle")]
    pub idle: String,
    /// Threads of the sequencer and engine: "inline" (on the gateway's thread, the default),
    /// "shared" (one thread of their own) or "dedicated" (a thread each).
    #[serde(default = "default_pipeline")]
    pub pipeline: String,
    /// Milliseconds between idle Tick events (time rules fire on time).
    #[serde(default = "default_tick")]
    pub tick_ms: u64,
    /// Sessions.
    #[serde(default, rename = "session")]
    pub sessions: Vec<SessionSettings>,
    /// Instruments.
    #[serde(default, rename = "instrument")]
    pub instruments: Vec<InstrumentSettings>,
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:9878".parse().expect("valid address")
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("ordo-data")
}
fn default_max_connections() -> usize {
    64
}
fn default_logon_timeout() -> u64 {
    10
}
fn default_max_message() -> usize {
    8 * 1024
}
fn default_outbound_bound() -> usize {
    100_000
}
fn default_queue_bound() -> usize {
    65_536
}
fn default_durability() -> String {
    "none".into()
}
fn default_clock() -> String {
    "system".into()
}
fn default_idle() -> String {
    "backoff".into()
}
fn default_pipeline() -> String {
    "inline".into()
}
fn default_tick() -> u64 {
    100
}

impl NodeConfig {
    /// Parses a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let cfg: NodeConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The embedded defaults.
    pub fn embedded() -> Self {
        Self::from_toml(DEFAULT_CONFIG).expect("the embedded configuration is valid")
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.sessions.is_empty() {
            return Err("no [[session]] configured".into());
        }
        for (i, a) in self.sessions.iter().enumerate() {
            for b in &self.sessions[i + 1..] {
                if a.sender_comp_id == b.sender_comp_id && a.target_comp_id == b.target_comp_id {
                    return Err(format!(
                        "session {}/{} configured twice",
                        a.sender_comp_id, a.target_comp_id
                    ));
                }
            }
            if a.username.is_some() != a.password.is_some() {
                return Err(format!(
                    "session {}: username and password go together",
                    a.target_comp_id
                ));
            }
            // A window must hold at least the largest message: else every report leaves it
            // as it is sent and no resend could be answered.
            if a.resend_window_messages == 0 || a.resend_window_bytes < self.max_message_bytes {
                return Err(format!(
                    "session {}: resend_window_messages must be positive and resend_window_bytes at least max_message_bytes ({})",
                    a.target_comp_id, self.max_message_bytes
                ));
            }
        }
        if self.inbound_queue == 0 || self.outbound_channel == 0 || self.max_held == 0 {
            return Err("inbound_queue, outbound_channel and max_held must be positive".into());
        }
        if self.max_connections == 0 || self.max_message_bytes < 256 || self.outbound_queue == 0 {
            return Err(
                "max_connections, max_message_bytes (>= 256) and outbound_queue must be positive".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window that cannot hold the largest message would lose every report as it is sent:
    /// refused at start, naming the session and the bound.
    #[test]
    fn a_resend_window_smaller_than_a_message_is_refused() {
        let cfg = NodeConfig::embedded();
        assert_eq!(cfg.sessions[0].resend_window_messages, 65_536);
        let small = DEFAULT_CONFIG.replacen(
            "cancel_on_disconnect = false",
            &format!(
                "cancel_on_disconnect = false\nresend_window_bytes = {}",
                cfg.max_message_bytes - 1
            ),
            1,
        );
        let e = NodeConfig::from_toml(&small).expect_err("refused");
        assert!(e.contains("CLIENT1") && e.contains("resend_window_bytes"), "{e}");
        let none = DEFAULT_CONFIG.replacen(
            "cancel_on_disconnect = false",
            "cancel_on_disconnect = false\nresend_window_messages = 0",
            1,
        );
        assert!(NodeConfig::from_toml(&none).is_err());
        let exact = DEFAULT_CONFIG.replacen(
            "cancel_on_disconnect = false",
            &format!(
                "cancel_on_disconnect = false\nresend_window_bytes = {}",
                cfg.max_message_bytes
            ),
            1,
        );
        assert!(NodeConfig::from_toml(&exact).is_ok());
    }
}
