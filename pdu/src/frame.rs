//! A whole frame, header plus body: borrowed ([`PduRef`]), owned ([`Pdu`]), and
//! how to write one ([`Pdu::encode_message_into`] and friends).
//!
//! This is the port of TeamTalk's `CImPdu`, split by ownership:
//!
//! - [`PduRef<'a>`] is what the decoder hands out: the header already parsed and
//!   the body borrowed from the connection's input buffer. It costs nothing, so a
//!   connection can dispatch every frame without allocating.
//! - [`Pdu`] owns its bytes (header and body in one `Vec<u8>`, exactly as they go
//!   on the wire) for frames that must outlive the input buffer: queued, forwarded
//!   to another connection, or built to be sent.
//!
//! Writing goes straight into the output buffer. [`Pdu::encode_message_into`] asks
//! the protobuf message for its length first, so the header is written complete
//! and the body encoded right behind it: one pass, no body buffer, no copy.
//! [`Pdu::encode_into`] is the general form for bodies of unknown length: it writes
//! the header, lets a closure append the body, then patches the length field.
//! Both write into any [`FrameBuf`]: a `Vec<u8>` or a [`SimpleBuffer`].

use prost::bytes::BufMut;
use prost::Message;

use crate::error::EncodeError;
use crate::header::{Header, HEADER_LEN};
use crate::simple_buffer::SimpleBuffer;

/// An output buffer a frame can be appended to: `Vec<u8>` or [`SimpleBuffer`].
///
/// Appending goes through [`BufMut`] (so prost can encode directly into it); the
/// extra methods let an encoder reserve room, go back to patch the length field,
/// and undo a frame that turned out too large.
pub trait FrameBuf: BufMut {
    /// Number of bytes in the buffer: where the next byte will go.
    ///
    /// ```
    /// use pdu::FrameBuf;
    /// assert_eq!(FrameBuf::written_len(&vec![1u8, 2, 3]), 3);
    /// ```
    fn written_len(&self) -> usize;

    /// Makes room for `additional` more bytes.
    ///
    /// ```
    /// use pdu::FrameBuf;
    /// let mut v: Vec<u8> = Vec::new();
    /// v.reserve_frame(100);
    /// assert!(v.capacity() >= 100);
    /// ```
    fn reserve_frame(&mut self, additional: usize);

    /// The bytes already written from offset `start` on (empty if `start` is past
    /// the end), for patching a header in place.
    ///
    /// ```
    /// use pdu::FrameBuf;
    /// let mut v = vec![1u8, 2, 3];
    /// v.written_mut(1)[0] = 9;
    /// assert_eq!(v, [1, 9, 3]);
    /// ```
    fn written_mut(&mut self, start: usize) -> &mut [u8];

    /// Drops everything written after the first `len` bytes.
    ///
    /// ```
    /// use pdu::FrameBuf;
    /// let mut v = vec![1u8, 2, 3];
    /// v.truncate_written(1);
    /// assert_eq!(v, [1]);
    /// ```
    fn truncate_written(&mut self, len: usize);
}

impl FrameBuf for Vec<u8> {
    fn written_len(&self) -> usize {
        self.len()
    }

    fn reserve_frame(&mut self, additional: usize) {
        self.reserve(additional);
    }

    fn written_mut(&mut self, start: usize) -> &mut [u8] {
        self.get_mut(start..).unwrap_or(&mut [])
    }

    fn truncate_written(&mut self, len: usize) {
        self.truncate(len);
    }
}

impl FrameBuf for SimpleBuffer {
    fn written_len(&self) -> usize {
        self.len()
    }

    fn reserve_frame(&mut self, additional: usize) {
        self.reserve(additional);
    }

    fn written_mut(&mut self, start: usize) -> &mut [u8] {
        self.as_mut_slice().get_mut(start..).unwrap_or(&mut [])
    }

    fn truncate_written(&mut self, len: usize) {
        self.truncate(len);
    }
}

/// Total frame length for a body of `body_len` bytes, if it fits the `u32` field.
fn frame_len_for(body_len: usize) -> Result<u32, EncodeError> {
    let length = body_len.saturating_add(HEADER_LEN);
    u32::try_from(length).map_err(|_| EncodeError::FrameTooLarge { length })
}

