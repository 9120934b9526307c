//! The reference model: a simple, obviously correct (and slow) implementation of the rules of
//! `docs/ENGINE.md`. Orders live in one `Vec` in order-id order; the book is found by filtering
//! and sorting that `Vec`; risk counters are recomputed from it on every check; market data is
//! the difference of the whole book before and after each event. It shares nothing with the
//! engine's data structures (ladders, bitmaps, intrusive lists, hash tables, heaps); it reuses
//! only the types and `Position::fill` (average-cost accounting, unit-tested on its own).

use std::collections::BTreeMap;

use ordo_engine::config::DAY_NS;
use ordo_engine::*;

#[derive(Debug, Clone)]
struct MOrder {
    id: u64,
    clordid: ClOrdId,
    session: u32,
    account: u32,
    instrument: u32,
    side: Side,
    ord_type: OrdType,
    tif: TimeInForce,
    stp: StpMode,
    post_only: bool,
    price: i64,
    qty: u64,
    leaves: u64,
    cum: u64,
    cum_notional: i128,
    expire_ns: u64,
    /// Time priority: smaller rested earlier.
    prio: u64,
    resting: bool,
}

#[derive(Debug, Clone)]
struct MInst {
    spec: InstrumentSpec,
    reference: i64,
    last_trade: i64,
    halt: Option<HaltReason>,
    halted_until: u64,
    anchor_price: i64,
    anchor_ns: u64,
    anchor_set: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct MSession {
    per_second: u32,
    tokens: u64,
    refilled_ns: u64,
}

/// The model.
#[derive(Debug, Clone)]
pub struct Model {
    config: EngineConfig,
    now: u64,
    next_id: u64,
    next_trade: u64,
    next_prio: u64,
    next_day_end: u64,
    instruments: BTreeMap<u32, MInst>,
    orders: Vec<MOrder>,
    limits: BTreeMap<u32, AccountLimits>,
    killed: BTreeMap<u32, bool>,
    positions: BTreeMap<(u32, u32), Position>,
    sessions: BTreeMap<u32, MSession>,
}

enum Stop {
    Filled,
    Exhausted,
    SelfTrade,
    Breaker,
    Done,
}

fn crosses(side: Side, limit: i64, price: i64) -> bool {
    match side {
        Side::Buy => price <= limit,
        Side::Sell => price >= limit,
    }
}

fn beyond(price: i64, anchor: i64, bps: u32) -> bool {
    i128::from((price - anchor).abs()) * 10_000 > i128::from(anchor) * i128::from(bps)
}

type Market = (
    BTreeMap<(u32, usize, i64), (u64, u32)>,
    BTreeMap<u32, (i64, u64, i64, u64)>,
);

impl Model {
    pub fn new(config: EngineConfig) -> Self {
        Model {
            config,
            now: 0,
            next_id: 1,
            next_trade: 1,
            next_prio: 1,
            next_day_end: 0,
            instruments: BTreeMap::new(),
            orders: Vec::new(),
            limits: BTreeMap::new(),
            killed: BTreeMap::new(),
            positions: BTreeMap::new(),
            sessions: BTreeMap::new(),
        }
    }

    pub fn position(&self, account: u32, instrument: u32) -> Position {
        self.positions
            .get(&(account, instrument))
            .copied()
            .unwrap_or_default()
    }

    fn limits_of(&self, account: u32) -> AccountLimits {
        self.limits
            .get(&account)
            .copied()
            .unwrap_or(self.config.default_limits)
    }

    fn view(o: &MOrder) -> OrderView {
        OrderView {
            order_id: o.id,
            session: o.session,
            account: o.account,
            clordid: o.clordid,
            instrument: o.instrument,
            side: o.side,
            ord_type: o.ord_type,
            tif: o.tif,
            price: o.price,
            qty: o.qty,
            leaves: o.leaves,
            cum: o.cum,
            cum_notional: o.cum_notional,
        }
    }

    fn idx_of_id(&self, id: u64) -> Option<usize> {
        self.orders.iter().position(|o| o.id == id)
    }

    fn idx_of_clordid(&self, session: u32, clordid: &ClOrdId) -> Option<usize> {
        self.orders
            .iter()
            .position(|o| o.session == session && o.clordid == *clordid)
    }

