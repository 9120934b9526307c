//! The order book of one instrument: per side, a ladder indexed by tick over the instrument's
//! price range, pointing into a shared pool of price levels; each level is an intrusive FIFO of
//! order slots. Add, cancel and best price are O(1); finding the next best price after a level
//! empties is O(log64 range) through a hierarchical bitmap.

use crate::bitmap::Bitmap;
use crate::order::{Link, NIL, OrderPool};
use crate::types::Side;

/// One price level.
#[derive(Debug, Clone, Copy)]
pub struct Level {
    /// Price in ticks.
    pub price: i64,
    /// Sum of the open quantity of its orders.
    pub qty: u64,
    /// Orders in it.
    pub count: u32,
    /// First order (highest time priority).
    pub head: u32,
    /// Last order.
    pub tail: u32,
    /// Last event that recorded this level as changed (market data).
    pub touched_epoch: u64,
    next_free: u32,
}

impl Level {
    fn free(next_free: u32) -> Self {
        Level {
            price: 0,
            qty: 0,
            count: 0,
            head: NIL,
            tail: NIL,
            touched_epoch: 0,
            next_free,
        }
    }
}

/// All price levels of the engine, preallocated.
#[derive(Debug, Clone)]
pub struct LevelPool {
    levels: Vec<Level>,
    free_head: u32,
}

impl LevelPool {
    /// `capacity` free levels.
    pub fn new(capacity: u32) -> Self {
        let levels = (0..capacity)
            .map(|i| Level::free(if i + 1 < capacity { i + 1 } else { NIL }))
            .collect();
        LevelPool {
            levels,
            free_head: if capacity > 0 { 0 } else { NIL },
        }
    }

    /// Whether a level is free.
    pub fn has_free(&self) -> bool {
        self.free_head != NIL
    }

    /// The level in `slot`.
    #[inline]
    pub fn get(&self, slot: u32) -> &Level {
        &self.levels[slot as usize]
    }

    /// The level in `slot`, mutably.
    #[inline]
    pub fn get_mut(&mut self, slot: u32) -> &mut Level {
        &mut self.levels[slot as usize]
    }

    fn alloc(&mut self, price: i64) -> Option<u32> {
        let slot = self.free_head;
        if slot == NIL {
            return None;
        }
        self.free_head = self.levels[slot as usize].next_free;
        self.levels[slot as usize] = Level {
            price,
            ..Level::free(NIL)
        };
        Some(slot)
    }

    fn release(&mut self, slot: u32) {
        self.levels[slot as usize] = Level::free(self.free_head);
        self.free_head = slot;
    }
}

/// One side of a book.
#[derive(Debug, Clone)]
pub struct Ladder {
    side: Side,
    min_price: i64,
    /// Level slot per tick (NIL: no level).
    index: Vec<u32>,
    occupied: Bitmap,
    best: Option<i64>,
}

impl Ladder {
    /// An empty ladder over `min_price ..= min_price + ticks - 1` (allocates once, here).
    pub fn new(side: Side, min_price: i64, ticks: u32) -> Self {
        Ladder {
            side,
            min_price,
            index: vec![NIL; ticks as usize],
            occupied: Bitmap::new(ticks as usize),
            best: None,
        }
    }

    /// Whether `price` lies in the ladder's range.
    #[inline]
    pub fn in_range(&self, price: i64) -> bool {
        price >= self.min_price && ((price - self.min_price) as u64) < self.index.len() as u64
    }

    #[inline]
    fn tick(&self, price: i64) -> usize {
        debug_assert!(self.in_range(price));
        (price - self.min_price) as usize
    }

    /// The best price (highest bid, lowest offer).
    #[inline]
    pub fn best(&self) -> Option<i64> {
        self.best
    }

    /// The level slot at `price`, or NIL.
    #[inline]
    pub fn level_at(&self, price: i64) -> u32 {
        if self.in_range(price) {
            self.index[self.tick(price)]
        } else {
            NIL
        }
    }

    /// The next price after `price`, going from best to worst.
    #[inline]
    pub fn next_worse(&self, price: i64) -> Option<i64> {
        let t = self.tick(price);
        let found = match self.side {
            Side::Buy => t.checked_sub(1).and_then(|t| self.occupied.prev_at_or_below(t)),
            Side::Sell => self.occupied.next_at_or_above(t + 1),
        };
        found.map(|t| self.min_price + t as i64)
    }

