//! Splitting a byte stream into frames: the incremental, zero-copy decoder.
//!
//! TCP delivers bytes, not frames. A connection appends whatever arrived to its
//! input buffer and asks the decoder what is in there. The answer for the frame at
//! the front is one of three:
//!
//! - `Ok(Some(frame))`: a whole, valid frame, borrowed from the buffer;
//! - `Ok(None)`: incomplete, wait for more bytes;
//! - `Err(FrameError)`: invalid, and it never will be valid; close the
//!   connection and log the reason.
//!
//! Keeping "incomplete" apart from "invalid" is the point. The original checked
//! neither bound of the length field: a declared length of 0..15 was taken as a
//! frame (the buffer never advanced, or the next frame was misread), and a length
//! of 4 GiB made it buffer forever. Here both are errors, detected as soon as the
//! four length bytes are in, before any body is buffered; the version field is
//! checked as soon as its two bytes are in.
//!
//! The decoder is a small `Copy` value holding only its limit. It never allocates
//! and never copies: it reads the header in place and hands out
//! [`PduRef`]s pointing into the caller's buffer. The caller then
//! [`consume`](crate::SimpleBuffer::consume)s what was decoded, once per batch.
//!
//! ```
//! use pdu::{FrameDecoder, FrameError, Header, Pdu};
//!
//! let decoder = FrameDecoder::with_max_frame_len(1024);
//! let frame = Pdu::from_body(Header::new(1, 2), b"abc")?.into_bytes();
//!
//! assert_eq!(decoder.decode(&frame[..10])?, None); // incomplete
//! assert!(decoder.decode(&frame)?.is_some()); // complete
//! assert_eq!(
//!     decoder.decode(&[0, 0, 8, 0]),             // 2048 > 1024: invalid already
//!     Err(FrameError::LengthTooLong { length: 2048, max: 1024 })
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::FrameError;
use crate::frame::{Pdu, PduRef};
use crate::header::{Header, HEADER_LEN, PROTOCOL_VERSION};
use crate::simple_buffer::SimpleBuffer;

/// The default maximum frame length: 4 MiB, header included. Large enough for any
/// message TeamTalk sends, small enough that a hostile peer cannot make a server
/// buffer much.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 4 * 1024 * 1024;

/// Finds and validates frames in a byte buffer. See the [module docs](self).
///
/// ```
/// let decoder = pdu::FrameDecoder::new();
/// assert_eq!(decoder.max_frame_len(), 4 * 1024 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameDecoder {
    max_frame_len: u32,
}