    /// The market: every level (instrument, side, price) -> (qty, orders), and every
    /// instrument's top of book.
    fn market(&self) -> Market {
        let mut levels = BTreeMap::new();
        for o in self.orders.iter().filter(|o| o.resting) {
            let e = levels
                .entry((o.instrument, o.side.index(), o.price))
                .or_insert((0u64, 0u32));
            e.0 += o.leaves;
            e.1 += 1;
        }
        let mut tobs = BTreeMap::new();
        for &id in self.instruments.keys() {
            let best = |side: Side| {
                let prices = levels
                    .iter()
                    .filter(|((i, s, _), _)| *i == id && *s == side.index());
                let best = match side {
                    Side::Buy => prices.max_by_key(|((_, _, p), _)| *p),
                    Side::Sell => prices.min_by_key(|((_, _, p), _)| *p),
                };
                best.map_or((0, 0), |((_, _, p), (q, _))| (*p, *q))
            };
            let (bp, bq) = best(Side::Buy);
            let (ap, aq) = best(Side::Sell);
            tobs.insert(id, (bp, bq, ap, aq));
        }
        (levels, tobs)
    }

    pub fn apply(&mut self, ts: u64, cmd: &Command) -> Vec<Output> {
        assert!(ts >= self.now);
        self.now = ts;
        let (levels_before, tobs_before) = self.market();
        let mut out = Vec::new();
        self.time_rules(&mut out);
        match cmd {
            Command::NewOrder(c) => self.new_order(c, &mut out),
            Command::Cancel(c) => self.cancel(c, &mut out),
            Command::CancelReplace(c) => self.replace(c, &mut out),
            Command::MassCancel(c) => self.mass_cancel(c, &mut out),
            Command::ReferencePrice { instrument, price } => match self.instruments.get_mut(instrument) {
                None => out.push(Output::AdminRejected {
                    reason: Reason::UnknownInstrument,
                }),
                Some(_) if *price <= 0 => out.push(Output::AdminRejected {
                    reason: Reason::InvalidPrice,
                }),
                Some(i) => i.reference = *price,
            },
            Command::SessionDisconnected {
                session,
                cancel_orders,
            } => {
                if *cancel_orders {
                    let ids: Vec<u64> = self
                        .orders
                        .iter()
                        .filter(|o| o.session == *session)
                        .map(|o| o.id)
                        .collect();
                    for id in ids {
                        self.cancel_id(id, CancelReason::Disconnect, &mut out);
                    }
                }
            }
            Command::Admin(a) => self.admin(a, &mut out),
            Command::Tick => {}
        }
        let (levels_after, tobs_after) = self.market();
        let mut keys: Vec<_> = levels_before.keys().chain(levels_after.keys()).copied().collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let before = levels_before.get(&key).copied().unwrap_or((0, 0));
            let after = levels_after.get(&key).copied().unwrap_or((0, 0));
            if before != after {
                let side = if key.1 == 0 { Side::Buy } else { Side::Sell };
                out.push(Output::Level {
                    instrument: key.0,
                    side,
                    price: key.2,
                    qty: after.0,
                    orders: after.1,
                });
            }
        }
        for (id, after) in &tobs_after {
            let before = tobs_before.get(id).copied().unwrap_or((0, 0, 0, 0));
            if before != *after {
                out.push(Output::TopOfBook {
                    instrument: *id,
                    bid_price: after.0,
                    bid_qty: after.1,
                    ask_price: after.2,
                    ask_qty: after.3,
                });
            }
        }
        out
    }

    fn time_rules(&mut self, out: &mut Vec<Output>) {
        let due: Vec<u32> = self
            .instruments
            .iter()
            .filter(|(_, i)| i.halt == Some(HaltReason::CircuitBreaker) && i.halted_until <= self.now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.resume(id, out);
        }
        let mut expired: Vec<(u64, u64)> = self
            .orders
            .iter()
            .filter(|o| o.tif == TimeInForce::Gtd && o.resting && o.expire_ns <= self.now)
            .map(|o| (o.expire_ns, o.id))
            .collect();
        expired.sort_unstable();
        for (_, id) in expired {
            self.cancel_id(id, CancelReason::Expired, out);
        }
        if let Some(day_end) = self.config.day_end_ns {
            if self.next_day_end == 0 {
                self.next_day_end = self.now - self.now % DAY_NS + day_end;
                if self.next_day_end <= self.now {
                    self.next_day_end += DAY_NS;
                }
            } else if self.now >= self.next_day_end {
                let ids: Vec<u64> = self
                    .orders
                    .iter()
                    .filter(|o| o.tif == TimeInForce::Day)
                    .map(|o| o.id)
                    .collect();
                for id in ids {
                    self.cancel_id(id, CancelReason::DayEnd, out);
                }
                while self.next_day_end <= self.now {
                    self.next_day_end += DAY_NS;
                }
            }
        }
    }

