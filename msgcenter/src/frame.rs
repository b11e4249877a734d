//! The wire format, byte by byte (PROTOCOL.md is the prose version): the
//! 8-byte preamble each side sends first, then frames of a 64-byte header
//! and a body. Pure functions over byte slices - no sockets, no state - so
//! the decoder can be unit-tested and fuzzed on its own; the
//! [`codec`](crate::codec) module wraps it for imconn.
//!
//! Every frame carries two CRC32C checksums: one over its header (so a
//! corrupted length is caught before the decoder waits for a body that
//! will never come) and one over its body (TCP's 16-bit checksum lets
//! corrupted application data through, as the seeds note).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The first four bytes each side sends: `MSGC`.
pub const MAGIC: [u8; 4] = *b"MSGC";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Bytes in the preamble: magic, version, three reserved zero bytes.
pub const PREAMBLE_LEN: usize = 8;
/// Bytes in a frame header.
pub const HEADER_LEN: usize = 64;
/// Bytes in the body of a HELLO or WELCOME frame.
pub const HELLO_BODY_LEN: usize = 24;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An application message.
    Data = 1,
    /// The receiver handled (or had handled) a NeedAck message.
    Ack = 2,
    /// Keeps a quiet connection alive; ignored by the receiver.
    Heartbeat = 3,
    /// First frame of the connecting side: who it is.
    Hello = 4,
    /// The accepting side's answer to HELLO: the connection is in use.
    Welcome = 5,
    /// The accepting side's refusal of HELLO; the body says why.
    Reject = 6,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Data,
            2 => Kind::Ack,
            3 => Kind::Heartbeat,
            4 => Kind::Hello,
            5 => Kind::Welcome,
            6 => Kind::Reject,
            _ => return None,
        })
    }
}

/// Flag bit: the sender wants an ACK (DATA).
pub const FLAG_NEED_ACK: u8 = 0x01;
/// Flag bit: the sender queued this message ahead of normal ones (DATA).
pub const FLAG_URGENT: u8 = 0x02;
/// Flag bit: the id had been handled before; the handler was not called
/// again (ACK).
pub const FLAG_DUPLICATE: u8 = 0x04;
/// Flag bit: the receiver has no handler for the message type (ACK).
pub const FLAG_NO_HANDLER: u8 = 0x08;
/// Flag bits defined in version 1; others must be zero.
pub const KNOWN_FLAGS: u8 = FLAG_NEED_ACK | FLAG_URGENT | FLAG_DUPLICATE | FLAG_NO_HANDLER;

/// The decoded header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the frame is.
    pub kind: Kind,
    /// Flag bits (`FLAG_*`).
    pub flags: u8,
    /// The message's unique id (DATA, and the acknowledged id in ACK).
    pub id: u64,
    /// The application's message type.
    pub msg_type: u32,
    /// The sender's listen address (unspecified, port 0, if it has none).
    pub from: SocketAddr,
    /// The address the sender posted to.
    pub to: SocketAddr,
}

impl Header {
    /// A header of `kind` with zero fields.
    pub fn new(kind: Kind) -> Header {
        Header {
            kind,
            flags: 0,
            id: 0,
            msg_type: 0,
            from: NO_ADDR,
            to: NO_ADDR,
        }
    }
}

/// The address written for "none": `[::]:0`.
pub const NO_ADDR: SocketAddr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);

/// A decoded frame borrowing its body from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// The header.
    pub header: Header,
    /// The body (checksum verified).
    pub body: &'a [u8],
}