/// A decoded frame whose body borrows the buffer it was decoded from.
///
/// Produced by [`FrameDecoder::decode`](crate::FrameDecoder::decode) and
/// [`FrameDecoder::frames`](crate::FrameDecoder::frames); the header has already
/// been validated (length within limits, version 1).
///
/// ```
/// use pdu::{proto, FrameDecoder, Header, Pdu};
///
/// let mut wire = Vec::new();
/// let msg = proto::ImUserCntUpdate { user_action: 1, user_id: 42 };
/// Pdu::encode_message_into(&mut wire, &Header::new(7, 0x070b).with_seq_num(3), &msg)?;
///
/// let frame = FrameDecoder::new().decode(&wire)?.expect("a whole frame");
/// assert_eq!((frame.service_id(), frame.command_id(), frame.seq_num()), (7, 0x070b, 3));
/// assert_eq!(frame.frame_len(), wire.len());
/// let body: proto::ImUserCntUpdate = frame.decode_body()?;
/// assert_eq!(body.user_id, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PduRef<'a> {
    header: Header,
    frame: &'a [u8],
}

impl<'a> PduRef<'a> {
    /// Wraps a complete frame whose header is `header`. The caller (the decoder)
    /// guarantees `frame.len() == header.length >= HEADER_LEN`.
    #[inline]
    pub(crate) fn new(header: Header, frame: &'a [u8]) -> PduRef<'a> {
        PduRef { header, frame }
    }

    /// The parsed header.
    ///
    /// ```
    /// # let bytes = pdu::Pdu::from_body(pdu::Header::new(1, 2), b"")?.into_bytes();
    /// # let frame = pdu::FrameDecoder::new().decode(&bytes)?.unwrap();
    /// assert_eq!(frame.header().service_id, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The service id (see [`crate::sid`]).
    pub fn service_id(&self) -> u16 {
        self.header.service_id
    }

    /// The command id (see [`crate::cid`]).
    pub fn command_id(&self) -> u16 {
        self.header.command_id
    }

    /// The sequence number.
    pub fn seq_num(&self) -> u16 {
        self.header.seq_num
    }

    /// The flag field.
    pub fn flag(&self) -> u16 {
        self.header.flag
    }

    /// The version field (always [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION)
    /// after decoding).
    pub fn version(&self) -> u16 {
        self.header.version
    }

    /// The reserved field.
    pub fn reserved(&self) -> u16 {
        self.header.reserved
    }

    /// Length of the whole frame in bytes: how much to
    /// [`consume`](crate::SimpleBuffer::consume) once done with it.
    pub fn frame_len(&self) -> usize {
        self.frame.len()
    }

    /// The body (everything after the 16-byte header).
    ///
    /// ```
    /// # let bytes = pdu::Pdu::from_body(pdu::Header::new(1, 2), b"xyz")?.into_bytes();
    /// # let frame = pdu::FrameDecoder::new().decode(&bytes)?.unwrap();
    /// assert_eq!(frame.body(), b"xyz");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn body(&self) -> &'a [u8] {
        self.frame.get(HEADER_LEN..).unwrap_or(&[])
    }

    /// The whole frame as it was received, header included: ready to forward.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.frame
    }

    /// Decodes the body as protobuf message `M`.
    ///
    /// ```
    /// use pdu::{proto, FrameDecoder, Header, Pdu};
    ///
    /// let bytes = Pdu::from_body(Header::new(1, 0x0106), &[0x08, 0x00])?.into_bytes();
    /// let frame = FrameDecoder::new().decode(&bytes)?.unwrap();
    /// let rsp: proto::ImLogoutRsp = frame.decode_body()?;
    /// assert_eq!(rsp.result_code, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decode_body<M: Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.body())
    }

    /// Copies the frame into an owned [`Pdu`] (one allocation, for header and
    /// body together).
    ///
    /// ```
    /// # let bytes = pdu::Pdu::from_body(pdu::Header::new(1, 2), b"xyz")?.into_bytes();
    /// let owned = pdu::FrameDecoder::new().decode(&bytes)?.unwrap().to_pdu();
    /// assert_eq!(owned.body(), b"xyz");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_pdu(&self) -> Pdu {
        Pdu {
            header: self.header,
            frame: self.frame.to_vec(),
        }
    }
}

