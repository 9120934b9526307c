//! An open-addressing hash table from a 64-bit key hash to an order slot, with a fixed capacity
//! chosen at construction: lookups and inserts never allocate, and nothing ever iterates it (its
//! layout is invisible to outputs and the state hash).
//!
//! The table stores only (hash, slot); the caller confirms a candidate by comparing the real key
//! with the order in the slot, so two keys with equal hashes are both found correctly.

const EMPTY: u32 = u32::MAX;

/// One bucket: the hash and the slot side by side, so a probe touches one cache line.
#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    slot: u32,
}

const VACANT: Entry = Entry { hash: 0, slot: EMPTY };

/// Linear probing with backward-shift deletion (no tombstones, so probe lengths stay short).
#[derive(Debug, Clone)]
pub struct SlotTable {
    entries: Vec<Entry>,
    mask: usize,
    len: usize,
}

/// Mixes a key into a well-distributed 64-bit hash (SplitMix64 finaliser): fixed, not random.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hashes bytes (FNV-1a, then mixed): for client order ids.
#[inline]
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

impl SlotTable {
    /// A table for at most `max_entries` entries (capacity: the next power of two of twice that,
    /// so the load factor stays at or below one half).
    pub fn new(max_entries: usize) -> Self {
        let capacity = (max_entries.max(8) * 2).next_power_of_two();
        SlotTable {
            entries: vec![VACANT; capacity],
            mask: capacity - 1,
            len: 0,
        }
    }

    /// Entries.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The slot whose key has `hash` and for which `is_key(slot)` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut i = hash as usize & self.mask;
        loop {
            let e = self.entries[i];
            if e.slot == EMPTY {
                return None;
            }
            if e.hash == hash && is_key(e.slot) {
                return Some(e.slot);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Inserts (the caller has checked the key is absent and the table is not full).
    #[inline]
    pub fn insert(&mut self, hash: u64, slot: u32) {
        assert!(
            self.len < self.entries.len() / 2,
            "slot table over its stated capacity"
        );
        debug_assert_ne!(slot, EMPTY);
        let mut i = hash as usize & self.mask;
        while self.entries[i].slot != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.entries[i] = Entry { hash, slot };
        self.len += 1;
    }

    /// Removes the entry (hash, slot); returns whether it was there.
    #[inline]
    pub fn remove(&mut self, hash: u64, slot: u32) -> bool {
        let mut i = hash as usize & self.mask;
        loop {
            let e = self.entries[i];
            if e.slot == EMPTY {
                return false;
            }
            if e.slot == slot && e.hash == hash {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward shift: move later entries of the run into the hole when their home position
        // allows it.
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        while self.entries[j].slot != EMPTY {
            let home = self.entries[j].hash as usize & self.mask;
            // Entry j may fill the hole if its home is not in the cyclic range (hole, j].
            let between = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !between {
                self.entries[hole] = self.entries[j];
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.entries[hole] = VACANT;
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec((any::<bool>(), 0u64..64), 0..400)) {
            // Keys 0..64 with deliberately colliding hashes (key % 7) to exercise probing.
            let mut t = SlotTable::new(64);
            let mut naive = std::collections::BTreeMap::new();
            for (insert, key) in ops {
                let hash = key % 7;
                let present = t.find(hash, |s| u64::from(s) == key).is_some();
                prop_assert_eq!(present, naive.contains_key(&key));
                if insert && !present {
                    t.insert(hash, key as u32);
                    naive.insert(key, ());
                } else if !insert && present {
                    prop_assert!(t.remove(hash, key as u32));
                    naive.remove(&key);
                }
                prop_assert_eq!(t.len(), naive.len());
            }
            for key in 0..64u64 {
                prop_assert_eq!(t.find(key % 7, |s| u64::from(s) == key).is_some(), naive.contains_key(&key));
            }
        }
    }
}
