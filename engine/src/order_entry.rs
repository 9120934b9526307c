//! Order entry: new orders (validation and pre-trade risk, in a fixed order), cancels,
//! cancel/replaces and mass cancels.

use crate::command::{Cancel, CancelReplace, MassCancel, NewOrder, OrderRef};
use crate::engine::Engine;
use crate::matching::{Stop, beyond_band, crosses};
use crate::order::{ListKind, NIL, Order};
use crate::output::{CancelReason, Output, OutputSink, Reason, RejectedOrder};
use crate::types::{OrdType, OrderId, SessionId, Side, TimeInForce};

impl Engine {
    /// Validates and risk-checks a new order; the first failing check is the reject reason.
    /// Returns the price to match up to (the limit, or the collar for a market order).
    fn check_new_order(&mut self, c: &NewOrder) -> Result<i64, Reason> {
        if c.session >= self.config.max_sessions {
            return Err(Reason::UnknownSession);
        }
        if !self.sessions[c.session as usize].take(self.now_ns) {
            return Err(Reason::Throttled);
        }
        let Some(inst) = self.instrument(c.instrument) else {
            return Err(Reason::UnknownInstrument);
        };
        if c.account >= self.config.max_accounts {
            return Err(Reason::UnknownAccount);
        }
        if self.find_clordid(c.session, &c.clordid).is_some() {
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
                if !inst.book.side(c.side).in_range(c.price) {
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
            if c.expire_ns <= self.now_ns {
                return Err(Reason::ExpiryInPast);
            }
        }
        let may_rest = c.ord_type == OrdType::Limit && c.tif.may_rest();
        if c.post_only && !may_rest {
            return Err(Reason::InvalidPostOnly);
        }
        if inst.halt.is_some() {
            return Err(Reason::InstrumentHalted);
        }
        let account = &self.accounts[c.account as usize];
        if account.killed {
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
        let limits = account.limits;
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
            && beyond_band(c.price, inst.reference, inst.spec.collar_bps)
        {
            return Err(Reason::PriceCollar);
        }
        if may_rest && account.open_orders >= limits.max_open_orders {
            return Err(Reason::MaxOpenOrders);
        }
        let position = self.positions[self.position_index(c.account, c.instrument)];
        if position.exposure_with(c.side, c.qty) > i128::from(limits.max_position) {
            return Err(Reason::PositionLimit);
        }
        if account.open_notional + notional > limits.credit_limit {
            return Err(Reason::CreditLimit);
        }
        if c.post_only
            && inst
                .book
                .side(c.side.opposite())
                .best()
                .is_some_and(|b| crosses(c.side, c.price, b))
        {
            return Err(Reason::PostOnlyWouldCross);
        }
        if !self.orders.has_free() {
            return Err(Reason::OrderCapacity);
        }
        if may_rest && inst.book.side(c.side).level_at(c.price) == NIL && !self.levels.has_free() {
            return Err(Reason::LevelCapacity);
        }
        Ok(limit)
    }

    pub(crate) fn new_order(&mut self, c: &NewOrder, out: &mut impl OutputSink) {
        let limit = match self.check_new_order(c) {
            Ok(limit) => limit,
            Err(reason) => {
                let order = RejectedOrder {
                    session: c.session,
                    account: c.account,
                    clordid: c.clordid,
                    instrument: c.instrument,
                    side: c.side,
                    ord_type: c.ord_type,
                    price: c.price,
                    qty: c.qty,
                };
                out.emit(Output::Reject { order, reason });
                return;
            }
        };
        let id = self.next_order_id;
        self.next_order_id += 1;
        let slot = self.register(Order {
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
            ..Order::blank()
        });
        out.emit(Output::Ack(self.view(slot)));
        if c.tif == TimeInForce::Fok && !self.fok_fillable(slot, limit) {
            self.cancel_unrested(slot, CancelReason::FokUnfilled, out);
            return;
        }
        let stop = self.match_order(slot, limit, out);
        self.settle(slot, stop, out);
    }

    /// Finds a live order of `session`: by engine id if given, else by client order id.
    fn find_target(&self, session: SessionId, target: &OrderRef) -> Result<u32, (Reason, OrderId)> {
        if target.order_id != 0 {
            let slot = self.find_id(target.order_id).ok_or((Reason::UnknownOrder, 0))?;
            if self.orders.get(slot).session != session {
                return Err((Reason::NotYourOrder, target.order_id));
            }
            return Ok(slot);
        }
        self.find_clordid(session, &target.orig_clordid)
            .ok_or((Reason::UnknownOrder, 0))
    }

    pub(crate) fn cancel(&mut self, c: &Cancel, out: &mut impl OutputSink) {
        let found = if c.session >= self.config.max_sessions {
            Err((Reason::UnknownSession, 0))
        } else if !self.sessions[c.session as usize].take(self.now_ns) {
            Err((Reason::Throttled, 0))
        } else {
            self.find_target(c.session, &c.target)
        };
        match found {
            Ok(slot) => self.cancel_resting(slot, CancelReason::User, out),
            Err((reason, order_id)) => out.emit(Output::CancelReject {
                session: c.session,
                clordid: c.clordid,
                orig_clordid: c.target.orig_clordid,
                order_id,
                is_replace: false,
                reason,
            }),
        }
    }

    /// Checks a replace; returns the order's slot.
    fn check_replace(&mut self, r: &CancelReplace) -> Result<u32, (Reason, OrderId)> {
        if r.session >= self.config.max_sessions {
            return Err((Reason::UnknownSession, 0));
        }
        if !self.sessions[r.session as usize].take(self.now_ns) {
            return Err((Reason::Throttled, 0));
        }
        let slot = self.find_target(r.session, &r.target)?;
        let o = *self.orders.get(slot);
        let fail = |reason| Err((reason, o.id));
        let inst = self
            .instrument(o.instrument)
            .expect("a live order's instrument exists");
        if inst.halt.is_some() {
            return fail(Reason::InstrumentHalted);
        }
        if r.clordid != o.clordid && self.find_clordid(r.session, &r.clordid).is_some() {
            return fail(Reason::DuplicateClOrdId);
        }
        if r.qty == 0 || r.qty <= o.cum {
            return fail(Reason::InvalidQuantity);
        }
        if r.price <= 0 {
            return fail(Reason::InvalidPrice);
        }
        if !inst.book.side(o.side).in_range(r.price) {
            return fail(Reason::PriceOutOfRange);
        }
        let limits = self.accounts[o.account as usize].limits;
        if r.qty > limits.max_order_qty {
            return fail(Reason::MaxOrderQty);
        }
        if i128::from(r.price) * i128::from(r.qty) > limits.max_order_notional {
            return fail(Reason::MaxOrderNotional);
        }
        if r.price != o.price
            && inst.spec.collar_bps > 0
            && inst.reference != 0
            && beyond_band(r.price, inst.reference, inst.spec.collar_bps)
        {
            return fail(Reason::PriceCollar);
        }
        let new_leaves = r.qty - o.cum;
        if new_leaves > o.leaves {
            let position = self.positions[self.position_index(o.account, o.instrument)];
            if position.exposure_with(o.side, new_leaves - o.leaves) > i128::from(limits.max_position) {
                return fail(Reason::PositionLimit);
            }
        }
        let old_notional = i128::from(o.price) * i128::from(o.leaves);
        let new_notional = i128::from(r.price) * i128::from(new_leaves);
        if new_notional > old_notional
            && self.accounts[o.account as usize].open_notional - old_notional + new_notional
                > limits.credit_limit
        {
            return fail(Reason::CreditLimit);
        }
        if o.post_only
            && inst
                .book
                .side(o.side.opposite())
                .best()
                .is_some_and(|b| crosses(o.side, r.price, b))
        {
            return fail(Reason::PostOnlyWouldCross);
        }
        if r.price != o.price && inst.book.side(o.side).level_at(r.price) == NIL && !self.levels.has_free() {
            return fail(Reason::LevelCapacity);
        }
        Ok(slot)
    }

    /// Cancel/replace: a quantity decrease at the same price keeps time priority; a price
    /// change or quantity increase loses it (the order goes to the back of its new level, and
    /// matches first if the new price crosses).
    pub(crate) fn replace(&mut self, r: &CancelReplace, out: &mut impl OutputSink) {
        let slot = match self.check_replace(r) {
            Ok(slot) => slot,
            Err((reason, order_id)) => {
                out.emit(Output::CancelReject {
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
        let o = *self.orders.get(slot);
        let new_leaves = r.qty - o.cum;
        self.rename(slot, r.clordid);
        if r.price == o.price && new_leaves <= o.leaves {
            if new_leaves < o.leaves {
                self.reduce_resting(slot, o.leaves - new_leaves);
            }
            self.orders.get_mut(slot).qty = r.qty;
            out.emit(Output::Replaced {
                order: self.view(slot),
                orig_clordid: o.clordid,
            });
            return;
        }
        self.unrest(slot);
        {
            let m = self.orders.get_mut(slot);
            m.price = r.price;
            m.qty = r.qty;
            m.leaves = new_leaves;
        }
        out.emit(Output::Replaced {
            order: self.view(slot),
            orig_clordid: o.clordid,
        });
        let stop = self.match_order(slot, r.price, out);
        debug_assert!(stop != Stop::Filled || self.orders.get(slot).leaves == 0);
        self.settle(slot, stop, out);
    }

    pub(crate) fn mass_cancel(&mut self, m: &MassCancel, out: &mut impl OutputSink) {
        let rejected = if m.session >= self.config.max_sessions {
            Some(Reason::UnknownSession)
        } else if !self.sessions[m.session as usize].take(self.now_ns) {
            Some(Reason::Throttled)
        } else if m.account.is_some_and(|a| a >= self.config.max_accounts) {
            Some(Reason::UnknownAccount)
        } else if m.instrument.is_some_and(|i| self.instrument(i).is_none()) {
            Some(Reason::UnknownInstrument)
        } else {
            None
        };
        let mut cancelled = 0u32;
        if rejected.is_none() {
            let (kind, mut slot) = match (m.account, m.all_sessions) {
                (Some(a), _) => (ListKind::Account, self.account_lists[a as usize].head),
                (None, false) => (ListKind::Session, self.session_lists[m.session as usize].head),
                (None, true) => (ListKind::Global, self.global.head),
            };
            while slot != NIL {
                let next = self.orders.list_next(kind, slot);
                let o = self.orders.get(slot);
                let selected = (m.all_sessions || o.session == m.session)
                    && m.account.is_none_or(|a| o.account == a)
                    && m.instrument.is_none_or(|i| o.instrument == i);
                if selected {
                    self.cancel_resting(slot, CancelReason::MassCancel, out);
                    cancelled += 1;
                }
                slot = next;
            }
        }
        out.emit(Output::MassCancelDone {
            session: m.session,
            clordid: m.clordid,
            cancelled,
            rejected,
        });
    }
}