    /// Whether `a` is a better price than `b` on this side.
    #[inline]
    pub fn better(&self, a: i64, b: i64) -> bool {
        match self.side {
            Side::Buy => a > b,
            Side::Sell => a < b,
        }
    }

    /// Whether no level exists.
    pub fn is_empty(&self) -> bool {
        self.best.is_none()
    }

    /// Appends order `slot` (already filled in, with its price and leaves) to the FIFO at its
    /// price, creating the level if needed. Returns the level slot, or `None` if the level pool
    /// is exhausted (the caller checked capacity beforehand, so this is a bug guard).
    pub fn push_order(&mut self, levels: &mut LevelPool, orders: &mut OrderPool, slot: u32) -> Option<u32> {
        let (price, leaves) = {
            let o = orders.get(slot);
            (o.price, o.leaves)
        };
        let t = self.tick(price);
        let mut level_slot = self.index[t];
        if level_slot == NIL {
            level_slot = levels.alloc(price)?;
            self.index[t] = level_slot;
            self.occupied.set(t);
            if self.best.is_none_or(|b| self.better(price, b)) {
                self.best = Some(price);
            }
        }
        let level = levels.get_mut(level_slot);
        let tail = level.tail;
        level.qty += leaves;
        level.count += 1;
        level.tail = slot;
        if tail == NIL {
            level.head = slot;
        }
        if tail != NIL {
            orders.get_mut(tail).level_link.next = slot;
        }
        let o = orders.get_mut(slot);
        o.level = level_slot;
        o.level_link = Link {
            prev: tail,
            next: NIL,
        };
        Some(level_slot)
    }

    /// Unlinks resting order `slot` from its level, removing the level if it empties.
    pub fn remove_order(&mut self, levels: &mut LevelPool, orders: &mut OrderPool, slot: u32) {
        let (level_slot, Link { prev, next }, leaves) = {
            let o = orders.get(slot);
            (o.level, o.level_link, o.leaves)
        };
        debug_assert_ne!(level_slot, NIL, "order is resting");
        if prev != NIL {
            orders.get_mut(prev).level_link.next = next;
        }
        if next != NIL {
            orders.get_mut(next).level_link.prev = prev;
        }
        let level = levels.get_mut(level_slot);
        if prev == NIL {
            level.head = next;
        }
        if next == NIL {
            level.tail = prev;
        }
        level.qty -= leaves;
        level.count -= 1;
        let empty = level.count == 0;
        let price = level.price;
        let o = orders.get_mut(slot);
        o.level = NIL;
        o.level_link = Link { prev: NIL, next: NIL };
        if empty {
            debug_assert_eq!(levels.get(level_slot).qty, 0);
            let t = self.tick(price);
            self.index[t] = NIL;
            self.occupied.clear(t);
            levels.release(level_slot);
            if self.best == Some(price) {
                self.best = match self.side {
                    Side::Buy => t.checked_sub(1).and_then(|t| self.occupied.prev_at_or_below(t)),
                    Side::Sell => self.occupied.next_at_or_above(t + 1),
                }
                .map(|t| self.min_price + t as i64);
            }
        }
    }

    /// Reduces a resting order's open quantity in place (it keeps its time priority).
    pub fn reduce_order(&mut self, levels: &mut LevelPool, orders: &mut OrderPool, slot: u32, by: u64) {
        let o = orders.get_mut(slot);
        debug_assert!(o.is_resting() && by <= o.leaves);
        o.leaves -= by;
        let level_slot = o.level;
        levels.get_mut(level_slot).qty -= by;
    }
}

/// Both sides of an instrument's book.
#[derive(Debug, Clone)]
pub struct Book {
    /// Per side: `sides[Side::index()]`.
    pub sides: [Ladder; 2],
}

impl Book {
    /// An empty book over `min_price ..= max_price`.
    pub fn new(min_price: i64, max_price: i64) -> Self {
        let ticks = (max_price - min_price + 1) as u32;
        Book {
            sides: [
                Ladder::new(Side::Buy, min_price, ticks),
                Ladder::new(Side::Sell, min_price, ticks),
            ],
        }
    }

    /// One side.
    #[inline]
    pub fn side(&self, side: Side) -> &Ladder {
        &self.sides[side.index()]
    }

    /// One side, mutably.
    #[inline]
    pub fn side_mut(&mut self, side: Side) -> &mut Ladder {
        &mut self.sides[side.index()]
    }

    /// Whether both sides are empty.
    pub fn is_empty(&self) -> bool {
        self.sides[0].is_empty() && self.sides[1].is_empty()
    }
}
