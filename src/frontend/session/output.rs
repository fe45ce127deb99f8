//! A client's output not yet written: the bytes of the replies taken from
//! the queue, in order. Replies are copied into one buffer, so a pipeline's
//! replies go out in one write. A large chunk of a reply (a master's whole
//! `KEYS` answer) is instead kept as the `Bytes` it arrived in and written
//! from there: a reply of many megabytes is never copied, and its memory is
//! freed chunk by chunk as the client reads it.

use std::collections::VecDeque;
use std::io;

use bytes::{Bytes, BytesMut};

use crate::net::Stream;

/// Chunks at least this large are shared, not copied.
const SHARE_FROM: usize = 64 * 1024;
/// Buffers larger than this are released once written.
const KEEP_OUTPUT: usize = 1 << 20;

/// Unsent output; see the module docs.
#[derive(Default)]
pub struct Output {
    /// Written first, front to back: shared chunks, and what the buffer
    /// held before each of them.
    shared: VecDeque<Bytes>,
    /// Written after `shared`.
    buffer: BytesMut,
    /// Replies (counted by [`Output::count_reply`]) in it, at most: zero
    /// once everything is written.
    replies: usize,
}

impl Output {
    /// Appends a copy of `bytes`.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Appends `chunk`: shared when it is large, else copied.
    pub fn push_shared(&mut self, chunk: Bytes) {
        if chunk.len() < SHARE_FROM {
            return self.push(&chunk);
        }
        if !self.buffer.is_empty() {
            self.shared.push_back(self.buffer.split().freeze());
        }
        self.shared.push_back(chunk);
    }

    /// Counts one more reply pushed (its bytes pushed before).
    pub fn count_reply(&mut self) {
        self.replies += 1;
    }

    /// Replies not (wholly) written yet, at most.
    pub fn replies(&self) -> usize {
        self.replies
    }

    /// Bytes not written yet.
    pub fn len(&self) -> usize {
        self.shared.iter().map(Bytes::len).sum::<usize>() + self.buffer.len()
    }

    /// Nothing left to write.
    pub fn is_empty(&self) -> bool {
        self.shared.is_empty() && self.buffer.is_empty()
    }

    /// Writes as much as `stream` takes now, in order; true when all is
    /// written. A large buffer is then released.
    pub fn write_to(&mut self, stream: &Stream) -> io::Result<bool> {
        while let Some(chunk) = self.shared.front_mut() {
            if !stream.write_some(chunk)? {
                return Ok(false);
            }
            self.shared.pop_front();
        }
        if !stream.write_some(&mut self.buffer)? {
            return Ok(false);
        }
        if self.buffer.capacity() > KEEP_OUTPUT {
            self.buffer = BytesMut::new();
        }
        self.replies = 0;
        Ok(true)
    }

    /// Everything not written yet, in write order.
    #[cfg(test)]
    pub fn contents(&self) -> Vec<u8> {
        let mut all: Vec<u8> = self.shared.iter().flatten().copied().collect();
        all.extend_from_slice(&self.buffer);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_chunks_are_shared_in_order_small_ones_copied() {
        let big = Bytes::from(vec![b'x'; SHARE_FROM]);
        let mut out = Output::default();
        out.push(b"+a\r\n");
        out.push_shared(Bytes::from_static(b"*1\r\n"));
        out.push_shared(big.clone());
        out.push(b"+b\r\n");
        out.push_shared(big.clone());
        out.push_shared(big.clone());
        assert_eq!(out.len(), 3 * SHARE_FROM + 12);
        assert_eq!(out.shared.len(), 5, "+a *1, big, +b, big, big");
        assert!(
            out.shared
                .iter()
                .filter(|c| c.as_ptr() == big.as_ptr())
                .count()
                == 3,
            "the large chunks are not copied"
        );
        let mut want = b"+a\r\n*1\r\n".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"+b\r\n");
        want.extend_from_slice(&big);
        want.extend_from_slice(&big);
        assert_eq!(out.contents(), want);
        assert!(!out.is_empty());
        assert!(Output::default().is_empty());
    }
}
