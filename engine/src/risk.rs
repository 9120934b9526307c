//! Per-account risk state, positions and P&L, and per-session throttles.

use crate::command::AccountLimits;
use crate::types::Side;

/// An account's risk state.
#[derive(Debug, Clone, Copy)]
pub struct Account {
    /// Limits.
    pub limits: AccountLimits,
    /// Kill switch on.
    pub killed: bool,
    /// Resting orders.
    pub open_orders: u32,
    /// Sum of price x open quantity over resting orders, tick-lots.
    pub open_notional: i128,
}

impl Account {
    /// A fresh account with `limits`.
    pub fn new(limits: AccountLimits) -> Self {
        Account {
            limits,
            killed: false,
            open_orders: 0,
            open_notional: 0,
        }
    }
}

/// An account's position in one instrument.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// Net position, lots (positive long).
    pub qty: i64,
    /// Cost basis of the open position, tick-lots, signed like `qty`.
    pub cost: i128,
    /// Realized P&L, tick-lots.
    pub realized: i128,
    /// Open quantity of resting buy orders.
    pub open_buy: u64,
    /// Open quantity of resting sell orders.
    pub open_sell: u64,
    /// Total bought.
    pub bought: u64,
    /// Total sold.
    pub sold: u64,
}

impl Position {
    /// Applies a fill of `qty` at `price` on `side`, with average-cost accounting: a fill that
    /// reduces the position releases `cost * closed / |qty|` of the cost basis (rounded toward
    /// zero; the remainder stays in the basis) and realizes the difference.
    pub fn fill(&mut self, side: Side, price: i64, qty: u64) {
        let signed = side.sign() * qty as i64;
        match side {
            Side::Buy => self.bought += qty,
            Side::Sell => self.sold += qty,
        }
        if self.qty == 0 || self.qty.signum() == signed.signum() {
            self.qty += signed;
            self.cost += i128::from(price) * i128::from(signed);
            return;
        }
        let closing = signed.unsigned_abs().min(self.qty.unsigned_abs());
        let released = self.cost * i128::from(closing) / i128::from(self.qty.unsigned_abs());
        let proceeds = i128::from(price) * i128::from(closing) * i128::from(self.qty.signum());
        self.realized += proceeds - released;
        self.cost -= released;
        self.qty += side.sign() * closing as i64;
        let opening = signed.unsigned_abs() - closing;
        if opening > 0 {
            debug_assert_eq!(self.qty, 0);
            debug_assert_eq!(self.cost, 0, "a fully closed position has no basis left");
            self.qty = side.sign() * opening as i64;
            self.cost = i128::from(price) * i128::from(self.qty);
        } else if self.qty == 0 {
            // Rounding remainders of pro-rata releases are realized when the position closes.
            self.realized -= self.cost;
            self.cost = 0;
        }
    }

    /// Worst-case exposure on `side` if `extra` more lots rest or trade there: long exposure for
    /// buys (position + open buys), short exposure for sells (-position + open sells).
    pub fn exposure_with(&self, side: Side, extra: u64) -> i128 {
        match side {
            Side::Buy => i128::from(self.qty) + i128::from(self.open_buy) + i128::from(extra),
            Side::Sell => -i128::from(self.qty) + i128::from(self.open_sell) + i128::from(extra),
        }
    }
}

/// A session's state: its throttle (a token bucket refilled on event time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Session {
    /// Messages per second; 0 = no throttle.
    pub per_second: u32,
    /// Tokens x 1e9 (a message costs 1e9), at most `per_second` x 1e9.
    pub tokens: u64,
    /// Time of the last refill.
    pub refilled_ns: u64,
}

const TOKEN: u64 = 1_000_000_000;

impl Session {
    /// Sets the throttle and fills the bucket.
    pub fn set_throttle(&mut self, per_second: u32, now_ns: u64) {
        self.per_second = per_second;
        self.tokens = u64::from(per_second) * TOKEN;
        self.refilled_ns = now_ns;
    }

    /// Takes one message's token at `now_ns`; false if throttled (nothing is taken then).
    pub fn take(&mut self, now_ns: u64) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let capacity = u64::from(self.per_second) * TOKEN;
        let elapsed = now_ns.saturating_sub(self.refilled_ns);
        let refill = u128::from(elapsed) * u128::from(self.per_second);
        self.tokens = (u128::from(self.tokens) + refill).min(u128::from(capacity)) as u64;
        self.refilled_ns = now_ns;
        if self.tokens >= TOKEN {
            self.tokens -= TOKEN;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_cost_pnl() {
        let mut p = Position::default();
        p.fill(Side::Buy, 100, 10);
        p.fill(Side::Buy, 110, 10); // 20 @ avg 105
        assert_eq!((p.qty, p.cost), (20, 2100));
        p.fill(Side::Sell, 120, 5); // realize 5 * (120 - 105) = 75
        assert_eq!((p.qty, p.cost, p.realized), (15, 1575, 75));
        p.fill(Side::Sell, 100, 25); // close 15 at 100: -75; open short 10 @ 100
        assert_eq!((p.qty, p.cost, p.realized), (-10, -1000, 0));
        p.fill(Side::Buy, 90, 10); // short covered 10 lower: +100
        assert_eq!((p.qty, p.cost, p.realized), (0, 0, 100));
        assert_eq!((p.bought, p.sold), (30, 30));
    }

    #[test]
    fn rounding_remainder_is_realized_on_close() {
        let mut p = Position::default();
        p.fill(Side::Buy, 10, 1);
        p.fill(Side::Buy, 11, 2); // 3 @ 32/3
        p.fill(Side::Sell, 12, 1); // releases 32/3 = 10
        p.fill(Side::Sell, 12, 2); // releases the remaining 22
        assert_eq!((p.qty, p.cost), (0, 0));
        assert_eq!(p.realized, 36 - 32);
    }

    #[test]
    fn throttle_refills_on_event_time() {
        let mut s = Session::default();
        assert!(s.take(0), "no throttle");
        s.set_throttle(2, 0);
        assert!(s.take(0));
        assert!(s.take(0));
        assert!(!s.take(0));
        assert!(!s.take(400_000_000)); // 0.8 token
        assert!(s.take(500_000_000)); // 1.0 token
        assert!(!s.take(500_000_000));
        assert!(s.take(10 * TOKEN));
        assert!(s.take(10 * TOKEN));
        assert!(!s.take(10 * TOKEN), "capacity is one second's worth");
    }
}