/// Why bytes are not a valid stream. Any of these closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The first bytes were not `MSGC`.
    BadMagic([u8; 4]),
    /// A version this implementation does not speak.
    BadVersion(u8),
    /// The header checksum does not match.
    HeaderChecksum,
    /// The body checksum does not match.
    BodyChecksum,
    /// An unknown frame kind.
    BadKind(u8),
    /// Reserved bytes or unknown flag bits were not zero.
    Reserved,
    /// A body longer than the limit.
    TooLong {
        /// Declared body length.
        declared: u64,
        /// The largest body accepted.
        max: usize,
    },
    /// A control frame whose body has the wrong size or content.
    BadBody(Kind),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::BadMagic(m) => write!(f, "not a msgcenter peer (preamble {m:02x?})"),
            WireError::BadVersion(v) => write!(f, "unsupported protocol version {v}"),
            WireError::HeaderChecksum => f.write_str("header checksum mismatch"),
            WireError::BodyChecksum => f.write_str("body checksum mismatch"),
            WireError::BadKind(k) => write!(f, "unknown frame kind {k}"),
            WireError::Reserved => f.write_str("reserved bits set"),
            WireError::TooLong { declared, max } => {
                write!(f, "body of {declared} bytes over the {max} byte limit")
            }
            WireError::BadBody(k) => write!(f, "malformed {k:?} body"),
        }
    }
}

impl std::error::Error for WireError {}

/// Appends the preamble.
pub fn encode_preamble(dst: &mut Vec<u8>) {
    dst.extend_from_slice(&MAGIC);
    dst.extend_from_slice(&[VERSION, 0, 0, 0]);
}

/// Checks a preamble: `Ok(None)` until 8 bytes are in.
pub fn decode_preamble(src: &[u8]) -> Result<Option<usize>, WireError> {
    let Some(p) = src.get(..PREAMBLE_LEN) else {
        // Reject a wrong magic as soon as its bytes are in.
        let n = src.len().min(4);
        if src[..n] != MAGIC[..n] {
            let mut m = [0; 4];
            m[..n].copy_from_slice(&src[..n]);
            return Err(WireError::BadMagic(m));
        }
        return Ok(None);
    };
    if p[..4] != MAGIC {
        return Err(WireError::BadMagic([p[0], p[1], p[2], p[3]]));
    }
    if p[4] != VERSION {
        return Err(WireError::BadVersion(p[4]));
    }
    if p[5..8] != [0, 0, 0] {
        return Err(WireError::Reserved);
    }
    Ok(Some(PREAMBLE_LEN))
}

fn put_addr(dst: &mut Vec<u8>, addr: SocketAddr) {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    dst.extend_from_slice(&ip.octets());
    dst.extend_from_slice(&addr.port().to_be_bytes());
}

fn get_addr(b: &[u8]) -> SocketAddr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&b[..16]);
    let v6 = Ipv6Addr::from(octets);
    let ip = match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    };
    SocketAddr::new(ip, u16::from_be_bytes([b[16], b[17]]))
}

/// Appends one frame: header then body. Fails only for a body over 4 GiB.
pub fn encode_frame(dst: &mut Vec<u8>, header: &Header, body: &[u8]) -> Result<(), WireError> {
    encode_frame_with_crc(dst, header, body, crc32c::crc32c(body))
}

