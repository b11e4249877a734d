//! Bounds-checked big-endian reads and writes: the port of TeamTalk's `CByteStream`.
//!
//! The original read fixed-size integers and length-prefixed strings straight out
//! of a raw pointer and trusted the lengths it found there. Here every operation
//! checks first and returns a [`StreamError`] instead of reading or writing out of
//! bounds; a failed operation leaves the cursor where it was.
//!
//! - [`ByteReader`] walks a borrowed `&[u8]`. Strings and byte fields come back as
//!   slices of the input: nothing is copied or allocated.
//! - [`ByteWriter`] fills a borrowed `&mut [u8]` of fixed size, for instance the
//!   spare room handed out by [`SimpleBuffer::write_space`](crate::SimpleBuffer::write_space).
//!
//! Strings and byte fields are prefixed by their length as a big-endian `u32`, as
//! `CByteStream::WriteString`/`WriteData` did.
//!
//! ```
//! use pdu::{ByteReader, ByteWriter};
//!
//! let mut space = [0u8; 32];
//! let mut w = ByteWriter::new(&mut space);
//! w.write_u16(0x0301)?;
//! w.write_str("hi")?;
//! let n = w.position();
//!
//! let mut r = ByteReader::new(&space[..n]);
//! assert_eq!(r.read_u16()?, 0x0301);
//! assert_eq!(r.read_str()?, "hi");
//! assert!(r.read_u8().is_err()); // past the end: an error, not a panic
//! # Ok::<(), pdu::StreamError>(())
//! ```

use crate::error::StreamError;

