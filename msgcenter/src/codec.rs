//! [`MsgCodec`]: the msgcenter wire format as an imconn [`Codec`], so the
//! center is an `imconn::Server` like every other protocol of the
//! workspace (buffering, batching, deadlines, input bounds come from there).
//!
//! The codec is stateful per connection: the first thing decoded must be
//! the peer's preamble, and no heartbeat is produced before this side's own
//! preamble went out (a heartbeat must not be the first bytes a peer sees).

use crate::frame::{self, FrameRef, Header, Kind, HEADER_LEN};
use imconn::{Codec, DecodeError, EncodeError, Encoder};

/// One decoded item of a msgcenter stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// The peer's preamble (magic and version checked).
    Preamble,
    /// A frame, checksums verified.
    Frame(FrameRef<'a>),
}

/// The preamble, as an item to encode (marks this side's stream started).
#[derive(Debug, Clone, Copy)]
pub struct Preamble;

/// A control or data frame to encode: header and body.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a>(pub &'a Header, pub &'a [u8]);

/// The codec. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct MsgCodec {
    preamble_in: bool,
    preamble_out: bool,
}

impl Codec for MsgCodec {
    type Frame<'a> = Incoming<'a>;

    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        max_frame: usize,
    ) -> Result<Option<(Incoming<'a>, usize)>, DecodeError> {
        if !self.preamble_in {
            return match frame::decode_preamble(src)? {
                Some(n) => {
                    self.preamble_in = true;
                    Ok(Some((Incoming::Preamble, n)))
                }
                None => Ok(None),
            };
        }
        let max_body = max_frame.saturating_sub(HEADER_LEN);
        Ok(frame::decode_frame(src, max_body)?.map(|(f, n)| (Incoming::Frame(f), n)))
    }

    fn heartbeat(&mut self, dst: &mut Vec<u8>) -> bool {
        self.preamble_out && frame::encode_frame(dst, &Header::new(Kind::Heartbeat), &[]).is_ok()
    }
}

impl Encoder<Preamble> for MsgCodec {
    fn encode(&mut self, _item: Preamble, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        frame::encode_preamble(dst);
        self.preamble_out = true;
        Ok(())
    }
}

impl Encoder<Outgoing<'_>> for MsgCodec {
    fn encode(&mut self, item: Outgoing<'_>, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        Ok(frame::encode_frame(dst, item.0, item.1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_first_then_frames_and_no_early_heartbeat() {
        let mut c = MsgCodec::default();
        let mut hb = Vec::new();
        assert!(!c.heartbeat(&mut hb), "no heartbeat before our preamble");
        let mut wire = Vec::new();
        c.encode(Preamble, &mut wire).unwrap();
        assert!(c.heartbeat(&mut hb));
        c.encode(Outgoing(&Header::new(Kind::Data), b"x"), &mut wire)
            .unwrap();
        let mut rx = MsgCodec::default();
        assert_eq!(rx.decode(&wire[..7], 1024).unwrap(), None);
        let (p, n) = rx.decode(&wire, 1024).unwrap().unwrap();
        assert_eq!((p, n), (Incoming::Preamble, 8));
        let (f, m) = rx.decode(&wire[8..], 1024).unwrap().unwrap();
        assert_eq!(m, HEADER_LEN + 1);
        assert!(matches!(f, Incoming::Frame(f) if f.body == b"x"));
        // A frame where the preamble belongs is refused.
        let mut fresh = MsgCodec::default();
        assert!(fresh.decode(&wire[8..], 1024).is_err());
        // max_frame counts the header.
        let mut rx2 = MsgCodec::default();
        rx2.decode(&wire, 1024).unwrap();
        assert!(rx2.decode(&wire[8..], HEADER_LEN).is_err());
    }
}
