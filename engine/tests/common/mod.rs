//! A harness for driving the engine in tests.
#![allow(dead_code)] // each test binary uses a different subset

use ordo_engine::*;

pub const AAA: InstrumentId = 0;
pub const BBB: InstrumentId = 1;
/// Reference price of both test instruments: 100.00 with a 0.01 tick.
pub const REF: i64 = 10_000;

pub fn clid(s: &str) -> ClOrdId {
    ClOrdId::from_text(s).unwrap()
}

pub fn spec(id: InstrumentId, symbol: &str) -> InstrumentSpec {
    InstrumentSpec {
        id,
        symbol: Symbol::from_text(symbol).unwrap(),
        tick_size_nanos: 10_000_000,
        lot_size: 1,
        min_price: 1,
        max_price: 100_000,
        collar_bps: 1_000,
        breaker_bps: 0,
        breaker_window_ns: 0,
        breaker_halt_ns: 0,
    }
}

pub fn small_config() -> EngineConfig {
    EngineConfig {
        max_instruments: 4,
        max_accounts: 16,
        max_sessions: 8,
        max_orders: 64,
        max_levels: 64,
        max_ladder_ticks: 200_000,
        day_end_ns: None,
        default_limits: AccountLimits::UNLIMITED,
    }
}

/// The engine plus a sequencer stand-in (sequence numbers, a clock advancing 1 us per event).
pub struct Harness {
    pub engine: Engine,
    pub seq: u64,
    pub now: u64,
}

impl Harness {
    pub fn with_config(config: EngineConfig) -> Self {
        let mut h = Harness {
            engine: Engine::new(config).unwrap(),
            seq: 0,
            now: 1_000_000_000,
        };
        for (id, sym) in [(AAA, "AAA"), (BBB, "BBB")] {
            assert_eq!(
                h.admin(Admin::UpsertInstrument(spec(id, sym))),
                vec![Output::AdminDone]
            );
            assert!(
                h.run(Command::ReferencePrice {
                    instrument: id,
                    price: REF
                })
                .is_empty()
            );
        }
        h
    }

    pub fn new() -> Self {
        Self::with_config(small_config())
    }

    /// Applies `cmd` 1 us after the previous event.
    pub fn run(&mut self, cmd: Command) -> Vec<Output> {
        self.at(self.now + 1_000, cmd)
    }

    /// Applies `cmd` at `ts`.
    pub fn at(&mut self, ts: u64, cmd: Command) -> Vec<Output> {
        self.seq += 1;
        self.now = ts;
        let mut out = Vec::new();
        self.engine.apply(self.seq, ts, &cmd, &mut out).unwrap();
        out
    }

    pub fn admin(&mut self, a: Admin) -> Vec<Output> {
        self.run(Command::Admin(a))
    }

    /// Order outputs only (no market data).
    pub fn orders_only(out: Vec<Output>) -> Vec<Output> {
        out.into_iter()
            .filter(|o| !matches!(o, Output::Level { .. } | Output::TopOfBook { .. }))
            .collect()
    }
}

/// A limit DAY order builder.
#[derive(Clone, Copy)]
pub struct Order(pub NewOrder);

pub fn limit(session: SessionId, account: AccountId, id: &str, side: Side, qty: u64, price: i64) -> Order {
    Order(NewOrder {
        session,
        account,
        clordid: clid(id),
        instrument: AAA,
        side,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Day,
        qty,
        price,
        expire_ns: 0,
        post_only: false,
        stp: StpMode::None,
    })
}

pub fn market(session: SessionId, account: AccountId, id: &str, side: Side, qty: u64) -> Order {
    let mut o = limit(session, account, id, side, qty, 0);
    o.0.ord_type = OrdType::Market;
    o.0.tif = TimeInForce::Ioc;
    o
}

impl Order {
    pub fn tif(mut self, tif: TimeInForce) -> Self {
        self.0.tif = tif;
        self
    }
    pub fn gtd(mut self, expire_ns: u64) -> Self {
        self.0.tif = TimeInForce::Gtd;
        self.0.expire_ns = expire_ns;
        self
    }
    pub fn post_only(mut self) -> Self {
        self.0.post_only = true;
        self
    }
    pub fn stp(mut self, stp: StpMode) -> Self {
        self.0.stp = stp;
        self
    }
    pub fn instrument(mut self, i: InstrumentId) -> Self {
        self.0.instrument = i;
        self
    }
    pub fn cmd(self) -> Command {
        Command::NewOrder(self.0)
    }
}

pub fn cancel(session: SessionId, id: &str, orig: &str) -> Command {
    Command::Cancel(Cancel {
        session,
        clordid: clid(id),
        target: OrderRef {
            order_id: 0,
            orig_clordid: clid(orig),
        },
    })
}

pub fn replace(session: SessionId, id: &str, orig: &str, qty: u64, price: i64) -> Command {
    Command::CancelReplace(CancelReplace {
        session,
        clordid: clid(id),
        target: OrderRef {
            order_id: 0,
            orig_clordid: clid(orig),
        },
        qty,
        price,
    })
}

pub fn reject_reason(out: &[Output]) -> Option<Reason> {
    out.iter().find_map(|o| match o {
        Output::Reject { reason, .. } => Some(*reason),
        _ => None,
    })
}

pub fn cancel_reject_reason(out: &[Output]) -> Option<Reason> {
    out.iter().find_map(|o| match o {
        Output::CancelReject { reason, .. } => Some(*reason),
        _ => None,
    })
}

/// (price, qty, buy clordid, sell clordid) of each fill.
pub fn fills(out: &[Output]) -> Vec<(i64, u64, String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Fill {
                price,
                qty,
                buy,
                sell,
                ..
            } => Some((*price, *qty, buy.clordid.to_string(), sell.clordid.to_string())),
            _ => None,
        })
        .collect()
}

/// (clordid, reason, cancelled qty) of each cancel.
pub fn cancels(out: &[Output]) -> Vec<(String, CancelReason, u64)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Cancelled {
                order,
                reason,
                cancelled_qty,
            } => Some((order.clordid.to_string(), *reason, *cancelled_qty)),
            _ => None,
        })
        .collect()
}

pub fn acked(out: &[Output]) -> bool {
    out.iter().any(|o| matches!(o, Output::Ack(_)))
}
