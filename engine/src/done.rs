//! Orders that have left the book (filled, cancelled, expired), so that an OrderStatusRequest
//! for one is answered with its true final state.
//!
//! Bounded: the last `max_orders` orders to finish are kept (the live orders' own bound, so at
//! most twice as many orders are known as can rest). The oldest is forgotten when the ring is
//! full; a status request for it is then answered as for an unknown order. An order is found by
//! its engine id, or by its session and final ClOrdID; a ClOrdID used again by a later order
//! that finished names the later one.
//!
//! Deterministic like the rest of the engine: filled in the order orders finish, never
//! iterated by hash. Its digest (folded over every order recorded) is in the state hash, and
//! the snapshot holds the ring, oldest first.

use crate::output::{CancelReason, OrderView};
use crate::slot_table::{SlotTable, hash_bytes, mix64};
use crate::types::{ClOrdId, OrderId, SessionId};

/// How an order ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Filled completely.
    Filled,
    /// Cancelled (its remainder), and why.
    Cancelled(CancelReason),
}

impl Ending {
    /// Whether it ended by expiring (GTD, or a DAY order at the end of the day).
    pub fn expired(self) -> bool {
        matches!(
            self,
            Ending::Cancelled(CancelReason::Expired | CancelReason::DayEnd)
        )
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Ending::Filled => 0,
            Ending::Cancelled(r) => r as u8,
        }
    }

    /// The inverse of [`Ending::code`] (a snapshot's byte); None for a byte no ending has.
    pub(crate) fn from_code(code: u8) -> Option<Ending> {
        use CancelReason as R;
        let reason = match code {
            0 => return Some(Ending::Filled),
            1 => R::User,
            2 => R::Unfilled,
            3 => R::FokUnfilled,
            4 => R::SelfTrade,
            5 => R::KillSwitch,
            6 => R::Disconnect,
            7 => R::Expired,
            8 => R::DayEnd,
            9 => R::CircuitBreaker,
            10 => R::MassCancel,
            _ => return None,
        };
        debug_assert_eq!(reason as u8, code);
        Some(Ending::Cancelled(reason))
    }
}

/// An order that has finished: its last view (leaves 0) and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoneOrder {
    /// The order as it ended.
    pub view: OrderView,
    /// How.
    pub ending: Ending,
}

/// The ring of finished orders and its two indexes.
#[derive(Debug, Clone)]
pub(crate) struct DoneOrders {
    ring: Vec<DoneOrder>,
    capacity: usize,
    /// Where the next order goes once the ring is full.
    next: usize,
    by_id: SlotTable,
    by_clordid: SlotTable,
    digest: u64,
}

fn clordid_key(session: SessionId, clordid: &ClOrdId) -> u64 {
    hash_bytes(u64::from(session), clordid.as_bytes())
}

impl DoneOrders {
    /// Room for `capacity` finished orders (allocated once; pages are touched as it fills).
    pub(crate) fn new(capacity: u32) -> Self {
        let capacity = capacity.max(1) as usize;
        DoneOrders {
            ring: Vec::with_capacity(capacity),
            capacity,
            next: 0,
            by_id: SlotTable::new(capacity),
            by_clordid: SlotTable::new(capacity),
            digest: 0,
        }
    }

    /// Records an order that has finished, forgetting the oldest if the ring is full.
    pub(crate) fn record(&mut self, done: DoneOrder) {
        let v = &done.view;
        debug_assert_eq!(v.leaves, 0, "a finished order has nothing open");
        // The same session and ClOrdID finished before: the newer order takes the name.
        let key = clordid_key(v.session, &v.clordid);
        if let Some(old) = self.find_clordid(v.session, &v.clordid) {
            self.by_clordid.remove(key, old);
        }
        let slot = if self.ring.len() < self.capacity {
            self.ring.push(done);
            self.ring.len() - 1
        } else {
            let slot = self.next;
            self.forget(slot);
            self.ring[slot] = done;
            slot
        };
        self.next = (slot + 1) % self.capacity;
        let slot_u32 = u32::try_from(slot).expect("ring within u32");
        self.by_id.insert(mix64(v.order_id), slot_u32);
        self.by_clordid.insert(key, slot_u32);
        self.digest = mix64(
            self.digest ^ mix64(v.order_id) ^ (u64::from(done.ending.code()) << 56) ^ v.cum.rotate_left(17),
        );
    }