/// An owned frame: header and body in one buffer, exactly the bytes that go on
/// the wire.
///
/// ```
/// use pdu::{cid, proto, sid, Header, Pdu};
///
/// let kick = proto::ImKickUser { user_id: 9, kick_reason: 1 };
/// let pdu = Pdu::from_message(Header::new(sid::LOGIN, cid::login::KICK_USER), &kick)?;
/// assert_eq!(pdu.frame_len(), 16 + 4);
/// assert_eq!(pdu.as_bytes()[..4], [0, 0, 0, 20]);
/// assert_eq!(pdu.decode_body::<proto::ImKickUser>()?, kick);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pdu {
    /// Always equal to the parse of `frame[..16]`.
    header: Header,
    /// The whole frame; `frame.len() == header.length >= HEADER_LEN`.
    frame: Vec<u8>,
}

impl Pdu {
    /// Builds a frame from a header and a raw body. The header's `length` is
    /// replaced by the real length.
    ///
    /// ```
    /// let pdu = pdu::Pdu::from_body(pdu::Header::new(7, 0x0701), b"")?;
    /// assert_eq!(pdu.header().length, 16);
    /// # Ok::<(), pdu::EncodeError>(())
    /// ```
    pub fn from_body(header: Header, body: &[u8]) -> Result<Pdu, EncodeError> {
        let mut frame = Vec::new();
        Pdu::encode_bytes_into(&mut frame, &header, body)?;
        Ok(Pdu::from_frame_unchecked(header, frame))
    }

    /// Builds a frame from a header and a protobuf body, in one allocation of the
    /// exact size. The header's `length` is replaced by the real length.
    ///
    /// ```
    /// use pdu::{proto, Header, Pdu};
    /// let pdu = Pdu::from_message(Header::new(7, 0x0701), &proto::ImHeartBeat {})?;
    /// assert_eq!(pdu.as_bytes().len(), 16);
    /// # Ok::<(), pdu::EncodeError>(())
    /// ```
    pub fn from_message<M: Message>(header: Header, msg: &M) -> Result<Pdu, EncodeError> {
        let mut frame = Vec::new();
        Pdu::encode_message_into(&mut frame, &header, msg)?;
        Ok(Pdu::from_frame_unchecked(header, frame))
    }

    /// `frame` was just encoded from `header`; record the header with its real
    /// length.
    fn from_frame_unchecked(mut header: Header, frame: Vec<u8>) -> Pdu {
        header.length = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        Pdu { header, frame }
    }

    /// Appends a frame with a protobuf body to `out`: reserves the exact size,
    /// writes the complete header (length computed from `msg.encoded_len()`), then
    /// lets prost encode the body straight into `out`. Returns the frame length.
    ///
    /// On error nothing is appended.
    ///
    /// ```
    /// use pdu::{proto, Header, Pdu, SimpleBuffer};
    ///
    /// let mut out = SimpleBuffer::new();
    /// let ack = proto::ImMsgDataAck { user_id: 1, session_id: 2, msg_id: 3, session_type: 1 };
    /// let n = Pdu::encode_message_into(&mut out, &Header::new(3, 0x0302), &ack)?;
    /// assert_eq!(n, out.len());
    /// # Ok::<(), pdu::EncodeError>(())
    /// ```
    pub fn encode_message_into<B, M>(
        out: &mut B,
        header: &Header,
        msg: &M,
    ) -> Result<usize, EncodeError>
    where
        B: FrameBuf,
        M: Message,
    {
        let body_len = msg.encoded_len();
        let length = frame_len_for(body_len)?;
        out.reserve_frame(HEADER_LEN + body_len);
        let mut header = *header;
        header.length = length;
        out.put_slice(&header.to_bytes());
        // `encode_raw` cannot fail on a growable buffer: `Vec<u8>` and
        // `SimpleBuffer` report (practically) unlimited `remaining_mut`.
        msg.encode_raw(out);
        Ok(HEADER_LEN + body_len)
    }

    /// Appends a frame with a raw body to `out`. Returns the frame length.
    ///
    /// ```
    /// let mut out = Vec::new();
    /// pdu::Pdu::encode_bytes_into(&mut out, &pdu::Header::new(1, 2), b"ab")?;
    /// assert_eq!(out.len(), 18);
    /// assert_eq!(&out[16..], b"ab");
    /// # Ok::<(), pdu::EncodeError>(())
    /// ```
    pub fn encode_bytes_into<B>(
        out: &mut B,
        header: &Header,
        body: &[u8],
    ) -> Result<usize, EncodeError>
    where
        B: FrameBuf,
    {
        let length = frame_len_for(body.len())?;
        out.reserve_frame(HEADER_LEN + body.len());
        let mut header = *header;
        header.length = length;
        out.put_slice(&header.to_bytes());
        out.put_slice(body);
        Ok(HEADER_LEN + body.len())
    }

