//! [`Codec`]: how a wire protocol turns bytes into frames and back.
//!
//! The connection [`Server`](crate::Server) owns reading, buffering,
//! batching and deadlines; a codec only answers two questions about bytes:
//!
//! - **decode**: is there a whole frame at the start of this input? The
//!   answer keeps *incomplete* (`Ok(None)`: wait for more bytes) apart from
//!   *invalid* (`Err`: the stream is broken, close the connection). A codec
//!   should refuse a frame that declares itself longer than `max_frame` as
//!   soon as it sees the declaration; the server also closes a connection
//!   whose incomplete input grows past `max_frame`, so a codec that cannot
//!   tell early still cannot be made to buffer without bound.
//! - **encode** ([`Encoder`]): append one outgoing item to a byte buffer. A
//!   codec may accept several item types (the PDU codec takes a header plus
//!   any protobuf message, or an already encoded frame).
//!
//! A codec may also supply a heartbeat frame, sent by the server when a
//! connection with a heartbeat deadline has been quiet.
//!
//! The codecs every protocol in the workspace needs live here: [`RawCodec`]
//! (bytes as they come: echo, relays), [`LineCodec`] (text lines:
//! memcached, sudoku, chat-style protocols), [`LengthCodec`] (a 4-byte
//! length then a body: muduo's chat) and, in [`pdu_codec`](crate::pdu_codec),
//! TeamTalk's 16-byte PDU header.
//!
//! ```
//! use imconn::{Codec, Encoder, LineCodec};
//! let mut codec = LineCodec::new();
//! assert!(codec.decode(b"hel", 64).unwrap().is_none()); // incomplete
//! let (line, used) = codec.decode(b"hello\r\nrest", 64).unwrap().unwrap();
//! assert_eq!((line, used), (&b"hello"[..], 7));
//! assert!(codec.decode(&[b'x'; 100], 64).is_err()); // a line too long: invalid
//! let mut out = Vec::new();
//! codec.encode(&b"world"[..], &mut out).unwrap();
//! assert_eq!(out, b"world\r\n");
//! ```

use std::error::Error;

/// Why input could not be decoded; the connection is closed with it logged.
pub type DecodeError = Box<dyn Error + Send + Sync>;

/// Why an item could not be encoded; nothing was sent.
pub type EncodeError = Box<dyn Error + Send + Sync>;

/// The decoding half of a wire protocol. Each connection gets its own
/// clone of the server's codec, so a codec may keep per-connection state.
pub trait Codec: Clone + 'static {
    /// A decoded frame; it may borrow from the input.
    type Frame<'a>;

    /// Decodes the first frame of `src`: `Ok(Some((frame, used)))` with the
    /// number of bytes it took, `Ok(None)` if `src` holds only part of a
    /// frame, `Err` if `src` can never become a valid frame (then the
    /// connection is closed). `max_frame` is the connection's
    /// [`ConnConfig::max_frame`](crate::ConnConfig::max_frame).
    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        max_frame: usize,
    ) -> Result<Option<(Self::Frame<'a>, usize)>, DecodeError>;

    /// Appends a heartbeat frame to `dst` and returns true, or returns false
    /// if the protocol has none (the default). Sent when a connection whose
    /// [`Timeouts::heartbeat`](crate::Timeouts::heartbeat) is set has sent
    /// nothing for that long.
    fn heartbeat(&mut self, dst: &mut Vec<u8>) -> bool {
        let _ = dst;
        false
    }
}

/// The encoding half: appends `Item` to an output buffer.
pub trait Encoder<Item>: Codec {
    /// Appends the encoding of `item` to `dst`. On error `dst` must be left
    /// as it was.
    fn encode(&mut self, item: Item, dst: &mut Vec<u8>) -> Result<(), EncodeError>;
}

/// No framing: every read is a frame of whatever bytes arrived (at most
/// `max_frame` at a time). For echo servers and relays.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Frame<'a> = &'a [u8];

    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        max_frame: usize,
    ) -> Result<Option<(&'a [u8], usize)>, DecodeError> {
        if src.is_empty() {
            return Ok(None);
        }
        let n = src.len().min(max_frame.max(1));
        Ok(Some((&src[..n], n)))
    }
}

impl Encoder<&[u8]> for RawCodec {
    fn encode(&mut self, item: &[u8], dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        dst.extend_from_slice(item);
        Ok(())
    }
}

/// Text lines ending in `\n` (a preceding `\r` is stripped); frames are the
/// line without its terminator. A line whose bytes, terminator included,
/// exceed `max_frame` is invalid.
/// Encoding appends the item and `\r\n` (or `\n`, see [`LineCodec::lf`]).
#[derive(Debug, Clone, Copy)]
pub struct LineCodec {
    terminator: &'static [u8],
}

impl Default for LineCodec {
    fn default() -> Self {
        LineCodec::new()
    }
}

impl LineCodec {
    /// Lines written with `\r\n`.
    pub fn new() -> LineCodec {
        LineCodec {
            terminator: b"\r\n",
        }
    }

    /// Lines written with a bare `\n`.
    pub fn lf() -> LineCodec {
        LineCodec { terminator: b"\n" }
    }
}