/// [`encode_frame`] with the body's CRC32C already computed (`body_crc`
/// must be `crc32c(body)`): a sender that keeps a message for retries
/// checksums its body once, on the thread that posted it, and encodes the
/// frame straight into its write buffer at each send.
pub fn encode_frame_with_crc(
    dst: &mut Vec<u8>,
    header: &Header,
    body: &[u8],
    body_crc: u32,
) -> Result<(), WireError> {
    debug_assert_eq!(body_crc, crc32c::crc32c(body));
    let len = u32::try_from(body.len()).map_err(|_| WireError::TooLong {
        declared: body.len() as u64,
        max: u32::MAX as usize,
    })?;
    let start = dst.len();
    dst.reserve(HEADER_LEN + body.len());
    dst.push(header.kind as u8);
    dst.push(header.flags);
    dst.extend_from_slice(&[0, 0]);
    dst.extend_from_slice(&len.to_be_bytes());
    dst.extend_from_slice(&header.id.to_be_bytes());
    dst.extend_from_slice(&header.msg_type.to_be_bytes());
    put_addr(dst, header.from);
    put_addr(dst, header.to);
    dst.extend_from_slice(&body_crc.to_be_bytes());
    let header_crc = crc32c::crc32c(&dst[start..start + 60]);
    dst.extend_from_slice(&header_crc.to_be_bytes());
    dst.extend_from_slice(body);
    Ok(())
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Decodes the first frame of `src`: `Ok(None)` while incomplete,
/// `Ok(Some((frame, used)))`, or `Err` for a stream that can never be valid.
/// A body over `max_body` is refused as soon as the header is in.
pub fn decode_frame(
    src: &[u8],
    max_body: usize,
) -> Result<Option<(FrameRef<'_>, usize)>, WireError> {
    let Some(h) = src.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if crc32c::crc32c(&h[..60]) != be32(&h[60..64]) {
        return Err(WireError::HeaderChecksum);
    }
    let kind = Kind::from_u8(h[0]).ok_or(WireError::BadKind(h[0]))?;
    let flags = h[1];
    if flags & !KNOWN_FLAGS != 0 || h[2] != 0 || h[3] != 0 {
        return Err(WireError::Reserved);
    }
    let len = be32(&h[4..8]) as usize;
    if len > max_body {
        return Err(WireError::TooLong {
            declared: len as u64,
            max: max_body,
        });
    }
    let Some(body) = src.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    if crc32c::crc32c(body) != be32(&h[56..60]) {
        return Err(WireError::BodyChecksum);
    }
    let header = Header {
        kind,
        flags,
        id: be64(&h[8..16]),
        msg_type: be32(&h[16..20]),
        from: get_addr(&h[20..38]),
        to: get_addr(&h[38..56]),
    };
    check_control_body(kind, body)?;
    Ok(Some((FrameRef { header, body }, HEADER_LEN + len)))
}

fn check_control_body(kind: Kind, body: &[u8]) -> Result<(), WireError> {
    let ok = match kind {
        Kind::Hello | Kind::Welcome => body.len() == HELLO_BODY_LEN,
        Kind::Ack | Kind::Heartbeat => body.is_empty(),
        Kind::Reject => !body.is_empty() && std::str::from_utf8(&body[1..]).is_ok(),
        Kind::Data => true,
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::BadBody(kind))
    }
}

/// Who a node is: the body of HELLO and WELCOME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The node's id (configured, or random per process).
    pub node_id: u64,
    /// Random per process start: a changed incarnation means the peer
    /// restarted and lost its dedup window.
    pub incarnation: u64,
    /// How long the node remembers handled ids, in milliseconds; a sender
    /// stops retrying before this runs out.
    pub dedup_window_ms: u32,
    /// The largest body the node accepts.
    pub max_body: u32,
}

impl Hello {
    /// The 24-byte body.
    pub fn to_body(&self) -> [u8; HELLO_BODY_LEN] {
        let mut b = [0u8; HELLO_BODY_LEN];
        b[..8].copy_from_slice(&self.node_id.to_be_bytes());
        b[8..16].copy_from_slice(&self.incarnation.to_be_bytes());
        b[16..20].copy_from_slice(&self.dedup_window_ms.to_be_bytes());
        b[20..24].copy_from_slice(&self.max_body.to_be_bytes());
        b
    }

    /// Parses a body already checked by [`decode_frame`].
    pub fn from_body(b: &[u8]) -> Option<Hello> {
        (b.len() == HELLO_BODY_LEN).then(|| Hello {
            node_id: be64(&b[..8]),
            incarnation: be64(&b[8..16]),
            dedup_window_ms: be32(&b[16..20]),
            max_body: be32(&b[20..24]),
        })
    }
}

/// Why a HELLO was refused (first byte of a REJECT body; text follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectCode {
    /// Both nodes connected to each other at once; the connection opened
    /// by the lower node identity is kept, this one is not.
    Crossing = 1,
    /// The HELLO came from the receiving node itself.
    SelfConnect = 2,
    /// Anything else (the text says what).
    Other = 255,
}