    /// Appends a frame whose body is written by `write_body`, for bodies whose
    /// length is not known in advance: writes the header, runs `write_body` on
    /// `out` (it must only append), then patches the length field. Returns the
    /// frame length.
    ///
    /// If the frame is too large for the length field, or `write_body` removed
    /// bytes, `out` is truncated back to where it was and an error returned.
    ///
    /// ```
    /// use pdu::prost::bytes::BufMut;
    /// use pdu::{FrameDecoder, Header, Pdu};
    ///
    /// let mut out = Vec::new();
    /// let n = Pdu::encode_into(&mut out, &Header::new(1, 2), |body| {
    ///     body.put_u32(7);
    ///     body.put_slice(b"tail");
    /// })?;
    /// assert_eq!(n, 24);
    /// let frame = FrameDecoder::new().decode(&out)?.unwrap();
    /// assert_eq!(frame.body(), &[0, 0, 0, 7, b't', b'a', b'i', b'l']);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode_into<B, F>(
        out: &mut B,
        header: &Header,
        write_body: F,
    ) -> Result<usize, EncodeError>
    where
        B: FrameBuf,
        F: FnOnce(&mut B),
    {
        let start = out.written_len();
        out.reserve_frame(HEADER_LEN);
        out.put_slice(&header.to_bytes());
        write_body(out);
        let end = out.written_len();
        let frame_len = match end.checked_sub(start) {
            Some(n) if n >= HEADER_LEN => n,
            _ => {
                out.truncate_written(start);
                return Err(EncodeError::OutputShrank);
            }
        };
        let length = match frame_len_for(frame_len - HEADER_LEN) {
            Ok(length) => length,
            Err(e) => {
                out.truncate_written(start);
                return Err(e);
            }
        };
        if let Some(field) = out.written_mut(start).get_mut(..4) {
            field.copy_from_slice(&length.to_be_bytes());
        }
        Ok(frame_len)
    }

    /// The header (its `length` is the real frame length).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The service id (see [`crate::sid`]).
    pub fn service_id(&self) -> u16 {
        self.header.service_id
    }

    /// The command id (see [`crate::cid`]).
    pub fn command_id(&self) -> u16 {
        self.header.command_id
    }

    /// The sequence number.
    pub fn seq_num(&self) -> u16 {
        self.header.seq_num
    }

    /// The flag field.
    pub fn flag(&self) -> u16 {
        self.header.flag
    }

    /// The version field.
    pub fn version(&self) -> u16 {
        self.header.version
    }

    /// The reserved field.
    pub fn reserved(&self) -> u16 {
        self.header.reserved
    }

    /// Length of the whole frame in bytes.
    pub fn frame_len(&self) -> usize {
        self.frame.len()
    }

    /// The body (everything after the 16-byte header).
    pub fn body(&self) -> &[u8] {
        self.frame.get(HEADER_LEN..).unwrap_or(&[])
    }

    /// The whole frame, header included: the bytes to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.frame
    }

    /// The whole frame as a `Vec<u8>`, without copying.
    pub fn into_bytes(self) -> Vec<u8> {
        self.frame
    }

    /// Borrows this frame as a [`PduRef`].
    pub fn as_pdu_ref(&self) -> PduRef<'_> {
        PduRef::new(self.header, &self.frame)
    }

    /// Decodes the body as protobuf message `M`.
    ///
    /// ```
    /// use pdu::{proto, Header, Pdu};
    /// let pdu = Pdu::from_message(Header::new(1, 0x0106), &proto::ImLogoutRsp { result_code: 3 })?;
    /// assert_eq!(pdu.decode_body::<proto::ImLogoutRsp>()?.result_code, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decode_body<M: Message + Default>(&self) -> Result<M, prost::DecodeError> {
        M::decode(self.body())
    }

    /// Sets the sequence number, in the header and in the encoded bytes (servers
    /// copy a request's number into the response, or renumber relayed frames).
    ///
    /// ```
    /// let mut pdu = pdu::Pdu::from_body(pdu::Header::new(1, 2), b"")?;
    /// pdu.set_seq_num(0x0102);
    /// assert_eq!(pdu.seq_num(), 0x0102);
    /// assert_eq!(pdu.as_bytes()[12..14], [1, 2]);
    /// # Ok::<(), pdu::EncodeError>(())
    /// ```
    pub fn set_seq_num(&mut self, seq_num: u16) {
        self.header.seq_num = seq_num;
        self.patch_u16(12, seq_num);
    }

    /// Sets the flag field, in the header and in the encoded bytes.
    ///
    /// ```
    /// let mut pdu = pdu::Pdu::from_body(pdu::Header::new(1, 2), b"")?;
    /// pdu.set_flag(1);
    /// assert_eq!(pdu.as_bytes()[6..8], [0, 1]);
    /// # Ok::<(), pdu::EncodeError>(())
    /// ```
    pub fn set_flag(&mut self, flag: u16) {
        self.header.flag = flag;
        self.patch_u16(6, flag);
    }

    fn patch_u16(&mut self, offset: usize, value: u16) {
        if let Some(field) = self.frame.get_mut(offset..offset + 2) {
            field.copy_from_slice(&value.to_be_bytes());
        }
    }
}

