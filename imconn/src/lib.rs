//! # imconn - one connection layer for every protocol on netlib
//!
//! TeamTalk's servers were written against `CImConn`: buffered connections
//! with PDU framing, heartbeats and reconnecting server links. This crate is
//! that layer made codec-generic, so every protocol of the workspace - the
//! TeamTalk servers, memcached, chat, HTTP, the relays - uses one connection
//! table, one buffering policy and one set of deadlines:
//!
//! - [`codec`]: the [`Codec`]/[`Encoder`] traits (decode keeps "incomplete"
//!   apart from "invalid") and the raw, line and length-prefixed codecs;
//!   [`pdu_codec`]: TeamTalk's PDU framing and [`ImServer`];
//! - [`conn`]: the [`Connection`] trait (implement `on_frame`, get
//!   framing, batching, queueing and deadlines), [`ConnConfig`] and
//!   [`Accepted`];
//! - [`server`]: [`Server`], the netlib handler serving every connection
//!   of a server, accepted or outgoing, with its links; the read and write
//!   path it drives lives in a private `transfer` module;
//! - [`ctx`]: [`ConnCtx`], what a hook may do;
//! - [`group`]: [`ServerGroup`], a server on every loop of a netlib loop
//!   group (one loop per thread, one shared port);
//! - [`table`]: [`ConnTable`], the one connection table;
//! - [`buffered`]: a connection's in/out buffers with write-through sends,
//!   a high-water mark, a hard cap, half-close after drain;
//! - [`policy`]: heartbeats, idle and login deadlines, reconnect backoff;
//! - [`maps`]: user id to connections;
//! - [`http`]: HTTP/1.1 requests as a codec, and responses;
//! - [`nats`]: the client side of NATS's text protocol as a codec.
//!
//! ```
//! use imconn::{Accepted, ConnConfig, ConnCtx, Connection, ImServer, PduCodec, RawFrame};
//! use netlib::{EventDispatch, ListenOptions};
//! use pdu::PduRef;
//!
//! /// Echoes every frame back.
//! struct Echo;
//! impl Connection for Echo {
//!     type Codec = PduCodec;
//!     type Shared = u64; // frames seen by the whole server
//!     fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, pdu: PduRef<'_>) {
//!         *cx.shared += 1;
//!         let _ = cx.send(RawFrame(pdu.as_bytes()));
//!     }
//! }
//!
//! let mut dispatch = EventDispatch::new().unwrap();
//! let ctx = dispatch.context();
//! // TeamTalk's client deadlines: 15 s to log in, 120 s of silence.
//! let server = ImServer::<Echo>::register(ctx, 0, |_, _: &Accepted| {
//!     Some((Echo, ConnConfig::client()))
//! });
//! let listener = ctx
//!     .listen_with("127.0.0.1:0".parse().unwrap(), &ListenOptions::default(), server)
//!     .unwrap();
//! # let _ = listener;
//! ```
#![warn(missing_docs)]

pub mod buffered;
pub mod codec;
pub mod conn;
pub mod ctx;
pub mod group;
pub mod http;
mod link;
pub mod maps;
pub mod nats;
pub mod pdu_codec;
pub mod policy;
pub mod server;
pub mod table;
mod transfer;

pub use buffered::{BufferedConn, Limits, ReadStatus, SendError, SendStatus};
pub use codec::{
    Codec, DecodeError, EncodeError, Encoder, FrameTooLong, LengthCodec, LineCodec, LineTooLong,
    RawCodec,
};
pub use ctx::ConnCtx;
pub use group::ServerGroup;
pub use maps::UserMap;
pub use nats::{NatsCodec, NatsFrame, NatsOut};
pub use pdu_codec::{ImServer, PduCodec, RawFrame};
pub use policy::{Backoff, Timeouts};
pub use server::{Accepted, ConnConfig, Connection, Server, DEFAULT_MAX_FRAME};
pub use table::ConnTable;