    /// Drops the index entries of the order in `slot`, about to be overwritten.
    fn forget(&mut self, slot: usize) {
        let old = self.ring[slot].view;
        let slot_u32 = slot as u32;
        self.by_id.remove(mix64(old.order_id), slot_u32);
        // Absent if a later order with the same ClOrdID took the name.
        self.by_clordid
            .remove(clordid_key(old.session, &old.clordid), slot_u32);
    }

    fn find_clordid(&self, session: SessionId, clordid: &ClOrdId) -> Option<u32> {
        let ring = &self.ring;
        self.by_clordid.find(clordid_key(session, clordid), |s| {
            let v = &ring[s as usize].view;
            v.session == session && v.clordid == *clordid
        })
    }

    /// The finished order with engine id `id`, if still kept.
    pub(crate) fn by_id(&self, id: OrderId) -> Option<DoneOrder> {
        let ring = &self.ring;
        self.by_id
            .find(mix64(id), |s| ring[s as usize].view.order_id == id)
            .map(|s| ring[s as usize])
    }

    /// The last finished order of `session` named `clordid`, if still kept.
    pub(crate) fn by_clordid(&self, session: SessionId, clordid: &ClOrdId) -> Option<DoneOrder> {
        self.find_clordid(session, clordid).map(|s| self.ring[s as usize])
    }

    /// The digest of every order recorded (in the state hash).
    pub(crate) fn digest(&self) -> u64 {
        self.digest
    }

    /// The orders kept, oldest first (for the snapshot).
    pub(crate) fn oldest_first(&self) -> impl Iterator<Item = &DoneOrder> {
        let split = if self.ring.len() < self.capacity {
            0
        } else {
            self.next
        };
        self.ring[split..].iter().chain(&self.ring[..split])
    }

    /// Sets the digest (a restored snapshot carries it: the ring alone cannot give it back
    /// once orders were forgotten).
    pub(crate) fn set_digest(&mut self, digest: u64) {
        self.digest = digest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{OrdType, Side, TimeInForce};

    fn done(id: u64, session: u32, clordid: &str, ending: Ending) -> DoneOrder {
        DoneOrder {
            view: OrderView {
                order_id: id,
                session,
                account: 1,
                clordid: ClOrdId::new(clordid.as_bytes()).unwrap(),
                instrument: 1,
                side: Side::Buy,
                ord_type: OrdType::Limit,
                tif: TimeInForce::Day,
                price: 100,
                qty: 10,
                leaves: 0,
                cum: if ending == Ending::Filled { 10 } else { 3 },
                cum_notional: 1000,
            },
            ending,
        }
    }

    #[test]
    fn the_last_orders_to_finish_are_kept_and_the_oldest_forgotten() {
        let mut d = DoneOrders::new(3);
        d.record(done(1, 1, "a", Ending::Filled));
        d.record(done(2, 1, "b", Ending::Cancelled(CancelReason::User)));
        d.record(done(3, 2, "a", Ending::Cancelled(CancelReason::Expired)));
        assert_eq!(d.by_id(2).unwrap().ending, Ending::Cancelled(CancelReason::User));
        let a = |s| ClOrdId::new(b"a").map(|c| (s, c)).unwrap();
        assert_eq!(d.by_clordid(a(1).0, &a(1).1).unwrap().view.order_id, 1);
        assert!(d.by_clordid(2, &a(2).1).unwrap().ending.expired());
        // A fourth: the first is forgotten, by id and by name.
        d.record(done(4, 1, "d", Ending::Filled));
        assert_eq!(d.by_id(1), None);
        assert_eq!(d.by_clordid(1, &a(1).1), None);
        let kept: Vec<u64> = d.oldest_first().map(|o| o.view.order_id).collect();
        assert_eq!(kept, [2, 3, 4]);
        // A ClOrdID used again: the later order takes the name; the earlier stays known by id
        // until it is forgotten, which leaves the later one's name alone.
        d.record(done(5, 1, "b", Ending::Filled));
        assert_eq!(
            d.by_clordid(1, &ClOrdId::new(b"b").unwrap())
                .unwrap()
                .view
                .order_id,
            5
        );
        assert_eq!(d.by_id(2), None, "2 was the oldest and is forgotten");
        d.record(done(6, 1, "x", Ending::Filled));
        d.record(done(7, 1, "y", Ending::Filled));
        assert_eq!(
            d.by_clordid(1, &ClOrdId::new(b"b").unwrap())
                .unwrap()
                .view
                .order_id,
            5
        );
        d.record(done(8, 1, "z", Ending::Filled));
        assert_eq!(d.by_clordid(1, &ClOrdId::new(b"b").unwrap()), None);
    }
}
