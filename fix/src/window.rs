//! The resend window: the last application messages a session sent, in memory, bounded by a
//! number of messages and a number of bytes, so that a session's memory is bounded whatever
//! the day's volume. It answers ResendRequests; admin messages are never held (a resend gap-
//! fills them, as QuickFIX does).
//!
//! What is gone is said, never hidden: the window remembers the highest MsgSeqNum of an
//! application message it let go ([`ResendWindow::dropped_through`]), and the session refuses a
//! ResendRequest that reaches it rather than gap-fill over a message the client never saw
//! (`Session`'s resend handling). Everything it holds is derived from the committed log, so
//! every member of a cluster that applied the same records holds the same window
//! (`docs/REPLICATION.md`, 6.1a); its bytes travel in a snapshot ([`ResendWindow::encode_into`],
//! [`ResendWindow::decode`]).

use std::collections::VecDeque;

use crate::session::MessageStore;

/// Default bound on the messages a window holds.
pub const DEFAULT_MAX_MESSAGES: usize = 65_536;
/// Default bound on the bytes a window holds.
pub const DEFAULT_MAX_BYTES: usize = 32 << 20;

/// One message held: its MsgSeqNum, where its bytes start (counted from the first byte the
/// window ever held), and their length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    seq: u64,
    start: u64,
    len: u32,
}

/// The last application messages a session sent (see the module documentation).
#[derive(Debug, Clone)]
pub struct ResendWindow {
    max_messages: usize,
    max_bytes: usize,
    held: VecDeque<Held>,
    /// The held messages' bytes, back to back, oldest first.
    bytes: VecDeque<u8>,
    /// Bytes that left the front of `bytes` since it was created: `Held::start` minus this is
    /// an index into `bytes`.
    popped_bytes: u64,
    /// Highest MsgSeqNum of an application message that left the window (0: none).
    dropped_through: u64,
}

/// Why a window's encoded bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl ResendWindow {
    /// An empty window holding at most `max_messages` messages and `max_bytes` bytes (each at
    /// least 1).
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        assert!(max_messages > 0 && max_bytes > 0, "a window holds something");
        ResendWindow {
            max_messages,
            max_bytes,
            held: VecDeque::new(),
            bytes: VecDeque::new(),
            popped_bytes: 0,
            dropped_through: 0,
        }
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Highest MsgSeqNum of an application message that left the window (0: none): a resend
    /// from above it is complete.
    pub fn dropped_through(&self) -> u64 {
        self.dropped_through
    }

    fn drop_oldest(&mut self) {
        let Some(h) = self.held.pop_front() else {
            return;
        };
        debug_assert_eq!(h.start, self.popped_bytes, "the oldest message starts the bytes");
        self.bytes.drain(..h.len as usize);
        self.popped_bytes += u64::from(h.len);
        self.dropped_through = h.seq;
    }

    /// Drops the oldest messages until `incoming` more bytes and one more message fit.
    fn make_room(&mut self, incoming: usize) {
        while !self.held.is_empty()
            && (self.held.len() >= self.max_messages || self.bytes.len() + incoming > self.max_bytes)
        {
            self.drop_oldest();
        }
    }

    fn push(&mut self, seq: u64, message: &[u8]) {
        debug_assert!(
            self.held.back().is_none_or(|h| h.seq < seq) && seq > self.dropped_through,
            "messages come in MsgSeqNum order"
        );
        if message.len() > self.max_bytes || message.len() > u32::MAX as usize {
            // It cannot be held at all: it and everything before it are gone.
            while !self.held.is_empty() {
                self.drop_oldest();
            }
            self.dropped_through = seq;
            return;
        }
        self.make_room(message.len());
        self.held.push_back(Held {
            seq,
            start: self.popped_bytes + self.bytes.len() as u64,
            len: message.len() as u32,
        });
        self.bytes.extend(message);
        debug_assert!(self.held.len() <= self.max_messages && self.bytes.len() <= self.max_bytes);
    }

    /// Copies the bytes of `h` into `out` (cleared first).
    fn copy_out(&self, h: Held, out: &mut Vec<u8>) {
        out.clear();
        let at = (h.start - self.popped_bytes) as usize;
        let (a, b) = self.bytes.as_slices();
        let end = at + h.len as usize;
        if end <= a.len() {
            out.extend_from_slice(&a[at..end]);
        } else if at >= a.len() {
            out.extend_from_slice(&b[at - a.len()..end - a.len()]);
        } else {
            out.extend_from_slice(&a[at..]);
            out.extend_from_slice(&b[..end - a.len()]);
        }
    }

    /// Appends the window's state to `out`: dropped-through u64, count u32, then per message
    /// its MsgSeqNum u64, length u32 and bytes (little endian).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dropped_through.to_le_bytes());
        out.extend_from_slice(&(self.held.len() as u32).to_le_bytes());
        let mut message = Vec::new();
        for &h in &self.held {
            out.extend_from_slice(&h.seq.to_le_bytes());
            out.extend_from_slice(&h.len.to_le_bytes());
            self.copy_out(h, &mut message);
            out.extend_from_slice(&message);
        }
    }

    /// A window of the given bounds from what [`ResendWindow::encode_into`] wrote at the start
    /// of `bytes`, and how many bytes that took. Messages beyond today's bounds leave it, oldest
    /// first, as they would have when sent.
    pub fn decode(
        bytes: &[u8],
        max_messages: usize,
        max_bytes: usize,
    ) -> Result<(ResendWindow, usize), DecodeError> {
        let mut at = 0usize;
        let mut take = |n: usize, what: &str| -> Result<&[u8], DecodeError> {
            let s = at
                .checked_add(n)
                .and_then(|end| bytes.get(at..end))
                .ok_or_else(|| DecodeError(format!("{what} cut short at offset {at}")))?;
            at += n;
            Ok(s)
        };
        let u64_of = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
        let u32_of = |s: &[u8]| u32::from_le_bytes(s.try_into().expect("4 bytes"));
        let mut window = ResendWindow::new(max_messages, max_bytes);
        window.dropped_through = u64_of(take(8, "dropped-through number")?);
        let count = u32_of(take(4, "message count")?);
        for i in 0..count {
            let seq = u64_of(take(8, "message number")?);
            let len = u32_of(take(4, "message length")?) as usize;
            let last = window.held.back().map_or(window.dropped_through, |h| h.seq);
            if seq <= last {
                return Err(DecodeError(format!(
                    "message {i}: MsgSeqNum {seq} does not follow {last}"
                )));
            }
            let message = take(len, "message bytes")?;
            window.push(seq, message);
        }
        Ok((window, at))
    }
}