/// A line longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong {
    /// The limit.
    pub max: usize,
}

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line longer than {} bytes", self.max)
    }
}

impl Error for LineTooLong {}

impl Codec for LineCodec {
    type Frame<'a> = &'a [u8];

    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        max_frame: usize,
    ) -> Result<Option<(&'a [u8], usize)>, DecodeError> {
        // A whole line, terminator included, is at most `max_frame` bytes.
        let window = &src[..src.len().min(max_frame)];
        match window.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let line = &src[..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                Ok(Some((line, end + 1)))
            }
            None if src.len() >= max_frame => Err(Box::new(LineTooLong { max: max_frame })),
            None => Ok(None),
        }
    }
}

impl Encoder<&[u8]> for LineCodec {
    fn encode(&mut self, item: &[u8], dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        dst.extend_from_slice(item);
        dst.extend_from_slice(self.terminator);
        Ok(())
    }
}

impl Encoder<&str> for LineCodec {
    fn encode(&mut self, item: &str, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.encode(item.as_bytes(), dst)
    }
}

/// Bytes in a [`LengthCodec`] header.
pub const LENGTH_HEADER_LEN: usize = 4;

/// Frames of a 4-byte big-endian body length then the body (muduo's chat
/// format). A frame (header included) over `max_frame` is invalid as soon
/// as its header is in.
///
/// ```
/// use imconn::{Codec, Encoder, LengthCodec};
/// let mut codec = LengthCodec;
/// let mut wire = Vec::new();
/// codec.encode(&b"hello"[..], &mut wire).unwrap();
/// assert!(codec.decode(&wire[..6], 1024).unwrap().is_none());
/// assert_eq!(codec.decode(&wire, 1024).unwrap().unwrap(), (&b"hello"[..], 9));
/// assert!(codec.decode(&[0, 0, 8, 0], 1024).is_err()); // 2048 + 4 > 1024
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LengthCodec;

/// A declared body length over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTooLong {
    /// The body length the peer declared.
    pub declared: usize,
    /// The largest body allowed.
    pub max: usize,
}

impl std::fmt::Display for FrameTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "frame of {} bytes over the {} byte limit",
            self.declared, self.max
        )
    }
}

impl Error for FrameTooLong {}

impl Codec for LengthCodec {
    type Frame<'a> = &'a [u8];

    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        max_frame: usize,
    ) -> Result<Option<(&'a [u8], usize)>, DecodeError> {
        let Some(header) = src.get(..LENGTH_HEADER_LEN) else {
            return Ok(None);
        };
        let declared = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if declared > max_frame.saturating_sub(LENGTH_HEADER_LEN) {
            return Err(Box::new(FrameTooLong {
                declared,
                max: max_frame.saturating_sub(LENGTH_HEADER_LEN),
            }));
        }
        Ok(src
            .get(LENGTH_HEADER_LEN..LENGTH_HEADER_LEN + declared)
            .map(|body| (body, LENGTH_HEADER_LEN + declared)))
    }
}

impl Encoder<&[u8]> for LengthCodec {
    fn encode(&mut self, item: &[u8], dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        let len = u32::try_from(item.len()).map_err(|_| "body over 4 GiB cannot be framed")?;
        dst.extend_from_slice(&len.to_be_bytes());
        dst.extend_from_slice(item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_codec_is_incomplete_until_the_last_byte() {
        let mut codec = LengthCodec;
        let mut wire = Vec::new();
        codec.encode(&b"abc"[..], &mut wire).unwrap();
        for end in 0..wire.len() {
            assert!(codec.decode(&wire[..end], 100).unwrap().is_none());
        }
        assert_eq!(codec.decode(&wire, 100).unwrap(), Some((&b"abc"[..], 7)));
        // The limit itself is allowed, one more is not.
        assert!(codec.decode(&[0, 0, 0, 3, 1], 7).unwrap().is_none());
        assert!(codec.decode(&[0, 0, 0, 4], 7).is_err());
        assert_eq!(
            codec.decode(&[0, 0, 0, 0, 9], 7).unwrap(),
            Some((&b""[..], 4))
        );
    }

    #[test]
    fn line_codec_strips_crlf_and_bounds_lines() {
        let mut codec = LineCodec::new();
        assert_eq!(codec.decode(b"a\nb", 8).unwrap(), Some((&b"a"[..], 2)));
        assert_eq!(codec.decode(b"ab\r\n", 8).unwrap(), Some((&b"ab"[..], 4)));
        assert!(codec.decode(b"1234567", 8).unwrap().is_none());
        assert!(codec.decode(b"12345678", 8).is_err());
        // A terminator right at the limit is found.
        assert_eq!(
            codec.decode(b"1234567\n", 8).unwrap(),
            Some((&b"1234567"[..], 8))
        );
    }

    #[test]
    fn raw_codec_takes_what_is_there() {
        let mut codec = RawCodec;
        assert!(codec.decode(b"", 8).unwrap().is_none());
        assert_eq!(
            codec.decode(b"0123456789", 4).unwrap(),
            Some((&b"0123"[..], 4))
        );
    }
}