/// A cursor that reads big-endian values from a borrowed byte slice.
///
/// ```
/// let mut r = pdu::ByteReader::new(&[0, 0, 0, 2, b'o', b'k', 7]);
/// assert_eq!(r.read_bytes()?, b"ok");
/// assert_eq!(r.read_u8()?, 7);
/// assert!(r.is_empty());
/// # Ok::<(), pdu::StreamError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    /// A reader positioned at the start of `buf`.
    ///
    /// ```
    /// assert_eq!(pdu::ByteReader::new(b"abc").remaining(), 3);
    /// ```
    pub const fn new(buf: &'a [u8]) -> ByteReader<'a> {
        ByteReader { buf, pos: 0 }
    }

    /// Bytes read so far.
    ///
    /// ```
    /// let mut r = pdu::ByteReader::new(&[1, 2, 3]);
    /// r.read_u16()?;
    /// assert_eq!(r.position(), 2);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    ///
    /// ```
    /// let mut r = pdu::ByteReader::new(&[1, 2, 3]);
    /// r.read_u8()?;
    /// assert_eq!(r.remaining(), 2);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub const fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether everything has been read.
    ///
    /// ```
    /// assert!(pdu::ByteReader::new(&[]).is_empty());
    /// ```
    pub const fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without consuming them.
    ///
    /// ```
    /// let mut r = pdu::ByteReader::new(&[1, 2, 3]);
    /// r.read_u8()?;
    /// assert_eq!(r.rest(), &[2, 3]);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn rest(&self) -> &'a [u8] {
        // `pos <= buf.len()` always holds; `get` keeps this panic-free regardless.
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Reads exactly `n` raw bytes (no length prefix).
    ///
    /// ```
    /// let mut r = pdu::ByteReader::new(b"abcd");
    /// assert_eq!(r.read_slice(3)?, b"abc");
    /// assert!(r.read_slice(2).is_err());
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn read_slice(&mut self, n: usize) -> Result<&'a [u8], StreamError> {
        let rest = self.rest();
        match rest.get(..n) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(StreamError::UnexpectedEnd {
                needed: n,
                remaining: rest.len(),
            }),
        }
    }

    /// Skips `n` bytes.
    ///
    /// ```
    /// let mut r = pdu::ByteReader::new(&[1, 2, 3]);
    /// r.skip(2)?;
    /// assert_eq!(r.read_u8()?, 3);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn skip(&mut self, n: usize) -> Result<(), StreamError> {
        self.read_slice(n).map(|_| ())
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N], StreamError> {
        let bytes = self.read_slice(N)?;
        // `read_slice(N)` returned exactly N bytes, so the conversion cannot fail;
        // map the impossible case to the same error rather than panicking.
        bytes.try_into().map_err(|_| StreamError::UnexpectedEnd {
            needed: N,
            remaining: bytes.len(),
        })
    }

    /// Reads one byte.
    ///
    /// ```
    /// assert_eq!(pdu::ByteReader::new(&[9]).read_u8(), Ok(9));
    /// ```
    pub fn read_u8(&mut self) -> Result<u8, StreamError> {
        self.read_array::<1>().map(|[b]| b)
    }

    /// Reads a big-endian `u16`.
    ///
    /// ```
    /// assert_eq!(pdu::ByteReader::new(&[1, 2]).read_u16(), Ok(0x0102));
    /// ```
    pub fn read_u16(&mut self) -> Result<u16, StreamError> {
        self.read_array().map(u16::from_be_bytes)
    }

    /// Reads a big-endian `u32`.
    ///
    /// ```
    /// assert_eq!(pdu::ByteReader::new(&[0, 0, 1, 0]).read_u32(), Ok(256));
    /// ```
    pub fn read_u32(&mut self) -> Result<u32, StreamError> {
        self.read_array().map(u32::from_be_bytes)
    }

    /// Reads a big-endian `u64`.
    ///
    /// ```
    /// assert_eq!(pdu::ByteReader::new(&[0, 0, 0, 0, 0, 0, 1, 0]).read_u64(), Ok(256));
    /// ```
    pub fn read_u64(&mut self) -> Result<u64, StreamError> {
        self.read_array().map(u64::from_be_bytes)
    }

    /// Reads a big-endian two's-complement `i32`.
    ///
    /// ```
    /// assert_eq!(pdu::ByteReader::new(&[0xff; 4]).read_i32(), Ok(-1));
    /// ```
    pub fn read_i32(&mut self) -> Result<i32, StreamError> {
        self.read_array().map(i32::from_be_bytes)
    }

    /// Reads a `u32` length followed by that many bytes, borrowed from the input.
    /// On failure (prefix or data short) nothing is consumed.
    ///
    /// ```
    /// let mut r = pdu::ByteReader::new(&[0, 0, 0, 9, 1]);
    /// assert!(r.read_bytes().is_err()); // claims 9 bytes, has 1
    /// assert_eq!(r.position(), 0);
    /// ```
    pub fn read_bytes(&mut self) -> Result<&'a [u8], StreamError> {
        let start = self.pos;
        let len = self.read_u32()?;
        // A length that does not fit usize cannot fit the input either.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.read_slice(len).inspect_err(|_| self.pos = start)
    }

    /// Reads a `u32` length followed by that many bytes of UTF-8 text, borrowed
    /// from the input. On failure nothing is consumed.
    ///
    /// ```
    /// use pdu::{ByteReader, StreamError};
    ///
    /// let mut r = ByteReader::new(&[0, 0, 0, 1, 0xff]);
    /// assert_eq!(r.read_str(), Err(StreamError::InvalidUtf8 { offset: 4 }));
    /// assert_eq!(r.position(), 0);
    /// ```
    pub fn read_str(&mut self) -> Result<&'a str, StreamError> {
        let start = self.pos;
        let bytes = self.read_bytes()?;
        std::str::from_utf8(bytes).map_err(|_| {
            self.pos = start;
            StreamError::InvalidUtf8 { offset: start + 4 }
        })
    }
}