impl<'a> From<PduRef<'a>> for Pdu {
    fn from(frame: PduRef<'a>) -> Pdu {
        frame.to_pdu()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto;
    use crate::{cid, sid};

    #[test]
    fn heartbeat_frame_is_byte_exact() {
        let pdu = Pdu::from_message(
            Header::new(sid::OTHER, cid::other::HEARTBEAT).with_seq_num(0x0203),
            &proto::ImHeartBeat {},
        )
        .unwrap();
        assert_eq!(
            pdu.as_bytes(),
            &[0, 0, 0, 16, 0, 1, 0, 0, 0, 7, 7, 1, 2, 3, 0, 0]
        );
    }

    #[test]
    fn all_three_encoders_agree() {
        let header = Header::new(sid::MSG, cid::msg::DATA).with_seq_num(11);
        let msg = proto::ImMsgData {
            from_user_id: 1,
            to_session_id: 2,
            msg_id: 3,
            create_time: 4,
            msg_type: proto::MsgType::SingleText as i32,
            msg_data: b"hello".to_vec(),
            attach_data: None,
        };

        let mut a = Vec::new();
        Pdu::encode_message_into(&mut a, &header, &msg).unwrap();
        let mut b = Vec::new();
        Pdu::encode_into(&mut b, &header, |out| msg.encode_raw(out)).unwrap();
        let mut c = Vec::new();
        Pdu::encode_bytes_into(&mut c, &header, &msg.encode_to_vec()).unwrap();
        let mut d = SimpleBuffer::new();
        Pdu::encode_message_into(&mut d, &header, &msg).unwrap();
        let mut e = SimpleBuffer::new();
        Pdu::encode_into(&mut e, &header, |out| msg.encode_raw(out)).unwrap();

        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a, d.as_slice());
        assert_eq!(a, e.as_slice());
        assert_eq!(
            u32::from_be_bytes([a[0], a[1], a[2], a[3]]) as usize,
            a.len()
        );
    }

    #[test]
    fn frames_append_after_existing_output() {
        let mut out = SimpleBuffer::new();
        out.extend_from_slice(b"xx");
        out.consume(1);
        let n = Pdu::encode_into(&mut out, &Header::new(1, 2), |b| b.put_slice(b"abc")).unwrap();
        assert_eq!(n, 19);
        assert_eq!(out.len(), 20);
        assert_eq!(out.as_slice()[1..5], [0, 0, 0, 19]);
    }

    #[test]
    fn a_body_writer_that_truncates_is_rejected_and_undone() {
        let mut out = vec![1u8, 2, 3];
        let err = Pdu::encode_into(&mut out, &Header::new(1, 2), |b| b.truncate(1));
        assert_eq!(err, Err(EncodeError::OutputShrank));
        assert_eq!(out, [1]);
    }

    #[test]
    fn oversized_bodies_are_refused() {
        assert_eq!(frame_len_for(u32::MAX as usize - 16), Ok(u32::MAX));
        assert!(matches!(
            frame_len_for(u32::MAX as usize - 15),
            Err(EncodeError::FrameTooLarge { .. })
        ));
        assert!(frame_len_for(usize::MAX).is_err());
    }

    #[test]
    fn setters_patch_the_wire_bytes() {
        let mut pdu = Pdu::from_body(Header::new(1, 2), b"body").unwrap();
        pdu.set_seq_num(0xabcd);
        pdu.set_flag(0x1234);
        let reparsed = Header::peek(pdu.as_bytes()).unwrap();
        assert_eq!(&reparsed, pdu.header());
        assert_eq!(pdu.body(), b"body");
    }
}
