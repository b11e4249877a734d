//! The TeamTalk frame ("PDU"): how bytes on a TeamTalk connection become messages.
//!
//! Every TeamTalk connection, client to server or server to server, carries a stream
//! of frames. A frame is a 16-byte big-endian [`Header`] followed by a body, almost
//! always a protobuf message:
//!
//! ```text
//!  0       4       6       8      10      12      14      16
//!  +-------+-------+-------+-------+-------+-------+-------+------------
//!  |length |version| flag  |service|command|seq_num|reserved| body ...
//!  |  u32  |  u16  |  u16  |  u16  |  u16  |  u16  |  u16   |
//!  +-------+-------+-------+-------+-------+-------+-------+------------
//!  length counts the whole frame, header included; version is always 1
//! ```
//!
//! This crate is the part of the port that knows that layout and nothing about
//! sockets. It has no dependency on `netlib`; `imconn` glues the two together.
//!
//! | module | job |
//! | --- | --- |
//! | [`header`] | the 16-byte header: parse, write, constants |
//! | [`decoder`] | split a byte stream into frames, rejecting bad ones with a reason |
//! | [`frame`] | a decoded frame, borrowed ([`PduRef`]) or owned ([`Pdu`]), and the encoders |
//! | [`simple_buffer`] | a growable connection buffer with a read offset |
//! | [`byte_stream`] | bounds-checked big-endian reads and writes |
//! | [`ids`] | service and command ids as named constants |
//! | [`proto`] | the protobuf bodies, wire-compatible with TeamTalk's `.proto` files |
//! | [`error`] | the error types |
//!
//! # Receiving
//!
//! A connection reads from its socket straight into a [`SimpleBuffer`], then lets a
//! [`FrameDecoder`] walk the complete frames in place. Nothing is copied: each frame
//! is a [`PduRef`] borrowing the buffer, and the buffer forgets the frames in one
//! [`SimpleBuffer::consume`] call afterwards.
//!
//! ```
//! use pdu::{proto, FrameDecoder, Header, Pdu, SimpleBuffer};
//! use pdu::{cid, sid};
//!
//! let decoder = FrameDecoder::new(); // 4 MiB maximum frame
//! let mut input = SimpleBuffer::new();
//!
//! // Pretend the socket delivered a heartbeat and half of a second frame.
//! let mut wire = Vec::new();
//! Pdu::encode_message_into(&mut wire, &Header::new(sid::OTHER, cid::other::HEARTBEAT), &proto::ImHeartBeat {})?;
//! Pdu::encode_message_into(&mut wire, &Header::new(sid::OTHER, cid::other::HEARTBEAT), &proto::ImHeartBeat {})?;
//! input.extend_from_slice(&wire[..24]);
//!
//! let mut frames = decoder.frames(input.as_slice());
//! let mut seen = 0;
//! for frame in &mut frames {
//!     let frame = frame?; // a FrameError means: close this connection, log why
//!     assert_eq!(frame.command_id(), cid::other::HEARTBEAT);
//!     seen += 1;
//! }
//! let used = frames.consumed();
//! input.consume(used);
//! assert_eq!(seen, 1);
//! assert_eq!(input.len(), 8); // the partial frame waits for more bytes
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Sending
//!
//! [`Pdu::encode_message_into`] appends header and body to an output buffer (a
//! `Vec<u8>` or a [`SimpleBuffer`]) in one pass, with no intermediate body buffer.
//!
//! ```
//! use pdu::{proto, Header, Pdu, SimpleBuffer};
//! use pdu::{cid, sid};
//!
//! let mut out = SimpleBuffer::new();
//! let rsp = proto::ImLogoutRsp { result_code: 0 };
//! let header = Header::new(sid::LOGIN, cid::login::RES_LOGINOUT).with_seq_num(7);
//! let written = Pdu::encode_message_into(&mut out, &header, &rsp)?;
//! assert_eq!(written, 18); // 16-byte header + 2-byte body
//! assert_eq!(out.as_slice()[..4], [0, 0, 0, 18]);
//! # Ok::<(), pdu::EncodeError>(())
//! ```
//!
//! Everything here is plain data: no globals, no interior mutability, no threads.
//! Each value belongs to whoever holds it, normally one connection on one reactor
//! thread.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod byte_stream;
pub mod decoder;
pub mod error;
pub mod frame;
pub mod header;
pub mod ids;
pub mod proto;
pub mod simple_buffer;

pub use byte_stream::{ByteReader, ByteWriter};
pub use decoder::{FrameDecoder, Frames, DEFAULT_MAX_FRAME_LEN};
pub use error::{EncodeError, FrameError, StreamError};
pub use frame::{FrameBuf, Pdu, PduRef};
pub use header::{Header, HEADER_LEN, PROTOCOL_VERSION};
pub use ids::{cid, sid};
pub use simple_buffer::SimpleBuffer;

/// The protobuf runtime the bodies are built on, re-exported so that users of this
/// crate encode and decode with the same version without a dependency of their own.
pub use prost;
/// The trait every body in [`proto`] implements (`encode`, `decode`, `encoded_len`).
pub use prost::Message;
