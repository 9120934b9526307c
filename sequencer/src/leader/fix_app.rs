//! The node's FIX application: validated application messages become events for the
//! sequencer (NewOrderSingle, OrderCancelRequest, OrderCancelReplaceRequest,
//! OrderMassCancelRequest, OrderStatusRequest; MarketData W/X on a feed session). What the
//! gateway can refuse on its own (an account the session may not trade, a field value the
//! engine cannot represent) is answered at once with an ExecutionReport or a
//! BusinessMessageReject; everything else is sequenced and the engine decides.

use std::sync::Arc;

use ordo_engine::{
    Cancel, CancelReplace, ClOrdId, Command, MassCancel, NewOrder, OrdType, OrderRef, Side, StpMode,
    TimeInForce,
};

use crate::catalog::Catalog;
use crate::config::SessionKind;
use crate::leader::sequencing::{Inbound, InboundTx, Refused};
use crate::schema::Event;
use ordo_fix::message::Message;
use ordo_fix::session::{App, AppVerdict, Reply};
use ordo_fix::timefmt;

/// BusinessRejectReason (380) values.
mod business {
    pub const OTHER: u32 = 0;
    pub const UNKNOWN_SECURITY: u32 = 2;
    pub const APPLICATION_NOT_AVAILABLE: u32 = ordo_fix::session::BUSINESS_APPLICATION_NOT_AVAILABLE;
}

/// Id for an instrument the catalog does not know: the engine rejects it (UnknownInstrument).
const UNKNOWN_INSTRUMENT: u32 = u32::MAX;

/// The application of one session.
pub struct NodeApp {
    session: u32,
    catalog: Arc<Catalog>,
    tx: InboundTx,
}

