//! async_server's packet: an 18-byte header, then the body.
//!
//! The seed gives the header as a packed C struct:
//!
//! ```text
//! typedef struct {
//!     uint32_t pkg_len;      // whole packet, header included
//!     uint32_t seq_num;
//!     uint16_t cmd_id;
//!     uint32_t status_code;
//!     uint32_t user_id;
//! } __attribute__((packed)) proto_header;   // 4+4+2+4+4 = 18 bytes
//! ```
//!
//! async_server copies the struct to the wire as it is in memory, so the
//! fields are in the host order of the x86 machines it ran on:
//! little-endian. [`ProtoCodec`] keeps that, so it talks to the original's
//! clients. A packet whose declared length is below the header's 18 bytes
//! can never be valid and closes the connection; so does one over the
//! connection's `max_frame`, as soon as its header is in.
//!
//! ```
//! use imconn::{Codec, Encoder};
//! use prefork::{Packet, PacketHeader, ProtoCodec};
//! let mut codec = ProtoCodec;
//! let mut wire = Vec::new();
//! let header = PacketHeader { seq: 7, cmd: 0x1001, user_id: 42, ..PacketHeader::default() };
//! codec.encode(Packet { header, body: b"hi" }, &mut wire).unwrap();
//! assert_eq!(wire.len(), 20);
//! assert!(codec.decode(&wire[..19], 1024).unwrap().is_none()); // incomplete
//! let (packet, used) = codec.decode(&wire, 1024).unwrap().unwrap();
//! assert_eq!((packet.header.cmd, packet.header.len, packet.body, used), (0x1001, 20, &b"hi"[..], 20));
//! ```

use imconn::{Codec, DecodeError, EncodeError, Encoder};

/// Bytes in a header.
pub const HEADER_LEN: usize = 18;

/// A packet header (async_server's `proto_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketHeader {
    /// The whole packet's length, header included. Ignored when encoding:
    /// the codec writes the real length.
    pub len: u32,
    /// Sequence number; an answer carries its request's.
    pub seq: u32,
    /// Command (`cmd_id`).
    pub cmd: u16,
    /// Status code: 0 in requests, the outcome in answers.
    pub status: u32,
    /// The user the packet is about.
    pub user_id: u32,
}

impl PacketHeader {
    /// Reads a header from the first [`HEADER_LEN`] bytes of `b`.
    pub fn parse(b: &[u8]) -> Option<PacketHeader> {
        let b = b.get(..HEADER_LEN)?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(PacketHeader {
            len: u32_at(0),
            seq: u32_at(4),
            cmd: u16::from_le_bytes([b[8], b[9]]),
            status: u32_at(10),
            user_id: u32_at(14),
        })
    }

    /// Appends the header to `dst` with `len` as its length.
    pub fn write(&self, len: u32, dst: &mut Vec<u8>) {
        dst.extend_from_slice(&len.to_le_bytes());
        dst.extend_from_slice(&self.seq.to_le_bytes());
        dst.extend_from_slice(&self.cmd.to_le_bytes());
        dst.extend_from_slice(&self.status.to_le_bytes());
        dst.extend_from_slice(&self.user_id.to_le_bytes());
    }
}

/// A whole packet; the body borrows from the connection's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Its header.
    pub header: PacketHeader,
    /// Everything after the header.
    pub body: &'a [u8],
}

/// async_server's framing as an imconn [`Codec`]. See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProtoCodec;

/// A declared packet length that cannot be right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLength {
    /// What the header said.
    pub declared: u32,
    /// The largest packet allowed.
    pub max: usize,
}

impl std::fmt::Display for BadLength {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "packet length {} outside {HEADER_LEN}..={}",
            self.declared, self.max
        )
    }
}

impl std::error::Error for BadLength {}

impl Codec for ProtoCodec {
    type Frame<'a> = Packet<'a>;

    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        max_frame: usize,
    ) -> Result<Option<(Packet<'a>, usize)>, DecodeError> {
        let Some(header) = PacketHeader::parse(src) else {
            return Ok(None);
        };
        let len = header.len as usize;
        if len < HEADER_LEN || len > max_frame {
            return Err(Box::new(BadLength {
                declared: header.len,
                max: max_frame,
            }));
        }
        Ok(src
            .get(HEADER_LEN..len)
            .map(|body| (Packet { header, body }, len)))
    }
}

impl Encoder<Packet<'_>> for ProtoCodec {
    fn encode(&mut self, item: Packet<'_>, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        let len = u32::try_from(HEADER_LEN + item.body.len())
            .map_err(|_| "packet over 4 GiB cannot be framed")?;
        item.header.write(len, dst);
        dst.extend_from_slice(item.body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_the_packed_struct_in_little_endian() {
        let h = PacketHeader {
            len: 0,
            seq: 0x0403_0201,
            cmd: 0x0605,
            status: 0x0a09_0807,
            user_id: 0x0e0d_0c0b,
        };
        let mut wire = Vec::new();
        h.write(18, &mut wire);
        assert_eq!(
            wire,
            [18, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
        );
        assert_eq!(
            PacketHeader::parse(&wire),
            Some(PacketHeader { len: 18, ..h })
        );
    }

    #[test]
    fn lengths_below_the_header_or_over_the_limit_are_invalid() {
        let mut codec = ProtoCodec;
        for len in [0u32, 1, 17] {
            let mut wire = Vec::new();
            PacketHeader::default().write(len, &mut wire);
            assert!(codec.decode(&wire, 1024).is_err(), "length {len}");
        }
        let mut wire = Vec::new();
        PacketHeader::default().write(1025, &mut wire);
        assert!(codec.decode(&wire, 1024).is_err());
        let mut wire = Vec::new();
        PacketHeader::default().write(18, &mut wire);
        let (p, used) = codec.decode(&wire, 1024).unwrap().unwrap();
        assert_eq!((p.body, used), (&b""[..], 18));
    }
}
