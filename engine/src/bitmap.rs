//! A hierarchical bitmap: set, clear, and find the nearest set bit above or below a position in
//! O(levels) = O(log64 n) word operations. It indexes the occupied ticks of a price ladder, so
//! the next best price after a level empties is found without scanning empty ticks.

/// Bits `0..len`, with summary levels: bit `i` of level `k + 1` is set iff word `i` of level `k`
/// is non-zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    levels: Vec<Vec<u64>>,
    len: usize,
}

impl Bitmap {
    /// An empty bitmap of `len` bits (allocates once, here).
    pub fn new(len: usize) -> Self {
        let mut levels = Vec::new();
        let mut n = len.max(1);
        loop {
            let words = n.div_ceil(64);
            levels.push(vec![0u64; words]);
            if words == 1 {
                break;
            }
            n = words;
        }
        Bitmap { levels, len }
    }

    /// Whether no bit is set.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.levels.last().is_some_and(|top| top[0] == 0)
    }

    /// Whether bit `i` is set.
    #[cfg(test)]
    pub fn get(&self, i: usize) -> bool {
        self.levels[0][i / 64] & (1 << (i % 64)) != 0
    }

    /// Sets bit `i`.
    #[inline]
    pub fn set(&mut self, i: usize) {
        debug_assert!(i < self.len);
        let mut idx = i;
        for level in &mut self.levels {
            let word = &mut level[idx / 64];
            let was_empty = *word == 0;
            *word |= 1 << (idx % 64);
            if !was_empty {
                return;
            }
            idx /= 64;
        }
    }

    /// Clears bit `i`.
    #[inline]
    pub fn clear(&mut self, i: usize) {
        debug_assert!(i < self.len);
        let mut idx = i;
        for level in &mut self.levels {
            let word = &mut level[idx / 64];
            *word &= !(1 << (idx % 64));
            if *word != 0 {
                return;
            }
            idx /= 64;
        }
    }

    /// The lowest set bit `>= i`.
    #[inline]
    pub fn next_at_or_above(&self, i: usize) -> Option<usize> {
        if i >= self.len {
            return None;
        }
        let mut level = 0;
        let mut idx = i;
        loop {
            let words = &self.levels[level];
            let w = idx / 64;
            if w < words.len() {
                let word = words[w] & (!0u64 << (idx % 64));
                if word != 0 {
                    let mut pos = w * 64 + word.trailing_zeros() as usize;
                    for l in (0..level).rev() {
                        pos = pos * 64 + self.levels[l][pos].trailing_zeros() as usize;
                    }
                    return Some(pos);
                }
            }
            if level + 1 == self.levels.len() {
                return None;
            }
            level += 1;
            idx = w + 1;
        }
    }

    /// The highest set bit `<= i`.
    #[inline]
    pub fn prev_at_or_below(&self, i: usize) -> Option<usize> {
        let mut level = 0;
        let mut idx = i.min(self.len.checked_sub(1)?);
        loop {
            let words = &self.levels[level];
            let w = idx / 64;
            let b = idx % 64;
            let mask = if b == 63 { !0u64 } else { (1u64 << (b + 1)) - 1 };
            let word = words[w] & mask;
            if word != 0 {
                let mut pos = w * 64 + 63 - word.leading_zeros() as usize;
                for l in (0..level).rev() {
                    pos = pos * 64 + 63 - self.levels[l][pos].leading_zeros() as usize;
                }
                return Some(pos);
            }
            if level + 1 == self.levels.len() || w == 0 {
                return None;
            }
            level += 1;
            idx = w - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matches_a_naive_set(len in 1usize..300_000, ops in prop::collection::vec((any::<bool>(), any::<prop::sample::Index>()), 0..200), probes in prop::collection::vec(any::<prop::sample::Index>(), 1..50)) {
            let mut b = Bitmap::new(len);
            let mut naive = std::collections::BTreeSet::new();
            for (set, at) in ops {
                let i = at.index(len);
                if set { b.set(i); naive.insert(i); } else { b.clear(i); naive.remove(&i); }
            }
            prop_assert_eq!(b.is_empty(), naive.is_empty());
            for p in probes {
                let i = p.index(len);
                prop_assert_eq!(b.get(i), naive.contains(&i));
                prop_assert_eq!(b.next_at_or_above(i), naive.range(i..).next().copied());
                prop_assert_eq!(b.prev_at_or_below(i), naive.range(..=i).next_back().copied());
            }
        }
    }

    #[test]
    fn edges() {
        let mut b = Bitmap::new(64 * 64 + 1);
        assert_eq!(b.next_at_or_above(0), None);
        assert_eq!(b.prev_at_or_below(4096), None);
        b.set(4096);
        b.set(0);
        assert_eq!(b.next_at_or_above(1), Some(4096));
        assert_eq!(b.prev_at_or_below(4095), Some(0));
        assert_eq!(b.next_at_or_above(4097), None);
        b.clear(4096);
        assert_eq!(b.next_at_or_above(1), None);
    }
}
