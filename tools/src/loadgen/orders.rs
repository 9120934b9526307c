//! The load generator's order flow: which request comes next (new order, cancel, replace), and
//! which of our orders are open (so cancels and replaces name live orders and the book stays
//! bounded). Every request has a global index `k`, which is also its ClOrdID; its session is
//! `k % sessions`.

/// Bound of the requests one run may plan (memory: ~10 bytes each).
pub const MAX_REQUESTS: u64 = 200_000_000;

/// What a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// NewOrderSingle, limit, day.
    New {
        /// Index into the symbol list.
        symbol: u8,
        /// 1 buy, 2 sell.
        side: u8,
        /// Lots.
        qty: u32,
        /// Price in ticks from the base price (may be negative).
        offset_ticks: i32,
    },
    /// OrderCancelRequest of open order `orig`.
    Cancel {
        /// ClOrdID of the order.
        orig: u64,
    },
    /// OrderCancelReplaceRequest of open order `orig` to a new price.
    Replace {
        /// ClOrdID of the order.
        orig: u64,
        /// New price in ticks from the base price.
        offset_ticks: i32,
    },
}

/// The order mix, in percent of requests (the rest are new orders).
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Cancels.
    pub cancel_pct: u32,
    /// Replaces.
    pub replace_pct: u32,
    /// Open orders per session beyond which the next request is a cancel.
    pub max_open: usize,
    /// Prices are base +- `band_ticks`: buys and sells overlap, so about half the orders trade.
    pub band_ticks: u32,
    /// Quantity 1..=max_qty lots.
    pub max_qty: u32,
    /// Symbols to spread the orders over.
    pub symbols: u8,
}

/// xorshift64*: a seeded, fast, good-enough generator (the same seed plans the same run).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded; 0 is mapped to a fixed non-zero state.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Open orders of all sessions, and what each request was.
pub struct Orders {
    mix: Mix,
    rng: Rng,
    sessions: usize,
    /// Per request: symbol and side (replaces inherit them), for cancels and replaces.
    symbol_of: Vec<u8>,
    side_of: Vec<u8>,
    qty_of: Vec<u32>,
    /// Per request: its index in its session's open list, or `u32::MAX`.
    open_pos: Vec<u32>,
    open: Vec<Vec<u64>>,
}

/// Not in an open list.
const NOT_OPEN: u32 = u32::MAX;

impl Orders {
    /// Room for `requests` requests over `sessions` sessions.
    pub fn new(mix: Mix, seed: u64, sessions: usize, requests: u64) -> Orders {
        assert!(requests <= MAX_REQUESTS, "requests bounded by MAX_REQUESTS");
        assert!(sessions > 0 && mix.symbols > 0 && mix.max_qty > 0);
        let n = requests as usize;
        Orders {
            mix,
            rng: Rng::new(seed),
            sessions,
            symbol_of: vec![0; n],
            side_of: vec![0; n],
            qty_of: vec![0; n],
            open_pos: vec![NOT_OPEN; n],
            open: (0..sessions)
                .map(|_| Vec::with_capacity(mix.max_open + 1))
                .collect(),
        }
    }

    /// The session of request `k`.
    pub fn session_of(&self, k: u64) -> usize {
        (k % self.sessions as u64) as usize
    }

    /// Symbol index, side and quantity of request `k` (for cancels and replaces: the order's).
    pub fn order_of(&self, k: u64) -> (u8, u8, u32) {
        let i = k as usize;
        (self.symbol_of[i], self.side_of[i], self.qty_of[i])
    }

    /// Plans request `k`. A cancel or replace takes its order out of the open list at once, so
    /// no order is cancelled twice.
    pub fn plan(&mut self, k: u64) -> Action {
        let session = self.session_of(k);
        let open = self.open[session].len();
        let roll = self.rng.below(100) as u32;
        let offset = |rng: &mut Rng, band: u32| rng.below(u64::from(band) * 2 + 1) as i32 - band as i32;
        let action = if open > 0 && (open >= self.mix.max_open || roll < self.mix.cancel_pct) {
            let orig = self.open[session][self.rng.below(open as u64) as usize];
            self.close(orig);
            Action::Cancel { orig }
        } else if open > 0 && roll < self.mix.cancel_pct + self.mix.replace_pct {
            let orig = self.open[session][self.rng.below(open as u64) as usize];
            self.close(orig);
            Action::Replace {
                orig,
                offset_ticks: offset(&mut self.rng, self.mix.band_ticks),
            }
        } else {
            Action::New {
                symbol: self.rng.below(u64::from(self.mix.symbols)) as u8,
                side: 1 + self.rng.below(2) as u8,
                qty: 1 + self.rng.below(u64::from(self.mix.max_qty)) as u32,
                offset_ticks: offset(&mut self.rng, self.mix.band_ticks),
            }
        };
        let i = k as usize;
        match action {
            Action::New {
                symbol, side, qty, ..
            } => {
                self.symbol_of[i] = symbol;
                self.side_of[i] = side;
                self.qty_of[i] = qty;
            }
            Action::Cancel { orig } | Action::Replace { orig, .. } => {
                let (symbol, side, qty) = self.order_of(orig);
                self.symbol_of[i] = symbol;
                self.side_of[i] = side;
                self.qty_of[i] = qty;
            }
        }
        action
    }

    /// Order `k` is live on the node (acknowledged or replaced).
    pub fn opened(&mut self, k: u64) {
        let Some(&pos) = self.open_pos.get(k as usize) else {
            return;
        };
        if pos != NOT_OPEN {
            return;
        }
        let session = self.session_of(k);
        self.open_pos[k as usize] = self.open[session].len() as u32;
        self.open[session].push(k);
    }

    /// Order `k` is done (filled, cancelled, rejected) or being cancelled or replaced.
    pub fn close(&mut self, k: u64) {
        let Some(&pos) = self.open_pos.get(k as usize) else {
            return;
        };
        if pos == NOT_OPEN {
            return;
        }
        let session = self.session_of(k);
        let list = &mut self.open[session];
        let last = *list.last().expect("an open order is in its list");
        list.swap_remove(pos as usize);
        if last != k {
            self.open_pos[last as usize] = pos;
        }
        self.open_pos[k as usize] = NOT_OPEN;
    }

    /// Open orders over all sessions.
    pub fn open_count(&self) -> usize {
        self.open.iter().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix() -> Mix {
        Mix {
            cancel_pct: 10,
            replace_pct: 10,
            max_open: 5,
            band_ticks: 3,
            max_qty: 4,
            symbols: 2,
        }
    }

    #[test]
    fn open_list_stays_bounded_and_consistent() {
        let mut o = Orders::new(mix(), 7, 2, 10_000);
        for k in 0..10_000 {
            match o.plan(k) {
                Action::New { .. } => o.opened(k),
                Action::Replace { .. } => o.opened(k),
                Action::Cancel { orig } => assert_eq!(o.open_pos[orig as usize], NOT_OPEN),
            }
            for s in 0..2 {
                assert!(o.open[s].len() <= 5 + 1);
                for (i, &id) in o.open[s].iter().enumerate() {
                    assert_eq!(o.open_pos[id as usize] as usize, i);
                    assert_eq!(o.session_of(id), s);
                }
            }
        }
        assert!(o.open_count() > 0);
    }

    #[test]
    fn same_seed_same_plan() {
        let run = |seed| {
            let mut o = Orders::new(mix(), seed, 3, 1000);
            (0..1000)
                .map(|k| {
                    let a = o.plan(k);
                    if !matches!(a, Action::Cancel { .. }) {
                        o.opened(k);
                    }
                    a
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
