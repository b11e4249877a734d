//! A growable byte buffer with a read offset: the port of TeamTalk's `CSimpleBuffer`.
//!
//! Each connection has one for input and one for output. The original kept only a
//! write offset, so taking a frame off the front (`CSimpleBuffer::Read`) moved every
//! byte behind it down with `memmove`: a burst of small frames cost quadratic time.
//! It also never gave memory back, so one large message left a connection holding
//! that much memory for the rest of its life.
//!
//! This buffer keeps two offsets into one allocation:
//!
//! ```text
//!  0          read            write          capacity
//!  +-----------+---------------+---------------+
//!  | consumed  |   readable    |     spare     |
//!  +-----------+---------------+---------------+
//! ```
//!
//! - [`consume`](SimpleBuffer::consume) only advances `read`; when the buffer
//!   empties both offsets go back to 0 for free.
//! - The consumed prefix is reclaimed (the readable bytes moved to the front) only
//!   when more room is needed *and* it is at least as large as what must move, so
//!   each byte is moved at most once per byte consumed: amortised O(1).
//! - Otherwise the buffer grows by doubling, copying only the readable bytes.
//! - A new buffer allocates nothing. When a buffer that grew past its
//!   [shrink threshold](SimpleBuffer::set_shrink_threshold) (64 KiB by default)
//!   becomes empty, its memory is released, so idle connections stay small after a
//!   burst. [`release`](SimpleBuffer::release) does the same on demand.
//!
//! The buffer is single-owner plain data (`Send`, not shared); a connection owns
//! its buffers and only the reactor thread running that connection touches them.
//!
//! ```
//! use pdu::SimpleBuffer;
//!
//! let mut buf = SimpleBuffer::new();
//! assert_eq!(buf.capacity(), 0);
//!
//! // Read from a "socket" straight into spare room.
//! let space = buf.write_space(4096);
//! space[..5].copy_from_slice(b"hello");
//! buf.commit(5);
//!
//! assert_eq!(buf.as_slice(), b"hello");
//! buf.consume(2);
//! assert_eq!(buf.as_slice(), b"llo");
//! ```

use std::fmt;

use prost::bytes::buf::UninitSlice;
use prost::bytes::BufMut;

/// Default for [`SimpleBuffer::set_shrink_threshold`]: 64 KiB.
pub const DEFAULT_SHRINK_THRESHOLD: usize = 64 * 1024;

/// Smallest allocation made on first use, so that a run of tiny appends does not
/// reallocate at 1, 2, 4, ... bytes.
const MIN_ALLOCATION: usize = 256;

/// A growable byte buffer with a read offset. See the [module docs](self).
///
/// Storage is always initialised (zeroed when allocated), so the spare room can be
/// handed out as a plain `&mut [u8]` for `read(2)` without `unsafe`.
pub struct SimpleBuffer {
    /// The allocation; `storage.len()` is the capacity.
    storage: Vec<u8>,
    /// Start of the readable bytes.
    read: usize,
    /// End of the readable bytes; start of the spare room.
    write: usize,
    /// Release the allocation when the buffer empties with more than this much.
    shrink_threshold: usize,
}

impl SimpleBuffer {
    /// An empty buffer. Allocates nothing until the first write.
    ///
    /// ```
    /// let buf = pdu::SimpleBuffer::new();
    /// assert!(buf.is_empty());
    /// assert_eq!(buf.capacity(), 0);
    /// ```
    pub const fn new() -> SimpleBuffer {
        SimpleBuffer {
            storage: Vec::new(),
            read: 0,
            write: 0,
            shrink_threshold: DEFAULT_SHRINK_THRESHOLD,
        }
    }

    /// An empty buffer with room for at least `capacity` bytes.
    ///
    /// ```
    /// assert!(pdu::SimpleBuffer::with_capacity(1000).capacity() >= 1000);
    /// ```
    pub fn with_capacity(capacity: usize) -> SimpleBuffer {
        let mut buf = SimpleBuffer::new();
        buf.reserve(capacity);
        buf
    }

