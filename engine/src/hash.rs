//! A stable hasher (xxh3-128, fixed seed) for the state hash and output digests: the same
//! bytes give the same hash on every machine, build and run (unlike std's RandomState).

/// Streaming, platform-independent hasher. Integers are fed little-endian; byte strings are
/// length-prefixed, so adjacent strings cannot alias.
pub struct StableHasher {
    inner: xxhash_rust::xxh3::Xxh3,
}

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher {
            inner: xxhash_rust::xxh3::Xxh3::new(),
        }
    }
}

impl std::fmt::Debug for StableHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StableHasher")
    }
}

impl StableHasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feeds a byte.
    #[inline]
    pub fn u8(&mut self, v: u8) {
        self.inner.update(&[v]);
    }
    /// Feeds a u32.
    #[inline]
    pub fn u32(&mut self, v: u32) {
        self.inner.update(&v.to_le_bytes());
    }
    /// Feeds a u64.
    #[inline]
    pub fn u64(&mut self, v: u64) {
        self.inner.update(&v.to_le_bytes());
    }
    /// Feeds an i64.
    #[inline]
    pub fn i64(&mut self, v: i64) {
        self.inner.update(&v.to_le_bytes());
    }
    /// Feeds an i128.
    #[inline]
    pub fn i128(&mut self, v: i128) {
        self.inner.update(&v.to_le_bytes());
    }
    /// Feeds a bool.
    #[inline]
    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    /// Feeds a length-prefixed byte string.
    #[inline]
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.inner.update(v);
    }
    /// The 128-bit digest.
    pub fn finish(&self) -> u128 {
        self.inner.digest128()
    }
}

/// Formats a 128-bit hash as 32 hex digits.
pub fn hex128(h: u128) -> String {
    format!("{h:032x}")
}