impl Default for FrameDecoder {
    fn default() -> FrameDecoder {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// A decoder accepting frames up to [`DEFAULT_MAX_FRAME_LEN`] (4 MiB).
    ///
    /// ```
    /// let decoder = pdu::FrameDecoder::new();
    /// # let _ = decoder;
    /// ```
    pub const fn new() -> FrameDecoder {
        FrameDecoder {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// A decoder accepting frames up to `max` bytes, header included. A `max` below
    /// [`HEADER_LEN`] is raised to it (an empty body must always be acceptable).
    ///
    /// ```
    /// assert_eq!(pdu::FrameDecoder::with_max_frame_len(64 * 1024).max_frame_len(), 65536);
    /// assert_eq!(pdu::FrameDecoder::with_max_frame_len(0).max_frame_len(), 16);
    /// ```
    #[inline]
    pub const fn with_max_frame_len(max: u32) -> FrameDecoder {
        let max = if max < HEADER_LEN as u32 {
            HEADER_LEN as u32
        } else {
            max
        };
        FrameDecoder { max_frame_len: max }
    }

    /// The largest frame this decoder accepts, header included.
    pub const fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// Checks the header fields that are already visible at the start of `buf`,
    /// even if the header is not complete yet: the length once 4 bytes are in, the
    /// version once 6 are.
    #[inline]
    fn check_prefix(&self, buf: &[u8]) -> Result<(), FrameError> {
        if let Some(&[a, b, c, d]) = buf.get(..4) {
            let length = u32::from_be_bytes([a, b, c, d]);
            if length < HEADER_LEN as u32 {
                return Err(FrameError::LengthTooShort { length });
            }
            if length > self.max_frame_len {
                return Err(FrameError::LengthTooLong {
                    length,
                    max: self.max_frame_len,
                });
            }
        }
        if let Some(&[a, b]) = buf.get(4..6) {
            let version = u16::from_be_bytes([a, b]);
            if version != PROTOCOL_VERSION {
                return Err(FrameError::UnsupportedVersion { version });
            }
        }
        Ok(())
    }

    /// The validated header of the frame at the start of `buf`, once all 16 header
    /// bytes are there (the body need not be). Use it to learn a frame's length
    /// early, for example to reserve buffer space for a large body.
    ///
    /// ```
    /// use pdu::{FrameDecoder, Header, Pdu};
    ///
    /// let frame = Pdu::from_body(Header::new(1, 2), &[0; 100])?.into_bytes();
    /// let d = FrameDecoder::new();
    /// assert_eq!(d.peek_header(&frame[..15])?, None);
    /// assert_eq!(d.peek_header(&frame[..16])?.map(|h| h.length), Some(116));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn peek_header(&self, buf: &[u8]) -> Result<Option<Header>, FrameError> {
        self.check_prefix(buf)?;
        Ok(Header::peek(buf))
    }

    /// The total length of the frame at the start of `buf` (header included), once
    /// the header is complete; see [`peek_header`](Self::peek_header).
    ///
    /// ```
    /// let frame = pdu::Pdu::from_body(pdu::Header::new(1, 2), b"abcd")?.into_bytes();
    /// assert_eq!(pdu::FrameDecoder::new().frame_len(&frame)?, Some(20));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        Ok(self.peek_header(buf)?.map(|h| h.length as usize))
    }

    /// Decodes the frame at the start of `buf`, borrowing it: `Ok(None)` until the
    /// whole frame is there. Consumes nothing; advance by
    /// [`PduRef::frame_len`] when done with the frame.
    ///
    /// ```
    /// let bytes = pdu::Pdu::from_body(pdu::Header::new(1, 2), b"ab")?.into_bytes();
    /// let frame = pdu::FrameDecoder::new().decode(&bytes)?.unwrap();
    /// assert_eq!((frame.frame_len(), frame.body()), (18, &b"ab"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn decode<'a>(&self, buf: &'a [u8]) -> Result<Option<PduRef<'a>>, FrameError> {
        let Some(header) = self.peek_header(buf)? else {
            return Ok(None);
        };
        // `length` was checked against `max_frame_len`, so it fits in memory terms;
        // `get` returns None while the body is still incomplete.
        Ok(buf
            .get(..header.length as usize)
            .map(|frame| PduRef::new(header, frame)))
    }

    /// An iterator over the complete frames at the start of `buf`. It stops at the
    /// first incomplete frame, or after yielding the first error.
    /// [`Frames::consumed`] then says how many bytes the yielded frames covered.
    ///
    /// ```
    /// use pdu::{FrameDecoder, Header, Pdu};
    ///
    /// let mut wire = Vec::new();
    /// for seq in 0..3 {
    ///     Pdu::encode_bytes_into(&mut wire, &Header::new(1, 2).with_seq_num(seq), b"x")?;
    /// }
    /// wire.truncate(wire.len() - 1); // the third frame is still arriving
    ///
    /// let mut frames = FrameDecoder::new().frames(&wire);
    /// let seqs: Vec<u16> = frames.by_ref().map(|f| f.map(|f| f.seq_num())).collect::<Result<_, _>>()?;
    /// assert_eq!(seqs, [0, 1]);
    /// assert_eq!(frames.consumed(), 34);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn frames<'a>(&self, buf: &'a [u8]) -> Frames<'a> {
        Frames {
            decoder: *self,
            buf,
            consumed: 0,
            done: false,
        }
    }

    /// Takes the next complete frame out of `buf` as an owned [`Pdu`], consuming
    /// its bytes; `Ok(None)` (consuming nothing) while it is incomplete. Costs one
    /// allocation per frame; prefer [`frames`](Self::frames) on a hot path.
    ///
    /// ```
    /// use pdu::{FrameDecoder, Header, Pdu, SimpleBuffer};
    ///
    /// let mut input = SimpleBuffer::new();
    /// input.extend_from_slice(Pdu::from_body(Header::new(1, 2), b"ab")?.as_bytes());
    /// let pdu = FrameDecoder::new().decode_owned(&mut input)?.unwrap();
    /// assert_eq!(pdu.body(), b"ab");
    /// assert!(input.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decode_owned(&self, buf: &mut SimpleBuffer) -> Result<Option<Pdu>, FrameError> {
        let pdu = match self.decode(buf.as_slice())? {
            Some(frame) => frame.to_pdu(),
            None => return Ok(None),
        };
        buf.consume(pdu.frame_len());
        Ok(Some(pdu))
    }
}

/// Iterator over the complete frames at the start of a buffer; see
/// [`FrameDecoder::frames`].
///
/// Yields `Ok(frame)` for each complete frame, stops (`None`) at an incomplete
/// one, and yields an `Err` at most once, then stops for good.
#[derive(Clone, Debug)]
pub struct Frames<'a> {
    decoder: FrameDecoder,
    buf: &'a [u8],
    consumed: usize,
    done: bool,
}