    /// Number of readable bytes.
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::new();
    /// buf.extend_from_slice(b"abc");
    /// assert_eq!(buf.len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        self.write - self.read
    }

    /// Whether there is nothing to read.
    ///
    /// ```
    /// assert!(pdu::SimpleBuffer::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.read == self.write
    }

    /// Size of the allocation in bytes (readable + consumed + spare).
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::new();
    /// buf.extend_from_slice(&[0; 10]);
    /// assert!(buf.capacity() >= 10);
    /// ```
    pub fn capacity(&self) -> usize {
        self.storage.len()
    }

    /// Bytes that can be written without reallocating or moving data.
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::with_capacity(100);
    /// buf.extend_from_slice(&[0; 10]);
    /// assert_eq!(buf.spare_capacity(), buf.capacity() - 10);
    /// ```
    pub fn spare_capacity(&self) -> usize {
        self.storage.len() - self.write
    }

    /// The readable bytes.
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::new();
    /// buf.extend_from_slice(b"abc");
    /// assert_eq!(buf.as_slice(), b"abc");
    /// ```
    pub fn as_slice(&self) -> &[u8] {
        self.storage.get(self.read..self.write).unwrap_or(&[])
    }

    /// The readable bytes, mutably (for patching a frame in place before sending).
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::new();
    /// buf.extend_from_slice(b"abc");
    /// buf.as_mut_slice()[0] = b'x';
    /// assert_eq!(buf.as_slice(), b"xbc");
    /// ```
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.storage
            .get_mut(self.read..self.write)
            .unwrap_or(&mut [])
    }

    /// Forgets the first `n` readable bytes (all of them if `n > len()`).
    ///
    /// This only moves the read offset. When the buffer becomes empty the offsets
    /// reset, and if the allocation is larger than the shrink threshold it is
    /// released.
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::new();
    /// buf.extend_from_slice(b"abcdef");
    /// buf.consume(4);
    /// assert_eq!(buf.as_slice(), b"ef");
    /// buf.consume(100);
    /// assert!(buf.is_empty());
    /// ```
    pub fn consume(&mut self, n: usize) {
        if n >= self.len() {
            self.clear();
        } else {
            self.read += n;
        }
    }

    /// Forgets all readable bytes; releases the allocation if it is larger than
    /// the shrink threshold.
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::new();
    /// buf.extend_from_slice(&vec![0; 1 << 20]);
    /// buf.clear();
    /// assert_eq!(buf.capacity(), 0);
    /// ```
    pub fn clear(&mut self) {
        self.read = 0;
        self.write = 0;
        if self.storage.len() > self.shrink_threshold {
            self.storage = Vec::new();
        }
    }

    /// Keeps only the first `len` readable bytes, dropping the rest from the end
    /// (no effect if `len >= self.len()`).
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::new();
    /// buf.extend_from_slice(b"abcdef");
    /// buf.truncate(2);
    /// assert_eq!(buf.as_slice(), b"ab");
    /// ```
    pub fn truncate(&mut self, len: usize) {
        if len == 0 {
            self.clear();
        } else if len < self.len() {
            self.write = self.read + len;
        }
    }

    /// Appends `data`, growing if needed.
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::new();
    /// buf.extend_from_slice(b"ab");
    /// buf.extend_from_slice(b"cd");
    /// assert_eq!(buf.as_slice(), b"abcd");
    /// ```
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let n = data.len();
        if let Some(dst) = self.write_space(n).get_mut(..n) {
            dst.copy_from_slice(data);
            self.write += n;
        }
    }

    /// Makes sure at least `additional` bytes can be written, growing or reclaiming
    /// consumed space as needed.
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::new();
    /// buf.reserve(500);
    /// assert!(buf.spare_capacity() >= 500);
    /// ```
    pub fn reserve(&mut self, additional: usize) {
        if self.spare_capacity() < additional {
            self.make_room(additional);
        }
    }

    /// Spare room of at least `min` bytes to write into (for example with
    /// `read(2)`); follow with [`commit`](Self::commit) for the bytes actually
    /// written. The returned slice may be longer than `min`.
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::new();
    /// let space = buf.write_space(3);
    /// assert!(space.len() >= 3);
    /// space[..3].copy_from_slice(b"xyz");
    /// buf.commit(3);
    /// assert_eq!(buf.as_slice(), b"xyz");
    /// ```
    pub fn write_space(&mut self, min: usize) -> &mut [u8] {
        self.reserve(min);
        self.storage.get_mut(self.write..).unwrap_or(&mut [])
    }

    /// Marks `n` bytes of the spare room as written (clamped to the spare room, so
    /// a wrong count can never expose bytes outside the allocation).
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::new();
    /// buf.write_space(8)[..2].copy_from_slice(b"ok");
    /// buf.commit(2);
    /// assert_eq!(buf.as_slice(), b"ok");
    /// ```
    pub fn commit(&mut self, n: usize) {
        self.write += n.min(self.spare_capacity());
    }

    /// Gives memory back: an empty buffer frees its allocation; a non-empty one
    /// shrinks to exactly its readable bytes. Call it when a connection goes idle.
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::with_capacity(4096);
    /// buf.extend_from_slice(b"abc");
    /// buf.release();
    /// assert_eq!(buf.capacity(), 3);
    /// buf.consume(3);
    /// buf.release();
    /// assert_eq!(buf.capacity(), 0);
    /// ```
    pub fn release(&mut self) {
        if self.is_empty() {
            self.storage = Vec::new();
            self.read = 0;
            self.write = 0;
        } else if self.len() < self.storage.len() {
            self.reallocate(self.len());
        }
    }

    /// The allocation size above which an emptied buffer frees its memory
    /// (default [`DEFAULT_SHRINK_THRESHOLD`], 64 KiB). Set it at least as large as
    /// the chunk you read into, or every emptying read will reallocate.
    ///
    /// ```
    /// let mut buf = pdu::SimpleBuffer::new();
    /// buf.set_shrink_threshold(1024);
    /// buf.extend_from_slice(&[0; 2000]);
    /// buf.consume(2000);
    /// assert_eq!(buf.capacity(), 0);
    /// ```
    pub fn set_shrink_threshold(&mut self, bytes: usize) {
        self.shrink_threshold = bytes;
    }

    /// The current shrink threshold.
    ///
    /// ```
    /// assert_eq!(pdu::SimpleBuffer::new().shrink_threshold(), 64 * 1024);
    /// ```
    pub fn shrink_threshold(&self) -> usize {
        self.shrink_threshold
    }

    /// Finds room for `additional` more bytes after the readable ones.
    fn make_room(&mut self, additional: usize) {
        let len = self.len();
        let capacity = self.storage.len();
        // Slide down only if that alone makes enough room and moves no more bytes
        // than it reclaims: then every byte moved was paid for by a byte consumed.
        if capacity - len >= additional && self.read >= len {
            self.storage.copy_within(self.read..self.write, 0);
            self.read = 0;
            self.write = len;
            return;
        }
        let needed = len.saturating_add(additional);
        let new_capacity = needed.max(capacity.saturating_mul(2)).max(MIN_ALLOCATION);
        self.reallocate(new_capacity);
    }

    /// Moves the readable bytes to the front of a fresh zeroed allocation of
    /// `new_capacity` (>= `len()`) bytes. Copies only the readable bytes, unlike a
    /// `realloc` that would also carry the consumed prefix along.
    fn reallocate(&mut self, new_capacity: usize) {
        let len = self.len();
        let mut storage = vec![0u8; new_capacity.max(len)];
        if let (Some(dst), Some(src)) = (
            storage.get_mut(..len),
            self.storage.get(self.read..self.write),
        ) {
            dst.copy_from_slice(src);
        }
        self.storage = storage;
        self.read = 0;
        self.write = len;
    }
}