/// A cursor that writes big-endian values into a borrowed, fixed-size byte slice.
///
/// Writing past the end is a [`StreamError::NoSpace`] and writes nothing.
///
/// ```
/// let mut space = [0u8; 6];
/// let mut w = pdu::ByteWriter::new(&mut space);
/// w.write_u32(1)?;
/// assert!(w.write_u32(2).is_err()); // only 2 bytes of room left
/// w.write_u16(3)?;
/// assert_eq!(space, [0, 0, 0, 1, 0, 3]);
/// # Ok::<(), pdu::StreamError>(())
/// ```
#[derive(Debug)]
pub struct ByteWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> ByteWriter<'a> {
    /// A writer positioned at the start of `buf`.
    ///
    /// ```
    /// let mut space = [0u8; 4];
    /// assert_eq!(pdu::ByteWriter::new(&mut space).remaining(), 4);
    /// ```
    pub fn new(buf: &'a mut [u8]) -> ByteWriter<'a> {
        ByteWriter { buf, pos: 0 }
    }

    /// Bytes written so far.
    ///
    /// ```
    /// let mut space = [0u8; 4];
    /// let mut w = pdu::ByteWriter::new(&mut space);
    /// w.write_u8(1)?;
    /// assert_eq!(w.position(), 1);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Room left.
    ///
    /// ```
    /// let mut space = [0u8; 4];
    /// let mut w = pdu::ByteWriter::new(&mut space);
    /// w.write_u16(1)?;
    /// assert_eq!(w.remaining(), 2);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes written so far.
    ///
    /// ```
    /// let mut space = [0u8; 4];
    /// let mut w = pdu::ByteWriter::new(&mut space);
    /// w.write_u16(0x0102)?;
    /// assert_eq!(w.written(), &[1, 2]);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.pos).unwrap_or(&[])
    }

    /// Writes raw bytes (no length prefix).
    ///
    /// ```
    /// let mut space = [0u8; 2];
    /// let mut w = pdu::ByteWriter::new(&mut space);
    /// assert!(w.write_slice(b"abc").is_err());
    /// w.write_slice(b"ab")?;
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn write_slice(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        let remaining = self.remaining();
        let end = self.pos.saturating_add(bytes.len());
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.pos = end;
                Ok(())
            }
            None => Err(StreamError::NoSpace {
                needed: bytes.len(),
                remaining,
            }),
        }
    }

    /// Writes one byte.
    ///
    /// ```
    /// let mut space = [0u8; 1];
    /// pdu::ByteWriter::new(&mut space).write_u8(7)?;
    /// assert_eq!(space, [7]);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn write_u8(&mut self, v: u8) -> Result<(), StreamError> {
        self.write_slice(&[v])
    }

    /// Writes a big-endian `u16`.
    ///
    /// ```
    /// let mut space = [0u8; 2];
    /// pdu::ByteWriter::new(&mut space).write_u16(0x0102)?;
    /// assert_eq!(space, [1, 2]);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn write_u16(&mut self, v: u16) -> Result<(), StreamError> {
        self.write_slice(&v.to_be_bytes())
    }

    /// Writes a big-endian `u32`.
    ///
    /// ```
    /// let mut space = [0u8; 4];
    /// pdu::ByteWriter::new(&mut space).write_u32(0x01020304)?;
    /// assert_eq!(space, [1, 2, 3, 4]);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn write_u32(&mut self, v: u32) -> Result<(), StreamError> {
        self.write_slice(&v.to_be_bytes())
    }

    /// Writes a big-endian `u64`.
    ///
    /// ```
    /// let mut space = [0u8; 8];
    /// pdu::ByteWriter::new(&mut space).write_u64(1)?;
    /// assert_eq!(space, [0, 0, 0, 0, 0, 0, 0, 1]);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn write_u64(&mut self, v: u64) -> Result<(), StreamError> {
        self.write_slice(&v.to_be_bytes())
    }

    /// Writes a big-endian two's-complement `i32`.
    ///
    /// ```
    /// let mut space = [0u8; 4];
    /// pdu::ByteWriter::new(&mut space).write_i32(-2)?;
    /// assert_eq!(space, [0xff, 0xff, 0xff, 0xfe]);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn write_i32(&mut self, v: i32) -> Result<(), StreamError> {
        self.write_slice(&v.to_be_bytes())
    }

    /// Writes a `u32` length followed by the bytes. All or nothing: if the whole
    /// field does not fit, nothing is written.
    ///
    /// ```
    /// let mut space = [0u8; 6];
    /// let mut w = pdu::ByteWriter::new(&mut space);
    /// assert!(w.write_bytes(b"abc").is_err()); // needs 7
    /// assert_eq!(w.position(), 0);
    /// w.write_bytes(b"ab")?;
    /// assert_eq!(space, [0, 0, 0, 2, b'a', b'b']);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        let len = u32::try_from(bytes.len()).map_err(|_| StreamError::TooLong {
            length: bytes.len(),
        })?;
        let needed = bytes.len().saturating_add(4);
        if needed > self.remaining() {
            return Err(StreamError::NoSpace {
                needed,
                remaining: self.remaining(),
            });
        }
        self.write_u32(len)?;
        self.write_slice(bytes)
    }

    /// Writes a `u32` length followed by the UTF-8 bytes of `s`. All or nothing.
    ///
    /// ```
    /// let mut space = [0u8; 6];
    /// pdu::ByteWriter::new(&mut space).write_str("ok")?;
    /// assert_eq!(space, [0, 0, 0, 2, b'o', b'k']);
    /// # Ok::<(), pdu::StreamError>(())
    /// ```
    pub fn write_str(&mut self, s: &str) -> Result<(), StreamError> {
        self.write_bytes(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_read_past_the_end_is_an_error_and_does_not_move() {
        for len in 0..8 {
            let bytes = vec![0u8; len];
            let mut r = ByteReader::new(&bytes);
            let _ = r.read_u64();
            assert_eq!(r.position(), 0);
            assert_eq!(r.read_u64().is_ok(), len >= 8);
            let mut r = ByteReader::new(&bytes);
            assert_eq!(r.read_u32().is_ok(), len >= 4);
            let mut r = ByteReader::new(&bytes);
            assert_eq!(r.read_i32().is_ok(), len >= 4);
            let mut r = ByteReader::new(&bytes);
            assert_eq!(r.read_u16().is_ok(), len >= 2);
            let mut r = ByteReader::new(&bytes);
            assert_eq!(r.read_u8().is_ok(), len >= 1);
        }
    }

    #[test]
    fn a_huge_length_prefix_is_an_error_not_an_allocation() {
        let mut r = ByteReader::new(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert_eq!(
            r.read_bytes(),
            Err(StreamError::UnexpectedEnd {
                needed: 0xffff_ffff,
                remaining: 3
            })
        );
        assert_eq!(r.position(), 0);
        assert!(r.read_str().is_err());
        assert_eq!(r.position(), 0);
    }

    #[test]
    fn writes_and_reads_agree() {
        let mut space = [0u8; 64];
        let mut w = ByteWriter::new(&mut space);
        w.write_u8(0xab).unwrap();
        w.write_u16(0xbeef).unwrap();
        w.write_u32(0xdead_beef).unwrap();
        w.write_u64(u64::MAX - 1).unwrap();
        w.write_i32(i32::MIN).unwrap();
        w.write_bytes(&[1, 2, 3]).unwrap();
        w.write_str("héllo").unwrap();
        let n = w.position();

        let mut r = ByteReader::new(&space[..n]);
        assert_eq!(r.read_u8(), Ok(0xab));
        assert_eq!(r.read_u16(), Ok(0xbeef));
        assert_eq!(r.read_u32(), Ok(0xdead_beef));
        assert_eq!(r.read_u64(), Ok(u64::MAX - 1));
        assert_eq!(r.read_i32(), Ok(i32::MIN));
        assert_eq!(r.read_bytes(), Ok(&[1u8, 2, 3][..]));
        assert_eq!(r.read_str(), Ok("héllo"));
        assert!(r.is_empty());
    }

    #[test]
    fn a_full_writer_writes_nothing_more() {
        let mut space = [0u8; 3];
        let mut w = ByteWriter::new(&mut space);
        assert_eq!(
            w.write_u32(1),
            Err(StreamError::NoSpace {
                needed: 4,
                remaining: 3
            })
        );
        w.write_u16(0x0102).unwrap();
        assert!(w.write_u16(0).is_err());
        w.write_u8(3).unwrap();
        assert!(w.write_u8(0).is_err());
        assert!(w.write_slice(&[]).is_ok());
        assert_eq!(space, [1, 2, 3]);
    }
}