impl std::fmt::Debug for NodeApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeApp")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// Why the gateway refuses an order before sequencing it.
enum Refusal {
    /// A BusinessMessageReject.
    Business(u32, &'static str, Option<u32>),
    /// An ExecutionReport 150=8 (a well-formed order the session may not send).
    Order(&'static str),
}

impl NodeApp {
    /// The application of session `session`.
    pub fn new(session: u32, catalog: Arc<Catalog>, tx: InboundTx) -> Self {
        NodeApp { session, catalog, tx }
    }

    fn info(&self) -> &crate::catalog::SessionInfo {
        &self.catalog.sessions[self.session as usize]
    }

    fn enqueue(&self, event: Event) -> AppVerdict {
        match self.tx.try_send(Inbound::Event(event)) {
            Ok(()) => AppVerdict::Accept,
            Err(Refused::Full) => AppVerdict::BusinessReject {
                reason: business::APPLICATION_NOT_AVAILABLE,
                text: "system busy: sequencer queue full",
                tag: None,
            },
            Err(Refused::Stopped) => AppVerdict::BusinessReject {
                reason: business::APPLICATION_NOT_AVAILABLE,
                text: "node shutting down",
                tag: None,
            },
        }
    }

    /// Sends a safety event (reset, cancel-on-disconnect): never refused for want of room (the
    /// safety lane's bound holds by construction); only a stopped sequencer refuses it, and
    /// then the node is stopping and the next start derives the session from the journal.
    fn safety(&self, event: Event) {
        if let Err(e) = self.tx.send_safety(self.session, event) {
            tracing::warn!(
                session = self.session,
                ?e,
                "safety event not sequenced: the sequencer has stopped"
            );
        }
    }

    fn clordid(msg: &Message<'_>, tag: i64) -> Result<ClOrdId, Refusal> {
        let v = msg.get(tag).unwrap_or_default();
        ClOrdId::new(v).ok_or(Refusal::Business(
            business::OTHER,
            "ClOrdID longer than 32 bytes",
            Some(tag as u32),
        ))
    }

    fn account(&self, msg: &Message<'_>) -> Result<u32, Refusal> {
        let allowed = &self.info().accounts;
        match msg.get(1) {
            None => allowed
                .first()
                .copied()
                .ok_or(Refusal::Order("session has no account")),
            Some(name) => match self.catalog.account_id(name) {
                Some(id) if allowed.contains(&id) => Ok(id),
                _ => Err(Refusal::Order("account not permitted for this session")),
            },
        }
    }

    fn target(msg: &Message<'_>) -> Result<OrderRef, Refusal> {
        let order_id = msg.get_u64(37).unwrap_or(0);
        Ok(OrderRef {
            order_id,
            orig_clordid: Self::clordid(msg, 41)?,
        })
    }

    fn new_order(&self, msg: &Message<'_>) -> Result<Event, Refusal> {
        let clordid = Self::clordid(msg, 11)?;
        let account = self.account(msg)?;
        let instrument = msg
            .get(55)
            .and_then(|s| self.catalog.instrument_id(s))
            .unwrap_or(UNKNOWN_INSTRUMENT);
        let side = match msg.get(54) {
            Some(b"1") => Side::Buy,
            Some(b"2") => Side::Sell,
            _ => return Err(Refusal::Order("unsupported side")),
        };
        let ord_type = match msg.get(40) {
            Some(b"1") => OrdType::Market,
            Some(b"2") => OrdType::Limit,
            _ => return Err(Refusal::Order("unsupported order type")),
        };
        let tif = match msg.get(59) {
            None | Some(b"0") => TimeInForce::Day,
            Some(b"1") => TimeInForce::Gtc,
            Some(b"3") => TimeInForce::Ioc,
            Some(b"4") => TimeInForce::Fok,
            Some(b"6") => TimeInForce::Gtd,
            _ => return Err(Refusal::Order("unsupported time in force")),
        };
        // Values the engine cannot represent become values it rejects with a reason: a
        // quantity that is not a whole number of lots -> 0 (InvalidQuantity), a price off the
        // tick grid -> -1 (InvalidPrice).
        let known = instrument != UNKNOWN_INSTRUMENT;
        let qty = if known {
            msg.get(38)
                .and_then(|q| self.catalog.qty_lots(instrument, q))
                .unwrap_or(0)
        } else {
            msg.get_u64(38).unwrap_or(0)
        };
        let price = match (ord_type, msg.get(44)) {
            (OrdType::Market, None) => 0,
            (OrdType::Market, Some(_)) => -1,
            (OrdType::Limit, None) => 0,
            (OrdType::Limit, Some(p)) if known => self.catalog.price_ticks(instrument, p).unwrap_or(-1),
            (OrdType::Limit, Some(_)) => 1,
        };
        let expire_ns = match tif {
            TimeInForce::Gtd => msg.get(126).and_then(timefmt::parse_timestamp).unwrap_or(0),
            _ => 0,
        };
        let post_only = msg
            .get(18)
            .is_some_and(|v| v.split(|&b| b == b' ').any(|x| x == b"6"));
        Ok(Event::Command {
            session: self.session,
            msg_seq: msg.get_u64(34).unwrap_or(0),
            command: Command::NewOrder(NewOrder {
                session: self.session,
                account,
                clordid,
                instrument,
                side,
                ord_type,
                tif,
                qty,
                price,
                expire_ns,
                post_only,
                stp: StpMode::None,
            }),
        })
    }

    fn order_message(&self, msg: &Message<'_>, reply: &mut Vec<Reply>) -> AppVerdict {
        let msg_seq = msg.get_u64(34).unwrap_or(0);
        let session = self.session;
        let event = match msg.msg_type() {
            b"D" => self.new_order(msg),
            b"F" => Self::clordid(msg, 11).and_then(|clordid| {
                Ok(Event::Command {
                    session,
                    msg_seq,
                    command: Command::Cancel(Cancel {
                        session,
                        clordid,
                        target: Self::target(msg)?,
                    }),
                })
            }),
            b"G" => Self::clordid(msg, 11).and_then(|clordid| {
                let target = Self::target(msg)?;
                let instrument = msg.get(55).and_then(|s| self.catalog.instrument_id(s));
                let qty = instrument
                    .and_then(|i| msg.get(38).and_then(|q| self.catalog.qty_lots(i, q)))
                    .unwrap_or(0);
                let price = instrument
                    .and_then(|i| msg.get(44).and_then(|p| self.catalog.price_ticks(i, p)))
                    .unwrap_or(-1);
                Ok(Event::Command {
                    session,
                    msg_seq,
                    command: Command::CancelReplace(CancelReplace {
                        session,
                        clordid,
                        target,
                        qty,
                        price,
                    }),
                })
            }),
            b"q" => Self::clordid(msg, 11).and_then(|clordid| {
                let instrument = match msg.get(530) {
                    Some(b"7") => None,
                    Some(b"1") => Some(
                        msg.get(55)
                            .and_then(|s| self.catalog.instrument_id(s))
                            .unwrap_or(UNKNOWN_INSTRUMENT),
                    ),
                    _ => {
                        return Err(Refusal::Business(
                            business::OTHER,
                            "MassCancelRequestType must be 1 or 7",
                            Some(530),
                        ));
                    }
                };
                Ok(Event::Command {
                    session,
                    msg_seq,
                    command: Command::MassCancel(MassCancel {
                        session,
                        clordid,
                        account: None,
                        instrument,
                        all_sessions: false,
                    }),
                })
            }),
            b"H" => Self::clordid(msg, 11).and_then(|order_clordid| {
                // The order is named by its ClOrdID (11) or OrderID (37); OrdStatusReqID (790)
                // names the request and comes back in the answer.
                let request = match msg.get(790) {
                    Some(v) => ClOrdId::new(v).ok_or(Refusal::Business(
                        business::OTHER,
                        "OrdStatusReqID longer than 32 bytes",
                        Some(790),
                    ))?,
                    None => ClOrdId::default(),
                };
                let target = OrderRef {
                    order_id: msg.get_u64(37).unwrap_or(0),
                    orig_clordid: order_clordid,
                };
                Ok(Event::StatusRequest {
                    session,
                    msg_seq,
                    clordid: request,
                    target,
                })
            }),
            _ => return AppVerdict::Unsupported,
        };
        match event {
            Ok(e) => self.enqueue(e),
            Err(Refusal::Business(reason, text, tag)) => AppVerdict::BusinessReject { reason, text, tag },
            Err(Refusal::Order(text)) => {
                reply.push(order_reject(msg, text));
                AppVerdict::Accept
            }
        }
    }

    fn market_data(&self, msg: &Message<'_>) -> AppVerdict {
        if msg.msg_type() != b"W" && msg.msg_type() != b"X" {
            return AppVerdict::Unsupported;
        }
        // Each MDEntryPx (270) updates the reference price of the symbol in force: the entry's
        // own Symbol (X) or the message's (W).
        let mut symbol: Option<&[u8]> = None;
        let mut sent = false;
        for f in msg.fields {
            match f.tag {
                55 => symbol = Some(msg.value(f)),
                270 => {
                    let Some(id) = symbol.and_then(|s| self.catalog.instrument_id(s)) else {
                        return AppVerdict::BusinessReject {
                            reason: business::UNKNOWN_SECURITY,
                            text: "Unknown Security",
                            tag: Some(55),
                        };
                    };
                    let Some(price) = self.catalog.price_ticks(id, msg.value(f)) else {
                        return AppVerdict::BusinessReject {
                            reason: business::OTHER,
                            text: "MDEntryPx off the tick grid",
                            tag: Some(270),
                        };
                    };
                    let verdict = self.enqueue(Event::Command {
                        session: self.session,
                        msg_seq: msg.get_u64(34).unwrap_or(0),
                        command: Command::ReferencePrice {
                            instrument: id,
                            price,
                        },
                    });
                    if !matches!(verdict, AppVerdict::Accept) {
                        return verdict;
                    }
                    sent = true;
                }
                _ => {}
            }
        }
        if sent {
            AppVerdict::Accept
        } else {
            AppVerdict::BusinessReject {
                reason: business::OTHER,
                text: "no MDEntryPx",
                tag: Some(270),
            }
        }
    }
}

/// An ExecutionReport refusing `msg` (an order the gateway will not sequence).
fn order_reject(msg: &Message<'_>, text: &'static str) -> Reply {
    let mut body: Vec<(u32, Vec<u8>)> = vec![
        (37, b"NONE".to_vec()),
        (17, format!("G-{}", msg.get_str(34).unwrap_or("0")).into_bytes()),
        (150, b"8".to_vec()),
        (39, b"8".to_vec()),
        (151, b"0".to_vec()),
        (14, b"0".to_vec()),
        (6, b"0".to_vec()),
        (103, b"99".to_vec()),
        (58, text.as_bytes().to_vec()),
    ];
    for tag in [11, 1, 55, 54, 38, 40, 44] {
        if let Some(v) = msg.get(tag) {
            body.push((tag as u32, v.to_vec()));
        }
    }
    if !msg.has(54) {
        body.push((54, b"1".to_vec()));
    }
    Reply {
        msg_type: b"8".to_vec(),
        body,
    }
}

impl App for NodeApp {
    fn on_app(&mut self, msg: &Message<'_>, reply: &mut Vec<Reply>) -> AppVerdict {
        match self.info().kind {
            SessionKind::Orders => self.order_message(msg, reply),
            SessionKind::MarketData => self.market_data(msg),
        }
    }

    fn refuse_logon(&mut self) -> Option<&'static str> {
        // Bounds the safety lane: a session has at most one connection's reset and disconnect
        // outstanding, so neither can meet a full lane.
        (self.tx.safety_outstanding(self.session) > 0)
            .then_some("previous connection's disconnect not yet sequenced: retry")
    }

    fn on_logon(&mut self, reset: bool) {
        if reset {
            self.safety(Event::SessionReset {
                session: self.session,
            });
        }
    }

    fn sequence_out(&mut self, connection: u64, msg: ordo_fix::session::Deferred) -> bool {
        let mut payload = Vec::with_capacity(16 + msg.fields.len());
        let out = crate::schema::SessionOut {
            session: self.session,
            connection,
            msg_type: &msg.msg_type,
            fields: &msg.fields,
        };
        if out.encode(&mut payload).is_none() {
            tracing::error!(
                session = self.session,
                "a session message over its bound: not sent"
            );
            return false;
        }
        self.tx.send_session_out(self.session, payload).is_ok()
    }

    fn on_logout(&mut self) {
        if self.info().cancel_on_disconnect {
            let session = self.session;
            self.safety(Event::Command {
                session,
                msg_seq: 0,
                command: Command::SessionDisconnected {
                    session,
                    cancel_orders: true,
                },
            });
        }
    }
}