impl Default for SimpleBuffer {
    fn default() -> SimpleBuffer {
        SimpleBuffer::new()
    }
}

impl fmt::Debug for SimpleBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleBuffer")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("read_offset", &self.read)
            .finish()
    }
}

// SAFETY: `BufMut` requires that `chunk_mut` hands out memory the buffer owns and
// that `advance_mut(cnt)` only makes bytes readable that lie within the last chunk.
// `chunk_mut` returns the spare part of `storage`, which is always initialised
// (allocated zeroed), so even bytes the caller did not write are valid `u8`s; and
// `advance_mut` goes through `commit`, which clamps to the spare room, so the
// readable range never leaves the allocation whatever count it is given.
unsafe impl BufMut for SimpleBuffer {
    fn remaining_mut(&self) -> usize {
        // Growable, like `Vec<u8>`: bounded only by what can be allocated.
        isize::MAX as usize - self.len()
    }

    // SAFETY: (the caller's contract) `cnt` bytes of `chunk_mut` were
    // initialised; `commit` clamps `cnt` to the spare room anyway.
    unsafe fn advance_mut(&mut self, cnt: usize) {
        self.commit(cnt);
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        if self.spare_capacity() == 0 {
            self.reserve(MIN_ALLOCATION);
        }
        UninitSlice::new(self.storage.get_mut(self.write..).unwrap_or(&mut []))
    }