impl<'a> Frames<'a> {
    /// Total length of the frames yielded so far: the number of bytes to
    /// [`consume`](crate::SimpleBuffer::consume) from the input buffer.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// The bytes after the frames yielded so far (the start of an incomplete or
    /// invalid frame, or nothing).
    pub fn remainder(&self) -> &'a [u8] {
        self.buf.get(self.consumed..).unwrap_or(&[])
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<PduRef<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.decoder.decode(self.remainder()) {
            Ok(Some(frame)) => {
                self.consumed += frame.frame_len();
                Some(Ok(frame))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for Frames<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        match Pdu::from_body(Header::new(3, 0x0301), body) {
            Ok(pdu) => pdu.into_bytes(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn incomplete_until_the_last_byte() {
        let bytes = frame(b"hello");
        let d = FrameDecoder::new();
        for n in 0..bytes.len() {
            assert_eq!(d.decode(&bytes[..n]), Ok(None), "prefix of {n}");
        }
        let f = d.decode(&bytes).unwrap().unwrap();
        assert_eq!(f.body(), b"hello");
        assert_eq!(f.frame_len(), bytes.len());
    }

    #[test]
    fn declared_lengths_below_the_header_are_rejected() {
        // Regression: the original accepted lengths 0..15.
        let d = FrameDecoder::new();
        for length in 0..HEADER_LEN as u32 {
            let mut bytes = Header::new(1, 2).to_bytes();
            bytes[..4].copy_from_slice(&length.to_be_bytes());
            assert_eq!(d.decode(&bytes), Err(FrameError::LengthTooShort { length }));
            // Rejected as soon as the length field is in.
            assert_eq!(
                d.decode(&bytes[..4]),
                Err(FrameError::LengthTooShort { length })
            );
        }
    }

    #[test]
    fn declared_lengths_above_the_maximum_are_rejected_early() {
        // Regression: the original had no maximum at all.
        let d = FrameDecoder::with_max_frame_len(100);
        let mut bytes = frame(&[0; 84]);
        assert!(d.decode(&bytes).unwrap().is_some(), "100 bytes is allowed");
        bytes[..4].copy_from_slice(&101u32.to_be_bytes());
        assert_eq!(
            d.decode(&bytes[..4]),
            Err(FrameError::LengthTooLong {
                length: 101,
                max: 100
            })
        );
        assert!(matches!(
            FrameDecoder::new().decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(FrameError::LengthTooLong { .. })
        ));
    }

    #[test]
    fn unknown_versions_are_rejected() {
        let d = FrameDecoder::new();
        for version in [0u16, 2, 0x0100, u16::MAX] {
            let mut bytes = frame(b"");
            bytes[4..6].copy_from_slice(&version.to_be_bytes());
            assert_eq!(
                d.decode(&bytes[..6]),
                Err(FrameError::UnsupportedVersion { version })
            );
            assert_eq!(
                d.decode(&bytes),
                Err(FrameError::UnsupportedVersion { version })
            );
        }
    }

    #[test]
    fn frames_stops_after_an_error_and_reports_what_was_good() {
        let mut wire = frame(b"a");
        wire.extend_from_slice(&[0, 0, 0, 1, 0, 1]);
        let mut frames = FrameDecoder::new().frames(&wire);
        assert!(matches!(frames.next(), Some(Ok(_))));
        assert_eq!(
            frames.next(),
            Some(Err(FrameError::LengthTooShort { length: 1 }))
        );
        assert_eq!(frames.next(), None);
        assert_eq!(frames.consumed(), 17);
        assert_eq!(frames.remainder(), &[0, 0, 0, 1, 0, 1]);
    }

    #[test]
    fn empty_bodies_are_frames() {
        let bytes = frame(b"");
        let d = FrameDecoder::with_max_frame_len(0);
        assert_eq!(d.decode(&bytes).unwrap().unwrap().body(), b"");
    }

    #[test]
    fn decode_owned_consumes_exactly_one_frame() {
        let mut input = SimpleBuffer::new();
        input.extend_from_slice(&frame(b"one"));
        input.extend_from_slice(&frame(b"two")[..10]);
        let d = FrameDecoder::new();
        assert_eq!(d.decode_owned(&mut input).unwrap().unwrap().body(), b"one");
        assert_eq!(input.len(), 10);
        assert_eq!(d.decode_owned(&mut input), Ok(None));
        assert_eq!(input.len(), 10);
    }
}