impl RejectCode {
    /// The code of a REJECT body's first byte.
    pub fn from_u8(b: u8) -> RejectCode {
        match b {
            1 => RejectCode::Crossing,
            2 => RejectCode::SelfConnect,
            _ => RejectCode::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            kind: Kind::Data,
            flags: FLAG_NEED_ACK | FLAG_URGENT,
            id: 0x0102_0304_0506_0708,
            msg_type: 77,
            from: "127.0.0.1:7001".parse().unwrap(),
            to: "[::1]:7002".parse().unwrap(),
        }
    }

    #[test]
    fn frame_round_trips_and_is_incomplete_until_the_last_byte() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, &sample(), b"hello").unwrap();
        assert_eq!(wire.len(), HEADER_LEN + 5);
        for end in 0..wire.len() {
            assert_eq!(decode_frame(&wire[..end], 100), Ok(None), "at {end}");
        }
        let (f, used) = decode_frame(&wire, 100).unwrap().unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(f.header, sample());
        assert_eq!(f.body, b"hello");
    }

    #[test]
    fn layout_matches_protocol_md() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, &sample(), b"hi").unwrap();
        assert_eq!(wire[0], 1); // DATA
        assert_eq!(wire[1], 3); // NEED_ACK | URGENT
        assert_eq!(&wire[4..8], &[0, 0, 0, 2]);
        assert_eq!(&wire[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&wire[16..20], &[0, 0, 0, 77]);
        // IPv4-mapped from address, then its port.
        assert_eq!(
            &wire[20..36],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]
        );
        assert_eq!(&wire[36..38], &7001u16.to_be_bytes());
        assert_eq!(&wire[56..60], &crc32c::crc32c(b"hi").to_be_bytes());
        assert_eq!(&wire[60..64], &crc32c::crc32c(&wire[..60]).to_be_bytes());
        // CRC32C check value from RFC 3720.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn corruption_anywhere_is_detected() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, &sample(), b"payload").unwrap();
        for i in 0..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 0x10;
            assert!(
                decode_frame(&bad, 100).is_err(),
                "flip at {i} went unnoticed"
            );
        }
    }

    #[test]
    fn oversized_body_refused_from_the_header_alone() {
        let mut wire = Vec::new();
        encode_frame(&mut wire, &sample(), &[7u8; 50]).unwrap();
        assert_eq!(
            decode_frame(&wire[..HEADER_LEN], 49),
            Err(WireError::TooLong {
                declared: 50,
                max: 49
            })
        );
        assert!(decode_frame(&wire, 50).unwrap().is_some());
    }

    #[test]
    fn preamble_checks_magic_early_and_version() {
        let mut p = Vec::new();
        encode_preamble(&mut p);
        assert_eq!(decode_preamble(&p[..3]), Ok(None));
        assert_eq!(decode_preamble(&p), Ok(Some(8)));
        assert!(matches!(
            decode_preamble(b"GE"),
            Err(WireError::BadMagic(_))
        ));
        assert_eq!(
            decode_preamble(b"MSGC\x02\0\0\0"),
            Err(WireError::BadVersion(2))
        );
    }

    #[test]
    fn control_bodies_are_checked() {
        let hello = Hello {
            node_id: 9,
            incarnation: 10,
            dedup_window_ms: 60_000,
            max_body: 1 << 20,
        };
        let mut wire = Vec::new();
        encode_frame(&mut wire, &Header::new(Kind::Hello), &hello.to_body()).unwrap();
        let (f, _) = decode_frame(&wire, 100).unwrap().unwrap();
        assert_eq!(Hello::from_body(f.body), Some(hello));
        let mut wire = Vec::new();
        encode_frame(&mut wire, &Header::new(Kind::Hello), b"short").unwrap();
        assert_eq!(
            decode_frame(&wire, 100),
            Err(WireError::BadBody(Kind::Hello))
        );
        let mut wire = Vec::new();
        encode_frame(&mut wire, &Header::new(Kind::Ack), b"x").unwrap();
        assert_eq!(decode_frame(&wire, 100), Err(WireError::BadBody(Kind::Ack)));
    }
}
