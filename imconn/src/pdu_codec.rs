//! [`PduCodec`]: TeamTalk's 16-byte PDU framing as a [`Codec`], and
//! [`ImServer`], the connection server with it - TeamTalk's `CImConn`.
//!
//! Decoding refuses a declared length below 16, above the connection's
//! [`ConnConfig::max_frame`](crate::ConnConfig::max_frame) or with an
//! unknown version as soon as the header is in; the heartbeat is TeamTalk's
//! `IMHeartBeat` (service `OTHER`, command `HEARTBEAT`).
//!
//! Items it encodes: `(&Header, &M)` for any protobuf message `M`, and an
//! already encoded frame as [`RawFrame`] (forwarding). [`ConnCtx::send_pdu`]
//! and [`ConnCtx::send_pdu_to`] are the spelled-out forms.

use crate::codec::{Codec, DecodeError, EncodeError, Encoder};
use crate::ctx::ConnCtx;
use crate::server::{Connection, Server};
use crate::SendError;
use crate::SendStatus;
use netlib::Handle;
use pdu::{cid, proto::ImHeartBeat, sid, FrameDecoder, Header, Message, Pdu, PduRef};

/// TeamTalk's PDU framing. Zero-sized: the frame limit comes from the
/// connection's config.
#[derive(Debug, Clone, Copy, Default)]
pub struct PduCodec;

/// An already encoded PDU, sent as it is (forwarding a received frame).
#[derive(Debug, Clone, Copy)]
pub struct RawFrame<'a>(pub &'a [u8]);

/// The connection server with the PDU codec: what `login_server` and
/// `msg_server` are built on.
pub type ImServer<C> = Server<C>;

impl Codec for PduCodec {
    type Frame<'a> = PduRef<'a>;

    #[inline]
    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        max_frame: usize,
    ) -> Result<Option<(PduRef<'a>, usize)>, DecodeError> {
        let max = u32::try_from(max_frame).unwrap_or(u32::MAX);
        match FrameDecoder::with_max_frame_len(max).decode(src) {
            Ok(Some(pdu)) => {
                let len = pdu.frame_len();
                Ok(Some((pdu, len)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(Box::new(e)),
        }
    }

    fn heartbeat(&mut self, dst: &mut Vec<u8>) -> bool {
        let header = Header::new(sid::OTHER, cid::other::HEARTBEAT);
        Pdu::encode_message_into(dst, &header, &ImHeartBeat {}).is_ok()
    }
}

impl<M: Message> Encoder<(&Header, &M)> for PduCodec {
    fn encode(
        &mut self,
        (header, msg): (&Header, &M),
        dst: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let before = dst.len();
        Pdu::encode_message_into(dst, header, msg).map_err(|e| {
            dst.truncate(before);
            Box::new(e) as EncodeError
        })?;
        Ok(())
    }
}

impl Encoder<RawFrame<'_>> for PduCodec {
    fn encode(&mut self, frame: RawFrame<'_>, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        dst.extend_from_slice(frame.0);
        Ok(())
    }
}

impl<C: Connection<Codec = PduCodec>> ConnCtx<'_, C> {
    /// Encodes `msg` after `header` and sends it on this connection.
    pub fn send_pdu<M: Message>(
        &mut self,
        header: &Header,
        msg: &M,
    ) -> Result<SendStatus, SendError> {
        self.send((header, msg))
    }

    /// Encodes `msg` after `header` and sends it on connection `h` (this
    /// one included).
    pub fn send_pdu_to<M: Message>(
        &mut self,
        h: Handle,
        header: &Header,
        msg: &M,
    ) -> Result<SendStatus, SendError> {
        self.send_to(h, (header, msg))
    }

    /// Sends `msg` on every connected link; returns how many took it.
    pub fn send_pdu_to_links<M: Message>(&mut self, header: &Header, msg: &M) -> usize {
        let links: Vec<Handle> = self.link_handles().collect();
        links
            .into_iter()
            .filter(|h| self.send_to(*h, (header, msg)).is_ok())
            .count()
    }
}
