//! The 16-byte TeamTalk frame header.
//!
//! This module only knows the layout: where each field sits and in which byte
//! order. Whether a header is *acceptable* (length within limits, known version) is
//! the decoder's business, in [`crate::decoder`], so that a header can be built or
//! inspected here without a policy attached.
//!
//! All fields are big-endian:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | `length`: the whole frame, header included |
//! | 4 | 2 | `version`: [`PROTOCOL_VERSION`] |
//! | 6 | 2 | `flag` |
//! | 8 | 2 | `service_id` (see [`crate::sid`]) |
//! | 10 | 2 | `command_id` (see [`crate::cid`]) |
//! | 12 | 2 | `seq_num` |
//! | 14 | 2 | `reserved` |

/// Size of the header in bytes; also the smallest legal frame (an empty body).
pub const HEADER_LEN: usize = 16;

/// The only protocol version TeamTalk has ever used (`IM_PDU_VERSION`).
pub const PROTOCOL_VERSION: u16 = 1;

/// A decoded frame header.
///
/// The fields are public because a header is plain data with no invariants of its
/// own. When a frame is encoded (see [`crate::Pdu::encode_message_into`]) the
/// `length` given here is ignored and the real length written instead.
///
/// ```
/// use pdu::{Header, HEADER_LEN};
///
/// let header = Header::new(3, 0x0301).with_seq_num(9);
/// let bytes = header.to_bytes();
/// assert_eq!(bytes.len(), HEADER_LEN);
/// assert_eq!(Header::from_bytes(&bytes), header);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Header {
    /// Length of the whole frame in bytes, header included.
    pub length: u32,
    /// Protocol version; [`PROTOCOL_VERSION`] on every valid frame.
    pub version: u16,
    /// Free-form flags; TeamTalk servers send 0.
    pub flag: u16,
    /// Which service the command belongs to (login, message, other, ...).
    pub service_id: u16,
    /// The command within the service; selects the protobuf body type.
    pub command_id: u16,
    /// Sequence number, echoed by the peer in its response.
    pub seq_num: u16,
    /// Reserved; TeamTalk servers send 0.
    pub reserved: u16,
}

impl Header {
    /// A header for an empty frame of the given service and command: version
    /// [`PROTOCOL_VERSION`], length [`HEADER_LEN`], every other field zero.
    ///
    /// ```
    /// use pdu::{cid, sid, Header};
    ///
    /// let h = Header::new(sid::OTHER, cid::other::HEARTBEAT);
    /// assert_eq!((h.version, h.length, h.seq_num), (1, 16, 0));
    /// ```
    pub const fn new(service_id: u16, command_id: u16) -> Header {
        Header {
            length: HEADER_LEN as u32,
            version: PROTOCOL_VERSION,
            flag: 0,
            service_id,
            command_id,
            seq_num: 0,
            reserved: 0,
        }
    }

    /// Returns the header with `seq_num` replaced.
    ///
    /// ```
    /// assert_eq!(pdu::Header::new(1, 0x0101).with_seq_num(5).seq_num, 5);
    /// ```
    pub const fn with_seq_num(mut self, seq_num: u16) -> Header {
        self.seq_num = seq_num;
        self
    }

    /// Returns the header with `flag` replaced.
    ///
    /// ```
    /// assert_eq!(pdu::Header::new(1, 0x0101).with_flag(2).flag, 2);
    /// ```
    pub const fn with_flag(mut self, flag: u16) -> Header {
        self.flag = flag;
        self
    }

    /// Parses the 16 header bytes. Any bit pattern is a header; validation is the
    /// decoder's job.
    ///
    /// ```
    /// let h = pdu::Header::from_bytes(&[0, 0, 0, 20, 0, 1, 0, 0, 0, 3, 3, 1, 0, 9, 0, 0]);
    /// assert_eq!((h.length, h.service_id, h.command_id, h.seq_num), (20, 3, 0x0301, 9));
    /// ```
    pub const fn from_bytes(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            length: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            version: u16::from_be_bytes([b[4], b[5]]),
            flag: u16::from_be_bytes([b[6], b[7]]),
            service_id: u16::from_be_bytes([b[8], b[9]]),
            command_id: u16::from_be_bytes([b[10], b[11]]),
            seq_num: u16::from_be_bytes([b[12], b[13]]),
            reserved: u16::from_be_bytes([b[14], b[15]]),
        }
    }

    /// Parses the header at the start of `buf`, or returns `None` if fewer than
    /// [`HEADER_LEN`] bytes are there. Unvalidated: see
    /// [`FrameDecoder::peek_header`](crate::FrameDecoder::peek_header) for the
    /// checked version.
    ///
    /// ```
    /// assert!(pdu::Header::peek(&[0, 0, 0]).is_none());
    /// ```
    #[inline]
    pub fn peek(buf: &[u8]) -> Option<Header> {
        let bytes: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header::from_bytes(bytes))
    }

    /// Serialises the header, `length` included as it is.
    ///
    /// ```
    /// let bytes = pdu::Header::new(7, 0x0701).to_bytes();
    /// assert_eq!(bytes, [0, 0, 0, 16, 0, 1, 0, 0, 0, 7, 7, 1, 0, 0, 0, 0]);
    /// ```
    pub const fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let l = self.length.to_be_bytes();
        let v = self.version.to_be_bytes();
        let f = self.flag.to_be_bytes();
        let s = self.service_id.to_be_bytes();
        let c = self.command_id.to_be_bytes();
        let q = self.seq_num.to_be_bytes();
        let r = self.reserved.to_be_bytes();
        [
            l[0], l[1], l[2], l[3], v[0], v[1], f[0], f[1], s[0], s[1], c[0], c[1], q[0], q[1],
            r[0], r[1],
        ]
    }

    /// Length of the body this header announces (`length - 16`), or `None` if the
    /// declared length is smaller than the header itself.
    ///
    /// ```
    /// let mut h = pdu::Header::new(1, 0x0101);
    /// h.length = 20;
    /// assert_eq!(h.body_len(), Some(4));
    /// h.length = 3;
    /// assert_eq!(h.body_len(), None);
    /// ```
    pub const fn body_len(&self) -> Option<usize> {
        (self.length as usize).checked_sub(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_big_endian_at_their_offsets() {
        let h = Header {
            length: 0x0102_0304,
            version: 0x0506,
            flag: 0x0708,
            service_id: 0x090a,
            command_id: 0x0b0c,
            seq_num: 0x0d0e,
            reserved: 0x0f10,
        };
        let bytes = h.to_bytes();
        assert_eq!(
            bytes,
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
        );
        assert_eq!(Header::from_bytes(&bytes), h);
    }

    #[test]
    fn peek_needs_a_whole_header() {
        let bytes = Header::new(1, 2).to_bytes();
        for n in 0..HEADER_LEN {
            assert_eq!(Header::peek(&bytes[..n]), None);
        }
        assert_eq!(Header::peek(&bytes), Some(Header::new(1, 2)));
    }
}
