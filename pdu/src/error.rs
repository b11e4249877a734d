//! Error types, one per kind of failure, each saying what was wrong with which value.
//!
//! They live together so a caller can see at a glance everything this crate can
//! report:
//!
//! - [`FrameError`]: the peer sent a frame the decoder refuses. The right reaction
//!   is to close that one connection and log the error's `Display` text.
//! - [`EncodeError`]: a frame we were asked to build cannot be represented.
//! - [`StreamError`]: a [`ByteReader`](crate::ByteReader) or
//!   [`ByteWriter`](crate::ByteWriter) ran off the end of its bytes, or read text
//!   that was not UTF-8.
//!
//! Protobuf body errors are [`prost::DecodeError`], returned as they are.

use std::fmt;

/// Why the decoder refused a frame. Not recoverable for that stream: the frame
/// boundary is lost, so the connection should be closed.
///
/// ```
/// use pdu::{FrameDecoder, FrameError};
///
/// let err = FrameDecoder::new().decode(&[0, 0, 0, 3]).unwrap_err();
/// assert_eq!(err, FrameError::LengthTooShort { length: 3 });
/// assert_eq!(err.to_string(), "declared frame length 3 is shorter than the 16-byte header");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The declared length is below [`HEADER_LEN`](crate::HEADER_LEN): the frame
    /// cannot even hold its own header. (The original accepted these and
    /// misparsed, or spun on, whatever followed.)
    LengthTooShort {
        /// The length field as received.
        length: u32,
    },
    /// The declared length is above the decoder's configured maximum; accepting it
    /// would let one peer make us buffer that much memory.
    LengthTooLong {
        /// The length field as received.
        length: u32,
        /// The decoder's limit.
        max: u32,
    },
    /// The version field is not [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION):
    /// the peer does not speak this protocol (or the stream is out of step).
    UnsupportedVersion {
        /// The version field as received.
        version: u16,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::LengthTooShort { length } => write!(
                f,
                "declared frame length {length} is shorter than the {}-byte header",
                crate::HEADER_LEN
            ),
            FrameError::LengthTooLong { length, max } => write!(
                f,
                "declared frame length {length} exceeds the maximum of {max} bytes"
            ),
            FrameError::UnsupportedVersion { version } => write!(
                f,
                "unsupported protocol version {version} (expected {})",
                crate::PROTOCOL_VERSION
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Why a frame could not be built.
///
/// ```
/// use pdu::EncodeError;
///
/// let err = EncodeError::FrameTooLarge { length: 5_000_000_000 };
/// assert!(err.to_string().contains("5000000000"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// Header plus body would not fit the 32-bit length field. Nothing was
    /// appended to the output.
    FrameTooLarge {
        /// Header plus body, in bytes.
        length: usize,
    },
    /// The body writer given to [`Pdu::encode_into`](crate::Pdu::encode_into)
    /// removed bytes from the output instead of only appending; the output was
    /// truncated back to where the frame would have started.
    OutputShrank,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncodeError::FrameTooLarge { length } => write!(
                f,
                "frame of {length} bytes does not fit the 32-bit length field"
            ),
            EncodeError::OutputShrank => {
                f.write_str("the body writer removed bytes it had not written")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// A bounds or format failure in [`ByteReader`](crate::ByteReader) /
/// [`ByteWriter`](crate::ByteWriter). The cursor does not move when an operation
/// fails, so nothing is half-read.
///
/// ```
/// use pdu::{ByteReader, StreamError};
///
/// let mut r = ByteReader::new(&[1, 2]);
/// assert_eq!(r.read_u32(), Err(StreamError::UnexpectedEnd { needed: 4, remaining: 2 }));
/// assert_eq!(r.read_u16(), Ok(0x0102));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// A read wanted more bytes than are left.
    UnexpectedEnd {
        /// Bytes the read needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A write wanted more room than is left.
    NoSpace {
        /// Bytes the write needed.
        needed: usize,
        /// Room that was left.
        remaining: usize,
    },
    /// A length-prefixed string was not valid UTF-8.
    InvalidUtf8 {
        /// Offset of the string's first byte (after its length prefix).
        offset: usize,
    },
    /// A string or byte field longer than its 32-bit length prefix can express.
    TooLong {
        /// The field's length.
        length: usize,
    },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StreamError::UnexpectedEnd { needed, remaining } => write!(
                f,
                "read of {needed} bytes past the end of the stream ({remaining} left)"
            ),
            StreamError::NoSpace { needed, remaining } => write!(
                f,
                "write of {needed} bytes does not fit ({remaining} bytes of room left)"
            ),
            StreamError::InvalidUtf8 { offset } => {
                write!(f, "string at offset {offset} is not valid UTF-8")
            }
            StreamError::TooLong { length } => write!(
                f,
                "field of {length} bytes does not fit a 32-bit length prefix"
            ),
        }
    }
}

impl std::error::Error for StreamError {}