    fn resume(&mut self, id: u32, out: &mut Vec<Output>) {
        let i = self.instruments.get_mut(&id).unwrap();
        i.halt = None;
        i.halted_until = 0;
        i.anchor_set = false;
        out.push(Output::Resumed { instrument: id });
    }

    fn take_token(&mut self, session: u32) -> bool {
        let now = self.now;
        let s = self.sessions.entry(session).or_default();
        if s.per_second == 0 {
            return true;
        }
        let token = 1_000_000_000u128;
        let capacity = u128::from(s.per_second) * token;
        let refill = u128::from(now.saturating_sub(s.refilled_ns)) * u128::from(s.per_second);
        let tokens = (u128::from(s.tokens) + refill).min(capacity);
        s.refilled_ns = now;
        if tokens >= token {
            s.tokens = (tokens - token) as u64;
            true
        } else {
            s.tokens = tokens as u64;
            false
        }
    }

    fn cancel_id(&mut self, id: u64, reason: CancelReason, out: &mut Vec<Output>) {
        let idx = self.idx_of_id(id).unwrap();
        let mut o = self.orders.remove(idx);
        let cancelled_qty = o.leaves;
        o.leaves = 0;
        o.resting = false;
        out.push(Output::Cancelled {
            order: Self::view(&o),
            cancelled_qty,
            reason,
        });
    }

    fn open_orders(&self, account: u32) -> u32 {
        self.orders
            .iter()
            .filter(|o| o.resting && o.account == account)
            .count() as u32
    }

    fn open_notional(&self, account: u32) -> i128 {
        self.orders
            .iter()
            .filter(|o| o.resting && o.account == account)
            .map(|o| i128::from(o.price) * i128::from(o.leaves))
            .sum()
    }

    fn exposure_with(&self, account: u32, instrument: u32, side: Side, extra: u64) -> i128 {
        let pos = i128::from(self.position(account, instrument).qty);
        let open: u64 = self
            .orders
            .iter()
            .filter(|o| o.resting && o.account == account && o.instrument == instrument && o.side == side)
            .map(|o| o.leaves)
            .sum();
        match side {
            Side::Buy => pos + i128::from(open) + i128::from(extra),
            Side::Sell => -pos + i128::from(open) + i128::from(extra),
        }
    }

    fn levels_in_use(&self) -> usize {
        let mut keys: Vec<_> = self
            .orders
            .iter()
            .filter(|o| o.resting)
            .map(|o| (o.instrument, o.side.index(), o.price))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys.len()
    }

    fn level_exists(&self, instrument: u32, side: Side, price: i64) -> bool {
        self.orders
            .iter()
            .any(|o| o.resting && o.instrument == instrument && o.side == side && o.price == price)
    }

    fn in_range(&self, instrument: u32, price: i64) -> bool {
        let s = &self.instruments[&instrument].spec;
        price >= s.min_price && price <= s.max_price
    }

