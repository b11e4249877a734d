//! # imconn - buffered TeamTalk connections over netlib
//!
//! The layer TeamTalk's servers are written against (`CImConn`, `ServInfo`,
//! the connection and user maps):
//!
//! - [`buffered`]: a connection's in/out buffers with write-through sends, a
//!   high-water mark, a hard cap, half-close after drain - usable with any
//!   codec;
//! - [`server`]: the [`ImConn`] trait (implement `handle_pdu`, get framing,
//!   queueing and deadlines by default) and [`ImServer`], the netlib handler
//!   serving every connection of a server, accepted or outgoing, including
//!   reconnecting links;
//! - [`policy`]: heartbeats, idle and login deadlines, reconnect backoff;
//! - [`maps`]: user id to connections.
//!
//! ```
//! use imconn::{ConnConfig, ImConn, ImCtx, ImServer};
//! use netlib::{EventDispatch, ListenOptions};
//! use pdu::{PduRef, Header};
//!
//! /// Echoes every frame back.
//! struct Echo;
//! impl ImConn for Echo {
//!     type Shared = u64; // frames seen by the whole server
//!     fn handle_pdu(&mut self, cx: &mut ImCtx<'_, Self>, pdu: PduRef<'_>) {
//!         *cx.shared += 1;
//!         let _ = cx.send_frame(pdu.as_bytes());
//!     }
//! }
//!
//! let mut dispatch = EventDispatch::new().unwrap();
//! let ctx = dispatch.context();
//! let server = ImServer::<Echo>::register(ctx, 0, |_, _| Some((Echo, ConnConfig::client())));
//! let listener = ctx
//!     .listen_with("127.0.0.1:0".parse().unwrap(), &ListenOptions::default(), server)
//!     .unwrap();
//! # let _ = listener;
//! ```
pub mod buffered;
pub mod maps;
pub mod policy;
pub mod server;

pub use buffered::{BufferedConn, Limits, ReadStatus, SendError, SendStatus};
pub use maps::UserMap;
pub use policy::{Backoff, Timeouts};
pub use server::{read_frames, ConnConfig, ConnTable, ImConn, ImCtx, ImServer};