impl MessageStore for ResendWindow {
    fn store(&mut self, seq: u64, message: &[u8], admin: bool) {
        if !admin {
            self.push(seq, message);
        }
    }

    fn fetch(&self, begin: u64, end: u64, f: &mut dyn FnMut(u64, &[u8])) {
        let first = self.held.partition_point(|h| h.seq < begin);
        let mut message = Vec::new();
        for &h in self.held.range(first..) {
            if h.seq > end {
                break;
            }
            self.copy_out(h, &mut message);
            f(h.seq, &message);
        }
    }

    fn reset(&mut self) {
        self.held.clear();
        self.bytes.clear();
        self.popped_bytes = 0;
        self.dropped_through = 0;
    }

    fn dropped_through(&self) -> u64 {
        self.dropped_through
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(w: &ResendWindow, begin: u64, end: u64) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        w.fetch(begin, end, &mut |seq, m| out.push((seq, m.to_vec())));
        out
    }

    #[test]
    fn the_oldest_leave_at_the_message_bound_and_are_named() {
        let mut w = ResendWindow::new(3, 1 << 20);
        w.store(1, b"logon", true);
        for seq in 2..=6 {
            w.store(seq, format!("er-{seq}").as_bytes(), false);
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.dropped_through(), 3, "2 and 3 left; the admin 1 was never held");
        assert_eq!(
            fetched(&w, 1, 10),
            vec![
                (4, b"er-4".to_vec()),
                (5, b"er-5".to_vec()),
                (6, b"er-6".to_vec())
            ]
        );
        assert_eq!(fetched(&w, 5, 5), vec![(5, b"er-5".to_vec())]);
        w.reset();
        assert!(w.is_empty() && w.dropped_through() == 0);
    }

    #[test]
    fn the_byte_bound_holds_across_the_ring_and_a_message_too_large_empties_it() {
        let mut w = ResendWindow::new(100, 10);
        for seq in 1..=20u64 {
            let m = vec![b'a' + (seq % 26) as u8; (seq % 4 + 1) as usize];
            w.store(seq, &m, false);
            assert!(w.bytes() <= 10);
            // Whatever is held comes back byte for byte, wrapped or not.
            let last = fetched(&w, seq, seq);
            assert_eq!(last, vec![(seq, m)]);
            let all = fetched(&w, 1, seq);
            assert_eq!(all.first().map(|m| m.0), Some(w.dropped_through() + 1));
            assert_eq!(all.iter().map(|m| m.1.len()).sum::<usize>(), w.bytes());
        }
        w.store(21, &[b'x'; 11], false);
        assert!(w.is_empty());
        assert_eq!(w.dropped_through(), 21);
    }

    #[test]
    fn encoded_windows_decode_to_the_same_messages_and_damage_is_named() {
        let mut w = ResendWindow::new(4, 64);
        for seq in [3u64, 4, 7, 9, 12] {
            w.store(seq, format!("message {seq}").as_bytes(), false);
        }
        let mut bytes = b"prefix".to_vec();
        w.encode_into(&mut bytes);
        bytes.extend_from_slice(b"after");
        let (back, used) = ResendWindow::decode(&bytes[6..], 4, 64).unwrap();
        assert_eq!(&bytes[6 + used..], b"after");
        assert_eq!(back.dropped_through(), 3);
        assert_eq!(fetched(&back, 1, 100), fetched(&w, 1, 100));
        // Tighter bounds today: the oldest leave, as when they were sent.
        let (tight, _) = ResendWindow::decode(&bytes[6..], 2, 64).unwrap();
        assert_eq!(tight.dropped_through(), 7);
        let cut = &bytes[6..6 + used - 1];
        let e = ResendWindow::decode(cut, 4, 64).unwrap_err();
        assert!(e.0.contains("message bytes cut short"), "{e}");
    }
}