    /// Resting orders on `side` of `instrument`, best first (price, then time).
    fn book(&self, instrument: u32, side: Side) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.orders.len())
            .filter(|&i| {
                self.orders[i].resting
                    && self.orders[i].instrument == instrument
                    && self.orders[i].side == side
            })
            .collect();
        idx.sort_by_key(|&i| {
            let o = &self.orders[i];
            let price_key = match side {
                Side::Buy => -o.price,
                Side::Sell => o.price,
            };
            (price_key, o.prio)
        });
        idx
    }

    fn check_new(&mut self, c: &NewOrder) -> Result<i64, Reason> {
        if c.session >= self.config.max_sessions {
            return Err(Reason::UnknownSession);
        }
        if !self.take_token(c.session) {
            return Err(Reason::Throttled);
        }
        let Some(inst) = self.instruments.get(&c.instrument).cloned() else {
            return Err(Reason::UnknownInstrument);
        };
        if c.account >= self.config.max_accounts {
            return Err(Reason::UnknownAccount);
        }
        if self.idx_of_clordid(c.session, &c.clordid).is_some() {
            return Err(Reason::DuplicateClOrdId);
        }
        if c.qty == 0 {
            return Err(Reason::InvalidQuantity);
        }
        match c.ord_type {
            OrdType::Limit => {
                if c.price <= 0 {
                    return Err(Reason::InvalidPrice);
                }
                if !self.in_range(c.instrument, c.price) {
                    return Err(Reason::PriceOutOfRange);
                }
            }
            OrdType::Market => {
                if c.price != 0 {
                    return Err(Reason::InvalidPrice);
                }
                if matches!(c.tif, TimeInForce::Gtc | TimeInForce::Gtd) {
                    return Err(Reason::InvalidTimeInForce);
                }
            }
        }
        if c.tif == TimeInForce::Gtd {
            if c.expire_ns == 0 {
                return Err(Reason::InvalidTimeInForce);
            }
            if c.expire_ns <= self.now {
                return Err(Reason::ExpiryInPast);
            }
        }
        let may_rest = c.ord_type == OrdType::Limit
            && matches!(c.tif, TimeInForce::Day | TimeInForce::Gtc | TimeInForce::Gtd);
        if c.post_only && !may_rest {
            return Err(Reason::InvalidPostOnly);
        }
        if inst.halt.is_some() {
            return Err(Reason::InstrumentHalted);
        }
        if self.killed.get(&c.account).copied().unwrap_or(false) {
            return Err(Reason::KillSwitchActive);
        }
        let limit = match c.ord_type {
            OrdType::Limit => c.price,
            OrdType::Market => {
                if inst.reference == 0 {
                    return Err(Reason::NoReferencePrice);
                }
                let bps = if inst.spec.collar_bps == 0 {
                    10_000
                } else {
                    inst.spec.collar_bps
                };
                let band = (i128::from(inst.reference) * i128::from(bps) / 10_000) as i64;
                match c.side {
                    Side::Buy => (inst.reference + band).min(inst.spec.max_price),
                    Side::Sell => (inst.reference - band).max(inst.spec.min_price),
                }
            }
        };
        let limits = self.limits_of(c.account);
        if c.qty > limits.max_order_qty {
            return Err(Reason::MaxOrderQty);
        }
        let notional = i128::from(limit) * i128::from(c.qty);
        if notional > limits.max_order_notional {
            return Err(Reason::MaxOrderNotional);
        }
        if c.ord_type == OrdType::Limit
            && inst.spec.collar_bps > 0
            && inst.reference != 0
            && beyond(c.price, inst.reference, inst.spec.collar_bps)
        {
            return Err(Reason::PriceCollar);
        }
        if may_rest && self.open_orders(c.account) >= limits.max_open_orders {
            return Err(Reason::MaxOpenOrders);
        }
        if self.exposure_with(c.account, c.instrument, c.side, c.qty) > i128::from(limits.max_position) {
            return Err(Reason::PositionLimit);
        }
        if self.open_notional(c.account) + notional > limits.credit_limit {
            return Err(Reason::CreditLimit);
        }
        if c.post_only {
            let opp = self.book(c.instrument, c.side.opposite());
            if opp
                .first()
                .is_some_and(|&i| crosses(c.side, c.price, self.orders[i].price))
            {
                return Err(Reason::PostOnlyWouldCross);
            }
        }
        if self.orders.len() >= self.config.max_orders as usize {
            return Err(Reason::OrderCapacity);
        }
        if may_rest
            && !self.level_exists(c.instrument, c.side, c.price)
            && self.levels_in_use() >= self.config.max_levels as usize
        {
            return Err(Reason::LevelCapacity);
        }
        Ok(limit)
    }

    fn new_order(&mut self, c: &NewOrder, out: &mut Vec<Output>) {
        let limit = match self.check_new(c) {
            Ok(l) => l,
            Err(reason) => {
                out.push(Output::Reject {
                    order: RejectedOrder {
                        session: c.session,
                        account: c.account,
                        clordid: c.clordid,
                        instrument: c.instrument,
                        side: c.side,
                        ord_type: c.ord_type,
                        price: c.price,
                        qty: c.qty,
                    },
                    reason,
                });
                return;
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        self.orders.push(MOrder {
            id,
            clordid: c.clordid,
            session: c.session,
            account: c.account,
            instrument: c.instrument,
            side: c.side,
            ord_type: c.ord_type,
            tif: c.tif,
            stp: c.stp,
            post_only: c.post_only,
            price: c.price,
            qty: c.qty,
            leaves: c.qty,
            cum: 0,
            cum_notional: 0,
            expire_ns: if c.tif == TimeInForce::Gtd { c.expire_ns } else { 0 },
            prio: 0,
            resting: false,
        });
        out.push(Output::Ack(Self::view(self.orders.last().unwrap())));
        if c.tif == TimeInForce::Fok && !self.fok_fillable(id, limit) {
            self.cancel_id(id, CancelReason::FokUnfilled, out);
            return;
        }
        let stop = self.match_order(id, limit, out);
        self.settle(id, stop, out);
    }

    fn anchor(&self, inst: &MInst) -> (i64, bool) {
        if !inst.anchor_set || self.now >= inst.anchor_ns.saturating_add(inst.spec.breaker_window_ns) {
            (
                if inst.last_trade != 0 {
                    inst.last_trade
                } else {
                    inst.reference
                },
                true,
            )
        } else {
            (inst.anchor_price, false)
        }
    }

    fn fok_fillable(&self, id: u64, limit: i64) -> bool {
        let o = &self.orders[self.idx_of_id(id).unwrap()];
        let inst = &self.instruments[&o.instrument];
        let anchor = if inst.spec.breaker_bps > 0 {
            self.anchor(inst).0
        } else {
            0
        };
        let mut needed = o.leaves;
        for i in self.book(o.instrument, o.side.opposite()) {
            let r = &self.orders[i];
            if !crosses(o.side, limit, r.price) {
                return false;
            }
            if anchor != 0 && beyond(r.price, anchor, inst.spec.breaker_bps) {
                return false;
            }
            if o.stp != StpMode::None && r.account == o.account {
                if o.stp != StpMode::CancelResting {
                    return false;
                }
                continue;
            }
            if r.leaves >= needed {
                return true;
            }
            needed -= r.leaves;
        }
        false
    }

    fn match_order(&mut self, id: u64, limit: i64, out: &mut Vec<Output>) -> Stop {
        loop {
            let ai = self.idx_of_id(id).unwrap();
            let a = self.orders[ai].clone();
            if a.leaves == 0 {
                return Stop::Filled;
            }
            let Some(&ri) = self.book(a.instrument, a.side.opposite()).first() else {
                return Stop::Exhausted;
            };
            let r = self.orders[ri].clone();
            if !crosses(a.side, limit, r.price) {
                return Stop::Exhausted;
            }
            if a.stp != StpMode::None && r.account == a.account {
                match a.stp {
                    StpMode::None => unreachable!(),
                    StpMode::CancelResting => {
                        self.cancel_id(r.id, CancelReason::SelfTrade, out);
                        continue;
                    }
                    StpMode::CancelIncoming => return Stop::SelfTrade,
                    StpMode::CancelBoth => {
                        self.cancel_id(r.id, CancelReason::SelfTrade, out);
                        return Stop::SelfTrade;
                    }
                    StpMode::DecrementAndCancel => {
                        let m = a.leaves.min(r.leaves);
                        if m == r.leaves {
                            self.cancel_id(r.id, CancelReason::SelfTrade, out);
                        } else {
                            let ri = self.idx_of_id(r.id).unwrap();
                            self.orders[ri].leaves -= m;
                            out.push(Output::Restated {
                                order: Self::view(&self.orders[ri]),
                                reduced_by: m,
                                reason: CancelReason::SelfTrade,
                            });
                        }
                        if m == a.leaves {
                            self.cancel_id(id, CancelReason::SelfTrade, out);
                            return Stop::Done;
                        }
                        let ai = self.idx_of_id(id).unwrap();
                        self.orders[ai].leaves -= m;
                        out.push(Output::Restated {
                            order: Self::view(&self.orders[ai]),
                            reduced_by: m,
                            reason: CancelReason::SelfTrade,
                        });
                        continue;
                    }
                }
            }
            // Circuit breaker.
            let inst = self.instruments[&a.instrument].clone();
            if inst.spec.breaker_bps > 0 {
                let (anchor, new_window) = self.anchor(&inst);
                if new_window {
                    let i = self.instruments.get_mut(&a.instrument).unwrap();
                    i.anchor_price = anchor;
                    i.anchor_ns = self.now;
                    i.anchor_set = true;
                }
                if anchor != 0 && beyond(r.price, anchor, inst.spec.breaker_bps) {
                    let until_ns = self.now.saturating_add(inst.spec.breaker_halt_ns);
                    let i = self.instruments.get_mut(&a.instrument).unwrap();
                    i.halt = Some(HaltReason::CircuitBreaker);
                    i.halted_until = until_ns;
                    out.push(Output::Halted {
                        instrument: a.instrument,
                        reason: HaltReason::CircuitBreaker,
                        until_ns,
                    });
                    return Stop::Breaker;
                }
            }
            let qty = a.leaves.min(r.leaves);
            let price = r.price;
            let notional = i128::from(price) * i128::from(qty);
            let ri = self.idx_of_id(r.id).unwrap();
            self.orders[ri].leaves -= qty;
            self.orders[ri].cum += qty;
            self.orders[ri].cum_notional += notional;
            let ai = self.idx_of_id(id).unwrap();
            self.orders[ai].leaves -= qty;
            self.orders[ai].cum += qty;
            self.orders[ai].cum_notional += notional;
            self.positions
                .entry((a.account, a.instrument))
                .or_default()
                .fill(a.side, price, qty);
            self.positions
                .entry((r.account, a.instrument))
                .or_default()
                .fill(a.side.opposite(), price, qty);
            self.instruments.get_mut(&a.instrument).unwrap().last_trade = price;
            let trade_id = self.next_trade;
            self.next_trade += 1;
            let av = Self::view(&self.orders[ai]);
            let rv = Self::view(&self.orders[ri]);
            let (buy, sell) = if a.side == Side::Buy { (av, rv) } else { (rv, av) };
            out.push(Output::Fill {
                trade_id,
                instrument: a.instrument,
                price,
                qty,
                aggressor: a.side,
                buy,
                sell,
            });
            if self.orders[ri].leaves == 0 {
                self.orders.remove(ri);
            }
        }
    }

    fn settle(&mut self, id: u64, stop: Stop, out: &mut Vec<Output>) {
        match stop {
            Stop::Done => {}
            Stop::Filled => {
                let i = self.idx_of_id(id).unwrap();
                self.orders.remove(i);
            }
            Stop::SelfTrade => self.cancel_id(id, CancelReason::SelfTrade, out),
            Stop::Breaker => self.cancel_id(id, CancelReason::CircuitBreaker, out),
            Stop::Exhausted => {
                let i = self.idx_of_id(id).unwrap();
                let o = &self.orders[i];
                if o.leaves == 0 {
                    self.orders.remove(i);
                } else if o.ord_type == OrdType::Limit
                    && matches!(o.tif, TimeInForce::Day | TimeInForce::Gtc | TimeInForce::Gtd)
                {
                    self.orders[i].resting = true;
                    self.orders[i].prio = self.next_prio;
                    self.next_prio += 1;
                } else {
                    self.cancel_id(id, CancelReason::Unfilled, out);
                }
            }
        }
    }

    fn find_target(&self, session: u32, target: &OrderRef) -> Result<usize, (Reason, u64)> {
        if target.order_id != 0 {
            let i = self.idx_of_id(target.order_id).ok_or((Reason::UnknownOrder, 0))?;
            if self.orders[i].session != session {
                return Err((Reason::NotYourOrder, target.order_id));
            }
            return Ok(i);
        }
        self.idx_of_clordid(session, &target.orig_clordid)
            .ok_or((Reason::UnknownOrder, 0))
    }

    fn cancel(&mut self, c: &Cancel, out: &mut Vec<Output>) {
        let found = if c.session >= self.config.max_sessions {
            Err((Reason::UnknownSession, 0))
        } else if !self.take_token(c.session) {
            Err((Reason::Throttled, 0))
        } else {
            self.find_target(c.session, &c.target)
        };
        match found {
            Ok(i) => {
                let id = self.orders[i].id;
                self.cancel_id(id, CancelReason::User, out);
            }
            Err((reason, order_id)) => out.push(Output::CancelReject {
                session: c.session,
                clordid: c.clordid,
                orig_clordid: c.target.orig_clordid,
                order_id,
                is_replace: false,
                reason,
            }),
        }
    }

    fn check_replace(&mut self, r: &CancelReplace) -> Result<usize, (Reason, u64)> {
        if r.session >= self.config.max_sessions {
            return Err((Reason::UnknownSession, 0));
        }
        if !self.take_token(r.session) {
            return Err((Reason::Throttled, 0));
        }
        let i = self.find_target(r.session, &r.target)?;
        let o = self.orders[i].clone();
        let fail = |reason| Err((reason, o.id));
        let inst = self.instruments[&o.instrument].clone();
        if inst.halt.is_some() {
            return fail(Reason::InstrumentHalted);
        }
        if r.clordid != o.clordid && self.idx_of_clordid(r.session, &r.clordid).is_some() {
            return fail(Reason::DuplicateClOrdId);
        }
        if r.qty == 0 || r.qty <= o.cum {
            return fail(Reason::InvalidQuantity);
        }
        if r.price <= 0 {
            return fail(Reason::InvalidPrice);
        }
        if !self.in_range(o.instrument, r.price) {
            return fail(Reason::PriceOutOfRange);
        }
        let limits = self.limits_of(o.account);
        if r.qty > limits.max_order_qty {
            return fail(Reason::MaxOrderQty);
        }
        if i128::from(r.price) * i128::from(r.qty) > limits.max_order_notional {
            return fail(Reason::MaxOrderNotional);
        }
        if r.price != o.price
            && inst.spec.collar_bps > 0
            && inst.reference != 0
            && beyond(r.price, inst.reference, inst.spec.collar_bps)
        {
            return fail(Reason::PriceCollar);
        }
        let new_leaves = r.qty - o.cum;
        if new_leaves > o.leaves
            && self.exposure_with(o.account, o.instrument, o.side, new_leaves - o.leaves)
                > i128::from(limits.max_position)
        {
            return fail(Reason::PositionLimit);
        }
        let old_notional = i128::from(o.price) * i128::from(o.leaves);
        let new_notional = i128::from(r.price) * i128::from(new_leaves);
        if new_notional > old_notional
            && self.open_notional(o.account) - old_notional + new_notional > limits.credit_limit
        {
            return fail(Reason::CreditLimit);
        }
        if o.post_only {
            let opp = self.book(o.instrument, o.side.opposite());
            if opp
                .first()
                .is_some_and(|&k| crosses(o.side, r.price, self.orders[k].price))
            {
                return fail(Reason::PostOnlyWouldCross);
            }
        }
        if r.price != o.price
            && !self.level_exists(o.instrument, o.side, r.price)
            && self.levels_in_use() >= self.config.max_levels as usize
        {
            return fail(Reason::LevelCapacity);
        }
        Ok(i)
    }

    fn replace(&mut self, r: &CancelReplace, out: &mut Vec<Output>) {
        let i = match self.check_replace(r) {
            Ok(i) => i,
            Err((reason, order_id)) => {
                out.push(Output::CancelReject {
                    session: r.session,
                    clordid: r.clordid,
                    orig_clordid: r.target.orig_clordid,
                    order_id,
                    is_replace: true,
                    reason,
                });
                return;
            }
        };
        let o = self.orders[i].clone();
        let new_leaves = r.qty - o.cum;
        self.orders[i].clordid = r.clordid;
        self.orders[i].qty = r.qty;
        self.orders[i].leaves = new_leaves;
        if r.price == o.price && new_leaves <= o.leaves {
            out.push(Output::Replaced {
                order: Self::view(&self.orders[i]),
                orig_clordid: o.clordid,
            });
            return;
        }
        self.orders[i].price = r.price;
        self.orders[i].resting = false;
        out.push(Output::Replaced {
            order: Self::view(&self.orders[i]),
            orig_clordid: o.clordid,
        });
        let stop = self.match_order(o.id, r.price, out);
        self.settle(o.id, stop, out);
    }

    fn mass_cancel(&mut self, m: &MassCancel, out: &mut Vec<Output>) {
        let rejected = if m.session >= self.config.max_sessions {
            Some(Reason::UnknownSession)
        } else if !self.take_token(m.session) {
            Some(Reason::Throttled)
        } else if m.account.is_some_and(|a| a >= self.config.max_accounts) {
            Some(Reason::UnknownAccount)
        } else if m.instrument.is_some_and(|i| !self.instruments.contains_key(&i)) {
            Some(Reason::UnknownInstrument)
        } else {
            None
        };
        let mut cancelled = 0;
        if rejected.is_none() {
            let ids: Vec<u64> = self
                .orders
                .iter()
                .filter(|o| {
                    (m.all_sessions || o.session == m.session)
                        && m.account.is_none_or(|a| o.account == a)
                        && m.instrument.is_none_or(|i| o.instrument == i)
                })
                .map(|o| o.id)
                .collect();
            for id in ids {
                self.cancel_id(id, CancelReason::MassCancel, out);
                cancelled += 1;
            }
        }
        out.push(Output::MassCancelDone {
            session: m.session,
            clordid: m.clordid,
            cancelled,
            rejected,
        });
    }

    fn admin(&mut self, a: &Admin, out: &mut Vec<Output>) {
        let result = match *a {
            Admin::UpsertInstrument(spec) => {
                let width = i128::from(spec.max_price) - i128::from(spec.min_price) + 1;
                let valid = spec.id < self.config.max_instruments
                    && !spec.symbol.is_empty()
                    && spec.tick_size_nanos > 0
                    && spec.lot_size > 0
                    && spec.min_price > 0
                    && width >= 1
                    && width <= i128::from(self.config.max_ladder_ticks)
                    && spec.collar_bps <= 10_000
                    && (spec.breaker_bps == 0 || (spec.breaker_window_ns > 0 && spec.breaker_halt_ns > 0));
                let has_orders = self.orders.iter().any(|o| o.instrument == spec.id);
                match self.instruments.get_mut(&spec.id) {
                    _ if !valid => Err(Reason::InvalidInstrument),
                    Some(i) => {
                        let range_changed =
                            i.spec.min_price != spec.min_price || i.spec.max_price != spec.max_price;
                        if range_changed && has_orders {
                            Err(Reason::InvalidInstrument)
                        } else {
                            i.spec = spec;
                            Ok(())
                        }
                    }
                    None => {
                        self.instruments.insert(
                            spec.id,
                            MInst {
                                spec,
                                reference: 0,
                                last_trade: 0,
                                halt: None,
                                halted_until: 0,
                                anchor_price: 0,
                                anchor_ns: 0,
                                anchor_set: false,
                            },
                        );
                        Ok(())
                    }
                }
            }
            Admin::SetAccountLimits { account, limits } => {
                if account >= self.config.max_accounts {
                    Err(Reason::UnknownAccount)
                } else {
                    self.limits.insert(account, limits);
                    Ok(())
                }
            }
            Admin::KillSwitch { account, active } => {
                if account >= self.config.max_accounts {
                    Err(Reason::UnknownAccount)
                } else {
                    self.killed.insert(account, active);
                    out.push(Output::KillSwitch { account, active });
                    if active {
                        let ids: Vec<u64> = self
                            .orders
                            .iter()
                            .filter(|o| o.account == account)
                            .map(|o| o.id)
                            .collect();
                        for id in ids {
                            self.cancel_id(id, CancelReason::KillSwitch, out);
                        }
                    }
                    Ok(())
                }
            }
            Admin::Halt { instrument } => match self.instruments.get_mut(&instrument) {
                None => Err(Reason::UnknownInstrument),
                Some(i) if i.halt == Some(HaltReason::Operator) => Ok(()),
                Some(i) => {
                    i.halt = Some(HaltReason::Operator);
                    i.halted_until = 0;
                    out.push(Output::Halted {
                        instrument,
                        reason: HaltReason::Operator,
                        until_ns: 0,
                    });
                    Ok(())
                }
            },
            Admin::Resume { instrument } => match self.instruments.get(&instrument).map(|i| i.halt) {
                None => Err(Reason::UnknownInstrument),
                Some(None) => Ok(()),
                Some(Some(_)) => {
                    self.resume(instrument, out);
                    Ok(())
                }
            },
            Admin::SetThrottle { session, per_second } => {
                if session >= self.config.max_sessions {
                    Err(Reason::UnknownSession)
                } else {
                    let now = self.now;
                    let s = self.sessions.entry(session).or_default();
                    s.per_second = per_second;
                    s.tokens = u64::from(per_second) * 1_000_000_000;
                    s.refilled_ns = now;
                    Ok(())
                }
            }
        };
        out.push(match result {
            Ok(()) => Output::AdminDone,
            Err(reason) => Output::AdminRejected { reason },
        });
    }
}