    fn put_slice(&mut self, src: &[u8]) {
        self.extend_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_buffer_allocates_nothing() {
        let buf = SimpleBuffer::new();
        assert_eq!(buf.capacity(), 0);
        assert_eq!(SimpleBuffer::default().capacity(), 0);
    }

    #[test]
    fn capacity_drops_back_after_a_large_burst_is_consumed() {
        let mut buf = SimpleBuffer::new();
        let burst = vec![7u8; 4 << 20];
        for chunk in burst.chunks(16 * 1024) {
            buf.extend_from_slice(chunk);
        }
        assert!(buf.capacity() >= 4 << 20);
        buf.consume(1 << 20);
        assert!(buf.capacity() >= 4 << 20, "still holding data");
        buf.consume(3 << 20);
        assert!(buf.is_empty());
        assert_eq!(buf.capacity(), 0, "memory released once empty");
    }

    #[test]
    fn small_buffers_keep_their_memory_when_emptied() {
        let mut buf = SimpleBuffer::new();
        buf.write_space(4096);
        buf.commit(100);
        let cap = buf.capacity();
        buf.consume(100);
        assert_eq!(
            buf.capacity(),
            cap,
            "no reallocation churn under the threshold"
        );
    }

    #[test]
    fn explicit_release_frees_an_idle_buffer() {
        let mut buf = SimpleBuffer::with_capacity(8192);
        buf.extend_from_slice(b"x");
        buf.consume(1);
        assert_eq!(buf.capacity(), 8192);
        buf.release();
        assert_eq!(buf.capacity(), 0);
    }

    #[test]
    fn consuming_a_frame_does_not_move_the_rest() {
        let mut buf = SimpleBuffer::with_capacity(1024);
        buf.extend_from_slice(&[1; 600]);
        let before = buf.as_slice()[100..].as_ptr();
        buf.consume(100);
        assert_eq!(buf.as_slice().as_ptr(), before);
    }

    #[test]
    fn consumed_prefix_is_reclaimed_before_growing() {
        let mut buf = SimpleBuffer::with_capacity(1024);
        let cap = buf.capacity();
        buf.extend_from_slice(&[1; 1000]);
        buf.consume(900);
        // 100 readable bytes, 900 consumed, 24 spare: room for 500 comes from
        // sliding 100 bytes down, not from a new allocation.
        buf.write_space(500);
        assert_eq!(buf.capacity(), cap);
        assert_eq!(buf.as_slice(), &[1; 100][..]);
    }

    #[test]
    fn sliding_never_moves_more_than_it_reclaims() {
        let mut buf = SimpleBuffer::with_capacity(1024);
        let cap = buf.capacity();
        buf.extend_from_slice(&[1; 1000]);
        buf.consume(10);
        // 990 readable, 10 consumed: moving 990 bytes to win 10 is not worth it.
        buf.write_space(30);
        assert!(buf.capacity() > cap);
        assert_eq!(buf.len(), 990);
    }

    #[test]
    fn commit_is_clamped_to_the_spare_room() {
        let mut buf = SimpleBuffer::new();
        let spare = buf.write_space(10).len();
        buf.commit(usize::MAX);
        assert_eq!(buf.len(), spare);
        assert_eq!(buf.spare_capacity(), 0);
    }

    #[test]
    fn prost_can_encode_straight_into_it() {
        let mut buf = SimpleBuffer::new();
        buf.put_u16(0x0102);
        buf.put_slice(b"xyz");
        assert_eq!(buf.as_slice(), &[1, 2, b'x', b'y', b'z']);
        let big = vec![9u8; 10_000];
        buf.put(&big[..]);
        assert_eq!(buf.len(), 10_005);
    }

    #[test]
    fn truncate_keeps_a_prefix() {
        let mut buf = SimpleBuffer::new();
        buf.extend_from_slice(b"abcdef");
        buf.consume(1);
        buf.truncate(3);
        assert_eq!(buf.as_slice(), b"bcd");
        buf.truncate(10);
        assert_eq!(buf.as_slice(), b"bcd");
        buf.truncate(0);
        assert!(buf.is_empty());
    }
}
