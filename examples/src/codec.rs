//! [`LengthCodec`]: frames of a 4-byte big-endian length and a body, the
//! format of muduo's chat example.
//!
//! Decoding keeps *incomplete* apart from *invalid*: `Ok(None)` means "wait
//! for more bytes", `Err` means the stream is broken (a declared length over
//! the limit) and the connection should be closed. A peer that declares a
//! huge frame is refused at once instead of being buffered up to it.
//!
//! ```
//! use examples::codec::LengthCodec;
//! let codec = LengthCodec::new(1024);
//! let mut wire = Vec::new();
//! LengthCodec::encode(&mut wire, b"hello");
//! assert_eq!(codec.decode(&wire[..6]), Ok(None)); // incomplete
//! assert_eq!(codec.decode(&wire), Ok(Some((9, &b"hello"[..]))));
//! assert!(codec.decode(&[0, 0, 8, 0]).is_err()); // 2048 > 1024: invalid
//! ```

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// A declared length over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTooLong {
    /// The length the peer declared.
    pub declared: usize,
    /// The limit.
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

impl std::error::Error for FrameTooLong {}

/// Length-prefixed framing with a maximum body size.
#[derive(Debug, Clone, Copy)]
pub struct LengthCodec {
    max_body: usize,
}

impl LengthCodec {
    /// A codec refusing bodies longer than `max_body` bytes.
    pub fn new(max_body: usize) -> LengthCodec {
        LengthCodec { max_body }
    }

    /// The largest body accepted.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// The first frame of `data`: `Ok(Some((frame_len, body)))` with the
    /// bytes to consume, `Ok(None)` if it is not complete yet.
    pub fn decode<'a>(&self, data: &'a [u8]) -> Result<Option<(usize, &'a [u8])>, FrameTooLong> {
        let Some(header) = data.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let declared = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if declared > self.max_body {
            return Err(FrameTooLong {
                declared,
                max: self.max_body,
            });
        }
        Ok(data
            .get(HEADER_LEN..HEADER_LEN + declared)
            .map(|body| (HEADER_LEN + declared, body)))
    }

    /// Appends the frame of `body` to `out`. Bodies over 4 GiB cannot be
    /// framed; callers bound their messages well below that.
    pub fn encode(out: &mut Vec<u8>, body: &[u8]) {
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_at_a_time_is_incomplete_until_the_last_byte() {
        let codec = LengthCodec::new(100);
        let mut wire = Vec::new();
        LengthCodec::encode(&mut wire, b"abc");
        for end in 0..wire.len() {
            assert_eq!(codec.decode(&wire[..end]), Ok(None));
        }
        assert_eq!(codec.decode(&wire), Ok(Some((7, &b"abc"[..]))));
    }

    #[test]
    fn the_limit_itself_is_allowed() {
        let codec = LengthCodec::new(3);
        assert_eq!(codec.decode(&[0, 0, 0, 3, 1]), Ok(None));
        assert_eq!(
            codec.decode(&[0, 0, 0, 4]),
            Err(FrameTooLong {
                declared: 4,
                max: 3
            })
        );
    }

    #[test]
    fn empty_bodies_are_frames() {
        let codec = LengthCodec::new(3);
        assert_eq!(codec.decode(&[0, 0, 0, 0, 9]), Ok(Some((4, &b""[..]))));
    }
}
