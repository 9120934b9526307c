//! Orders: a preallocated pool of slots with a free list, and intrusive doubly-linked lists that
//! thread live orders by acceptance (the global list, each session's, each account's), so that
//! mass cancels, kill switches and disconnects visit orders in order-id order without searching.

use crate::types::{
    AccountId, ClOrdId, InstrumentId, OrdType, OrderId, SessionId, Side, StpMode, TimeInForce,
};

/// The "no slot" link.
pub const NIL: u32 = u32::MAX;

/// Which intrusive list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Every live order.
    Global = 0,
    /// The orders of one session.
    Session = 1,
    /// The orders of one account.
    Account = 2,
}

/// Links of one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Previous slot or NIL.
    pub prev: u32,
    /// Next slot or NIL.
    pub next: u32,
}

const NO_LINK: Link = Link { prev: NIL, next: NIL };

/// Head and tail of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListHead {
    /// First slot or NIL.
    pub head: u32,
    /// Last slot or NIL.
    pub tail: u32,
}

impl Default for ListHead {
    fn default() -> Self {
        ListHead { head: NIL, tail: NIL }
    }
}

/// One order slot.
#[derive(Debug, Clone, Copy)]
pub struct Order {
    /// Engine order id (0 when the slot is free).
    pub id: OrderId,
    /// Client order id (current).
    pub clordid: ClOrdId,
    /// Session.
    pub session: SessionId,
    /// Account.
    pub account: AccountId,
    /// Instrument.
    pub instrument: InstrumentId,
    /// Side.
    pub side: Side,
    /// Order type.
    pub ord_type: OrdType,
    /// Time in force.
    pub tif: TimeInForce,
    /// Self-trade prevention.
    pub stp: StpMode,
    /// Post-only.
    pub post_only: bool,
    /// Limit price (0 for market).
    pub price: i64,
    /// Total quantity.
    pub qty: u64,
    /// Open quantity.
    pub leaves: u64,
    /// Filled quantity.
    pub cum: u64,
    /// Sum of fill price x quantity.
    pub cum_notional: i128,
    /// GTD expiry, ns; 0 if none.
    pub expire_ns: u64,
    /// Price level the order rests in, or NIL while not resting.
    pub level: u32,
    /// FIFO links inside the level.
    pub level_link: Link,
    /// Global, session and account list links.
    pub links: [Link; 3],
    /// Position in the expiry heap, or NIL.
    pub heap_pos: u32,
    /// Next free slot while free.
    pub next_free: u32,
}

impl Order {
    fn free(next_free: u32) -> Self {
        Order {
            id: 0,
            clordid: ClOrdId::default(),
            session: 0,
            account: 0,
            instrument: 0,
            side: Side::Buy,
            ord_type: OrdType::Limit,
            tif: TimeInForce::Day,
            stp: StpMode::None,
            post_only: false,
            price: 0,
            qty: 0,
            leaves: 0,
            cum: 0,
            cum_notional: 0,
            expire_ns: 0,
            level: NIL,
            level_link: NO_LINK,
            links: [NO_LINK; 3],
            heap_pos: NIL,
            next_free,
        }
    }

    /// An order with every field zero and no links: the base of a new order's fields.
    pub fn blank() -> Self {
        Order::free(NIL)
    }

    /// Whether the order rests in the book.
    #[inline]
    pub fn is_resting(&self) -> bool {
        self.level != NIL
    }
}

/// The pool: `capacity` slots allocated up front; a LIFO free list.
#[derive(Debug, Clone)]
pub struct OrderPool {
    slots: Vec<Order>,
    free_head: u32,
    live: u32,
}

impl OrderPool {
    /// A pool of `capacity` free slots.
    pub fn new(capacity: u32) -> Self {
        let slots = (0..capacity)
            .map(|i| Order::free(if i + 1 < capacity { i + 1 } else { NIL }))
            .collect();
        OrderPool {
            slots,
            free_head: if capacity > 0 { 0 } else { NIL },
            live: 0,
        }
    }

    /// Slots in use.
    pub fn live(&self) -> u32 {
        self.live
    }

    /// Whether a slot is free.
    pub fn has_free(&self) -> bool {
        self.free_head != NIL
    }

    /// Takes a free slot and fills it with `order`. `None` if the pool is full.
    #[inline]
    pub fn alloc(&mut self, order: Order) -> Option<u32> {
        let slot = self.free_head;
        if slot == NIL {
            return None;
        }
        self.free_head = self.slots[slot as usize].next_free;
        self.slots[slot as usize] = Order {
            next_free: NIL,
            ..order
        };
        self.live += 1;
        Some(slot)
    }

    /// Returns a slot to the pool.
    #[inline]
    pub fn release(&mut self, slot: u32) {
        let o = &self.slots[slot as usize];
        debug_assert!(o.id != 0, "double free");
        debug_assert!(o.level == NIL && o.heap_pos == NIL, "released while linked");
        self.slots[slot as usize] = Order::free(self.free_head);
        self.free_head = slot;
        self.live -= 1;
    }

    /// The order in `slot`.
    #[inline]
    pub fn get(&self, slot: u32) -> &Order {
        &self.slots[slot as usize]
    }

    /// The order in `slot`, mutably.
    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> &mut Order {
        &mut self.slots[slot as usize]
    }

    /// Appends `slot` to the tail of a list.
    #[inline]
    pub fn list_push(&mut self, list: &mut ListHead, kind: ListKind, slot: u32) {
        let k = kind as usize;
        self.slots[slot as usize].links[k] = Link {
            prev: list.tail,
            next: NIL,
        };
        if list.tail == NIL {
            list.head = slot;
        } else {
            self.slots[list.tail as usize].links[k].next = slot;
        }
        list.tail = slot;
    }

    /// Unlinks `slot` from a list.
    #[inline]
    pub fn list_remove(&mut self, list: &mut ListHead, kind: ListKind, slot: u32) {
        let k = kind as usize;
        let Link { prev, next } = self.slots[slot as usize].links[k];
        if prev == NIL {
            list.head = next;
        } else {
            self.slots[prev as usize].links[k].next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.slots[next as usize].links[k].prev = prev;
        }
        self.slots[slot as usize].links[k] = NO_LINK;
    }

    /// The slot after `slot` in a list.
    #[inline]
    pub fn list_next(&self, kind: ListKind, slot: u32) -> u32 {
        self.slots[slot as usize].links[kind as usize].next
    }
}
