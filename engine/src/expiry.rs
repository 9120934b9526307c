//! GTD expiries: an indexed binary min-heap of order slots keyed by (expiry, order id). Each
//! order records its heap position, so a cancelled order leaves the heap in O(log n) and the
//! heap never holds more entries than there are live GTD orders (its capacity is fixed).

use crate::order::{NIL, OrderPool};

/// The heap.
#[derive(Debug, Clone)]
pub struct ExpiryHeap {
    heap: Vec<u32>,
}

#[inline]
fn key(orders: &OrderPool, slot: u32) -> (u64, u64) {
    let o = orders.get(slot);
    (o.expire_ns, o.id)
}

impl ExpiryHeap {
    /// Room for `capacity` orders, allocated here.
    pub fn new(capacity: u32) -> Self {
        ExpiryHeap {
            heap: Vec::with_capacity(capacity as usize),
        }
    }

    /// The slot expiring first, if any.
    #[inline]
    pub fn peek(&self) -> Option<u32> {
        self.heap.first().copied()
    }

    /// Adds an order (capacity is the order pool's, so this never reallocates).
    pub fn push(&mut self, orders: &mut OrderPool, slot: u32) {
        debug_assert!(self.heap.len() < self.heap.capacity());
        debug_assert_eq!(orders.get(slot).heap_pos, NIL);
        self.heap.push(slot);
        let pos = self.heap.len() - 1;
        orders.get_mut(slot).heap_pos = pos as u32;
        self.sift_up(orders, pos);
    }

    /// Removes an order (if it is in the heap).
    pub fn remove(&mut self, orders: &mut OrderPool, slot: u32) {
        let pos = orders.get(slot).heap_pos;
        if pos == NIL {
            return;
        }
        let pos = pos as usize;
        let last = self.heap.len() - 1;
        self.heap.swap(pos, last);
        self.heap.pop();
        orders.get_mut(slot).heap_pos = NIL;
        if pos < self.heap.len() {
            orders.get_mut(self.heap[pos]).heap_pos = pos as u32;
            self.sift_down(orders, pos);
            self.sift_up(orders, pos);
        }
    }

    fn swap(&mut self, orders: &mut OrderPool, a: usize, b: usize) {
        self.heap.swap(a, b);
        orders.get_mut(self.heap[a]).heap_pos = a as u32;
        orders.get_mut(self.heap[b]).heap_pos = b as u32;
    }

    fn sift_up(&mut self, orders: &mut OrderPool, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if key(orders, self.heap[pos]) >= key(orders, self.heap[parent]) {
                break;
            }
            self.swap(orders, pos, parent);
            pos = parent;
        }
    }

    fn sift_down(&mut self, orders: &mut OrderPool, mut pos: usize) {
        loop {
            let left = 2 * pos + 1;
            if left >= self.heap.len() {
                break;
            }
            let right = left + 1;
            let mut child = left;
            if right < self.heap.len() && key(orders, self.heap[right]) < key(orders, self.heap[left]) {
                child = right;
            }
            if key(orders, self.heap[child]) >= key(orders, self.heap[pos]) {
                break;
            }
            self.swap(orders, pos, child);
            pos = child;
        }
    }
}
